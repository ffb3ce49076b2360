"""What the booking benchmarks share: a throwaway database with a bookable hotel, app servers in
subprocesses, and the createBooking requests wrk sends (bench/wrk/create_booking.lua).

PostgreSQL: BENCH_DATABASE_URL, else TEST_DATABASE_URL, else DATABASE_URL, else an embedded
server in .data/bench. Each run creates a `staysync_bench_<hex>` database on it, migrates it and
drops it at the end.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from bench.common import PROJECT_ID, RESULTS_DIR, free_port, start_server, stop_server, wait_ready

AGENCIES = ("BENCHA", "BENCHB", "BENCHC", "BENCHD")
AGENTS_PER_AGENCY = 2  # tokens in the rotation: agents of every agency
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

    def cpu_roots(self) -> dict[str, int]:
        """The server processes by name (server0, server1...), for the CPU readings."""
        return {f"server{n}": process.pid for n, process in enumerate(self.processes)}


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


# --- the requests ---------------------------------------------------------------------------------


def tokens() -> list[str]:
    """Agent tokens, AGENTS_PER_AGENCY for each of the AGENCIES, interleaved so consecutive
    requests come from different agencies."""
    from app.auth import make_emulator_token

    return [make_emulator_token(role="agent", agency=code, uid=f"bench-{code.lower()}-{n}", project_id=PROJECT_ID,
                                lifetime_s=6 * 3600)
            for n in range(AGENTS_PER_AGENCY) for code in AGENCIES]


# Outcomes of a createBooking response (bench/wrk/lib.lua): a GraphQL error, else the result's
# __typename (BookingGroup, SoldOut or another UserError).
CLASSIFY = [['"errors"%s*:', "GraphQL error"], ['"__typename"%s*:%s*"(%w+)"']]


def booking_template() -> str:
    """The JSON body of a createBooking of 1 room as a string.format pattern (create_booking.lua):
    %s for the idempotency key, the room type's global id, check-in and check-out."""
    fields = ("@KEY@", "@ROOMTYPE@", "@IN@", "@OUT@")
    body = json.dumps({"query": CREATE, "variables": {"input": {
        "idempotencyKey": fields[0], "guestName": "Bench Guest",
        "items": [{"roomTypeId": fields[1], "checkIn": fields[2], "checkOut": fields[3], "rooms": 1}]}}},
        separators=(",", ":")).replace("%", "%%")
    assert [body.index(f) for f in fields] == sorted(body.index(f) for f in fields)
    for f in fields:
        body = body.replace(f, "%s")
    return body


def booking_config(room_type_ids: Sequence[int], first_nights: Sequence[date], token: Sequence[str]) -> dict[str, Any]:
    """What create_booking.lua needs: each request books 1 room for 1 night, on a room type and a
    night drawn at random from these."""
    from app.api.ids import to_global_id

    return {"body": booking_template(), "tokens": list(token), "classify": CLASSIFY,
            "room_types": [to_global_id("RoomType", rt) for rt in room_type_ids],
            "stays": [[night.isoformat(), (night + timedelta(days=1)).isoformat()] for night in first_nights]}


def booking_outcomes(run: dict[str, Any]) -> dict[str, int]:
    """booked / sold_out / errors / unanswered of a wrk run of create_booking.lua. Errors are every
    other response (GraphQL errors, other UserErrors, HTTP errors), plus, in a burst, the requests
    that got no response; at the end of a timed run the requests still in flight are only
    unanswered."""
    outcomes = run["outcomes"]
    booked, sold_out = outcomes.get("BookingGroup", 0), outcomes.get("SoldOut", 0)
    unanswered = run["sent"] - run["responses"]
    return {"booked": booked, "sold_out": sold_out, "unanswered": unanswered,
            "errors": run["responses"] - booked - sold_out + (unanswered if run["quota"] else 0)}


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
