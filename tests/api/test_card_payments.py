"""Card payments against localstripe on loopback, end to end: startPayment over real HTTP, the payer
confirming with Stripe (the SDK, as Stripe.js would; localstripe's /_authenticate standing in for
the bank's 3-D Secure page), localstripe's signed webhook reaching a real uvicorn, the polling job
for lost webhooks, and the rules around them (late successes, deposits, what agents see)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
import stripe
from sqlalchemy import select, update

from app import localstripe
from app.api.ids import decode_id
from app.services import card_payments as cards
from db import models
from tests.api.test_bookings import CREATE, booking_input, expire_now, item, setup
from tests.api.test_payment_terms import CONFIRM_MONEY, create_agency
from tests.support import LiveServer, token

START_PAYMENT = """
mutation($id: ID!) { startPayment(groupId: $id) {
  __typename
  ... on Payment { id state method amount { amount currency } providerId clientSecret failure refunded { amount } }
  ... on UserError { message code }
} }
"""
GROUP = """
query($id: ID!) { node(id: $id) { ... on BookingGroup {
  status expiresAt amountDueNow { amount currency }
  payments { id state amount { amount } refunded { amount } clientSecret }
  saleOrder { number paymentStatus paid { amount } balanceDue { amount } balanceDueAt }
  auditTrail { action after }
} } }
"""
PLAIN_CARD, SCA_CARD, DECLINED_CARD = "4242424242424242", "4000002760003184", "4000000000000341"


@pytest.fixture(scope="module")
def server(settings) -> Iterator[LiveServer]:
    with LiveServer(settings, payment_poll_after_s=0.5) as live:
        localstripe.register_webhook(settings.stripe_api_base, f"{live.http_url}/webhooks/stripe",
                                     settings.stripe_webhook_secret)
        yield live


@pytest.fixture
async def http(server, db) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30, trust_env=False) as client:
        yield client


@pytest.fixture
def stripe_client(settings) -> stripe.StripeClient:
    """The payer's side of Stripe (what Stripe.js does with the card, in the browser)."""
    return stripe.StripeClient(settings.stripe_api_key, base_addresses={"api": settings.stripe_api_base},
                               max_network_retries=0, http_client=stripe.HTTPXClient())


async def call(http, query, variables=None, role="admin", agency=None, uid=None) -> dict:
    extra = {} if uid is None else {"uid": uid}
    response = await http.post("/graphql", json={"query": query, "variables": variables or {}},
                               headers={"Authorization": f"Bearer {token(role, agency, **extra)}"})
    body = response.json()
    assert not body.get("errors"), body["errors"]
    return body["data"]


async def prepay_group(gql_fixture, http, terms=None, rooms=1, offset=0):
    """A PREPAY (or `terms`) agency PAYER and a group it holds, booked by one of its agents."""
    hotel, ids, _ = await setup(gql_fixture)
    await create_agency(gql_fixture, "PAYER", **(terms or {"paymentTerms": "PREPAY"}))
    created = await call(http, CREATE, {"input": booking_input(None, item(ids["STD"], rooms=rooms, offset=offset))},
                        role="agent", agency="PAYER", uid="payer-1")
    group = created["createBooking"]
    assert group["__typename"] == "BookingGroup", group
    return group, ids


async def start(http, group_id, uid="payer-1"):
    return (await call(http, START_PAYMENT, {"id": group_id}, role="agent", agency="PAYER", uid=uid))["startPayment"]


async def pay_with(stripe_client, intent_id, number):
    """The payer enters the card and confirms (Stripe.js); a 3-D Secure card stops at requires_action."""
    method = await stripe_client.v1.payment_methods.create_async(
        {"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    await stripe_client.v1.payment_intents.update_async(intent_id, {"payment_method": method.id})
    try:
        return (await stripe_client.v1.payment_intents.confirm_async(intent_id)).status
    except stripe.CardError as error:
        return error.code


async def authenticate(settings, payment, success: bool) -> None:
    """The customer at the bank's 3-D Secure page (localstripe's stand-in), with the publishable key."""
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.post(
            f"{settings.stripe_api_base}/v1/payment_intents/{payment['providerId']}/_authenticate",
            data={"key": localstripe.DEV_PUBLISHABLE_KEY, "client_secret": payment["clientSecret"],
                  "success": "true" if success else "false"})
    assert response.status_code == 200, response.text


async def group_state(http, group_id) -> dict:
    return (await call(http, GROUP, {"id": group_id}))["node"]


async def until(check, seconds=8.0):
    """localstripe sends its webhook a second after the call: wait for what it brings."""
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.2)


async def confirmed(http, group_id) -> bool:
    return (await group_state(http, group_id))["status"] == "CONFIRMED"


@contextmanager
def webhook_lost(settings, server: LiveServer) -> Iterator[None]:
    """localstripe's webhook sent nowhere inside the block (as a lost delivery), then to `server` again."""
    localstripe.register_webhook(settings.stripe_api_base, "http://127.0.0.1:9/lost", settings.stripe_webhook_secret)
    try:
        yield
    finally:
        localstripe.register_webhook(settings.stripe_api_base, f"{server.http_url}/webhooks/stripe",
                                     settings.stripe_webhook_secret)


async def poll_on(server: LiveServer) -> int:
    """One round of the polling job, in the server's own loop (its pools live there)."""
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
        cards.poll(server.app.state.runtime.services), server.loop))


async def ledger(sessions) -> list[tuple[str, Decimal]]:
    async with sessions() as session:
        return [(kind, amount) for kind, amount in await session.execute(
            select(models.LedgerEntry.kind, models.LedgerEntry.amount).order_by(models.LedgerEntry.id))]


# --- PREPAY --------------------------------------------------------------------------------------


async def test_prepay_with_a_plain_card_confirms_the_group_when_stripe_says_so(gql, http, stripe_client, sessions):
    group, _ = await prepay_group(gql, http)
    assert (await call(http, CONFIRM_MONEY, {"id": group["id"]}))["confirmBooking"]["__typename"] == "PaymentRequired"

    payment = await start(http, group["id"])
    assert payment["__typename"] == "Payment" and payment["state"] == "PENDING" and payment["method"] == "CARD"
    assert payment["amount"] == group["total"] and payment["providerId"].startswith("pi_")
    assert payment["clientSecret"].startswith(payment["providerId"] + "_secret_")
    # the hold runs 10 minutes longer while the payment is in flight, once
    held = await group_state(http, group["id"])
    assert datetime.fromisoformat(held["expiresAt"]) - datetime.fromisoformat(group["expiresAt"]) == timedelta(minutes=10)
    again = await start(http, group["id"])
    assert again["id"] == payment["id"]  # the open payment, not a second one
    assert (await group_state(http, group["id"]))["expiresAt"] == held["expiresAt"]

    assert await pay_with(stripe_client, payment["providerId"], PLAIN_CARD) == "succeeded"
    assert await until(lambda: confirmed(http, group["id"]))

    state = await group_state(http, group["id"])
    total = group["total"]["amount"]
    assert state["saleOrder"]["paymentStatus"] == "PAID" and state["saleOrder"]["paid"] == {"amount": total}
    assert state["saleOrder"]["balanceDue"] == {"amount": "0.00"} and state["amountDueNow"]["amount"] == "0.00"
    assert [(p["state"], p["clientSecret"]) for p in state["payments"]] == [("SUCCEEDED", None)]
    assert await ledger(sessions) == [("PAYMENT", Decimal(total)), ("SALE", Decimal(total))]
    actions = [entry["action"] for entry in state["auditTrail"]]
    assert actions[:2] == ["booking_group.created", "booking_group.hold_extended"]
    assert "booking_group.confirmed" in actions


async def test_a_3d_secure_card_pays_once_the_customer_authenticates(gql, http, stripe_client, settings):
    group, _ = await prepay_group(gql, http)
    payment = await start(http, group["id"])
    assert await pay_with(stripe_client, payment["providerId"], SCA_CARD) == "requires_action"
    await authenticate(settings, payment, success=True)
    assert await until(lambda: confirmed(http, group["id"]))


async def test_a_failed_authentication_leaves_the_group_held_and_a_new_payment_can_start(
        gql, http, stripe_client, settings, server):
    group, _ = await prepay_group(gql, http)
    payment = await start(http, group["id"])
    assert await pay_with(stripe_client, payment["providerId"], SCA_CARD) == "requires_action"
    await authenticate(settings, payment, success=False)
    # localstripe sends no event for a failed authentication: the polling job finds it out
    await asyncio.sleep(0.6)
    await poll_on(server)
    state = await group_state(http, group["id"])
    assert state["status"] == "HELD" and state["payments"][0]["state"] == "FAILED"
    retry = await start(http, group["id"])
    assert retry["id"] != payment["id"] and retry["state"] == "PENDING"
    assert await pay_with(stripe_client, retry["providerId"], PLAIN_CARD) == "succeeded"
    assert await until(lambda: confirmed(http, group["id"]))


async def test_a_declined_card_is_recorded_from_its_webhook(gql, http, stripe_client):
    group, _ = await prepay_group(gql, http)
    payment = await start(http, group["id"])
    assert await pay_with(stripe_client, payment["providerId"], DECLINED_CARD) == "card_declined"

    async def failed() -> bool:
        return (await group_state(http, group["id"]))["payments"][0]["state"] == "FAILED"

    assert await until(failed)
    assert (await group_state(http, group["id"]))["status"] == "HELD"

    # a declined PaymentIntent could still be paid: a new payment cancels it first
    retry = await start(http, group["id"])
    assert retry["id"] != payment["id"] and retry["providerId"] != payment["providerId"]
    declined = await stripe_client.v1.payment_intents.retrieve_async(payment["providerId"])
    assert declined.status == "canceled"
    assert [p["state"] for p in (await group_state(http, group["id"]))["payments"]] == ["CANCELED", "PENDING"]


# --- the webhook ---------------------------------------------------------------------------------


def signed(body: bytes, secret: str, at: int | None = None) -> dict[str, str]:
    """A Stripe-Signature as Stripe computes it (the scheme construct_event checks)."""
    at = int(time.time()) if at is None else at
    signature = stripe.WebhookSignature._compute_signature(f"{at}.{body.decode()}", secret)
    return {"Stripe-Signature": f"t={at},v1={signature}", "Content-Type": "application/json"}


def succeeded_event(intent: Any, event_id: str = "evt_test_1") -> bytes:
    return orjson.dumps({"id": event_id, "object": "event", "type": "payment_intent.succeeded",
                         "created": int(time.time()), "data": {"object": intent.to_dict()}})


async def test_forged_and_replayed_webhooks_change_nothing_more(gql, http, stripe_client, settings, sessions, server):
    group, _ = await prepay_group(gql, http)
    payment = await start(http, group["id"])
    with webhook_lost(settings, server):  # the money is taken; the test sends the events itself
        assert await pay_with(stripe_client, payment["providerId"], PLAIN_CARD) == "succeeded"
        intent = await stripe_client.v1.payment_intents.retrieve_async(payment["providerId"])
    body = succeeded_event(intent)

    forged = await http.post("/webhooks/stripe", content=body, headers=signed(body, "whsec_someone_else"))
    stale = await http.post("/webhooks/stripe", content=body,
                            headers=signed(body, settings.stripe_webhook_secret, at=int(time.time()) - 301))
    unsigned = await http.post("/webhooks/stripe", content=body, headers={"Content-Type": "application/json"})
    assert (forged.status_code, stale.status_code, unsigned.status_code) == (400, 400, 400)
    assert (await group_state(http, group["id"]))["status"] == "HELD" and await ledger(sessions) == []

    first = await http.post("/webhooks/stripe", content=body, headers=signed(body, settings.stripe_webhook_secret))
    replay = await http.post("/webhooks/stripe", content=body, headers=signed(body, settings.stripe_webhook_secret))
    assert first.json() == {"received": "evt_test_1", "applied": True, "duplicate": False}
    assert replay.json() == {"received": "evt_test_1", "applied": False, "duplicate": True}
    # another event with the same news (Stripe may send several) finds the work done
    other = succeeded_event(intent, "evt_test_2")
    assert (await http.post("/webhooks/stripe", content=other,
                            headers=signed(other, settings.stripe_webhook_secret))).status_code == 200
    assert (await group_state(http, group["id"]))["status"] == "CONFIRMED"
    assert [kind for kind, _ in await ledger(sessions)] == ["PAYMENT", "SALE"]


async def test_a_lost_webhook_is_made_up_for_by_the_polling_job(gql, http, stripe_client, settings, server):
    group, _ = await prepay_group(gql, http)
    payment = await start(http, group["id"])
    with webhook_lost(settings, server):
        assert await pay_with(stripe_client, payment["providerId"], PLAIN_CARD) == "succeeded"
        await asyncio.sleep(1.5)  # the webhook went nowhere
        assert (await group_state(http, group["id"]))["status"] == "HELD"
        looked_at = await poll_on(server)
    assert looked_at == 1 and await confirmed(http, group["id"])


# --- late successes ------------------------------------------------------------------------------


async def test_a_payment_that_succeeds_after_the_hold_lapsed_confirms_when_the_rooms_are_still_free(
        gql, http, stripe_client, sessions):
    group, _ = await prepay_group(gql, http)
    payment = await start(http, group["id"])
    await expire_now(sessions, group["id"])
    assert await pay_with(stripe_client, payment["providerId"], PLAIN_CARD) == "succeeded"
    assert await until(lambda: confirmed(http, group["id"]))
    assert (await group_state(http, group["id"]))["saleOrder"]["paymentStatus"] == "PAID"


async def test_a_payment_that_succeeds_after_its_rooms_were_sold_is_refunded_at_once(
        gql, http, stripe_client, sessions, settings):
    group, ids = await prepay_group(gql, http, rooms=10)  # every room of the night
    payment = await start(http, group["id"])
    await expire_now(sessions, group["id"])
    sold = await call(http, CREATE, {"input": booking_input(None, item(ids["STD"], rooms=10))},
                     role="agent", agency="SUNTRAVEL")
    assert sold["createBooking"]["__typename"] == "BookingGroup"
    assert await pay_with(stripe_client, payment["providerId"], PLAIN_CARD) == "succeeded"

    async def refunded() -> bool:
        return (await group_state(http, group["id"]))["payments"][0]["refunded"]["amount"] == group["total"]["amount"]

    assert await until(refunded), (await group_state(http, group["id"]), await ledger(sessions))
    state = await group_state(http, group["id"])
    assert state["status"] == "EXPIRED" and state["saleOrder"] is None
    expired = next(e for e in state["auditTrail"] if e["action"] == "booking_group.expired")
    assert "its rooms were sold meanwhile" in expired["after"]["reason"]
    total = Decimal(group["total"]["amount"])
    assert await ledger(sessions) == [("PAYMENT", total), ("REFUND", total)]
    charge = (await stripe.StripeClient(settings.stripe_api_key, base_addresses={"api": settings.stripe_api_base})
              .v1.payment_intents.retrieve_async(payment["providerId"])).latest_charge
    assert charge.amount_refunded == charge.amount  # Stripe gave it all back


# --- DEPOSIT -------------------------------------------------------------------------------------


async def test_a_deposit_confirms_the_group_and_the_balance_is_paid_when_due(gql, http, stripe_client, sessions):
    group, _ = await prepay_group(gql, http, {"paymentTerms": "DEPOSIT", "depositPercent": 30, "balanceDueDays": 14})
    total = Decimal(group["total"]["amount"])
    deposit = (total * Decimal("0.30")).quantize(Decimal("0.01"))
    payment = await start(http, group["id"])
    assert Decimal(payment["amount"]["amount"]) == deposit
    assert await pay_with(stripe_client, payment["providerId"], PLAIN_CARD) == "succeeded"
    assert await until(lambda: confirmed(http, group["id"]))

    sale = (await group_state(http, group["id"]))["saleOrder"]
    assert sale["paymentStatus"] == "PARTIALLY_PAID" and Decimal(sale["balanceDue"]["amount"]) == total - deposit
    assert sale["balanceDueAt"] is not None
    early = await start(http, group["id"])
    assert early["__typename"] == "InvalidTransition" and "nothing is due" in early["message"]

    async with sessions() as session, session.begin():  # time travel: the balance falls due
        await session.execute(update(models.SaleOrder).values(balance_due_at=datetime.now(timezone.utc)))
    assert Decimal((await group_state(http, group["id"]))["amountDueNow"]["amount"]) == total - deposit
    balance = await start(http, group["id"])
    assert Decimal(balance["amount"]["amount"]) == total - deposit
    assert await pay_with(stripe_client, balance["providerId"], PLAIN_CARD) == "succeeded"

    async def paid_up() -> bool:
        return (await group_state(http, group["id"]))["saleOrder"]["paymentStatus"] == "PAID"

    assert await until(paid_up)


async def test_a_card_payment_beyond_what_the_sale_owes_goes_back(gql, http, stripe_client, sessions):
    """A balance paid twice (by card, and by bank transfer recorded by staff while the card payment
    was in flight): the card payment is refunded when it succeeds, never kept."""
    from tests.api.test_refunds import record

    group, _ = await prepay_group(gql, http, {"paymentTerms": "DEPOSIT", "depositPercent": 30, "balanceDueDays": 14})
    deposit = await start(http, group["id"])
    assert await pay_with(stripe_client, deposit["providerId"], PLAIN_CARD) == "succeeded"
    assert await until(lambda: confirmed(http, group["id"]))
    async with sessions() as session, session.begin():  # the balance falls due
        await session.execute(update(models.SaleOrder).values(balance_due_at=datetime.now(timezone.utc)))
    balance = await start(http, group["id"])
    order = (await call(http, 'query($id: ID!) { node(id: $id) { ... on BookingGroup { saleOrder { id } } } }',
                        {"id": group["id"]}))["node"]["saleOrder"]["id"]
    assert (await record(gql, order, balance["amount"]["amount"]))["__typename"] == "Payment"
    assert await pay_with(stripe_client, balance["providerId"], PLAIN_CARD) == "succeeded"

    async def given_back() -> bool:
        payments = (await group_state(http, group["id"]))["payments"]
        return any(p["id"] == balance["id"] and p["refunded"]["amount"] == balance["amount"]["amount"]
                   for p in payments)

    assert await until(given_back)
    sale = (await group_state(http, group["id"]))["saleOrder"]
    assert sale["balanceDue"] == {"amount": "0.00"} and Decimal(sale["paid"]["amount"]) == Decimal(group["total"]["amount"])


# --- who sees what -------------------------------------------------------------------------------


async def test_agents_see_their_own_agency_s_payments_and_only_the_payer_its_secret(gql, http):
    group, _ = await prepay_group(gql, http)
    payment = await start(http, group["id"])
    node = 'query($id: ID!) { node(id: $id) { ... on Payment { id clientSecret } } }'

    mine = (await call(http, node, {"id": payment["id"]}, role="agent", agency="PAYER", uid="payer-1"))["node"]
    colleague = (await call(http, node, {"id": payment["id"]}, role="agent", agency="PAYER", uid="payer-2"))["node"]
    other = (await call(http, node, {"id": payment["id"]}, role="agent", agency="SUNTRAVEL"))["node"]
    staff = (await call(http, node, {"id": payment["id"]}, role="operator"))["node"]
    assert mine == {"id": payment["id"], "clientSecret": payment["clientSecret"]}
    assert colleague == {"id": payment["id"], "clientSecret": None} and staff["clientSecret"] is None
    assert other is None
    foreign = await call(http, START_PAYMENT, {"id": group["id"]}, role="agent", agency="SUNTRAVEL")
    assert foreign["startPayment"]["__typename"] == "NotFound"
    listed = await call(http, "{ bookingGroups { edges { node { payments { id } } } } }", role="agent",
                       agency="SUNTRAVEL")
    assert listed["bookingGroups"]["edges"] == []


async def test_credit_agencies_owe_nothing_up_front(gql, http):
    hotel, ids, agencies = await setup(gql)
    created = await call(http, CREATE, {"input": booking_input(agencies["SUNTRAVEL"], item(ids["STD"]))})
    refused = await call(http, START_PAYMENT, {"id": created["createBooking"]["id"]})
    assert refused["startPayment"]["__typename"] == "InvalidTransition"
    assert refused["startPayment"]["message"].startswith("nothing is due on group")


# --- paymentChanged ------------------------------------------------------------------------------


async def test_payment_changed_streams_a_group_s_payments_to_its_agency_only(gql, http, stripe_client, server):
    from tests.api.test_subscriptions import next_data, nothing_within, subscribe

    group, _ = await prepay_group(gql, http)
    query = "subscription($g: ID) { paymentChanged(groupId: $g) { id state amount { amount } } }"
    mine = await subscribe(server, query, {"g": group["id"]}, role="agent", agency="PAYER")
    other = await subscribe(server, query, {"g": None}, role="agent", agency="SUNTRAVEL")
    try:
        payment = await start(http, group["id"])
        states = [(await next_data(mine))["paymentChanged"]["state"] for _ in range(2)]
        assert states == ["PENDING", "PENDING"]  # begun, then its PaymentIntent made
        assert await pay_with(stripe_client, payment["providerId"], PLAIN_CARD) == "succeeded"
        succeeded = (await asyncio.wait_for(next_data(mine), 8))["paymentChanged"]
        assert succeeded == {"id": payment["id"], "state": "SUCCEEDED", "amount": {"amount": group["total"]["amount"]}}
        await nothing_within(other, 0.5)  # another agency hears nothing of it
    finally:
        await mine.close()
        await other.close()
