"""Webhooks end to end: writes through the API record partner events in their own transaction;
the fan-out and the dispatcher (run by the tests, not in the background) deliver them to a real
receiver on loopback that verifies every signature with the `standardwebhooks` package."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from sqlalchemy import func, select, text, update

from app.api.ids import decode_id
from app.services.context import Caller
from app.services.errors import InvalidInput
from app.services.notify import deliveries, endpoints
from app.services.notify.events import fan_out
from app.services.notify.urls import UnsafeUrl, check_target
from db import audit, models
from db.engine import transaction
from tests.api.test_bookings import book, confirm, item, setup
from tests.notify.receiver import running_receiver
from tests.support import data

CREATE = """mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) {
  __typename ... on WebhookEndpointSecret { secret endpoint { id url events enabled agency { code } } }
  ... on UserError { message code } ... on InvalidInput { field } } }"""


def runtime_of(gql):
    return gql.http._transport.app.state.runtime


async def endpoint(gql, url, events, role="admin", agency=None, agency_id=None):
    result = data(await gql(CREATE, {"input": {"url": url, "events": events, "agencyId": agency_id}},
                            role=role, agency=agency))["createWebhookEndpoint"]
    assert result["__typename"] == "WebhookEndpointSecret", result
    return result


async def dispatch(services, rounds: int = 1) -> None:
    """What a worker's dispatcher does once per tick: fan out, then deliver what is due."""
    async with deliveries.new_client(services) as client:
        for _ in range(rounds):
            await fan_out(services)
            await deliveries.deliver_due(services, client)


async def make_due(sessions) -> None:
    """Skip the backoff: every failed delivery is due now."""
    async with sessions() as session, session.begin():
        await session.execute(update(models.WebhookDelivery).where(models.WebhookDelivery.status == "FAILED")
                              .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))


async def rows(sessions, model, *where):
    async with sessions() as session:
        return list((await session.execute(select(model).where(*where).order_by(*model.__table__.primary_key.columns))).scalars())


async def test_one_delivery_per_event_and_endpoint_after_three_failures(gql, sessions):
    services = runtime_of(gql).services
    hotel, ids, agencies = await setup(gql)
    async with running_receiver() as receiver:
        receiver.script = [(500, {}), (502, {}), (503, {})]
        created = await endpoint(gql, receiver.url, ["booking_group.held"], role="agent", agency="SUNTRAVEL")
        receiver.secrets.append(created["secret"])
        group = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"]))
        await dispatch(services)
        for _ in range(3):
            await make_due(sessions)
            await dispatch(services)
        await dispatch(services)  # nothing left to send
    assert [r.status for r in receiver.received] == [500, 502, 503, 200]
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1  # the same id on every attempt
    assert receiver.delivered_ids() == [receiver.received[0].headers["webhook-id"]]
    body = orjson.loads(receiver.received[-1].body)
    assert body["type"] == "booking_group.held" and body["data"]["id"] == group["id"]
    assert body["data"]["status"] == "HELD" and body["data"]["agencyCode"] == "SUNTRAVEL"
    assert body["data"]["sequence"] and body["data"]["updatedAt"]
    [delivery] = await rows(sessions, models.WebhookDelivery)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("DELIVERED", 4, 200)
    attempts = await rows(sessions, models.WebhookAttempt)
    assert [a.status_code for a in attempts] == [500, 502, 503, 200] and all(a.duration_ms >= 0 for a in attempts)


async def test_payloads_never_carry_net_prices_or_another_agencys_events(gql, sessions):
    services = runtime_of(gql).services
    hotel, ids, agencies = await setup(gql)
    async with running_receiver() as sun, running_receiver() as blue, running_receiver() as staff:
        for receiver, role, agency in ((sun, "agent", "SUNTRAVEL"), (blue, "agent", "BLUEWAVE"), (staff, "admin", None)):
            created = await endpoint(gql, receiver.url, ["booking_group.held", "booking_group.confirmed"],
                                     role=role, agency=agency)
            receiver.secrets.append(created["secret"])
        group = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"]))
        await confirm(gql, group["id"])
        await book(gql, agencies["BLUEWAVE"], item(ids["SUP"]))
        await dispatch(services)
    assert sorted(orjson.loads(r.body)["type"] for r in sun.verified()) == ["booking_group.confirmed",
                                                                            "booking_group.held"]
    assert all(orjson.loads(r.body)["data"]["agencyCode"] == "SUNTRAVEL" for r in sun.verified())
    assert [orjson.loads(r.body)["data"]["agencyCode"] for r in blue.verified()] == ["BLUEWAVE"]
    assert len(staff.verified()) == 3  # the wholesaler hears every agency
    for received in [*sun.received, *blue.received, *staff.received]:
        assert b"net" not in received.body.lower().replace(b"network", b"")
    confirmed = next(orjson.loads(r.body) for r in sun.verified()
                     if orjson.loads(r.body)["type"] == "booking_group.confirmed")
    assert confirmed["data"]["saleOrderNumber"].startswith("SO-") and confirmed["data"]["total"]["amount"] == "199.00"


async def test_a_rolled_back_write_records_no_event_and_a_refused_booking_none_either(gql, sessions):
    hotel, ids, agencies = await setup(gql, allotment=1)
    async with sessions() as session:
        before = (await session.execute(select(func.count()).select_from(models.PartnerEvent))).scalar_one()
    refused = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], rooms=2))
    assert refused["__typename"] == "SoldOut"
    with pytest.raises(RuntimeError):
        async with transaction(sessions) as session:
            group = models.BookingGroup(reference="BG-ROLLBACK", agency_id=decode_id(agencies["SUNTRAVEL"], "Agency", "id"),
                                        created_by="test")
            session.add(group)
            await session.flush()
            audit.record(session, audit.SYSTEM, "booking_group.confirmed", "BookingGroup", group.id, after={})
            await session.flush()
            raise RuntimeError("the write fails after its audit entry")
    async with sessions() as session:
        after = (await session.execute(select(func.count()).select_from(models.PartnerEvent))).scalar_one()
    assert after == before


async def test_a_worker_killed_mid_delivery_loses_nothing(gql, sessions):
    services = runtime_of(gql).services
    hotel, ids, agencies = await setup(gql)
    async with running_receiver() as receiver:
        receiver.script = [5.0]  # the first request hangs: the worker dies while it waits
        created = await endpoint(gql, receiver.url, ["booking_group.held"])
        receiver.secrets.append(created["secret"])
        await book(gql, agencies["SUNTRAVEL"], item(ids["STD"]))
        await fan_out(services)
        async with deliveries.new_client(services) as client:
            worker = asyncio.create_task(deliveries.deliver_due(services, client))
            await asyncio.wait_for(receiver.arrived.wait(), 5)
            worker.cancel()
            with pytest.raises(asyncio.CancelledError):
                await worker
        [delivery] = await rows(sessions, models.WebhookDelivery)
        assert delivery.status == "PENDING" and delivery.lease_until is not None  # leased: no one else takes it
        await dispatch(services)
        assert receiver.delivered_ids() == []
        async with sessions() as session, session.begin():  # the lease runs out
            await session.execute(update(models.WebhookDelivery).values(lease_until=datetime.now(UTC) - timedelta(seconds=1)))
        await dispatch(services)
    [delivery] = await rows(sessions, models.WebhookDelivery)
    # Delivered; the receiver may have seen it twice (the dead worker's request went on without it),
    # always under the one webhook-id it dedupes on.
    assert delivery.status == "DELIVERED" and set(receiver.delivered_ids()) == {delivery.webhook_id}


async def test_410_gives_up_and_disables_the_endpoint_and_tells_the_agency(gql, sessions):
    services = runtime_of(gql).services
    hotel, ids, agencies = await setup(gql)
    update_agency = "mutation($input: UpdateAgencyInput!) { updateAgency(input: $input) { __typename } }"
    data(await gql(update_agency, {"input": {"id": agencies["SUNTRAVEL"], "contactEmail": "ops@sun.example"}}))
    async with running_receiver() as receiver:
        receiver.script = [(410, {})]
        created = await endpoint(gql, receiver.url, ["booking_group.held"], role="agent", agency="SUNTRAVEL")
        receiver.secrets.append(created["secret"])
        await book(gql, agencies["SUNTRAVEL"], item(ids["STD"]))
        await dispatch(services)
        await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], 3))
        await dispatch(services)
    [endpoint_row] = await rows(sessions, models.WebhookEndpoint)
    assert not endpoint_row.enabled and "410" in endpoint_row.disabled_reason
    [delivery] = await rows(sessions, models.WebhookDelivery)  # none for a disabled endpoint
    assert delivery.status == "GAVE_UP" and len(receiver.received) == 1
    [email] = await rows(sessions, models.EmailMessage, models.EmailMessage.kind == "endpoint_disabled")
    assert email.to_address == "ops@sun.example" and receiver.url in email.text_body


async def test_retry_after_is_honoured_and_the_backoff_grows(gql, sessions):
    services = runtime_of(gql).services
    hotel, ids, agencies = await setup(gql)
    async with running_receiver() as receiver:
        receiver.script = [(503, {"Retry-After": "600"}), (500, {})]
        created = await endpoint(gql, receiver.url, ["booking_group.held"])
        receiver.secrets.append(created["secret"])
        await book(gql, agencies["SUNTRAVEL"], item(ids["STD"]))
        await dispatch(services)
        [delivery] = await rows(sessions, models.WebhookDelivery)
        assert delivery.status == "FAILED" and delivery.last_error == "HTTP 503"
        assert delivery.next_attempt_at >= datetime.now(UTC) + timedelta(seconds=590)
        await make_due(sessions)
        await dispatch(services)
        [delivery] = await rows(sessions, models.WebhookDelivery)
        assert timedelta(seconds=20) <= delivery.next_attempt_at - datetime.now(UTC) <= timedelta(seconds=40)
    assert deliveries.next_delay(7, None) is None  # the schedule spent: give up
    assert deliveries.retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == timedelta(0)
    assert deliveries.retry_after("soon") is None and deliveries.retry_after("999999") == deliveries.MAX_RETRY_AFTER
    assert deliveries.retry_after("99999999999999") is None  # no sensible delay (and no timedelta overflow)


async def test_rotation_signs_with_both_secrets_for_a_day(gql, sessions):
    services = runtime_of(gql).services
    hotel, ids, agencies = await setup(gql)
    rotate = """mutation($id: ID!) { rotateWebhookSecret(id: $id) { __typename
      ... on WebhookEndpointSecret { secret } ... on InvalidInput { field } } }"""
    async with running_receiver() as old_only, running_receiver() as new_only:
        created = await endpoint(gql, old_only.url, ["booking_group.held"])
        old_secret = created["secret"]
        rotated = data(await gql(rotate, {"id": created["endpoint"]["id"]}))["rotateWebhookSecret"]
        new_secret = rotated["secret"]
        assert new_secret != old_secret
        old_only.secrets.append(old_secret)
        await book(gql, agencies["SUNTRAVEL"], item(ids["STD"]))
        await dispatch(services)
        [received] = old_only.received
        signatures = received.headers["webhook-signature"].split()
        assert len(signatures) == 2 and received.verified_with == [old_secret]
        # the same request verifies with the new secret too
        from standardwebhooks import Webhook
        Webhook(new_secret).verify(received.body, received.headers)
        # once the grace period is over, only the new secret signs
        async with sessions() as session, session.begin():
            await session.execute(update(models.WebhookEndpoint).values(
                previous_secret_until=datetime.now(UTC) - timedelta(seconds=1), url=new_only.url))
        new_only.secrets.extend([new_secret])
        await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], 3))
        await dispatch(services)
    assert len(new_only.received[0].headers["webhook-signature"].split()) == 1
    assert new_only.received[0].verified_with == [new_secret]
    unknown = data(await gql(rotate, {"id": "V2ViaG9va0VuZHBvaW50Ojk5OTk5"}))["rotateWebhookSecret"]
    assert unknown["__typename"] == "InvalidInput"


async def test_redeliver_sends_the_same_delivery_again(gql, sessions):
    services = runtime_of(gql).services
    hotel, ids, agencies = await setup(gql)
    async with running_receiver() as receiver:
        created = await endpoint(gql, receiver.url, ["booking_group.held"], role="agent", agency="SUNTRAVEL")
        receiver.secrets.append(created["secret"])
        await book(gql, agencies["SUNTRAVEL"], item(ids["STD"]))
        await dispatch(services)
        listing = """{ webhookEndpoints { id deliveries { edges { node { id status webhookId attempts } } } } }"""
        mine = data(await gql(listing, role="agent", agency="SUNTRAVEL"))["webhookEndpoints"]
        node = mine[0]["deliveries"]["edges"][0]["node"]
        assert node["status"] == "DELIVERED"
        # another agency sees neither the endpoint nor the delivery
        assert data(await gql(listing, role="agent", agency="BLUEWAVE"))["webhookEndpoints"] == []
        redeliver = """mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { __typename
          ... on WebhookDelivery { status } } }"""
        refused = data(await gql(redeliver, {"id": node["id"]}, role="agent", agency="BLUEWAVE"))["redeliverWebhook"]
        assert refused["__typename"] == "NotFound"
        again = data(await gql(redeliver, {"id": node["id"]}, role="agent", agency="SUNTRAVEL"))["redeliverWebhook"]
        assert again == {"__typename": "WebhookDelivery", "status": "PENDING"}
        await dispatch(services)
    assert receiver.delivered_ids() == [node["webhookId"], node["webhookId"]]
    assert receiver.received[0].body == receiver.received[1].body


async def test_endpoint_management_rules(gql, sessions):
    hotel, ids, agencies = await setup(gql)
    created = await endpoint(gql, "https://partner.example/hooks", ["booking_group.held"], role="agent",
                             agency="SUNTRAVEL")
    assert created["secret"].startswith("whsec_") and created["endpoint"]["agency"]["code"] == "SUNTRAVEL"
    bad = data(await gql(CREATE, {"input": {"url": "https://partner.example/h", "events": ["availability.changed"]}},
                         role="agent", agency="SUNTRAVEL"))["createWebhookEndpoint"]
    assert bad["__typename"] == "InvalidInput" and bad["field"] == "events"
    unknown = data(await gql(CREATE, {"input": {"url": "https://partner.example/h", "events": ["booking.made"]}}))
    assert unknown["createWebhookEndpoint"]["field"] == "events"
    other = data(await gql(CREATE, {"input": {"url": "https://partner.example/h", "events": ["booking_group.held"],
                                              "agencyId": agencies["BLUEWAVE"]}}, role="agent", agency="SUNTRAVEL"))
    assert other["createWebhookEndpoint"]["field"] == "agencyId"
    staff = await endpoint(gql, "https://ops.example/hooks", ["availability.changed"])
    assert staff["endpoint"]["agency"] is None
    # the secret is never read back: no field of an endpoint holds it
    listing = data(await gql("{ webhookEndpoints { url } }"))["webhookEndpoints"]
    fields = data(await gql('{ __type(name: "WebhookEndpoint") { fields { name } } }'))["__type"]["fields"]
    assert len(listing) == 2 and not [f["name"] for f in fields if "secret" in f["name"].lower()]
    update_endpoint = """mutation($input: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(input: $input) {
      __typename ... on WebhookEndpoint { enabled events } } }"""
    theirs = data(await gql(update_endpoint, {"input": {"id": staff["endpoint"]["id"], "enabled": False}},
                            role="agent", agency="SUNTRAVEL"))["updateWebhookEndpoint"]
    assert theirs["__typename"] == "NotFound"
    mine = data(await gql(update_endpoint, {"input": {"id": created["endpoint"]["id"], "enabled": False,
                                                      "events": ["booking_group.held", "hardblock.created"]}},
                          role="agent", agency="SUNTRAVEL"))["updateWebhookEndpoint"]
    assert mine == {"__typename": "WebhookEndpoint", "enabled": False,
                    "events": ["booking_group.held", "hardblock.created"]}
    delete = "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { __typename } }"
    assert data(await gql(delete, {"id": created["endpoint"]["id"]}, role="agent", agency="SUNTRAVEL")) == {
        "deleteWebhookEndpoint": {"__typename": "DeletedWebhookEndpoint"}}
    query = "query($id: ID) { auditLog(entityId: $id) { edges { node { action after } } } }"
    actions = [e["node"]["action"] for e in data(await gql(query, {"id": created["endpoint"]["id"]}))["auditLog"]["edges"]]
    assert actions == ["webhook_endpoint.deleted", "webhook_endpoint.updated", "webhook_endpoint.created"]


@pytest.mark.parametrize("url", [
    "http://partner.example/hooks",  # not https
    "https://127.0.0.1/hooks", "https://localhost/hooks", "https://10.1.2.3/hooks", "https://192.168.0.10/x",
    "https://169.254.169.254/latest/meta-data", "https://[::1]/hooks", "https://[fe80::1]/hooks",
    "https://[::ffff:10.0.0.1]/hooks", "https://0.0.0.0/hooks", "https://user:pw@partner.example/hooks",
])
async def test_production_refuses_private_targets(url):
    with pytest.raises(UnsafeUrl):
        await check_target(url, production=True, allow_private=False)


async def test_production_mode_refuses_a_private_endpoint_through_the_use_case(settings, sessions):
    from app.services.changes import OutboxRelay
    from app.services.context import Services, raw_pool
    production = settings.model_copy(update={"app_env": "production", "webhook_allow_private": None})
    services = Services(production, sessions, OutboxRelay(sessions, None), raw_pool(production))  # type: ignore[arg-type]
    try:
        with pytest.raises(InvalidInput) as refused:
            await endpoints.create_endpoint(services, _admin(), endpoints.EndpointSpec(
                url="https://127.0.0.1:8443/hooks", events=["booking_group.held"]))
        assert refused.value.field == "url" and "loopback" in refused.value.message
    finally:
        await services.raw.close()
    assert await check_target("https://1.1.1.1/hooks", production=True, allow_private=False)


def _admin() -> Caller:
    from app.auth import Principal, Role
    return Caller(Principal(uid="admin-1", role=Role.ADMIN, agency_code=None))


async def test_availability_changes_reach_staff_endpoints_coalesced(gql, sessions):
    services = runtime_of(gql).services
    hotel, ids, agencies = await setup(gql)
    async with running_receiver() as receiver:
        created = await endpoint(gql, receiver.url, ["availability.changed"])
        receiver.secrets.append(created["secret"])
        for n in range(3):
            await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], n))
        await dispatch(services)
    [received] = receiver.verified()  # three changes of one hotel in one batch: one delivery
    body = orjson.loads(received.body)
    assert body["type"] == "availability.changed" and body["data"]["hotelId"] == decode_id(hotel["id"], "Hotel", "id")


async def test_no_partner_events_are_lost_when_the_dispatcher_runs_concurrently(gql, sessions):
    """Two workers' dispatchers at once: every event fanned out exactly once, each delivery sent once."""
    services = runtime_of(gql).services
    hotel, ids, agencies = await setup(gql, allotment=50)
    async with running_receiver() as receiver:
        created = await endpoint(gql, receiver.url, ["booking_group.held"])
        receiver.secrets.append(created["secret"])
        for n in range(12):
            await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], n % 6))
        await asyncio.gather(dispatch(services, 2), dispatch(services, 2))
    ids_sent = receiver.delivered_ids()
    assert len(ids_sent) == 12 and len(set(ids_sent)) == 12
    assert len(await rows(sessions, models.WebhookDelivery)) == 12


async def test_hardblock_events_reach_the_blocks_agency(gql, sessions):
    from tests.api.test_hardblocks import CREATE_BLOCK
    from tests.api.test_calendar import d
    services = runtime_of(gql).services
    hotel, ids, agencies = await setup(gql)
    async with running_receiver() as receiver:
        created = await endpoint(gql, receiver.url, ["hardblock.created", "hardblock.amended", "hardblock.released"],
                                 role="agent", agency="SUNTRAVEL")
        receiver.secrets.append(created["secret"])
        block = data(await gql(CREATE_BLOCK, {"input": {
            "agencyId": agencies["SUNTRAVEL"], "roomTypeId": ids["STD"], "from": d(0), "to": d(4), "rooms": 3,
            "releaseDays": 7}}))["createHardblock"]
        returned = """mutation($input: ReturnHardblockRoomsInput!) { returnHardblockRooms(input: $input) { __typename } }"""
        data(await gql(returned, {"input": {"hardblockId": block["id"], "from": d(2), "to": d(4), "rooms": 1}}))
        release = "mutation($id: ID!) { releaseHardblock(id: $id) { __typename } }"
        data(await gql(release, {"id": block["id"]}))
        data(await gql(CREATE_BLOCK, {"input": {  # another agency's block: not this endpoint's
            "agencyId": agencies["BLUEWAVE"], "roomTypeId": ids["STD"], "from": d(0), "to": d(2), "rooms": 1,
            "releaseDays": 7}}))
        await dispatch(services)
    bodies = sorted((orjson.loads(r.body) for r in receiver.verified()), key=lambda b: b["data"]["sequence"])
    assert [(b["type"], b["data"]["change"]) for b in bodies] == [
        ("hardblock.created", "created"), ("hardblock.amended", "rooms_returned"), ("hardblock.released", "released")]
    assert {b["data"]["id"] for b in bodies} == {block["id"]} and bodies[-1]["data"]["status"] == "RELEASED"
