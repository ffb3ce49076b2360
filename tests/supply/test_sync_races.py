"""A supplier reduction racing bookings, over real HTTP against a real uvicorn: no booking decided
on the allotment from before the reduction commits after it; without the inventory lock, some do
(so the test can fail).

Commit order is read from the hotel's inventory versions: every write bumps the version last,
under the version row's lock, so versions are in commit order. Replaying the changes in that
order, a booking that commits after the reduction must fit in the reduced allotment.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.services import bookings as booking_service
from app.supplier_sim import create_app
from db import models
from tests.api.test_booking_races import inventory_lock_disabled
from tests.api.test_bookings import CREATE_AGENCY
from tests.supply.loopback import Loopback
from tests.supply.test_sync import API_KEY, SYNC, UPSERT, contract, write_feed
from tests.support import LiveServer, token

ALLOTMENT, REDUCED, HELD_FIRST = 10_000, 20, 18
STAGGER_S, MAX_RACERS, AFTER = 0.01, 1000, 5
NIGHT = {"checkIn": "2027-03-01", "checkOut": "2027-03-02"}


@pytest.fixture(scope="module")
def server(settings) -> Iterator[str]:
    with LiveServer(settings, lock_timeout_ms=20_000, db_pool_size=10, db_pool_timeout_s=30) as live:
        yield live.http_url


async def post(http: httpx.AsyncClient, query: str, variables: dict[str, Any], role: str = "admin",
               agency: str | None = None) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables},
                               headers={"Authorization": f"Bearer {token(role, agency)}"})
    body = response.json()
    assert response.status_code == 200 and not body.get("errors"), body
    return body["data"]


async def race(server: str, sessions, feed: Path) -> list[tuple[int, int | None]]:
    """Sync a 10,000-room contract, hold 18 rooms, then race one-room bookings (arriving until the
    sync has ended) against a sync that reduces it to 20. Returns the hotel's changes in commit order: (version, rooms booked or None
    for the reduction)."""
    write_feed(feed, [contract(allotment=ALLOTMENT)])
    with Loopback(create_app(feed, api_key=API_KEY)) as feed_url:
        async with httpx.AsyncClient(base_url=server, timeout=60, trust_env=False,
                                     limits=httpx.Limits(max_connections=100)) as http:
            supplier = (await post(http, UPSERT, {"input": {"code": "SIM", "name": "Sim", "kind": "HTTP",
                                                            "baseUrl": feed_url, "apiKey": API_KEY}}))["upsertSupplier"]
            assert (await post(http, SYNC, {"id": supplier["id"]}))["syncSupplier"]["status"] == "SUCCEEDED"
            await post(http, CREATE_AGENCY, {"input": {"code": "SUNTRAVEL", "name": "Sun"}})
            hotels = await post(http, "{ hotels { code roomTypes { id code } } }", {})
            room_type = next(h for h in hotels["hotels"] if h["code"] == "SIM-H")["roomTypes"][0]["id"]

            async def book(rooms: int) -> str:
                result = await post(http, """mutation($input: CreateBookingInput!) { createBooking(input: $input) {
                  __typename } }""", {"input": {"idempotencyKey": f"k-{id(object())}-{asyncio.get_running_loop().time()}",
                                                "guestName": "Guest", "items": [{"roomTypeId": room_type, "rooms": rooms,
                                                                                 **NIGHT}]}},
                                    role="agent", agency="SUNTRAVEL")
                return result["createBooking"]["__typename"]

            assert await book(HELD_FIRST) == "BookingGroup"
            write_feed(feed, [contract(allotment=REDUCED, updated_at="2026-11-02T00:00:00Z")])

            reduced = asyncio.Event()

            async def reduce() -> None:
                run = (await post(http, SYNC, {"id": supplier["id"]}))["syncSupplier"]
                reduced.set()
                assert run["status"] == "SUCCEEDED" and run["stats"]["eventsRecorded"] == 1, run

            async def stream() -> None:
                """Bookings keep arriving, one every STAGGER_S, for as long as the sync runs (so some
                are in flight when its reduction commits, however long it takes), and a few after."""
                racers: list[asyncio.Task[str]] = []
                while not reduced.is_set() and len(racers) < MAX_RACERS:
                    racers.append(asyncio.create_task(book(1)))
                    await asyncio.sleep(STAGGER_S)
                racers += [asyncio.create_task(book(1)) for _ in range(AFTER)]
                await asyncio.gather(*racers)

            await asyncio.gather(reduce(), stream())
    async with sessions() as session:
        rooms = {g: r for g, r in (await session.execute(select(models.Booking.group_id, models.Booking.rooms)))}
        payloads = (await session.execute(select(models.OutboxMessage.payload)
                                          .where(models.OutboxMessage.topic == "inventory.change"))).scalars().all()
    changes = []
    for payload in payloads:
        payload = json.loads(payload) if isinstance(payload, str) else payload
        groups = payload.get("groups") or []
        changes.append((payload["version"], rooms[groups[0][0]] if groups else None))
    return sorted(changes)


def late_bookings_past_the_reduction(changes: list[tuple[int, int | None]]) -> int:
    """Rooms held beyond the reduced allotment by bookings that committed after the reduction."""
    booked, reduced, excess = 0, False, 0
    for _, rooms in changes:
        if rooms is None:
            reduced = reduced or booked >= HELD_FIRST  # the first sync (creation) comes before any booking
            continue
        booked += rooms
        if reduced and booked > REDUCED:
            excess += rooms
    return excess


async def test_a_reduction_racing_bookings_never_lets_a_stale_booking_through(server, sessions, db, tmp_path):
    changes = await race(server, sessions, tmp_path / "feed.json")
    assert [c for c in changes if c[1] is None], "the reduction is among the changes"
    assert late_bookings_past_the_reduction(changes) == 0, changes


async def test_without_the_inventory_lock_the_same_race_lets_stale_bookings_through(
        server, sessions, db, tmp_path, monkeypatch):
    read = booking_service.read_locked

    async def slow_read(*args: Any, **kwargs: Any) -> Any:
        snapshot = await read(*args, **kwargs)
        await asyncio.sleep(0.05)  # widen the window between the booking's read and its write
        return snapshot

    monkeypatch.setattr(booking_service, "read_locked", slow_read)
    with inventory_lock_disabled():
        changes = await race(server, sessions, tmp_path / "feed.json")
    assert late_bookings_past_the_reduction(changes) > 0, repr([c[1] for c in changes])
