"""Cancellation policies (setCancellationPolicy) and what cancelling a confirmed sale charges and
posts: the fee of the policy frozen at confirmation, judged at the hotel-local date of cancelling,
the credit note and the fee on the ledger, and the refund of card payments above the fee (against
localstripe)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, text

from app.api.ids import decode_id
from app.services.payments import gateway as gateway_module
from app.services.payments.gateway import StripeUnavailable, gateway
from db import models
from domain import Money, hotel_today
from tests.api.test_bookings import audit_actions, book, cancel, confirm, item, setup
from tests.api.test_calendar import START, UPSERT_CONTRACT
from tests.api.test_catalog import contract_input
from tests.api.test_hotel_time import zoned_hotel
from tests.api.test_payment_terms import create_agency, ledger_rows, update_agency
from tests.support import data

SET_POLICY = """
mutation($input: SetCancellationPolicyInput!) { setCancellationPolicy(input: $input) {
  __typename
  ... on Hotel { id cancellationPolicy { daysBeforeArrival feePercent } }
  ... on RatePlan { id code cancellationPolicy { daysBeforeArrival feePercent } }
  ... on InvalidInput { field message code }
} }
"""
UPSERT_PLAN = """
mutation($input: UpsertRatePlanInput!) { upsertRatePlan(input: $input) {
  __typename ... on RatePlan { id code cancellationPolicy { daysBeforeArrival feePercent } }
  ... on UserError { message } } }
"""
SALE = """
query($id: ID!) { node(id: $id) { ... on BookingGroup { status saleOrder { id number status total { amount currency }
  cancellationFee { amount currency } paid { amount } balanceDue { amount } paymentStatus
  payments { id amount { amount } refunded { amount } method state } } } } }
"""


def rules(*pairs):
    return [{"daysBeforeArrival": days, "feePercent": fee} for days, fee in pairs]


async def set_policy(gql, hotel_id, pairs, rate_plan_id=None, role="admin", **extra):
    result = await gql(SET_POLICY, {"input": {"hotelId": hotel_id, "ratePlanId": rate_plan_id,
                                              "rules": rules(*pairs), **extra}}, role=role)
    return result if role != "admin" else data(result)["setCancellationPolicy"]


async def sale(gql, group_id):
    return data(await gql(SALE, {"id": group_id}))["node"]


def days_to(time_zone: str, day=START) -> int:
    """How many days the hotel's today is before `day`."""
    return (day - hotel_today(datetime.now(UTC), time_zone)).days


# --- setCancellationPolicy -----------------------------------------------------------------------


async def test_a_hotel_default_and_a_rate_plans_own_policy_are_set_shown_and_audited(gql):
    hotel, ids, _ = await setup(gql)
    assert (await set_policy(gql, hotel["id"], [(7, 50), (30, 10), (1, 100)])) == {
        "__typename": "Hotel", "id": hotel["id"],
        "cancellationPolicy": rules((30, 10), (7, 50), (1, 100))}
    plan = data(await gql(UPSERT_PLAN, {"input": {"hotelId": hotel["id"], "code": "BAR", "name": "Bar"}}))
    plan = plan["upsertRatePlan"]
    assert plan["cancellationPolicy"] is None  # none of its own: the hotel's applies
    own = await set_policy(gql, hotel["id"], [], rate_plan_id=plan["id"])
    assert own == {"__typename": "RatePlan", "id": plan["id"], "code": "BAR", "cancellationPolicy": []}
    inherited = await set_policy(gql, hotel["id"], [], rate_plan_id=plan["id"], inherit=True)
    assert inherited["cancellationPolicy"] is None

    hotel_audit = await audit_actions(gql, hotel["id"])
    set_entries = [e for e in hotel_audit if e["action"] == "hotel.cancellation_policy_set"]
    assert len(set_entries) == 1 and set_entries[0]["before"] == {"cancellation_rules": None}
    assert set_entries[0]["after"]["cancellation_rules"][0] == {"days_before_arrival": 30, "fee_percent": 10}
    plan_audit = [e["action"] for e in await audit_actions(gql, plan["id"])]
    assert plan_audit.count("rate_plan.cancellation_policy_set") == 2
    # the same policy again writes nothing
    await set_policy(gql, hotel["id"], [(7, 50), (30, 10), (1, 100)])
    assert [e["action"] for e in await audit_actions(gql, hotel["id"])].count("hotel.cancellation_policy_set") == 1


async def test_bad_policies_are_refused_and_change_nothing(gql):
    hotel, _, _ = await setup(gql)
    other, _ = await zoned_hotel(gql, "OTH", "Europe/Paris")
    plan = data(await gql(UPSERT_PLAN, {"input": {"hotelId": other["id"], "code": "OTHER", "name": "Other"}}))["upsertRatePlan"]
    cases = [
        ([(7, 50), (3, 101)], {}, "rules[1].feePercent"),
        ([(7, 50), (7, 20)], {}, "rules[1].daysBeforeArrival"),
        ([(-1, 5)], {}, "rules[0].daysBeforeArrival"),
        ([], {"inherit": True}, "inherit"),
        ([(3, 10)], {"inherit": True, "ratePlanId": plan["id"]}, "rules"),
        ([(3, 10)], {"ratePlanId": plan["id"]}, "ratePlanId"),  # another hotel's plan
    ]
    for pairs, extra, field in cases:
        refused = await set_policy(gql, hotel["id"], pairs, **extra)
        assert refused["__typename"] == "InvalidInput" and refused["field"] == field, (pairs, extra, refused)
        assert refused["code"] == "INVALID_INPUT"
    node = data(await gql('query($id: ID!) { node(id: $id) { ... on Hotel { cancellationPolicy { feePercent } } } }',
                          {"id": hotel["id"]}))["node"]
    assert node["cancellationPolicy"] is None
    assert not [e for e in await audit_actions(gql, hotel["id"]) if "cancellation_policy" in e["action"]]


async def test_only_admins_set_policies(gql):
    hotel, _, _ = await setup(gql)
    for role in ("operator", "agent"):
        result = await gql(SET_POLICY, {"input": {"hotelId": hotel["id"], "rules": rules((1, 100))}}, role=role,
                           agency="SUNTRAVEL" if role == "agent" else None)
        assert result["data"] is None and result["errors"][0]["extensions"]["code"] == "FORBIDDEN", result


# --- fees on cancel ------------------------------------------------------------------------------


async def confirmed(gql, agencies, room_type, offset=0, agency="SUNTRAVEL"):
    group = await book(gql, agencies[agency], item(room_type, offset=offset))
    assert group["__typename"] == "BookingGroup", group
    order = await confirm(gql, group["id"])
    assert order["__typename"] == "SaleOrder", order
    return group


async def test_the_fee_applies_from_exactly_n_days_before_arrival_at_the_hotels_date(gql, sessions):
    hotel, ids, agencies = await setup(gql)
    zone = data(await gql('query($id: ID!) { node(id: $id) { ... on Hotel { timeZone } } }',
                          {"id": hotel["id"]}))["node"]["timeZone"]
    n = days_to(zone)
    await set_policy(gql, hotel["id"], [(n, 50), (n + 30, 10)])
    at_edge = await confirmed(gql, agencies, ids["STD"], offset=0)  # arrives exactly n days from the hotel's today
    farther = await confirmed(gql, agencies, ids["SUP"], offset=1)  # one day farther: n + 1 days before

    cancelled = await cancel(gql, at_edge["id"], "guest ill")
    assert cancelled["status"] == "CANCELLED"
    total = Decimal(at_edge["total"]["amount"])
    edge = (await sale(gql, at_edge["id"]))["saleOrder"]
    assert edge["status"] == "CANCELLED"
    assert edge["cancellationFee"] == {"amount": str((total / 2).quantize(Decimal("0.01"))), "currency": "EUR"}
    await cancel(gql, farther["id"])
    far = (await sale(gql, farther["id"]))["saleOrder"]
    far_total = Decimal(farther["total"]["amount"])
    assert far["cancellationFee"]["amount"] == str((far_total / 10).quantize(Decimal("0.01")))

    rows = await ledger_rows(sessions)
    assert rows == [("SALE", total), ("SALE", far_total), ("CREDIT_NOTE", total), ("FEE", total / 2),
                    ("CREDIT_NOTE", far_total), ("FEE", far_total / 10)]
    # a CREDIT agency (SUNTRAVEL's default terms): the credit note is its refund; it owes the fees
    agency = await update_agency(gql, agencies["SUNTRAVEL"])
    assert Decimal(agency["outstanding"]["amount"]) == total / 2 + far_total / 10
    assert edge["balanceDue"]["amount"] == str((total / 2).quantize(Decimal("0.01")))
    # the audit trail says what was charged
    entries = await audit_actions(gql, edge["id"])
    assert entries[0]["action"] == "sale_order.cancelled"
    assert Decimal(entries[0]["after"]["cancellation_fee"]) == total / 2

    # cancelling again is idempotent: nothing more on the ledger
    assert (await cancel(gql, at_edge["id"]))["status"] == "CANCELLED"
    assert len(await ledger_rows(sessions)) == 6


async def test_the_hotel_local_date_decides_in_far_time_zones(gql, sessions):
    """Kiritimati (UTC+14) and Pago Pago (UTC-11) are always on different dates: the same stay
    dates and rule charge in one and not in the other."""
    await create_agency(gql, "FAR")
    agencies = {a["code"]: a["id"] for a in data(await gql("{ agencies { id code } }"))["agencies"]}
    n = days_to("Pacific/Kiritimati")
    charged = {}
    for code, zone in (("KIR", "Pacific/Kiritimati"), ("PPG", "Pacific/Pago_Pago")):
        hotel, ids = await zoned_hotel(gql, code, zone)
        data(await gql(UPSERT_CONTRACT, {"input": contract_input(
            hotel["id"], ids["STD"], externalId=f"C-{code}", allotment=5,
            **{"from": START.isoformat(), "to": (START + timedelta(days=30)).isoformat()})}))
        await set_policy(gql, hotel["id"], [(n, 100)])
        group = await confirmed(gql, agencies, ids["STD"], agency="FAR")
        await cancel(gql, group["id"])
        charged[code] = (await sale(gql, group["id"]))["saleOrder"]["cancellationFee"]["amount"]
    assert Decimal(charged["KIR"]) > 0 and Decimal(charged["PPG"]) == 0


async def test_without_a_policy_cancelling_is_free_and_a_hold_posts_nothing(gql, sessions):
    hotel, ids, agencies = await setup(gql)
    group = await confirmed(gql, agencies, ids["STD"])
    hold = await book(gql, agencies["SUNTRAVEL"], item(ids["SUP"]))
    await cancel(gql, group["id"])
    await cancel(gql, hold["id"])
    total = Decimal(group["total"]["amount"])
    assert (await sale(gql, group["id"]))["saleOrder"]["cancellationFee"] == {"amount": "0.00", "currency": "EUR"}
    assert await ledger_rows(sessions) == [("SALE", total), ("CREDIT_NOTE", total)]


async def test_a_policy_set_after_confirmation_does_not_apply_to_that_sale(gql, sessions):
    hotel, ids, agencies = await setup(gql)
    group = await confirmed(gql, agencies, ids["STD"])
    await set_policy(gql, hotel["id"], [(365, 100)])
    await cancel(gql, group["id"])
    assert (await sale(gql, group["id"]))["saleOrder"]["cancellationFee"]["amount"] == "0.00"


async def test_a_rate_plans_own_policy_wins_over_the_hotels(gql):
    hotel, ids, agencies = await setup(gql)
    await set_policy(gql, hotel["id"], [(365, 100)])
    plan = data(await gql(UPSERT_PLAN, {"input": {"hotelId": hotel["id"], "code": "FLEX", "name": "Flex"}}))
    await set_policy(gql, hotel["id"], [(365, 20)], rate_plan_id=plan["upsertRatePlan"]["id"])
    group = await confirmed(gql, agencies, ids["STD"])
    await cancel(gql, group["id"])
    total = Decimal(group["total"]["amount"])
    fee = (await sale(gql, group["id"]))["saleOrder"]["cancellationFee"]["amount"]
    assert Decimal(fee) == (total / 5).quantize(Decimal("0.01"))


# --- card refunds on cancel ----------------------------------------------------------------------


async def card_payment(settings, sessions, group_id, amount: Decimal, currency="EUR", attempt=1) -> int:
    """A real PaymentIntent paid with a test card on localstripe, and its payment row and PAYMENT
    entry (as startPayment and the webhook will write them)."""
    pk = decode_id(group_id, "BookingGroup", "id")
    cards = gateway(settings)
    intent = await cards.create_intent(Money(amount, currency), pk, attempt, f"test-{pk}")
    client = cards._client  # noqa: SLF001 - the SDK, as Stripe.js would confirm the payment
    await client.v1.payment_intents.update_async(intent.id, {"payment_method": "pm_card_visa"})
    paid = await client.v1.payment_intents.confirm_async(intent.id)
    assert paid.status == "succeeded", paid
    async with sessions() as session, session.begin():
        group = await session.get(models.BookingGroup, pk)
        payment = models.Payment(group_id=pk, agency_id=group.agency_id, method="CARD", state="SUCCEEDED",
                                 amount=amount, currency=currency, attempt=attempt, provider_id=intent.id,
                                 created_by="test")
        session.add(payment)
        await session.flush()
        session.add(models.LedgerEntry(agency_id=group.agency_id, kind="PAYMENT", amount=amount, currency=currency,
                                       group_id=pk, payment_id=payment.id, created_by="test"))
    return payment.id


async def stripe_refunds(settings, intent_id):
    refunds = await gateway(settings)._client.v1.refunds.list_async({"payment_intent": intent_id})  # noqa: SLF001
    return sorted(r.amount for r in refunds.data)


async def provider_ids(sessions):
    async with sessions() as session:
        return dict((await session.execute(select(models.Payment.id, models.Payment.provider_id))).all())


async def test_cancelling_a_prepaid_sale_refunds_what_was_paid_above_the_fee_newest_payment_first(
        gql, sessions, settings):
    hotel, ids, agencies = await setup(gql)
    await create_agency(gql, "PREPAID", paymentTerms="PREPAY")
    agencies = {a["code"]: a["id"] for a in data(await gql("{ agencies { id code } }"))["agencies"]}
    await set_policy(gql, hotel["id"], [(365, 30)])
    group = await book(gql, agencies["PREPAID"], item(ids["STD"], nights=2))
    total = Decimal(group["total"]["amount"])
    first = total - Decimal("50.00")
    older = await card_payment(settings, sessions, group["id"], first, attempt=1)
    newer = await card_payment(settings, sessions, group["id"], Decimal("50.00"), attempt=2)
    assert (await confirm(gql, group["id"]))["__typename"] == "SaleOrder"

    await cancel(gql, group["id"])
    fee = (total * Decimal("0.3")).quantize(Decimal("0.01"))
    order = (await sale(gql, group["id"]))["saleOrder"]
    assert Decimal(order["cancellationFee"]["amount"]) == fee
    refunded = {p["id"]: Decimal(p["refunded"]["amount"]) for p in order["payments"]}
    assert sum(refunded.values()) == total - fee
    assert Decimal(order["paid"]["amount"]) == fee and Decimal(order["balanceDue"]["amount"]) == 0
    assert order["paymentStatus"] == "PARTIALLY_REFUNDED"
    # newest first: the 50.00 payment went back whole, the rest from the older one
    stripe = await provider_ids(sessions)
    assert await stripe_refunds(settings, stripe[newer]) == [5000]
    assert await stripe_refunds(settings, stripe[older]) == [int((total - fee - 50) * 100)]
    rows = await ledger_rows(sessions)
    assert [kind for kind, _ in rows].count("REFUND") == 2
    # cancelling again refunds nothing more
    await cancel(gql, group["id"])
    assert len(await ledger_rows(sessions)) == len(rows)


async def test_when_stripe_fails_the_cancellation_stands_and_the_refund_is_left_to_staff(
        gql, sessions, settings, monkeypatch):
    hotel, ids, _ = await setup(gql)
    await create_agency(gql, "PREPAID", paymentTerms="PREPAY")
    agencies = {a["code"]: a["id"] for a in data(await gql("{ agencies { id code } }"))["agencies"]}
    group = await book(gql, agencies["PREPAID"], item(ids["STD"]))
    total = Decimal(group["total"]["amount"])
    await card_payment(settings, sessions, group["id"], total)
    assert (await confirm(gql, group["id"]))["__typename"] == "SaleOrder"

    async def down(self, *args, **kwargs):
        raise StripeUnavailable("Stripe refused or failed: connection refused")

    monkeypatch.setattr(gateway_module.CardGateway, "refund", down)
    cancelled = await cancel(gql, group["id"])
    assert cancelled["status"] == "CANCELLED"
    order = (await sale(gql, group["id"]))["saleOrder"]
    assert order["payments"][0]["refunded"]["amount"] == "0.00"
    assert Decimal(order["balanceDue"]["amount"]) == -total  # a refund is due to the agency
    failed = [e for e in await audit_actions(gql, order["id"]) if e["action"] == "sale_order.refund_failed"]
    assert len(failed) == 1 and Decimal(failed[0]["after"]["left_to_refund"]) == total
    assert "refundPayment" in failed[0]["after"]["action"]

    # Stripe is back: the polling job gives back what the cancellation could not (a minute later)
    monkeypatch.undo()
    from app.services.card_payments import poll
    services = gql.http._transport.app.state.runtime.services
    assert await poll(services) == 0  # the cancel's own attempt is under a minute old: left to it
    async with sessions() as session, session.begin():
        await session.execute(text("UPDATE sale_order SET cancelled_at = cancelled_at - interval '2 minutes'"))
    assert await poll(services) == 1
    order = (await sale(gql, group["id"]))["saleOrder"]
    assert order["payments"][0]["refunded"]["amount"] == group["total"]["amount"]
    assert Decimal(order["balanceDue"]["amount"]) == 0 and order["paymentStatus"] == "REFUNDED"
    assert await poll(services) == 0  # nothing left to give back


async def test_money_received_offline_is_left_to_go_back_by_bank_and_the_trail_says_so(gql, sessions, settings):
    from tests.api.test_refunds import record
    hotel, ids, _ = await setup(gql)
    await create_agency(gql, "HALF", paymentTerms="DEPOSIT", depositPercent=30, balanceDueDays=7)
    agencies = {a["code"]: a["id"] for a in data(await gql("{ agencies { id code } }"))["agencies"]}
    group = await book(gql, agencies["HALF"], item(ids["STD"]))
    total = Decimal(group["total"]["amount"])
    deposit = (total * Decimal("0.3")).quantize(Decimal("0.01"))
    await card_payment(settings, sessions, group["id"], deposit)
    order = await confirm(gql, group["id"])
    assert (await record(gql, order["id"], str(total - deposit)))["__typename"] == "Payment"

    await cancel(gql, group["id"])  # free: everything goes back
    shown = (await sale(gql, group["id"]))["saleOrder"]
    card = next(p for p in shown["payments"] if p["method"] == "CARD")
    assert Decimal(card["refunded"]["amount"]) == deposit
    pending = [e for e in await audit_actions(gql, order["id"]) if e["action"] == "sale_order.refund_pending"]
    assert len(pending) == 1 and Decimal(pending[0]["after"]["left_to_refund"]) == total - deposit
    assert Decimal(shown["balanceDue"]["amount"]) == -(total - deposit)
