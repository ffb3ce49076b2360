"""The outbox: every committed change is recorded in its own transaction and reaches subscribers
at least once, even when the worker that wrote it dies between commit and publish."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from app.auth import Principal, Role
from app.broadcast import Broadcast
from app.services import bookings, catalog, inventory
from app.services.changes import BOOKING_GROUPS_CHANNEL, Change, OutboxRelay, inventory_channel
from app.services.context import Caller, Services, raw_pool
from app.services.errors import SoldOut
from db import models
from domain import Money

ADMIN = Caller(Principal("ops-1", Role.ADMIN, None), request_id="test")
START = date.today() + timedelta(days=30)


async def _published(channel_messages: list[tuple[str, str]], channel: str, message: str) -> None:
    channel_messages.append((channel, message))


def recording_services(settings, sessions) -> tuple[Services, list[tuple[str, str]]]:
    sent: list[tuple[str, str]] = []
    return Services(settings, sessions, OutboxRelay(sessions, lambda c, m: _published(sent, c, m)), raw_pool(settings)), sent


async def failing(channel: str, message: str) -> None:
    raise ConnectionError("the broadcast backend is down")


async def setup_hotel(services: Services, allotment: int = 2) -> tuple[int, int, int]:
    agency = await catalog.create_agency(services, ADMIN, "SUNTRAVEL", "Sun Travel")
    hotel = await catalog.upsert_hotel(services, ADMIN, catalog.HotelSpec("OPO", "Porto", [catalog.RoomTypeSpec("STD", "Standard")]))
    async with services.sessions() as session:
        room_type = (await session.execute(select(models.RoomType))).scalar_one()
    await inventory.upsert_contract(services, ADMIN, inventory.ContractSpec(
        "C-1", hotel.id, room_type.id, START, START + timedelta(days=10), allotment, Money(Decimal("80.00"), "EUR")))
    return agency.id, hotel.id, room_type.id


def hold(agency_id: int, room_type_id: int, key: str, rooms: int = 1) -> bookings.NewBooking:
    item = bookings.BookingItem(room_type_id, START, START + timedelta(days=2), rooms)
    return bookings.NewBooking(key, "Ana", [item], agency_id)


async def outbox_rows(sessions) -> list[models.OutboxMessage]:
    async with sessions() as session:
        return list((await session.execute(select(models.OutboxMessage).order_by(models.OutboxMessage.id))).scalars())


async def test_a_write_records_its_change_and_publishes_it_after_commit(db, settings, sessions):
    services, sent = recording_services(settings, sessions)
    agency_id, hotel_id, room_type_id = await setup_hotel(services)
    before = len(await outbox_rows(sessions))

    group = await bookings.create_booking(services, ADMIN, hold(agency_id, room_type_id, "k-1"))

    [row] = (await outbox_rows(sessions))[before:]
    change = Change.from_payload(row.payload)
    assert change == Change(hotel_id, change.version, (room_type_id,), START, START + timedelta(days=2),
                            groups=((group.id, agency_id),))
    assert sent[-2:] == [(inventory_channel(hotel_id), json.dumps(change.messages()[0][1], separators=(",", ":"))),
                         (BOOKING_GROUPS_CHANNEL, json.dumps({"groupId": group.id, "agencyId": agency_id},
                                                             separators=(",", ":")))]
    assert row.sent_at is None  # marked by the next flush, off the request path
    assert await services.relay.flush() == len(await outbox_rows(sessions))
    assert all(r.sent_at is not None for r in await outbox_rows(sessions))


async def test_a_rolled_back_write_records_and_sends_nothing(db, settings, sessions):
    services, sent = recording_services(settings, sessions)
    agency_id, _, room_type_id = await setup_hotel(services, allotment=1)
    rows, messages = len(await outbox_rows(sessions)), len(sent)

    with pytest.raises(SoldOut):
        await bookings.create_booking(services, ADMIN, hold(agency_id, room_type_id, "k-2", rooms=2))

    assert (len(await outbox_rows(sessions)), len(sent)) == (rows, messages)


async def test_a_change_left_unsent_by_a_dead_worker_is_published_by_another(db, settings, sessions):
    # given a worker whose publish fails after its write committed (as if it died in between)
    dead = Services(settings, sessions, OutboxRelay(sessions, failing), raw_pool(settings))
    agency_id, hotel_id, room_type_id = await setup_hotel(dead)
    group = await bookings.create_booking(dead, ADMIN, hold(agency_id, room_type_id, "k-3"))
    assert await dead.relay.flush() == 0  # nothing was published, so nothing is marked
    unsent = await outbox_rows(sessions)
    assert unsent and all(r.sent_at is None for r in unsent)

    # when another worker's relay sweeps (its grace period over)
    broadcast = Broadcast("memory://")
    await broadcast.connect()
    try:
        async with broadcast.subscribe(BOOKING_GROUPS_CHANNEL) as subscriber:
            relay = OutboxRelay(sessions, broadcast.publish, grace_s=0)
            assert await relay.sweep() == len(unsent)

            # then the subscriber hears the committed change, and no row is left to send
            event = await asyncio.wait_for(subscriber.get(), 2)
            assert json.loads(event.message) == {"groupId": group.id, "agencyId": agency_id}
            assert await relay.sweep() == 0
    finally:
        await broadcast.disconnect()
    assert all(r.sent_at is not None for r in await outbox_rows(sessions))


async def test_rows_within_the_grace_period_are_left_to_their_writer(db, settings, sessions):
    dead = Services(settings, sessions, OutboxRelay(sessions, failing), raw_pool(settings))
    await setup_hotel(dead)
    assert await OutboxRelay(sessions, failing, grace_s=3600).sweep() == 0


async def test_two_relays_sweeping_at_once_send_each_row_once(db, settings, sessions):
    dead = Services(settings, sessions, OutboxRelay(sessions, failing), raw_pool(settings))
    agency_id, _, room_type_id = await setup_hotel(dead, allotment=2)
    for key in ("a", "b"):
        await bookings.create_booking(dead, ADMIN, hold(agency_id, room_type_id, key))
    rows = await outbox_rows(sessions)
    sent: list[tuple[str, str]] = []

    async def slow(channel: str, message: str) -> None:
        await asyncio.sleep(0.05)  # both relays are inside their claim at once
        sent.append((channel, message))

    counts = await asyncio.gather(*(OutboxRelay(sessions, slow, grace_s=0).sweep() for _ in range(2)))

    assert sum(counts) == len(rows)
    per_row = [m for row in rows for m in Change.from_payload(row.payload).messages()]
    assert sorted(sent) == sorted((c, json.dumps(m, separators=(",", ":"))) for c, m in per_row)


async def test_sent_rows_are_forgotten_after_keep_s(db, settings, sessions):
    services, _ = recording_services(settings, sessions)
    await setup_hotel(services)
    await services.relay.flush()
    async with sessions() as session, session.begin():
        await session.execute(update(models.OutboxMessage).values(sent_at=models.utcnow() - timedelta(hours=2)))
    await OutboxRelay(sessions, failing, keep_s=3600).sweep()
    assert await outbox_rows(sessions) == []
