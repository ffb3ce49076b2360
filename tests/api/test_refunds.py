"""refundPayment and recordOfflinePayment: partial refunds that add up and never exceed the payment
(and the concurrent race over real HTTP, with its lock-off twin), card refunds against localstripe,
offline payments against what a sale owes, and who may see and do what."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.services.payments import refunds as refund_service
from db import models
from tests.api.test_bookings import audit_actions, book, cancel, confirm, item, setup
from tests.api.test_booking_races import post
from tests.api.test_cancellation_fees import SALE, card_payment, provider_ids, sale, stripe_refunds
from tests.api.test_payment_terms import create_agency, ledger_rows, update_agency
from tests.support import LiveServer, data

PAYMENT = "... on Payment { id amount { amount currency } refunded { amount } method state reference }"
REFUND = """
mutation($input: RefundPaymentInput!) { refundPayment(input: $input) {
  __typename %s ... on InvalidInput { field message code } ... on NotFound { message code missing: id } } }
""" % PAYMENT
RECORD = """
mutation($input: RecordOfflinePaymentInput!) { recordOfflinePayment(input: $input) {
  __typename %s ... on InvalidInput { field message code } ... on NotFound { message code missing: id } } }
""" % PAYMENT


def eur(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "EUR"}


async def refund(gql, payment_id, amount, reason=None, role="admin", **money):
    result = await gql(REFUND, {"input": {"paymentId": payment_id, "amount": {**eur(amount), **money},
                                          "reason": reason}}, role=role)
    return data(result)["refundPayment"]


async def record(gql, sale_order_id, amount, reference="TRF-0001", role="admin", **money):
    result = await gql(RECORD, {"input": {"saleOrderId": sale_order_id, "amount": {**eur(amount), **money},
                                          "reference": reference}}, role=role)
    return data(result)["recordOfflinePayment"]


async def confirmed_sale(gql, agency="SUNTRAVEL", offset=0, room_type="STD"):
    hotel, ids, agencies = await setup(gql)
    group = await book(gql, agencies[agency], item(ids[room_type], offset=offset))
    order = await confirm(gql, group["id"])
    assert order["__typename"] == "SaleOrder", order
    return group, order, agencies


# --- recordOfflinePayment ------------------------------------------------------------------------


async def test_an_offline_payment_is_recorded_against_what_the_sale_owes(gql, sessions):
    group, order, agencies = await confirmed_sale(gql)
    total = Decimal(order["total"]["amount"])
    paid = await record(gql, order["id"], "100.00", reference="  TRF-2026-001  ", role="operator")
    assert paid["__typename"] == "Payment" and paid["method"] == "OFFLINE" and paid["state"] == "SUCCEEDED"
    assert paid["reference"] == "TRF-2026-001" and paid["amount"] == eur("100.00")
    shown = (await sale(gql, group["id"]))["saleOrder"]
    assert Decimal(shown["paid"]["amount"]) == 100 and Decimal(shown["balanceDue"]["amount"]) == total - 100
    assert shown["paymentStatus"] == "PARTIALLY_PAID"
    assert await ledger_rows(sessions) == [("SALE", total), ("OFFLINE_PAYMENT", Decimal("100.00"))]
    async with sessions() as session:
        row = (await session.execute(select(models.Payment))).scalar_one()
        entry = (await session.execute(select(models.LedgerEntry).where(models.LedgerEntry.kind == "OFFLINE_PAYMENT"))
                 ).scalar_one()
    assert row.created_by and row.created_by != "test"
    assert (entry.payment_id, entry.group_id, entry.sale_order_id) == (row.id, row.group_id, entry.sale_order_id)
    assert entry.sale_order_id is not None
    entries = await audit_actions(gql, paid["id"])
    assert entries[0]["action"] == "payment.recorded" and entries[0]["actorRole"] == "operator"

    # the rest settles it exactly; a cent more is refused
    rest = str(total - 100)
    over = await record(gql, order["id"], str(total - 100 + Decimal("0.01")))
    assert over["__typename"] == "InvalidInput" and over["field"] == "amount.amount"
    assert over["message"] == f"amount.amount must be at most {rest} EUR, what the sale still owes"
    assert (await record(gql, order["id"], rest))["__typename"] == "Payment"
    assert (await sale(gql, group["id"]))["saleOrder"]["paymentStatus"] == "PAID"


@pytest.mark.parametrize(("amount", "currency", "reference", "field"), [
    ("0", "EUR", "T", "amount.amount"),
    ("-5", "EUR", "T", "amount.amount"),
    ("1.001", "EUR", "T", "amount.amount"),
    ("ten", "EUR", "T", "amount.amount"),
    ("10", "USD", "T", "amount.currency"),
    ("10", "EUR", "   ", "reference"),
    ("10", "EUR", "R" * 201, "reference"),
])
async def test_bad_offline_payments_are_refused_and_change_nothing(gql, sessions, amount, currency, reference, field):
    group, order, _ = await confirmed_sale(gql)
    refused = await record(gql, order["id"], amount, reference=reference, currency=currency)
    assert refused["__typename"] == "InvalidInput" and refused["field"] == field, refused
    assert [kind for kind, _ in await ledger_rows(sessions)] == ["SALE"]
    async with sessions() as session:
        assert (await session.execute(select(models.Payment))).first() is None


async def test_a_cancelled_or_unknown_sale_order_takes_no_payment(gql, sessions):
    group, order, _ = await confirmed_sale(gql)
    await cancel(gql, group["id"])
    refused = await record(gql, order["id"], "10.00")
    assert refused["__typename"] == "InvalidInput" and refused["field"] == "saleOrderId"
    assert "CANCELLED" in refused["message"]
    missing = await record(gql, "U2FsZU9yZGVyOjk5OTk=", "10.00")
    assert missing["__typename"] == "NotFound" and missing["code"] == "NOT_FOUND"


# --- refundPayment -------------------------------------------------------------------------------


async def test_partial_refunds_add_up_and_never_exceed_the_payment(gql, sessions):
    group, order, _ = await confirmed_sale(gql)
    payment = await record(gql, order["id"], "100.00")
    first = await refund(gql, payment["id"], "60.00", reason="guest left early", role="operator")
    assert first["__typename"] == "Payment" and first["refunded"] == {"amount": "60.00"}
    over = await refund(gql, payment["id"], "40.01")
    assert over["__typename"] == "InvalidInput" and over["field"] == "amount.amount"
    assert over["message"] == "amount.amount must be at most 40.00 EUR, what is left to refund of the payment"
    assert (await refund(gql, payment["id"], "40.00"))["refunded"] == {"amount": "100.00"}
    assert (await refund(gql, payment["id"], "0.01"))["__typename"] == "InvalidInput"
    assert [row for row in await ledger_rows(sessions) if row[0] == "REFUND"] == [
        ("REFUND", Decimal("60.00")), ("REFUND", Decimal("40.00"))]
    shown = (await sale(gql, group["id"]))["saleOrder"]
    assert shown["paymentStatus"] == "REFUNDED" and shown["paid"]["amount"] == "0.00"
    entries = [e for e in await audit_actions(gql, payment["id"]) if e["action"] == "payment.refunded"]
    assert len(entries) == 2
    assert entries[-1]["after"]["reason"] == "guest left early" and entries[-1]["before"]["refunded"] == "0"


@pytest.mark.parametrize(("amount", "currency", "field"), [
    ("0", "EUR", "amount.amount"), ("5", "USD", "amount.currency"), ("0.001", "EUR", "amount.amount"),
])
async def test_bad_refunds_are_refused_and_change_nothing(gql, sessions, amount, currency, field):
    _, order, _ = await confirmed_sale(gql)
    payment = await record(gql, order["id"], "100.00")
    refused = await refund(gql, payment["id"], amount, currency=currency)
    assert refused["__typename"] == "InvalidInput" and refused["field"] == field, refused
    assert "REFUND" not in [kind for kind, _ in await ledger_rows(sessions)]


async def test_only_succeeded_payments_are_refunded_and_unknown_ones_are_not_found(gql, sessions, settings):
    group, order, _ = await confirmed_sale(gql)
    payment = await record(gql, order["id"], "50.00")
    async with sessions() as session, session.begin():
        pk = (await session.execute(select(models.Payment.id))).scalar_one()
        failed = models.Payment(group_id=(await session.get(models.Payment, pk)).group_id,
                                agency_id=(await session.get(models.Payment, pk)).agency_id, method="CARD",
                                state="FAILED", amount=Decimal(10), currency="EUR", attempt=9, created_by="x")
        session.add(failed)
    from app.api.ids import to_global_id
    refused = await refund(gql, to_global_id("Payment", failed.id), "1.00")
    assert refused["__typename"] == "InvalidInput" and refused["field"] == "paymentId" and "FAILED" in refused["message"]
    missing = await refund(gql, to_global_id("Payment", 999), "1.00")
    assert missing["__typename"] == "NotFound" and missing["missing"] == to_global_id("Payment", 999)
    assert (await refund(gql, "nonsense", "1.00"))["__typename"] == "NotFound"
    assert payment["__typename"] == "Payment"


async def test_a_card_refund_goes_through_stripe(gql, sessions, settings):
    hotel, ids, _ = await setup(gql)
    await create_agency(gql, "PREPAID", paymentTerms="PREPAY")
    agencies = {a["code"]: a["id"] for a in data(await gql("{ agencies { id code } }"))["agencies"]}
    group = await book(gql, agencies["PREPAID"], item(ids["STD"]))
    total = Decimal(group["total"]["amount"])
    pk = await card_payment(settings, sessions, group["id"], total)
    assert (await confirm(gql, group["id"]))["__typename"] == "SaleOrder"
    payments = (await sale(gql, group["id"]))["saleOrder"]["payments"]
    done = await refund(gql, payments[0]["id"], "12.34")
    assert done["refunded"] == {"amount": "12.34"} and done["method"] == "CARD"
    assert await stripe_refunds(settings, (await provider_ids(sessions))[pk]) == [1234]


async def test_agents_neither_refund_nor_record_nor_see_other_agencies_payments(gql):
    group, order, _ = await confirmed_sale(gql)
    payment = await record(gql, order["id"], "10.00")
    for document, variables in ((REFUND, {"paymentId": payment["id"], "amount": eur("1.00")}),
                                (RECORD, {"saleOrderId": order["id"], "amount": eur("1.00"), "reference": "x"})):
        result = await gql(document, {"input": variables}, role="agent", agency="SUNTRAVEL")
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    node = 'query($id: ID!) { node(id: $id) { ... on Payment { id } } }'
    own = data(await gql(node, {"id": payment["id"]}, role="agent", agency="SUNTRAVEL"))["node"]
    other = data(await gql(node, {"id": payment["id"]}, role="agent", agency="BLUEWAVE"))["node"]
    assert own == {"id": payment["id"]} and other is None
    groups = data(await gql(SALE, {"id": group["id"]}, role="agent", agency="BLUEWAVE"))["node"]
    assert groups is None


# --- the refund race -----------------------------------------------------------------------------

RACERS = 6


@pytest.fixture(scope="module")
def server(settings) -> Iterator[tuple[str, Any]]:
    with LiveServer(settings, db_pool_size=10, db_pool_timeout_s=30) as live:
        yield live.http_url, live.app


@pytest.fixture
async def http(server, db) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server[0], timeout=60, trust_env=False) as client:
        yield client


async def race_refunds(gql, http, sessions, monkeypatch, *, locking: bool) -> Decimal:
    """RACERS refunds of 40.00 of one 100.00 payment at once; returns what was refunded in all. The
    read after the lock is slowed down, so the refunds overlap every time rather than by chance."""
    _, order, _ = await confirmed_sale(gql)
    payment = await record(gql, order["id"], "100.00")
    lock = refund_service.lock_payment

    async def slow_lock(session, payment_id, **options):
        if locking:
            row = await lock(session, payment_id, **options)
        else:  # the twin: the same read without FOR UPDATE
            row = await session.get(models.Payment, payment_id)
        await asyncio.sleep(0.1)
        return row

    monkeypatch.setattr(refund_service, "lock_payment", slow_lock)
    results = await asyncio.gather(*(post(http, REFUND, {"input": {"paymentId": payment["id"],
                                                                    "amount": eur("40.00")}})
                                     for _ in range(RACERS)))
    kinds = [r["refundPayment"]["__typename"] for r in results]
    assert set(kinds) <= {"Payment", "InvalidInput"}, results
    return sum((amount for kind, amount in await ledger_rows(sessions) if kind == "REFUND"), Decimal(0))


async def test_concurrent_refunds_never_together_exceed_the_payment(gql, http, sessions, monkeypatch):
    assert await race_refunds(gql, http, sessions, monkeypatch, locking=True) == Decimal("80.00")


async def test_without_the_payment_lock_the_same_race_refunds_more_than_was_paid(gql, http, sessions, monkeypatch):
    assert await race_refunds(gql, http, sessions, monkeypatch, locking=False) > Decimal("100.00")
