"""What the booking benchmarks share: a throwaway database with a bookable hotel, app servers in
subprocesses, and a createBooking client.

PostgreSQL: BENCH_DATABASE_URL, else TEST_DATABASE_URL, else DATABASE_URL, else an embedded
server in .data/bench. Each run creates a `staysync_bench_<hex>` database on it, migrates it and
drops it at the end.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx

from bench.common import PROJECT_ID, RESULTS_DIR, free_port, start_server, stop_server, wait_ready

AGENCIES = ("BENCHA", "BENCHB")
START = date.today() + timedelta(days=30)  # first bookable night: no release cut-off near

CREATE = """
mutation($input: CreateBookingInput!) { createBooking(input: $input) {
  __typename
  ... on BookingGroup { id }
  ... on UserError { code message }
} }
"""


@dataclass
class Hotel:
    id: int
    room_type_ids: list[int]
    agency_ids: dict[str, int] = field(default_factory=dict)


async def seed_hotel(url: str, code: str, room_types: int, allotment: int, nights: int = 400,
                     taken: int = 0) -> Hotel:
    """A hotel with `room_types` room types, each with a contract of `allotment` rooms a night over
    `nights` nights from START, and (when `taken` > 0) a confirmed booking of `taken` rooms on
    every night, so `allotment - taken` rooms are left."""
    from db import models
    from db.engine import create_engine, session_factory, transaction

    engine = create_engine(url, pool_size=1)
    try:
        async with transaction(session_factory(engine)) as s:
            agencies = {}
            for agency_code in AGENCIES:
                existing = await s.execute(models.Agency.__table__.select().where(models.Agency.code == agency_code))
                row = existing.first()
                if row is None:
                    agency = models.Agency(code=agency_code, name=f"Bench {agency_code}")
                    s.add(agency)
                    await s.flush()
                    agencies[agency_code] = agency.id
                else:
                    agencies[agency_code] = row.id
            hotel = models.Hotel(code=code, name=f"Bench hotel {code}")
            s.add(hotel)
            await s.flush()
            rts = [models.RoomType(hotel_id=hotel.id, code=f"RT{i:03d}", name=f"Room type {i}") for i in range(room_types)]
            s.add_all(rts)
            await s.flush()
            s.add_all([models.Contract(
                external_id=f"{code}-{rt.code}", hotel_id=hotel.id, room_type_id=rt.id, start_date=START,
                end_date=START + timedelta(days=nights), allotment=allotment, rate_amount=Decimal("100.00"),
                currency="EUR", release_days=0, terms="bench") for rt in rts])
            if taken:
                groups = [models.BookingGroup(reference=f"BG-{code}-{rt.code}", agency_id=agencies[AGENCIES[0]],
                                              status="CONFIRMED", created_by="bench") for rt in rts]
                s.add_all(groups)
                await s.flush()
                s.add_all([models.Booking(
                    group_id=g.id, agency_id=g.agency_id, hotel_id=hotel.id, room_type_id=rt.id, check_in=START,
                    check_out=START + timedelta(days=nights), rooms=taken, status="CONFIRMED",
                    total_amount=Decimal("0.00"), currency="EUR") for g, rt in zip(groups, rts)])
            s.add(models.InventoryVersion(hotel_id=hotel.id, version=1))
        return Hotel(hotel.id, [rt.id for rt in rts], agencies)
    finally:
        await engine.dispose()


# --- servers -------------------------------------------------------------------------------------


@dataclass
class Servers:
    bases: list[str]
    processes: list[subprocess.Popen[bytes]]


@contextmanager
def app_servers(url: str, workers: int, name: str, *, locks: bool = True,
                env: dict[str, str] | None = None) -> Iterator[Servers]:
    """`workers` app processes (`staysync serve --no-migrate --workers 1`), each on its own free
    loopback port, sharing the one database. Two processes rather than `--workers 2` on one port
    so the client splits requests evenly and knows which process served each one."""
    environment = {**(env or {}), **({} if locks else {"UNSAFE_DISABLE_INVENTORY_LOCKS": "1"})}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    bases = []
    try:
        for n in range(workers):
            port = free_port()
            processes.append(start_server(url, port, RESULTS_DIR / f"{name}.server{n}.log", extra_env=environment))
            bases.append(f"http://127.0.0.1:{port}")
        for base, process in zip(bases, processes):
            wait_ready(base, process)
        yield Servers(bases, processes)
    finally:
        for process in processes:
            stop_server(process)


# --- the client ----------------------------------------------------------------------------------


def tokens() -> dict[str, str]:
    from app.auth import make_emulator_token

    return {code: make_emulator_token(role="agent", agency=code, project_id=PROJECT_ID, lifetime_s=6 * 3600)
            for code in AGENCIES}


def booking_variables(room_type_id: int, check_in: date, nights: int = 1, rooms: int = 1) -> dict[str, Any]:
    from app.api.ids import to_global_id

    return {"input": {"idempotencyKey": uuid.uuid4().hex, "guestName": "Bench Guest", "items": [{
        "roomTypeId": to_global_id("RoomType", room_type_id), "checkIn": check_in.isoformat(),
        "checkOut": (check_in + timedelta(days=nights)).isoformat(), "rooms": rooms}]}}


@dataclass
class Outcome:
    kind: str  # BookingGroup | SoldOut | a UserError code | "error: ..."
    ms: float
    server: int


async def create_booking(client: httpx.AsyncClient, base: str, server: int, token: str,
                         variables: dict[str, Any]) -> Outcome:
    t0 = time.perf_counter_ns()
    try:
        response = await client.post(f"{base}/graphql", json={"query": CREATE, "variables": variables},
                                     headers={"Authorization": f"Bearer {token}"})
        body = response.json() if response.status_code == 200 else None
    except httpx.HTTPError as error:
        return Outcome(f"error: {type(error).__name__}", (time.perf_counter_ns() - t0) / 1e6, server)
    ms = (time.perf_counter_ns() - t0) / 1e6
    if body is None:
        return Outcome(f"error: HTTP {response.status_code}", ms, server)
    if body.get("errors"):
        return Outcome(f"error: {body['errors'][0].get('message')}", ms, server)
    result = body["data"]["createBooking"]
    kind = result["__typename"]
    return Outcome(kind if kind in ("BookingGroup", "SoldOut") else f"error: {result.get('code')}", ms, server)


def client(connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(limits=limits, timeout=60, trust_env=False)


async def held_rooms(url: str, room_type_ids: list[int]) -> dict[int, int]:
    """Rooms in HELD bookings per room type (what the races sold)."""
    from sqlalchemy import func, select

    from db import models
    from db.engine import create_engine, session_factory

    engine = create_engine(url, pool_size=1)
    try:
        async with session_factory(engine)() as s:
            rows = (await s.execute(
                select(models.Booking.room_type_id, func.sum(models.Booking.rooms))
                .where(models.Booking.status == "HELD", models.Booking.room_type_id.in_(room_type_ids))
                .group_by(models.Booking.room_type_id)
            )).all()
        return {rt: int(n) for rt, n in rows}
    finally:
        await engine.dispose()


def now_utc() -> datetime:
    return datetime.now(timezone.utc)
