"""The pure domain pipeline: compute_calendar at 50 room types x 365 nights x 10,000 events.

    .venv/bin/python -m bench.pipeline [--runs 20] [--seed 20260501]

Inputs are built deterministically from the seed (a checksum of the output proves two runs saw
the same calendar): contracts per room type, 10,000 random INCREASE / REDUCE / BLOCK_CONTRACT /
RATE_CHANGE events of 1-14 nights, ~50 hardblocks with BLOCK_AMENDMENT events, and a few
hundred bookings (held, expired holds, confirmed, cancelled, from blocks). Target (DESIGN.md):
<= 100 ms in-process.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import random
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from bench.common import repeat_ms, summarize, table, target, targets_table, write_results
from domain import (
    AllotmentEvent,
    BookingLine,
    BookingStatus,
    CalendarRow,
    ContractTerms,
    EventKind,
    HardblockTerms,
    Money,
    compute_calendar,
    resolve,
)

ROOM_TYPES = 50
NIGHTS = 365
EVENTS = 10_000
HARDBLOCKS = 50
BOOKINGS = 400
TARGET_MS = 100.0

START = date(2027, 1, 1)
END = START + timedelta(days=NIGHTS)
# Ten days before the window: cut-offs of the first nights with long release days have passed.
NOW = datetime(2026, 12, 22, 9, 30, tzinfo=UTC)
T0 = datetime(2026, 6, 1, tzinfo=UTC)
POOL_KINDS = (EventKind.INCREASE_ALLOTMENT, EventKind.REDUCE_ALLOTMENT, EventKind.BLOCK_CONTRACT, EventKind.RATE_CHANGE)
POOL_WEIGHTS = (35, 30, 10, 25)


@dataclass
class Inputs:
    contracts: list[ContractTerms]
    events: list[AllotmentEvent]
    hardblocks: list[HardblockTerms]
    bookings: list[BookingLine]
    room_type_ids: list[int]

    def counts(self) -> dict[str, object]:
        by_kind: dict[str, int] = {}
        for e in self.events:
            by_kind[e.kind.value] = by_kind.get(e.kind.value, 0) + 1
        return {
            "room_types": len(self.room_type_ids),
            "nights": NIGHTS,
            "cells": len(self.room_type_ids) * NIGHTS,
            "contracts": len(self.contracts),
            "events": len(self.events),
            "events_by_kind": by_kind,
            "hardblocks": len(self.hardblocks),
            "bookings": len(self.bookings),
        }


def eur(amount: int | str) -> Money:
    return Money(Decimal(amount).quantize(Decimal("0.01")), "EUR")


def build(seed: int, event_count: int = EVENTS) -> Inputs:
    rnd = random.Random(seed)
    room_type_ids = list(range(101, 101 + ROOM_TYPES))

    def night(offset: int) -> date:
        return START + timedelta(days=offset)

    # Contracts: a base contract a little wider than the window per room type; a third of the
    # room types also have a seasonal top-up (a higher id, so it governs rate and release days).
    contracts: list[ContractTerms] = []
    for rt in room_type_ids:
        contracts.append(ContractTerms(
            id=len(contracts) + 1, room_type_id=rt, start=night(-10), end=night(NIGHTS + 25),
            allotment=rnd.randint(10, 40), rate=eur(rnd.randint(80, 250)), release_days=rnd.randint(0, 14),
        ))
    for rt in rnd.sample(room_type_ids, ROOM_TYPES // 3):
        a = rnd.randint(120, 180)
        contracts.append(ContractTerms(
            id=len(contracts) + 1, room_type_id=rt, start=night(a), end=night(a + rnd.randint(30, 90)),
            allotment=rnd.randint(2, 10), rate=eur(rnd.randint(150, 350)), release_days=rnd.randint(3, 21),
        ))

    def instant() -> datetime:  # within ~6 months: ties on effective_at are possible but rare
        return T0 + timedelta(seconds=rnd.randrange(180 * 86400))

    events: list[AllotmentEvent] = []
    for kind in rnd.choices(POOL_KINDS, POOL_WEIGHTS, k=event_count):
        a = rnd.randint(-7, NIGHTS - 1)
        quantity = rnd.randint(1, 5) if kind in (EventKind.INCREASE_ALLOTMENT, EventKind.REDUCE_ALLOTMENT) else None
        events.append(AllotmentEvent(
            id=len(events) + 1, kind=kind, room_type_id=rnd.choice(room_type_ids),
            start=night(a), end=night(a + rnd.randint(1, 14)), effective_at=instant(), quantity=quantity,
            rate=eur(rnd.randint(70, 300)) if kind is EventKind.RATE_CHANGE else None,
        ))

    # Hardblocks, each amended 0-4 times (BLOCK_AMENDMENT events sized 0-6, some extending it).
    hardblocks: list[HardblockTerms] = []
    for block_id in range(1, HARDBLOCKS + 1):
        a = rnd.randint(0, NIGHTS - 40)
        b = a + rnd.randint(3, 30)
        released_nights = frozenset(night(a + i) for i in rnd.sample(range(b - a), k=min(2, b - a))) \
            if rnd.random() < 0.15 else frozenset()
        hardblocks.append(HardblockTerms(
            id=block_id, room_type_id=rnd.choice(room_type_ids), agency_id=rnd.randint(1, 6),
            start=night(a), end=night(b), rooms=rnd.randint(1, 5), release_days=rnd.randint(0, 7),
            released_at=NOW - timedelta(days=1) if block_id % 25 == 0 else None,
            released_nights=released_nights,
        ))
        for _ in range(rnd.randint(0, 4)):
            s = rnd.randint(a - 3, b - 1)
            events.append(AllotmentEvent(
                id=len(events) + 1, kind=EventKind.BLOCK_AMENDMENT, room_type_id=hardblocks[-1].room_type_id,
                start=night(s), end=night(s + rnd.randint(1, 10)), effective_at=instant(),
                quantity=rnd.randint(0, 6), hardblock_id=block_id,
            ))

    # Bookings: ~30% from blocks, the rest pool holds (some expired), confirmations, cancellations.
    bookings: list[BookingLine] = []
    for booking_id in range(1, BOOKINGS + 1):
        rooms = rnd.randint(1, 3)
        if rnd.random() < 0.3:
            block = rnd.choice(hardblocks)
            a = rnd.randint(block.start.toordinal(), block.end.toordinal() - 1)
            check_in = date.fromordinal(a)
            check_out = min(block.end, check_in + timedelta(days=rnd.randint(1, 5)))
            rt, hardblock_id, agency_id, rooms = block.room_type_id, block.id, block.agency_id, 1
        else:
            check_in = night(rnd.randint(-3, NIGHTS - 1))
            check_out = check_in + timedelta(days=rnd.randint(1, 7))
            rt, hardblock_id, agency_id = rnd.choice(room_type_ids), None, rnd.randint(1, 6)
        status = rnd.choices(
            (BookingStatus.HELD, BookingStatus.CONFIRMED, BookingStatus.CANCELLED), (30, 60, 10)
        )[0]
        expires_at = None
        if status is BookingStatus.HELD:  # a quarter of the holds have lapsed (no sweeper needed)
            expires_at = NOW + timedelta(minutes=rnd.choice((-5, 5, 10, 14)))
        bookings.append(BookingLine(
            id=booking_id, group_id=booking_id, agency_id=agency_id, room_type_id=rt, check_in=check_in,
            check_out=check_out, rooms=rooms, status=status, expires_at=expires_at, hardblock_id=hardblock_id,
        ))
    return Inputs(contracts, events, hardblocks, bookings, room_type_ids)


def checksum(rows: dict[int, CalendarRow]) -> str:
    digest = hashlib.sha256()
    for rt in sorted(rows):
        r = rows[rt]
        for series in (r.allotment, r.hardblocked, r.held, r.sold, r.available, r.overcommitted, r.closed,
                       r.release_date, r.rate):
            digest.update(repr(series).encode())
    return digest.hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20260501)
    args = parser.parse_args(argv)

    inputs = build(args.seed)
    counts = inputs.counts()

    def run() -> dict[int, CalendarRow]:
        return compute_calendar(inputs.contracts, inputs.events, inputs.hardblocks, inputs.bookings,
                                inputs.room_type_ids, START, END, NOW)

    def run_resolve() -> object:
        return resolve(inputs.contracts, inputs.events, inputs.room_type_ids, START, END)

    rows = run()
    assert len(rows) == ROOM_TYPES and all(len(r.dates) == NIGHTS for r in rows.values())
    totals = {name: sum(sum(getattr(r, name)) for r in rows.values())
              for name in ("allotment", "hardblocked", "held", "sold", "available", "overcommitted", "closed")}

    gc.collect()
    full = summarize(repeat_ms(run, args.runs, args.warmup))
    gc.collect()
    resolver = summarize(repeat_ms(run_resolve, args.runs, args.warmup))

    targets = [target("compute_calendar p50", full["p50_ms"], TARGET_MS, " ms")]
    print(f"domain pipeline: {counts['room_types']} room types x {NIGHTS} nights = {counts['cells']} cells; "
          f"{counts['contracts']} contracts, {counts['events']} events {counts['events_by_kind']}, "
          f"{counts['hardblocks']} hardblocks, {counts['bookings']} bookings (seed {args.seed}, "
          f"checksum {checksum(rows)})")
    print(table(["stage", "runs", "p50 ms", "p95 ms", "min ms", "max ms"], [
        ["compute_calendar (whole pipeline)", full["n"], full["p50_ms"], full["p95_ms"], full["min_ms"], full["max_ms"]],
        ["  of which resolve() (contracts+events)", resolver["n"], resolver["p50_ms"], resolver["p95_ms"],
         resolver["min_ms"], resolver["max_ms"]],
    ]))
    print()
    print(targets_table(targets))
    path = write_results("pipeline", {
        "parameters": {"seed": args.seed, "runs": args.runs, "warmup": args.warmup, "start": START, "end": END,
                       "now": NOW, **counts},
        "checksum": checksum(rows),
        "totals": totals,
        "compute_calendar": full,
        "resolve": resolver,
        "targets": targets,
        "pass": all(t["pass"] for t in targets),
    })
    print(f"\nwrote {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
