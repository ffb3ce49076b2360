"""The night audit's ledger check: the day's sales and cancellations against their ledger entries,
and refunds against their payments. Each inconsistency is planted with SQL the way a bug or a
manual fix would leave it (the ledger refuses UPDATE and DELETE: only INSERTs there)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.api.ids import decode_id
from tests.api.test_bookings import book, cancel, confirm, item, setup
from tests.api.test_cancellation_fees import set_policy
from tests.api.test_night_audit import D, at, audit, execute
from tests.api.test_refunds import record, refund

LEDGER_KINDS = {"LEDGER_MISMATCH", "REFUND_EXCEEDS_PAYMENT"}


async def day_with_money(gql, sessions):
    """On D: sale A confirmed (paid 50.00 offline, 10.00 of it refunded), sale B confirmed and
    cancelled under a 20 % policy."""
    hotel, ids, agencies = await setup(gql)
    await set_policy(gql, hotel["id"], [(365, 20)])
    sales = {}
    for name, room_type in (("A", "STD"), ("B", "SUP")):
        group = await book(gql, agencies["SUNTRAVEL"], item(ids[room_type], 0, nights=2))
        sales[name] = (group, await confirm(gql, group["id"]))
    payment = await record(gql, sales["A"][1]["id"], "50.00")
    await refund(gql, payment["id"], "10.00")
    await cancel(gql, sales["B"][0]["id"])
    await execute(sessions, "UPDATE sale_order SET confirmed_at = :t, cancelled_at = CASE WHEN cancelled_at IS NULL"
                  " THEN NULL ELSE CAST(:t AS timestamptz) + interval '1 hour' END", t=at(D, 10))
    return hotel, sales, payment


def ledger_findings(row):
    return [d for d in row.discrepancies if d["kind"] in LEDGER_KINDS]


async def test_a_day_whose_ledger_matches_its_sales_reports_nothing(gql, sessions):
    hotel, _, _ = await day_with_money(gql, sessions)
    assert ledger_findings(await audit(gql, hotel)) == []


def order_pk(sales, name):
    return decode_id(sales[name][1]["id"], "SaleOrder", "id")


async def _sale_total_changed(sessions, sales, payment):
    await execute(sessions, "UPDATE sale_order SET total_amount = total_amount + 1 WHERE id = :id",
                  id=order_pk(sales, "A"))


async def _second_credit_note(sessions, sales, payment):
    await execute(sessions, "INSERT INTO ledger_entry (agency_id, kind, amount, currency, group_id, sale_order_id,"
                  " created_by) SELECT agency_id, 'CREDIT_NOTE', total_amount, currency, group_id, id, 'fix'"
                  " FROM sale_order WHERE id = :id", id=order_pk(sales, "B"))


async def _fee_changed(sessions, sales, payment):
    await execute(sessions, "UPDATE sale_order SET cancellation_fee = 0 WHERE id = :id", id=order_pk(sales, "B"))


async def _over_refund(sessions, sales, payment):
    await execute(sessions, "INSERT INTO ledger_entry (agency_id, kind, amount, currency, group_id, payment_id,"
                  " created_by) SELECT agency_id, 'REFUND', 45, currency, group_id, id, 'fix' FROM payment")


async def _sale_in_another_currency(sessions, sales, payment):
    await execute(sessions, "INSERT INTO ledger_entry (agency_id, kind, amount, currency, group_id, sale_order_id,"
                  " created_by) SELECT agency_id, 'FEE', 1, 'USD', group_id, id, 'fix' FROM sale_order WHERE id = :id",
                  id=order_pk(sales, "B"))


@pytest.mark.parametrize(("plant", "kind", "says"), [
    (_sale_total_changed, "LEDGER_MISMATCH", "where exactly one of"),
    (_second_credit_note, "LEDGER_MISMATCH", "2 entries of"),
    (_fee_changed, "LEDGER_MISMATCH", "where none belongs"),
    (_over_refund, "REFUND_EXCEEDS_PAYMENT", "5.00 EUR too much went back"),
    (_sale_in_another_currency, "LEDGER_MISMATCH", "in another currency"),
])
async def test_each_ledger_inconsistency_is_reported(gql, sessions, plant, kind, says):
    hotel, sales, payment = await day_with_money(gql, sessions)
    await plant(sessions, sales, payment)
    found = ledger_findings(await audit(gql, hotel))
    assert len(found) == 1 and found[0]["kind"] == kind, found
    assert says in found[0]["detail"], found[0]["detail"]
    assert found[0]["date"] == D.isoformat()
