"""Ledger checkpoints (db/ledger.py): a confirmation under the agency's ledger lock keeps the sums
it read once it has read CHECKPOINT_EVERY entries past the checkpoint; balances and credit checks
read the checkpoint plus the entries after it and agree with the entries summed whole; the night
audit sums the entries again and reports a checkpoint that does not match."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

import app.services.bookings as booking_service
from app.api.ids import decode_id
from db import models
from tests.api.test_bookings import book, item, setup
from tests.api.test_night_audit import D, at, audit, execute
from tests.api.test_payment_terms import CONFIRM_MONEY, update_agency
from tests.support import data

OUTSTANDING = 'query($id: ID!) { node(id: $id) { ... on Agency { outstanding { amount } } } }'


async def summed_whole(sessions, agency_pk) -> Decimal:
    sign = {"SALE": 1, "FEE": 1, "REFUND": 1, "PAYMENT": -1, "OFFLINE_PAYMENT": -1, "CREDIT_NOTE": -1}
    async with sessions() as session:
        rows = await session.execute(select(models.LedgerEntry.kind, func.sum(models.LedgerEntry.amount))
                                     .where(models.LedgerEntry.agency_id == agency_pk).group_by(models.LedgerEntry.kind))
        return sum((sign[kind] * amount for kind, amount in rows), Decimal(0))


async def checkpoint(sessions, agency_pk):
    async with sessions() as session:
        return await session.get(models.LedgerCheckpoint, agency_pk)


async def test_checkpoints_move_and_balances_and_the_limit_still_add_up(gql, sessions, monkeypatch):
    monkeypatch.setattr(booking_service, "CHECKPOINT_EVERY", 2)  # move it every other confirmation
    hotel, ids, agencies = await setup(gql, allotment=50)
    sun = agencies["SUNTRAVEL"]
    groups = [await book(gql, sun, item(ids["STD"], offset=n, nights=1)) for n in range(6)]
    price = Decimal(groups[0]["total"]["amount"])
    await update_agency(gql, sun, creditLimit={"amount": str(price * 5), "currency": "EUR"})
    sun_pk = decode_id(sun, "Agency", "id")

    confirmed = []
    for group in groups:
        result = data(await gql(CONFIRM_MONEY, {"id": group["id"]}))["confirmBooking"]
        confirmed.append(result["__typename"])
        shown = Decimal(data(await gql(OUTSTANDING, {"id": sun}))["node"]["outstanding"]["amount"])
        assert shown == await summed_whole(sessions, sun_pk)

    # five sales fit under a limit of five prices; the sixth does not, checkpoints or not
    assert confirmed == ["SaleOrder"] * 5 + ["CreditLimitExceeded"]
    # moved by the 3rd confirmation (it read entries 1-2) and the 5th (3-4); the 6th read one
    kept = await checkpoint(sessions, sun_pk)
    assert kept.through_id == 4
    assert [[kind, currency, Decimal(amount)] for kind, currency, amount in kept.sums] == [["SALE", "EUR", price * 4]]
    # and the night audit, summing the entries again, finds it right
    await execute(sessions, "UPDATE ledger_checkpoint SET updated_at = :t", t=at(D, 12))
    assert [d for d in (await audit(gql, hotel)).discrepancies if d["kind"] == "LEDGER_CHECKPOINT_MISMATCH"] == []


async def test_the_night_audit_reports_a_checkpoint_that_does_not_match_its_entries(gql, sessions, monkeypatch):
    monkeypatch.setattr(booking_service, "CHECKPOINT_EVERY", 1)
    hotel, ids, agencies = await setup(gql, allotment=50)
    sun = agencies["SUNTRAVEL"]
    await update_agency(gql, sun, creditLimit={"amount": "100000.00", "currency": "EUR"})
    for n in range(3):
        group = await book(gql, sun, item(ids["STD"], offset=n, nights=1))
        assert data(await gql(CONFIRM_MONEY, {"id": group["id"]}))["confirmBooking"]["__typename"] == "SaleOrder"
    # a sum kept wrong (as an entry written without the lock would leave it)
    await execute(sessions, "UPDATE ledger_checkpoint SET sums = '[[\"SALE\", \"EUR\", \"1.00\"]]', updated_at = :t",
                  t=at(D, 13))
    found = [d for d in (await audit(gql, hotel)).discrepancies if d["kind"] == "LEDGER_CHECKPOINT_MISMATCH"]
    assert len(found) == 1 and "agency SUNTRAVEL's ledger checkpoint" in found[0]["detail"]
    assert "SALE EUR kept 1.00, summed" in found[0]["detail"]
