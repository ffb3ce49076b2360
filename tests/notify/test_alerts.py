"""Release alerts, expiring holds and the emails of partner events, end to end: the events come
from real writes, the jobs and the fan-out are run by the tests, the emails go to an SMTP server
on loopback."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import orjson
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from app.services.notify.alerts import announce_expiring_holds, announce_releases
from app.services.notify.events import fan_out
from app.services.notify.mail import send_due_emails
from db import models
from tests.api.test_bookings import book, confirm, item, setup
from tests.api.test_hardblocks import CREATE_BLOCK
from tests.notify.test_webhooks import dispatch, endpoint, rows, runtime_of
from tests.notify.receiver import running_receiver
from tests.support import data

UPDATE_AGENCY = "mutation($input: UpdateAgencyInput!) { updateAgency(input: $input) { __typename } }"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(envelope.content)
        return "250 OK"


async def contact(gql, agency_id, address):
    data(await gql(UPDATE_AGENCY, {"input": {"id": agency_id, "contactEmail": address}}))


async def block_releasing_soon(gql, agencies, ids, *, rooms=3, start_in_days=3, release_days=2):
    """A SUNTRAVEL block whose first nights release within 48 h: a night n days ahead releases at
    the hotel-local midnight `release_days` before it."""
    today = date.today()
    result = data(await gql(CREATE_BLOCK, {"input": {
        "agencyId": agencies["SUNTRAVEL"], "roomTypeId": ids["STD"],
        "from": (today + timedelta(days=start_in_days)).isoformat(),
        "to": (today + timedelta(days=start_in_days + 4)).isoformat(), "rooms": rooms, "releaseDays": release_days}}))
    assert result["createHardblock"]["__typename"] == "Hardblock", result
    return result["createHardblock"]


async def near_setup(gql):
    """A hotel whose contracts start today (the release alerts need nights close by)."""
    from tests.api.test_calendar import UPSERT_CONTRACT
    from tests.api.test_catalog import contract_input
    hotel, ids, agencies = await setup(gql)
    data(await gql(UPSERT_CONTRACT, {"input": contract_input(
        hotel["id"], ids["STD"], externalId="C-NEAR", allotment=10, releaseDays=0,
        **{"from": date.today().isoformat(), "to": (date.today() + timedelta(days=40)).isoformat()})}))
    return hotel, ids, agencies


async def test_a_release_alert_goes_once_per_block_night_and_threshold(gql, sessions):
    services = runtime_of(gql).services
    hotel, ids, agencies = await near_setup(gql)
    await contact(gql, agencies["SUNTRAVEL"], "ops@sun.example")
    block = await block_releasing_soon(gql, agencies, ids)
    async with running_receiver() as receiver:
        created = await endpoint(gql, receiver.url, ["hardblock.release_upcoming"], role="agent", agency="SUNTRAVEL")
        receiver.secrets.append(created["secret"])
        # several workers at once, and again later (a restart): each night is claimed once
        claimed = await asyncio.gather(*(announce_releases(services) for _ in range(4)))
        assert await announce_releases(services) == 0
        await dispatch(services)
    alerts = await rows(sessions, models.ReleaseAlert)
    nights = sorted(a.night for a in alerts)
    assert sum(claimed) == len(alerts) and len(set(nights)) == len(nights) >= 1
    release_at = [datetime.combine(n - timedelta(days=2), datetime.min.time(), UTC) for n in nights]
    assert all(datetime.now(UTC) < at <= datetime.now(UTC) + timedelta(hours=48) for at in release_at)
    bodies = [orjson.loads(r.body) for r in receiver.verified()]
    announced = sorted(n["date"] for body in bodies for n in body["data"]["nights"])
    assert announced == [n.isoformat() for n in nights]
    assert all(body["type"] == "hardblock.release_upcoming" and body["data"]["id"] == block["id"] for body in bodies)
    assert all(n["unsold"] == 3 for body in bodies for n in body["data"]["nights"])
    emails = await rows(sessions, models.EmailMessage, models.EmailMessage.kind == "release_alert")
    assert len(emails) == len(bodies) and emails[0].to_address == "ops@sun.example"
    assert nights[0].isoformat() in emails[0].text_body


async def test_a_fully_booked_night_is_not_announced(gql, sessions):
    services = runtime_of(gql).services
    hotel, ids, agencies = await near_setup(gql)
    block = await block_releasing_soon(gql, agencies, ids, rooms=1)
    today = date.today()
    first = today + timedelta(days=3)
    booked = await book(gql, agencies["SUNTRAVEL"], {"roomTypeId": ids["STD"], "checkIn": first.isoformat(),
                                                     "checkOut": (first + timedelta(days=4)).isoformat(), "rooms": 1,
                                                     "hardblockId": block["id"]})
    assert booked["__typename"] == "BookingGroup", booked
    await announce_releases(services)
    events = await rows(sessions, models.PartnerEvent, models.PartnerEvent.type == "hardblock.release_upcoming")
    assert events == []  # nothing unsold: nothing to announce (the nights are claimed all the same)
    assert await announce_releases(services) == 0


async def test_holds_about_to_lapse_are_announced_once(gql, sessions):
    services = runtime_of(gql).services
    hotel, ids, agencies = await setup(gql)
    await contact(gql, agencies["SUNTRAVEL"], "ops@sun.example")
    soon = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"]))
    await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], 3))  # a hold lapsing later: no notice yet
    from app.api.ids import decode_id
    async with sessions() as session, session.begin():
        await session.execute(update(models.BookingGroup).where(
            models.BookingGroup.id == decode_id(soon["id"], "BookingGroup", "id")).values(
            expires_at=datetime.now(UTC) + timedelta(minutes=4)))
    assert await announce_expiring_holds(services) == 1
    assert await announce_expiring_holds(services) == 0
    await fan_out(services)
    [event] = await rows(sessions, models.PartnerEvent, models.PartnerEvent.type == "booking_group.expiring")
    assert event.payload["id"] == soon["id"] and event.payload["status"] == "HELD"
    [email] = await rows(sessions, models.EmailMessage, models.EmailMessage.kind == "hold_expiring")
    assert email.to_address == "ops@sun.example" and "expires in 4 minutes" in email.subject


async def test_a_confirmation_email_is_sent_once_even_through_an_smtp_outage(gql, sessions):
    from dataclasses import replace

    from tests.notify.test_mail import free_port
    unused_tcp_port = free_port()
    runtime = runtime_of(gql)
    hotel, ids, agencies = await setup(gql)
    await contact(gql, agencies["SUNTRAVEL"], "ops@sun.example")
    group = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], nights=2, rooms=2))
    order = await confirm(gql, group["id"])
    await fan_out(runtime.services)
    services = runtime.services
    smtp = services.settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{unused_tcp_port}"})
    with_smtp = replace(services, settings=smtp)
    assert await send_due_emails(with_smtp) == 1  # the server is down: the email waits
    [email] = await rows(sessions, models.EmailMessage)
    assert email.status == "FAILED" and email.kind == "booking_confirmed"
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=unused_tcp_port)
    controller.start()
    try:
        async with sessions() as session, session.begin():
            await session.execute(update(models.EmailMessage).values(next_attempt_at=datetime.now(UTC)))
        assert await send_due_emails(with_smtp) == 1
        assert await send_due_emails(with_smtp) == 0
    finally:
        controller.stop()
    [message] = inbox.messages
    text = message.decode()
    assert order["number"] in text and "Ada Lovelace" in text and "99.50" in text and "398.00" in text
