"""`Hardblock.grid` over real HTTP against a real PostgreSQL, with its comparator in the same run.

    .venv/bin/python -m bench.hardblock_grid [--runs 20] [--warmup 5] [--profile] [--keep-db]

PostgreSQL: BENCH_DATABASE_URL, else TEST_DATABASE_URL, else an embedded server in .data/bench.
A throwaway database is created on it, migrated, seeded directly through the db models (one
hotel of 20 room types with contracts over 400 nights and rate changes; one block of 365 nights
and 200 blocks of 30 nights, with amendments that grow, shrink and extend them, bookings from
them, released nights and a few blocks released whole), served by `python -m app.cli serve
--no-migrate` in a subprocess (one worker, 127.0.0.1, a free port), and dropped at the end.

Cases (each slot: date size booked available released releaseAt rate { amount currency }
bookings { id rooms }):
  1x365  -- node(id) { ... on Hardblock { grid } }       one block, its 365 nights
  200x30 -- hardblocks(first: 200) { edges { node { grid } } }   200 blocks of 30 nights
  200x30 series -- the same blocks as `gridSeries` (parallel arrays, no bookings)
and, for scaling, 1x30 (the same block, grid(from, to) over 30 nights) and 20x30 (first: 20).
Cases are interleaved (shuffled each round). The comparator: `json.dumps` (with the server's
separators) of that very response's decoded JSON, timed in this process right after it.

In this process, without HTTP: the SQL statements each case runs (counted on the engine; the
target is a constant whatever the size), and the split of the 200x30 time into the loader's
database read, the slot computation and GraphQL execution; `--profile` adds a pyinstrument
profile of it.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx

from bench.common import (
    PROJECT_ROOT,
    RESULTS_DIR,
    SEPARATORS,
    InProcessApp,
    admin_token,
    against_json_dumps,
    http_bench_arguments,
    percentile,
    print_profile,
    profile_self_time,
    repeat_ms,
    run_seed,
    running_server,
    scratch_database,
    summarize,
    table,
    target,
    targets_table,
    time_async,
    time_graphql_cases,
    write_results,
)

START = date.today() + timedelta(days=30)  # a month ahead: no release cut-off has passed
CONTRACT_NIGHTS = 400
ROOM_TYPES = 20
MANY_BLOCKS = 200

SLOT_FIELDS = "date size booked available released releaseAt rate { amount currency } bookings { id rooms }"
NODE_QUERY = """query Grid($id: ID!, $from: Date, $to: Date) { node(id: $id) { ... on Hardblock {
  grid(from: $from, to: $to) { %s } } } }""" % SLOT_FIELDS
LIST_QUERY = """query Grids($first: Int!) { hardblocks(first: $first) { edges { node {
  grid { %s } } } } }""" % SLOT_FIELDS
SERIES_QUERY = """query Series($first: Int!) { hardblocks(first: $first) { edges { node {
  gridSeries { dates size booked available released releaseAt rate currency } } } } }"""
CASES = {  # name -> (blocks, nights per block, query)
    "1x365": (1, 365, NODE_QUERY),
    "200x30": (200, 30, LIST_QUERY),
    "200x30 series": (200, 30, SERIES_QUERY),
    "1x30": (1, 30, NODE_QUERY),
    "20x30": (20, 30, LIST_QUERY),
}
MAIN_CASES = ("1x365", "200x30", "200x30 series")


# --- the throwaway database ------------------------------------------------------------------------


@dataclass
class Seeded:
    big_block_id: int
    counts: dict[str, int] = field(default_factory=dict)


async def seed(url: str, rnd: random.Random) -> Seeded:
    """One hotel; one block of 365 nights, then 200 of 30 (newer, so `hardblocks(first: 200)`
    lists exactly them). Bookings never exceed a block's size on any night."""
    from db import models
    from db.engine import create_engine, session_factory, transaction

    engine = create_engine(url, pool_size=1)
    now = datetime.now(timezone.utc)
    counts = {"room_types": ROOM_TYPES, "contracts": 0, "rate_changes": 0, "hardblocks": 0, "released_blocks": 0,
              "amendments": 0, "amendment_events": 0, "bookings_from_blocks": 0, "released_nights": 0}

    def night(offset: int) -> date:
        return START + timedelta(days=offset)

    try:
        async with transaction(session_factory(engine)) as s:
            agencies = [models.Agency(code=f"BENCH{i}", name=f"Bench Agency {i}") for i in range(4)]
            hotel = models.Hotel(code="BENCH-GRID", name="Bench hotel for block grids")
            s.add_all([*agencies, hotel])
            await s.flush()
            room_types = [models.RoomType(hotel_id=hotel.id, code=f"RT{i:02d}", name=f"Room type {i}")
                          for i in range(ROOM_TYPES)]
            s.add_all(room_types)
            await s.flush()
            rows: list[Any] = []
            for i, rt in enumerate(room_types):
                rate = Decimal(rnd.randint(80, 250))
                rows.append(models.Contract(
                    external_id=f"BENCH-{rt.code}-BASE", hotel_id=hotel.id, room_type_id=rt.id,
                    start_date=night(-5), end_date=night(CONTRACT_NIGHTS - 5), allotment=400, rate_amount=rate,
                    currency="EUR", release_days=3, terms="bench base"))
                if i % 3 == 0:
                    a = rnd.randint(100, 200)
                    rows.append(models.Contract(
                        external_id=f"BENCH-{rt.code}-PEAK", hotel_id=hotel.id, room_type_id=rt.id,
                        start_date=night(a), end_date=night(a + 60), allotment=20, rate_amount=rate * Decimal("1.4"),
                        currency="EUR", release_days=7, terms="bench peak"))
                for _ in range(15):
                    a = rnd.randint(0, 364)
                    rows.append(models.AllotmentEvent(
                        hotel_id=hotel.id, room_type_id=rt.id, kind="RATE_CHANGE", start_date=night(a),
                        end_date=night(a + rnd.randint(1, 14)), rate_amount=Decimal(rnd.randint(70, 300)),
                        currency="EUR", effective_at=now - timedelta(days=30, minutes=rnd.randint(1, 10_000)),
                        created_by="bench"))
                    counts["rate_changes"] += 1
            counts["contracts"] = sum(isinstance(r, models.Contract) for r in rows)
            s.add_all(rows)
            await s.flush()

            async def block(rt: Any, agency: Any, offset: int, base_nights: int, extend: int, rooms: int,
                            amendments: int, bookings: int, released_nights: int, released: bool) -> Any:
                span = base_nights + extend
                row = models.Hardblock(
                    reference=f"HB-BENCH-{counts['hardblocks']:04d}", agency_id=agency.id, hotel_id=hotel.id,
                    room_type_id=rt.id, start_date=night(offset), end_date=night(offset + span),
                    base_start_date=night(offset), base_end_date=night(offset + base_nights), rooms=rooms,
                    release_days=rnd.randint(0, 3), created_at=now - timedelta(days=20))
                s.add(row)
                await s.flush()
                counts["hardblocks"] += 1
                sizes = [rooms] * base_nights + [0] * extend
                changes: list[list[tuple[int, int, int]]] = []
                for _ in range(amendments):  # grow or shrink a stretch, sometimes two
                    change = []
                    for _ in range(rnd.randint(1, 2)):
                        a = rnd.randint(0, base_nights - 2)
                        b = min(base_nights, a + rnd.randint(1, max(2, base_nights // 4)))
                        change.append((a, b, max(1, rooms + rnd.choice((-2, -1, 1, 2, 3)))))
                    changes.append(change)
                if extend:
                    changes.append([(base_nights, span, rooms)])
                for k, change in enumerate(changes):
                    at = now - timedelta(days=10 - k * 0.1)
                    amendment = models.HardblockAmendment(hardblock_id=row.id, reason=f"bench amendment {k}",
                                                          author_uid="bench", created_at=at)
                    s.add(amendment)
                    await s.flush()
                    for a, b, size in change:
                        s.add(models.AllotmentEvent(
                            hotel_id=hotel.id, room_type_id=rt.id, kind="BLOCK_AMENDMENT", start_date=night(offset + a),
                            end_date=night(offset + b), quantity=size, hardblock_id=row.id,
                            amendment_id=amendment.id, effective_at=at, created_at=at, created_by="bench"))
                        sizes[a:b] = [size] * (b - a)
                        counts["amendment_events"] += 1
                    counts["amendments"] += 1
                booked = [0] * span
                for j in range(bookings * 3):  # tries; a booking must fit the block on every night
                    if bookings == 0:
                        break
                    a = rnd.randint(0, span - 1)
                    b = min(span, a + rnd.randint(1, 5))
                    n = rnd.randint(1, 2)
                    if any(booked[x] + n > sizes[x] for x in range(a, b)):
                        continue
                    for x in range(a, b):
                        booked[x] += n
                    status = "CONFIRMED" if j % 3 else "HELD"
                    expires = now + timedelta(hours=6) if status == "HELD" else None
                    group = models.BookingGroup(
                        reference=f"BG-BENCH-{row.id}-{j}", agency_id=agency.id, status=status,
                        guest_name="Bench Guest", expires_at=expires, created_by="bench",
                        confirmed_at=now if status == "CONFIRMED" else None)
                    s.add(group)
                    await s.flush()
                    s.add(models.Booking(
                        group_id=group.id, agency_id=agency.id, hotel_id=hotel.id, room_type_id=rt.id,
                        hardblock_id=row.id, check_in=night(offset + a), check_out=night(offset + b), rooms=n,
                        status=status, expires_at=expires, total_amount=Decimal("120.00") * n * (b - a),
                        currency="EUR"))
                    counts["bookings_from_blocks"] += 1
                    bookings -= 1
                for x in sorted(rnd.sample(range(span), released_nights)):
                    s.add(models.HardblockNightRelease(hardblock_id=row.id, night=night(offset + x), cause="MANUAL",
                                                       released_at=now - timedelta(days=1)))
                    counts["released_nights"] += 1
                if released:
                    row.status, row.released_at = "RELEASED", now - timedelta(hours=2)
                    counts["released_blocks"] += 1
                return row

            big = await block(room_types[0], agencies[0], 0, 360, 5, 12, amendments=8, bookings=60,
                              released_nights=12, released=False)
            for i in range(MANY_BLOCKS):
                await block(room_types[i % ROOM_TYPES], agencies[i % 4], rnd.randint(0, 330), 28 if i % 3 == 0 else 30,
                            2 if i % 3 == 0 else 0, rnd.randint(3, 6), amendments=rnd.randint(0, 2), bookings=3,
                            released_nights=rnd.randint(2, 3) if i % 4 == 0 else 0, released=i % 20 == 7)
            s.add(models.InventoryVersion(hotel_id=hotel.id, version=1))
            await s.flush()
            return Seeded(big.id, counts)
    finally:
        await engine.dispose()


# --- measuring -----------------------------------------------------------------------------------


def variables(case: str, big_block_id: int) -> dict[str, Any]:
    from app.api.ids import to_global_id

    blocks, nights, query = CASES[case]
    if query is not NODE_QUERY:
        return {"first": blocks}
    out: dict[str, Any] = {"id": to_global_id("Hardblock", big_block_id)}
    if nights != 365:
        out |= {"from": START.isoformat(), "to": (START + timedelta(days=nights)).isoformat()}
    return out


def grids(payload: dict[str, Any]) -> list[list[dict[str, Any]]]:
    data = payload["data"]
    if "node" in data:
        return [data["node"]["grid"]]
    nodes = [edge["node"] for edge in data["hardblocks"]["edges"]]
    if nodes and "gridSeries" in nodes[0]:  # parallel arrays -> slots (the series shape has no bookings)
        return [[{"booked": b, "size": s, "available": a, "released": r}
                 for b, s, a, r in zip(n["gridSeries"]["booked"], n["gridSeries"]["size"],
                                       n["gridSeries"]["available"], n["gridSeries"]["released"])]
                for n in nodes]
    return [node["grid"] for node in nodes]


def check_payload(case: str, payload: dict[str, Any]) -> dict[str, int]:
    """Slot and booking counts of a response; raises on GraphQL errors, a wrong shape or slots
    whose numbers do not add up."""
    if payload.get("errors"):
        raise RuntimeError(f"{case}: {payload['errors']}")
    blocks, nights, _ = CASES[case]
    found = grids(payload)
    assert len(found) == blocks and all(len(g) == nights for g in found), (case, len(found))
    for grid in found:
        for slot in grid:
            assert 0 <= slot["booked"] <= slot["size"], slot
            assert slot["booked"] + slot["available"] + slot["released"] == slot["size"], slot
            if "bookings" in slot:
                assert sum(b["rooms"] for b in slot["bookings"]) == slot["booked"], slot
    slots = [slot for grid in found for slot in grid]
    return {"slots": len(slots), "slot_bookings": sum(len(s.get("bookings", ())) for s in slots),
            "released_slots": sum(1 for s in slots if s["released"]),
            "booked_slots": sum(1 for s in slots if s["booked"])}


def measure_http(base: str, token: str, big_block_id: int, runs: int, warmup: int,
                 rnd: random.Random) -> dict[str, Any]:
    body_bytes: dict[str, int] = {}
    shapes: dict[str, dict[str, int]] = {}

    def body(case: str) -> dict[str, Any]:
        return {"query": CASES[case][2], "variables": variables(case, big_block_id)}

    def check(case: str, content: bytes, payload: dict[str, Any]) -> None:
        shapes[case] = check_payload(case, payload)
        body_bytes[case] = len(content)

    with httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {token}"}) as client:
        request_ms, dumps_ms = time_graphql_cases(client, list(CASES), body, runs, warmup, rnd, check)
    return {
        case: {
            "blocks": CASES[case][0], "nights": CASES[case][1], **shapes[case], "response_bytes": body_bytes[case],
            **against_json_dumps(request_ms[case], dumps_ms[case]),
        }
        for case in CASES
    }


# --- in process: statements per request and where the time goes ----------------------------------


async def in_process(url: str, big_block_id: int, runs: int, profile: bool) -> dict[str, Any]:
    from sqlalchemy import event as sa_event
    from sqlalchemy import select

    from app.services.reads import block_grid
    from app.api.loaders import Loaders
    from db import models

    app = InProcessApp(url)
    engine, sessions = app.engine, app.sessions

    async def execute(case: str) -> Any:
        return await app.execute(CASES[case][2], variables(case, big_block_id))

    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    try:
        counts: dict[str, int] = {}
        for case in CASES:
            await execute(case)
            statements.clear()
            sa_event.listen(engine.sync_engine, "before_cursor_execute", count)
            try:
                await execute(case)
            finally:
                sa_event.remove(engine.sync_engine, "before_cursor_execute", count)
            counts[case] = len(statements)
        sample_statements = [" ".join(s.split())[:140] for s in statements]

        # The 200x30 query split: the loader's read, the slots, and the rest (GraphQL execution).
        async with sessions() as session:
            rows = list((await session.execute(
                select(models.Hardblock).order_by(models.Hardblock.id.desc()).limit(MANY_BLOCKS))).scalars())
        keys = [(b.hotel_id, b.id, b.start_date, b.end_date) for b in rows]

        async def load() -> Any:
            return await Loaders(sessions).block_grid.load_many(keys)

        load_ms, loaded = await time_async(load, runs)
        now = models.utcnow()

        async def compute() -> Any:
            return [block_grid(data, b.id, b.start_date, b.end_date, now, data.bookings)
                    for b, data in zip(rows, loaded)]

        compute_ms, _ = await time_async(compute, runs)
        execute_ms, result = await time_async(lambda: execute("200x30"), runs)
        payload = {"data": result.data}
        dumps_ms = repeat_ms(lambda: json.dumps(payload, separators=SEPARATORS), runs, warmup=0)
        p = {name: percentile(v, 50) for name, v in (("load", load_ms), ("compute", compute_ms),
                                                      ("execute", execute_ms))}
        split = {
            "case": "200x30 (6,000 slots), no HTTP, no auth",
            "loader read (block_grid, 5 statements)": summarize(load_ms),
            "block_grid() for 200 blocks": summarize(compute_ms),
            "schema.execute": summarize(execute_ms),
            "json.dumps of the result": summarize(dumps_ms),
            "graphql_execution_p50_ms": round(p["execute"] - p["load"] - p["compute"], 2),
        }
        out: dict[str, Any] = {"statements": counts, "statements_of_last_case": sample_statements, "split": split}
        if profile:
            out["profile"] = await profile_self_time(lambda: execute("200x30"), "hardblock_grid")
        return out
    finally:
        await app.dispose()


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = http_bench_arguments(argv, "bench.hardblock_grid", __doc__, runs=20, profiled="the 200x30 query")

    rnd = random.Random(args.seed)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS_DIR / "hardblock_grid.server.log"
    with scratch_database(keep=args.keep_db) as (url, source):
        seeded = run_seed(seed(url, rnd))

        with running_server(url, log_path) as (base, process):
            print(f"server: python -m app.cli serve --no-migrate on {base} (pid {process.pid}, 1 worker)", flush=True)
            cases = measure_http(base, admin_token(), seeded.big_block_id, args.runs, args.warmup, rnd)
        local = asyncio.run(in_process(url, seeded.big_block_id, max(5, args.runs // 2), args.profile))

    statements = local["statements"]
    targets = [
        target("SQL statements: 200x30 - 1x365", abs(statements["200x30"] - statements["1x365"]), 0, ""),
        target("SQL statements: 1x365 - 1x30 (nights)", abs(statements["1x365"] - statements["1x30"]), 0, ""),
        target("SQL statements: 200x30 - 20x30 (blocks)", abs(statements["200x30"] - statements["20x30"]), 0, ""),
    ]
    print()
    print(table(
        ["case", "slots", "bookings", "KiB", "SQL", "req p50", "req p95", "req min", "dumps p50", "req/dumps"],
        [[case, c["slots"], c["slot_bookings"], round(c["response_bytes"] / 1024), statements[case],
          c["request"]["p50_ms"], c["request"]["p95_ms"], c["request"]["min_ms"], c["json_dumps"]["p50_ms"],
          c["ratio_p50"]] for case, c in cases.items()],
    ))
    print("(ms; request = POST until the body is read; dumps = json.dumps of that response's JSON in-process; "
          "SQL = statements per request, counted in-process; bookings = booking entries over all slots)")
    p50 = {case: c["request"]["p50_ms"] for case, c in cases.items()}
    print(f"scaling: 200x30 / 20x30 p50 = {p50['200x30'] / p50['20x30']:.2f}; "
          f"1x365 / 1x30 p50 = {p50['1x365'] / p50['1x30']:.2f}")
    split = local["split"]
    print("\n200x30 split in-process (ms):")
    print(table(["stage", "p50", "p95"], [[k, v["p50_ms"], v["p95_ms"]] for k, v in split.items()
                                          if isinstance(v, dict)]
                + [["=> GraphQL execution = execute - read - slots", split["graphql_execution_p50_ms"], ""]]))
    if "profile" in local:
        print_profile(local["profile"], "the 200x30 query")
    print()
    print(targets_table(targets))
    path = write_results("hardblock_grid", {
        "parameters": {"runs": args.runs, "warmup": args.warmup, "seed": args.seed, "postgres": source,
                       "start": START, "seeded": seeded.counts,
                       "server": "python -m app.cli serve --no-migrate, 1 worker, subprocess; client httpx keep-alive",
                       "cases": {k: {"blocks": v[0], "nights": v[1], "query": v[2]} for k, v in CASES.items()}},
        "cases": cases,
        "statements_per_request": statements,
        "statements_of_20x30": local["statements_of_last_case"],
        "in_process_split": split,
        **({"profile": local["profile"]} if "profile" in local else {}),
        "targets": targets,
        "pass": all(t["pass"] for t in targets),
    })
    print(f"\nwrote {path.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
