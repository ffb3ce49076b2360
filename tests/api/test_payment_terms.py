"""Payment terms (PREPAY, DEPOSIT, CREDIT) through createAgency / updateAgency, and what they do to
confirmBooking: PaymentRequired while money is due, CreditLimitExceeded past the limit, the sale
on the ledger, and the credit check under the agency's lock, raced over real HTTP (and the same
race without the lock, which lets both sales through)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.services import bookings as booking_service
from db import models
from tests.api.test_booking_races import inventory_lock_disabled, post
from tests.api.test_bookings import CONFIRM, CREATE, book, booking_input, confirm, item, setup
from tests.api.test_calendar import setup_hotel
from tests.support import LiveServer, data

AGENCY = """
fragment Terms on Agency { id code paymentTerms creditLimit { amount currency } depositPercent balanceDueDays
                           outstanding { amount currency } balances { amount currency } }
"""
CREATE_AGENCY = AGENCY + """
mutation($input: CreateAgencyInput!) { createAgency(input: $input) {
  __typename ... on Agency { ...Terms } ... on InvalidInput { field message } } }
"""
UPDATE_AGENCY = AGENCY + """
mutation($input: UpdateAgencyInput!) { updateAgency(input: $input) {
  __typename ... on Agency { ...Terms } ... on InvalidInput { field message } } }
"""
CONFIRM_MONEY = """
mutation($id: ID!) { confirmBooking(groupId: $id) {
  __typename
  ... on SaleOrder { number total { amount currency } }
  ... on PaymentRequired { message code amountDue { amount currency } }
  ... on CreditLimitExceeded { message code limit { amount } outstanding { amount } amount { amount currency } }
} }
"""


async def create_agency(gql, code, **terms):
    return data(await gql(CREATE_AGENCY, {"input": {"code": code, "name": code.title(), **terms}}))["createAgency"]


async def update_agency(gql, agency_id, **fields):
    return data(await gql(UPDATE_AGENCY, {"input": {"id": agency_id, **fields}}))["updateAgency"]


async def ledger_rows(sessions) -> list[tuple[str, Decimal]]:
    async with sessions() as session:
        return [(kind, amount) for kind, amount in await session.execute(
            select(models.LedgerEntry.kind, models.LedgerEntry.amount).order_by(models.LedgerEntry.id))]


# --- terms -------------------------------------------------------------------------------------


async def test_agencies_buy_on_credit_without_a_limit_unless_told_otherwise(gql):
    plain = await create_agency(gql, "PLAIN")
    assert (plain["paymentTerms"], plain["creditLimit"], plain["depositPercent"]) == ("CREDIT", None, None)
    assert plain["outstanding"] == {"amount": "0.00", "currency": "EUR"} and plain["balances"] == []

    deposit = await create_agency(gql, "DEP", paymentTerms="DEPOSIT", depositPercent=30, balanceDueDays=14)
    assert (deposit["paymentTerms"], deposit["depositPercent"], deposit["balanceDueDays"]) == ("DEPOSIT", 30, 14)
    limited = await create_agency(gql, "LIM", creditLimit={"amount": "5000", "currency": "usd"})
    assert limited["creditLimit"] == {"amount": "5000.00", "currency": "USD"}
    assert limited["outstanding"] == {"amount": "0.00", "currency": "USD"}


@pytest.mark.parametrize(("terms", "field"), [
    ({"paymentTerms": "DEPOSIT", "depositPercent": 30}, "balanceDueDays"),
    ({"paymentTerms": "DEPOSIT", "depositPercent": 100, "balanceDueDays": 3}, "depositPercent"),
    ({"paymentTerms": "PREPAY", "creditLimit": {"amount": "10", "currency": "EUR"}}, "creditLimit"),
    ({"depositPercent": 20}, "depositPercent"),
    ({"creditLimit": {"amount": "-1", "currency": "EUR"}}, "creditLimit.amount"),
    ({"creditLimit": {"amount": "10.005", "currency": "EUR"}}, "creditLimit.amount"),
    ({"creditLimit": {"amount": "lots", "currency": "EUR"}}, "creditLimit.amount"),
])
async def test_terms_that_do_not_fit_together_are_refused_and_nothing_is_created(gql, sessions, terms, field):
    result = await create_agency(gql, "BAD", **terms)
    assert result["__typename"] == "InvalidInput" and result["field"] == field, result
    async with sessions() as session:
        assert (await session.execute(select(func.count()).select_from(models.Agency))).scalar_one() == 0


async def test_update_keeps_what_is_left_out_and_clears_the_old_terms_fields_when_the_terms_change(gql):
    agency = await create_agency(gql, "MOVER", paymentTerms="DEPOSIT", depositPercent=25, balanceDueDays=10)
    kept = await update_agency(gql, agency["id"], balanceDueDays=7)
    assert (kept["paymentTerms"], kept["depositPercent"], kept["balanceDueDays"]) == ("DEPOSIT", 25, 7)
    credit = await update_agency(gql, agency["id"], paymentTerms="CREDIT",
                                 creditLimit={"amount": "1000.00", "currency": "EUR"})
    assert (credit["paymentTerms"], credit["depositPercent"], credit["balanceDueDays"]) == ("CREDIT", None, None)
    assert credit["creditLimit"] == {"amount": "1000.00", "currency": "EUR"}
    unlimited = await update_agency(gql, agency["id"], creditLimit=None)
    assert unlimited["creditLimit"] is None
    refused = await update_agency(gql, agency["id"], paymentTerms="DEPOSIT")
    assert refused["__typename"] == "InvalidInput" and refused["field"] == "depositPercent"
    audit = data(await gql('query($id: ID!) { auditLog(entityId: $id) { edges { node { action after } } } }',
                           {"id": agency["id"]}))["auditLog"]["edges"]
    assert [e["node"]["action"] for e in audit].count("agency.updated") == 3  # the refusal changed nothing
    assert audit[0]["node"]["after"]["payment_terms"] == "CREDIT"


# --- confirmBooking ----------------------------------------------------------------------------


async def held_group(gql, agency_code, room_type, **item_fields):
    agencies = data(await gql("{ agencies { id code } }"))["agencies"]
    agency_id = next(a["id"] for a in agencies if a["code"] == agency_code)
    group = await book(gql, agency_id, item(room_type, **item_fields))
    assert group["__typename"] == "BookingGroup", group
    return group


async def test_prepay_and_deposit_agencies_cannot_confirm_while_money_is_due(gql, sessions):
    hotel, ids, _ = await setup(gql)
    await create_agency(gql, "PAYFIRST", paymentTerms="PREPAY")
    await create_agency(gql, "HALF", paymentTerms="DEPOSIT", depositPercent=30, balanceDueDays=14)
    prepaid = await held_group(gql, "PAYFIRST", ids["STD"])
    deposit = await held_group(gql, "HALF", ids["STD"])

    refused = data(await gql(CONFIRM_MONEY, {"id": prepaid["id"]}))["confirmBooking"]
    assert refused["__typename"] == "PaymentRequired" and refused["code"] == "PAYMENT_REQUIRED"
    assert refused["amountDue"] == prepaid["total"]
    assert refused["message"] == f"{prepaid['total']['amount']} EUR must be paid first"
    total = Decimal(deposit["total"]["amount"])
    due = data(await gql(CONFIRM_MONEY, {"id": deposit["id"]}))["confirmBooking"]
    assert due["__typename"] == "PaymentRequired"
    assert Decimal(due["amountDue"]["amount"]) == (total * Decimal("0.30")).quantize(Decimal("0.01"))

    # nothing written: still held, no sale order, nothing on the ledger; the groups say what is due
    groups = data(await gql("{ bookingGroups { edges { node { id status saleOrder { number } "
                            "amountDueNow { amount currency } payments { id } } } } }"))["bookingGroups"]["edges"]
    assert {(g["node"]["status"], g["node"]["saleOrder"]) for g in groups} == {("HELD", None)}
    due_now = {g["node"]["id"]: g["node"]["amountDueNow"] for g in groups}
    assert due_now == {prepaid["id"]: prepaid["total"], deposit["id"]: due["amountDue"]}
    assert all(g["node"]["payments"] == [] for g in groups)
    assert await ledger_rows(sessions) == []


async def test_a_credit_sale_goes_on_the_ledger_and_the_limit_refuses_the_next(gql, sessions):
    hotel, ids, _ = await setup(gql)
    first = await held_group(gql, "SUNTRAVEL", ids["STD"])
    second = await held_group(gql, "SUNTRAVEL", ids["SUP"])
    total = Decimal(first["total"]["amount"])
    agencies = data(await gql("{ agencies { id code } }"))["agencies"]
    sun = next(a["id"] for a in agencies if a["code"] == "SUNTRAVEL")
    await update_agency(gql, sun, creditLimit={"amount": str(total + Decimal("0.01")), "currency": "EUR"})

    order = data(await gql(CONFIRM_MONEY, {"id": first["id"]}))["confirmBooking"]
    assert order["__typename"] == "SaleOrder"
    refused = data(await gql(CONFIRM_MONEY, {"id": second["id"]}))["confirmBooking"]
    assert refused["__typename"] == "CreditLimitExceeded" and refused["code"] == "CREDIT_LIMIT_EXCEEDED"
    assert Decimal(refused["outstanding"]["amount"]) == total
    assert refused["amount"] == second["total"] and Decimal(refused["limit"]["amount"]) == total + Decimal("0.01")

    assert await ledger_rows(sessions) == [("SALE", total)]
    sale = data(await gql('query($id: ID!) { node(id: $id) { ... on BookingGroup { amountDueNow { amount } saleOrder {'
                          ' paymentStatus paid { amount } balanceDue { amount } balanceDueAt cancellationFee { amount }'
                          ' payments { id } } } } }', {"id": first["id"]}))["node"]
    assert sale["amountDueNow"]["amount"] == "0.00"
    assert sale["saleOrder"] == {"paymentStatus": "UNPAID", "paid": {"amount": "0.00"},
                                 "balanceDue": {"amount": first["total"]["amount"]}, "balanceDueAt": None,
                                 "cancellationFee": None, "payments": []}
    agency = (await update_agency(gql, sun))
    assert Decimal(agency["outstanding"]["amount"]) == total
    # a confirmation again is idempotent: the same sale order, no second sale on the ledger
    assert data(await gql(CONFIRM_MONEY, {"id": first["id"]}))["confirmBooking"]["number"] == order["number"]
    assert await ledger_rows(sessions) == [("SALE", total)]


# --- the credit race -----------------------------------------------------------------------------

AGENCIES = 8


@pytest.fixture(scope="module")
def server(settings) -> Iterator[tuple[str, Any]]:
    with LiveServer(settings, lock_timeout_ms=20_000, db_pool_size=10, db_pool_timeout_s=30) as live:
        yield live.http_url, live.app


@pytest.fixture
async def http(server, db) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server[0], timeout=60, trust_env=False) as client:
        yield client


async def race_two_sales_per_agency(gql, http, monkeypatch) -> list[int]:
    """Per agency, two groups on room types of their own (no inventory lock in common) whose
    totals each fit under the agency's credit limit and together pass it, confirmed at once.
    Returns the sales confirmed per agency. The agency's locked read is slowed down, so that the
    confirmations overlap every time rather than by chance."""
    codes = [f"RT{n}" for n in range(2 * AGENCIES)]
    hotel, ids = await setup_hotel(gql, room_types=tuple(codes))
    groups: list[tuple[str, str]] = []
    for n in range(AGENCIES):
        agency = await create_agency(gql, f"RACER{n}")
        pair = []
        for code in codes[2 * n:2 * n + 2]:
            created = await post(http, CREATE, {"input": booking_input(agency["id"], item(ids[code]))})
            pair.append(created["createBooking"])
        limit = Decimal(pair[0]["total"]["amount"]) * Decimal("1.5")
        await update_agency(gql, agency["id"], creditLimit={"amount": str(limit), "currency": "EUR"})
        groups += [(agency["code"], group["id"]) for group in pair]

    read = booking_service.lock_group_raw

    async def slow_read(*args: Any, **kwargs: Any) -> Any:
        locked = await read(*args, **kwargs)
        await asyncio.sleep(0.05)
        return locked

    monkeypatch.setattr(booking_service, "lock_group_raw", slow_read)
    results = await asyncio.gather(*(post(http, CONFIRM, {"id": group_id}) for _, group_id in groups))
    confirmed = {code: 0 for code, _ in groups}
    for (code, _), result in zip(groups, results):
        kind = result["confirmBooking"]["__typename"]
        assert kind in ("SaleOrder", "CreditLimitExceeded"), result
        confirmed[code] += kind == "SaleOrder"
    return list(confirmed.values())


async def test_two_confirmations_racing_never_both_slip_under_the_credit_limit(gql, http, monkeypatch):
    assert await race_two_sales_per_agency(gql, http, monkeypatch) == [1] * AGENCIES


async def test_without_the_agency_lock_the_same_race_passes_the_limit(gql, http, monkeypatch):
    with inventory_lock_disabled():
        confirmed = await race_two_sales_per_agency(gql, http, monkeypatch)
    assert 2 in confirmed, confirmed  # both sales of some agency went through: the limit was passed
