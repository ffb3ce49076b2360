"""Races over real HTTP against a real uvicorn on loopback: the last rooms are never sold twice,
and the same race without the inventory lock does overbook (so these tests can fail).

The server runs in its own thread and event loop; these tests commit for real (the `db` fixture
truncates the tables before each test).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

import db.inventory
from app.services import bookings as booking_service
from app.services.bookings import sweep_expired_holds
from app.api.ids import decode_id
from app.broadcast import Broadcast
from app.services.changes import OutboxRelay
from app.services.context import Services, raw_pool
from db import models
from tests.api.test_bookings import CANCEL, CONFIRM, CREATE, booking_input, item, setup
from tests.api.test_calendar import START, calendar, column
from tests.support import LiveServer, token

RACERS = 200
LEFT = 5


@pytest.fixture(scope="module")
def server(settings) -> Iterator[tuple[str, Any]]:
    """A real uvicorn (lifespan on) serving the app on a free loopback port, in its own thread.

    A generous lock timeout and pool timeout: 200 requests queue on one room type's lock (and for
    the pool's connections), and this test is about correctness, not latency (bench/ measures that).
    """
    with LiveServer(settings, backlog=2048, lock_timeout_ms=20_000, db_pool_size=10, db_pool_timeout_s=30) as live:
        yield live.http_url, live.app


@pytest.fixture
async def http(server, db) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    async with httpx.AsyncClient(base_url=server[0], limits=limits, timeout=60, trust_env=False) as client:
        yield client


async def post(http: httpx.AsyncClient, query: str, variables: dict[str, Any], role="admin", agency=None) -> dict:
    response = await http.post("/graphql", json={"query": query, "variables": variables},
                               headers={"Authorization": f"Bearer {token(role, agency)}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body.get("errors"), body["errors"]
    return body["data"]


async def held_rooms(sessions) -> int:
    async with sessions() as session:
        return (await session.execute(
            select(func.coalesce(func.sum(models.Booking.rooms), 0)).where(models.Booking.status == "HELD")
        )).scalar_one()


async def race_for_the_last_rooms(gql, http, sessions) -> tuple[Counter, int, dict]:
    hotel, ids, agencies = await setup(gql, allotment=10)
    taken = await post(http, CREATE, {"input": booking_input(agencies["BLUEWAVE"], item(ids["STD"], rooms=10 - LEFT))})
    assert taken["createBooking"]["__typename"] == "BookingGroup"
    before = await held_rooms(sessions)

    async def racer(n: int) -> str:
        agency = ("SUNTRAVEL", "BLUEWAVE")[n % 2]
        result = await post(http, CREATE, {"input": booking_input(None, item(ids["STD"], rooms=1))},
                            role="agent", agency=agency)
        return result["createBooking"]["__typename"]

    outcomes = Counter(await asyncio.gather(*(racer(n) for n in range(RACERS))))
    return outcomes, await held_rooms(sessions) - before, hotel


async def test_the_last_rooms_are_never_sold_twice(gql, http, sessions):
    outcomes, held, hotel = await race_for_the_last_rooms(gql, http, sessions)
    assert outcomes == {"BookingGroup": LEFT, "SoldOut": RACERS - LEFT}, outcomes
    assert held == LEFT
    cal = await calendar(gql, hotel["id"], end=START + timedelta(days=2))
    assert column(cal, "STD", "held") == [10, 10]
    assert column(cal, "STD", "available") == [0, 0]
    assert column(cal, "STD", "overcommitted") == [0, 0]


@contextmanager
def inventory_lock_disabled() -> Iterator[None]:
    """The inventory lock off inside the block, on again whatever happens: the races it prevents show."""
    db.inventory.locking_enabled = False
    try:
        yield
    finally:
        db.inventory.locking_enabled = True


async def test_without_the_inventory_lock_the_same_race_overbooks(gql, http, sessions, monkeypatch):
    """Proves the race above is real: without the lock, the same requests sell rooms twice.

    On a fast server (a Unix socket) the requests can happen not to overlap; a short pause after
    the availability read widens the window between read and write that the lock closes, so the
    overbooking shows every time instead of by chance.
    """
    read = booking_service.read_locked

    async def slow_read(*args: Any, **kwargs: Any) -> Any:
        snapshot = await read(*args, **kwargs)
        await asyncio.sleep(0.02)
        return snapshot

    monkeypatch.setattr(booking_service, "read_locked", slow_read)
    with inventory_lock_disabled():
        outcomes, held, hotel = await race_for_the_last_rooms(gql, http, sessions)
    assert held > LEFT, outcomes
    assert sum(outcomes.values()) == RACERS  # no errors either way: it is the check that fails
    cal = await calendar(gql, hotel["id"], end=START + timedelta(days=1))
    assert column(cal, "STD", "overcommitted")[0] == held - LEFT


async def test_concurrent_retries_of_one_key_create_one_group(gql, http, sessions):
    hotel, ids, agencies = await setup(gql, allotment=10)
    input = booking_input(agencies["SUNTRAVEL"], item(ids["STD"], rooms=2), key="retry-me")
    results = await asyncio.gather(*(post(http, CREATE, {"input": input}) for _ in range(40)))
    groups = {r["createBooking"]["id"] for r in results}
    assert len(groups) == 1 and {r["createBooking"]["__typename"] for r in results} == {"BookingGroup"}
    async with sessions() as session:
        assert (await session.execute(select(func.count()).select_from(models.BookingGroup))).scalar_one() == 1
    assert column(await calendar(gql, hotel["id"], end=START + timedelta(days=1)), "STD", "held") == [2]


async def make_holds(http, ids, agencies, n: int) -> list[str]:
    results = await asyncio.gather(*(
        post(http, CREATE, {"input": booking_input(agencies["SUNTRAVEL"], item(ids["STD"], rooms=1))})
        for _ in range(n)
    ))
    return [r["createBooking"]["id"] for r in results]


async def statuses(sessions) -> dict[int, tuple[str, set[str], str | None]]:
    """Per group: its status, its bookings' statuses, its sale order's status."""
    async with sessions() as session:
        groups = {g.id: g.status for g in (await session.execute(select(models.BookingGroup))).scalars()}
        bookings: dict[int, set[str]] = {}
        for b in (await session.execute(select(models.Booking))).scalars():
            bookings.setdefault(b.group_id, set()).add(b.status)
        orders = {o.group_id: o.status for o in (await session.execute(select(models.SaleOrder))).scalars()}
    return {pk: (status, bookings[pk], orders.get(pk)) for pk, status in groups.items()}


async def test_confirm_racing_expiry_has_exactly_one_winner(gql, http, sessions, settings):
    hotel, ids, agencies = await setup(gql, allotment=50)
    groups = await make_holds(http, ids, agencies, 20)
    expiry = datetime.now(timezone.utc) + timedelta(milliseconds=500)
    async with sessions() as session, session.begin():
        await session.execute(update(models.BookingGroup).values(expires_at=expiry))
        await session.execute(update(models.Booking).values(expires_at=expiry))

    # Another worker's sweeper: this loop's engine and broadcaster (the server's are bound to its loop).
    broadcast = Broadcast("memory://")
    await broadcast.connect()
    services = Services(settings, sessions, OutboxRelay(sessions, broadcast.publish), raw_pool(settings))
    stop = asyncio.Event()

    async def sweeper() -> None:
        while not stop.is_set():
            await sweep_expired_holds(services)
            await asyncio.sleep(0.005)

    async def confirmer(i: int, group_id: str) -> tuple[str, str]:
        await asyncio.sleep(i * 0.05)  # spread over [0, 1) s around the expiry at 0.5 s
        return group_id, (await post(http, CONFIRM, {"id": group_id}))["confirmBooking"]["__typename"]

    sweeping = asyncio.create_task(sweeper())
    try:
        outcomes = dict(await asyncio.gather(*(confirmer(i, g) for i, g in enumerate(groups))))
    finally:
        stop.set()
        await sweeping
        await broadcast.disconnect()
        await services.raw.close()

    final = await statuses(sessions)
    for group_id, outcome in outcomes.items():
        status, booking_statuses, order = final[decode_id(group_id, "BookingGroup", "id")]
        if outcome == "SaleOrder":
            assert (status, booking_statuses, order) == ("CONFIRMED", {"CONFIRMED"}, "CONFIRMED")
        else:
            assert outcome == "BookingExpired", outcome
            assert (status, booking_statuses, order) == ("EXPIRED", {"EXPIRED"}, None)
    assert set(outcomes.values()) == {"SaleOrder", "BookingExpired"}, outcomes  # both sides won some
    async with sessions() as session:
        actions = Counter((await session.execute(
            select(models.AuditEntry.entity_id, models.AuditEntry.action)
            .where(models.AuditEntry.action.in_(("booking_group.confirmed", "booking_group.expired")))
        )).all())
    assert all(n == 1 for n in actions.values())  # never both, never twice
    assert len(actions) == len(groups)


async def test_cancel_racing_confirm_leaves_a_consistent_group(gql, http, sessions):
    hotel, ids, agencies = await setup(gql, allotment=50)
    groups = await make_holds(http, ids, agencies, 20)

    async def both(group_id: str) -> tuple[str, str]:
        confirmed, cancelled = await asyncio.gather(
            post(http, CONFIRM, {"id": group_id}), post(http, CANCEL, {"id": group_id, "reason": "race"})
        )
        return confirmed["confirmBooking"]["__typename"], cancelled["cancelBooking"]["__typename"]

    outcomes = await asyncio.gather(*(both(g) for g in groups))
    final = await statuses(sessions)
    for group_id, (confirmed, cancelled) in zip(groups, outcomes):
        status, booking_statuses, order = final[decode_id(group_id, "BookingGroup", "id")]
        assert cancelled == "BookingGroup" and (status, booking_statuses) == ("CANCELLED", {"CANCELLED"})
        if confirmed == "SaleOrder":  # confirm went first: the cancel cancelled its sale order
            assert order == "CANCELLED"
        else:  # cancel went first
            assert confirmed == "InvalidTransition" and order is None
    cal = await calendar(gql, hotel["id"], end=START + timedelta(days=1))
    assert column(cal, "STD", "held") == column(cal, "STD", "sold") == [0]


# --- the first upserts of a new supplier contract id -----------------------------------------------


async def _race_first_upserts(gql, http) -> list[dict]:
    from tests.api.test_catalog import UPSERT_CONTRACT, contract_input

    hotel, ids, _ = await setup(gql)
    racers = [contract_input(hotel["id"], ids["STD"], externalId="NEW-1", allotment=n) for n in range(1, 9)]
    responses = await asyncio.gather(*(
        http.post("/graphql", json={"query": UPSERT_CONTRACT, "variables": {"input": value}},
                  headers={"Authorization": f"Bearer {token('admin')}"}) for value in racers))
    return [response.json() for response in responses]


async def test_concurrent_first_upserts_of_a_contract_id_create_one_contract(gql, http, sessions):
    bodies = await _race_first_upserts(gql, http)
    assert [body.get("errors") for body in bodies] == [None] * len(bodies)
    assert {body["data"]["upsertContract"]["__typename"] for body in bodies} == {"Contract"}
    async with sessions() as session:
        assert (await session.execute(select(func.count()).select_from(models.Contract)
                                      .where(models.Contract.external_id == "NEW-1"))).scalar_one() == 1


async def test_without_the_contract_lock_first_upserts_collide(gql, http):
    with inventory_lock_disabled():
        bodies = await _race_first_upserts(gql, http)
    assert any(body.get("errors") for body in bodies)  # the unique index refuses the second insert
