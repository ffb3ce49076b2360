"""`Hotel.calendar` over real HTTP against a real PostgreSQL, with its comparator in the same run.

    .venv/bin/python -m bench.calendar_http [--runs 15] [--warmup 5] [--profile]

PostgreSQL: BENCH_DATABASE_URL, else TEST_DATABASE_URL, else an embedded server in .data/bench.
A throwaway database is created on it, migrated, seeded directly through the db models (hotels
of 20, 40 and 50 room types, contracts over 400 nights, events, hardblocks, bookings), served by
`staysync serve --no-migrate` in a subprocess (one worker, 127.0.0.1, a free port), and dropped
at the end. Requests carry an emulator admin token.

Measured with httpx (keep-alive; a request is timed until its body is fully read):
  cells  -- rows { cells { date allotment ... rate { amount currency } } }  (the contract shape)
  series -- rows { series { dates allotment ... rate currency } }           (the compact shape)
at 20x300 = 6,000, 40x300 = 12,000 and 50x365 = 18,250 cells. Cases are interleaved (shuffled
each round) so drift hits them alike. The comparator: `json.dumps` (with the server's
separators) of that very response's decoded JSON, timed in this process right after it.

Then, in this process, the same query is executed without HTTP to split the server time into
database, domain pipeline, our resolvers and GraphQL execution; `--profile` adds a pyinstrument
profile of it (`pip install pyinstrument`).

Targets (DESIGN.md): 6,000 cells <= 3x json.dumps; 12k/6k time <= 2.2; 50x365 cells p50 <= 300 ms.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass
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

# Nights the calendar is asked for start here: a month ahead, so no release cut-off has passed.
START = date.today() + timedelta(days=30)
CONTRACT_NIGHTS = 400

HOTELS = {"H20": 20, "H40": 40, "H50": 50}
CASES = {  # name -> (hotel, nights, shape)
    "cells_6k": ("H20", 300, "cells"),
    "cells_12k": ("H40", 300, "cells"),
    "series_6k": ("H20", 300, "series"),
    "series_12k": ("H40", 300, "series"),
    "cells_50x365": ("H50", 365, "cells"),
    "series_50x365": ("H50", 365, "series"),
}

CELL_FIELDS = "date allotment hardblocked held sold available overcommitted closed releaseDate rate { amount currency }"
SERIES_FIELDS = "dates allotment hardblocked held sold available overcommitted closed releaseDate rate currency"
QUERY = """
query Calendar($id: ID!, $from: Date!, $to: Date!) {
  node(id: $id) { ... on Hotel { calendar(from: $from, to: $to) {
    version
    rows { roomType { code } %s }
  } } }
}
"""
QUERIES = {"cells": QUERY % f"cells {{ {CELL_FIELDS} }}", "series": QUERY % f"series {{ {SERIES_FIELDS} }}"}


# --- the throwaway database ------------------------------------------------------------------------


@dataclass
class Seeded:
    hotel_ids: dict[str, int]
    counts: dict[str, int]


async def seed(url: str, rnd: random.Random) -> Seeded:
    """Hotels of 20/40/50 room types with contracts over 400 nights, events, blocks and bookings."""
    from db import models
    from db.engine import create_engine, session_factory, transaction

    engine = create_engine(url, pool_size=1)
    counts = {"room_types": 0, "contracts": 0, "events": 0, "hardblocks": 0, "bookings": 0}
    hotel_ids: dict[str, int] = {}
    now = datetime.now(timezone.utc)

    def night(offset: int) -> date:
        return START + timedelta(days=offset)

    try:
        async with transaction(session_factory(engine)) as s:
            agencies = [models.Agency(code=f"BENCH{i}", name=f"Bench Agency {i}") for i in range(4)]
            s.add_all(agencies)
            await s.flush()
            for code, n in HOTELS.items():
                hotel = models.Hotel(code=f"BENCH-{code}", name=f"Bench hotel, {n} room types")
                s.add(hotel)
                await s.flush()
                hotel_ids[code] = hotel.id
                room_types = [models.RoomType(hotel_id=hotel.id, code=f"RT{i:02d}", name=f"Room type {i}")
                              for i in range(n)]
                s.add_all(room_types)
                await s.flush()
                rows: list[Any] = []
                for i, rt in enumerate(room_types):
                    rate = Decimal(rnd.randint(80, 250))
                    rows.append(models.Contract(
                        external_id=f"BENCH-{code}-{rt.code}-BASE", hotel_id=hotel.id, room_type_id=rt.id,
                        start_date=night(-5), end_date=night(CONTRACT_NIGHTS - 5), allotment=rnd.randint(10, 40),
                        rate_amount=rate, currency="EUR", release_days=rnd.randint(0, 14), terms="bench base"))
                    if i % 3 == 0:  # a seasonal top-up with its own rate
                        a = rnd.randint(100, 200)
                        rows.append(models.Contract(
                            external_id=f"BENCH-{code}-{rt.code}-PEAK", hotel_id=hotel.id, room_type_id=rt.id,
                            start_date=night(a), end_date=night(a + 60), allotment=rnd.randint(2, 8),
                            rate_amount=rate * Decimal("1.4"), currency="EUR", release_days=7, terms="bench peak"))
                    for _ in range(20):
                        kind = rnd.choice(("INCREASE_ALLOTMENT", "REDUCE_ALLOTMENT", "BLOCK_CONTRACT", "RATE_CHANGE"))
                        a = rnd.randint(0, 364)
                        rows.append(models.AllotmentEvent(
                            hotel_id=hotel.id, room_type_id=rt.id, kind=kind, start_date=night(a),
                            end_date=night(a + rnd.randint(1, 14)),
                            quantity=rnd.randint(1, 4) if kind.endswith("_ALLOTMENT") else None,
                            rate_amount=Decimal(rnd.randint(70, 300)) if kind == "RATE_CHANGE" else None,
                            currency="EUR" if kind == "RATE_CHANGE" else None,
                            effective_at=now - timedelta(minutes=rnd.randint(1, 100_000)), created_by="bench"))
                        counts["events"] += 1
                counts["room_types"] += n
                counts["contracts"] += sum(isinstance(r, models.Contract) for r in rows)
                s.add_all(rows)
                await s.flush()

                blocks = []
                for i, rt in enumerate(room_types[::5]):
                    a = rnd.randint(0, 330)
                    blocks.append(models.Hardblock(
                        reference=f"HB-{code}-{i}", agency_id=agencies[i % 4].id, hotel_id=hotel.id,
                        room_type_id=rt.id, start_date=night(a), end_date=night(a + rnd.randint(5, 30)),
                        rooms=rnd.randint(2, 4), release_days=rnd.randint(0, 3)))
                s.add_all(blocks)
                await s.flush()
                counts["hardblocks"] += len(blocks)

                items: list[tuple[models.RoomType, models.Hardblock | None]] = [
                    (rt, None) for rt in room_types for _ in range(4)
                ] + [(next(r for r in room_types if r.id == b.room_type_id), b) for b in blocks]
                groups = []
                for j, (rt, block) in enumerate(items):
                    status = "CONFIRMED" if j % 3 else "HELD"
                    groups.append(models.BookingGroup(
                        reference=f"BG-{code}-{j}", agency_id=block.agency_id if block else agencies[j % 4].id,
                        status=status, expires_at=now + timedelta(hours=6) if status == "HELD" else None,
                        created_by="bench"))
                s.add_all(groups)
                await s.flush()
                bookings = []
                for (rt, block), group in zip(items, groups):
                    if block is not None:
                        check_in = block.start_date + timedelta(days=1)
                        check_out = min(block.end_date, check_in + timedelta(days=3))
                    else:
                        check_in = night(rnd.randint(0, 360))
                        check_out = check_in + timedelta(days=rnd.randint(1, 7))
                    bookings.append(models.Booking(
                        group_id=group.id, agency_id=group.agency_id, hotel_id=hotel.id, room_type_id=rt.id,
                        hardblock_id=block.id if block else None, check_in=check_in, check_out=check_out,
                        rooms=1 if block else rnd.randint(1, 3), status=group.status, expires_at=group.expires_at,
                        total_amount=Decimal("100.00"), currency="EUR"))
                s.add_all(bookings)
                counts["bookings"] += len(bookings)
                s.add(models.InventoryVersion(hotel_id=hotel.id, version=1))
    finally:
        await engine.dispose()
    return Seeded(hotel_ids, counts)


# --- measuring -----------------------------------------------------------------------------------


def variables(hotel_ids: dict[str, int], case: str) -> dict[str, str]:
    from app.api.ids import to_global_id

    hotel, nights, _ = CASES[case]
    return {"id": to_global_id("Hotel", hotel_ids[hotel]), "from": START.isoformat(),
            "to": (START + timedelta(days=nights)).isoformat()}


def check_payload(case: str, payload: dict[str, Any]) -> int:
    """The number of cells in a response; raises on GraphQL errors or a wrong shape."""
    if payload.get("errors"):
        raise RuntimeError(f"{case}: {payload['errors']}")
    hotel, nights, shape = CASES[case]
    rows = payload["data"]["node"]["calendar"]["rows"]
    assert len(rows) == HOTELS[hotel], (case, len(rows))
    if shape == "cells":
        assert all(len(r["cells"]) == nights for r in rows)
    else:
        assert all(len(r["series"]["dates"]) == nights for r in rows)
    return len(rows) * nights


def check_parity(cells: dict[str, Any], series: dict[str, Any]) -> None:
    """The two shapes carry the same numbers."""
    for a, b in zip(cells["data"]["node"]["calendar"]["rows"], series["data"]["node"]["calendar"]["rows"]):
        s = b["series"]
        for name in ("allotment", "hardblocked", "held", "sold", "available", "overcommitted", "closed", "releaseDate"):
            assert [c[name] for c in a["cells"]] == s[name], name
        assert [c["date"] for c in a["cells"]] == s["dates"]
        assert [c["rate"] and c["rate"]["amount"] for c in a["cells"]] == s["rate"]


def measure_http(base: str, token: str, hotel_ids: dict[str, int], runs: int, warmup: int,
                 rnd: random.Random) -> dict[str, Any]:
    body_bytes: dict[str, int] = {}
    cell_counts: dict[str, int] = {}
    health_ms: list[float] = []
    last: dict[str, dict[str, Any]] = {}

    def body(case: str) -> dict[str, Any]:
        return {"query": QUERIES[CASES[case][2]], "variables": variables(hotel_ids, case)}

    def check(case: str, content: bytes, payload: dict[str, Any]) -> None:
        cell_counts[case] = check_payload(case, payload)
        body_bytes[case] = len(content)
        last[case] = payload

    with httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {token}"}) as client:

        def health(timed: bool) -> None:
            t0 = time.perf_counter_ns()
            client.get("/health").raise_for_status()
            if timed:
                health_ms.append((time.perf_counter_ns() - t0) / 1e6)

        request_ms, dumps_ms = time_graphql_cases(client, list(CASES), body, runs, warmup, rnd, check, health)
    check_parity(last["cells_6k"], last["series_6k"])
    check_parity(last["cells_50x365"], last["series_50x365"])
    return {
        "cases": {
            case: {
                "hotel": CASES[case][0], "room_types": HOTELS[CASES[case][0]], "nights": CASES[case][1],
                "shape": CASES[case][2], "cells": cell_counts[case], "response_bytes": body_bytes[case],
                **against_json_dumps(request_ms[case], dumps_ms[case]),
            }
            for case in CASES
        },
        "health_request": summarize(health_ms),
    }


# --- in-process split of the server time ---------------------------------------------------------


async def split_in_process(url: str, hotel_ids: dict[str, int], runs: int, profile: bool) -> dict[str, Any]:
    """The 12k-cell query without HTTP: database, pipeline, our resolvers, GraphQL execution."""
    from sqlalchemy import text

    from app.api.inventory import CalendarRow
    from app.api.catalog import RoomType
    from db.calendar import load_inventory
    from db.engine import transaction

    app = InProcessApp(url)
    hotel_id = hotel_ids["H40"]
    start, end = START, START + timedelta(days=300)

    async def load() -> Any:
        async with transaction(app.sessions) as session:
            await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
            return await load_inventory(session, hotel_id, start, end)

    async def execute(shape: str) -> Any:
        return await app.execute(QUERIES[shape], variables(hotel_ids, f"{shape}_12k"))

    try:
        load_ms, snapshot = await time_async(load, runs)
        now = datetime.now(timezone.utc)

        async def pipeline() -> Any:
            return snapshot.calendar(start, end, now)

        pipeline_ms, rows = await time_async(pipeline, runs)
        room_types = {rt.id: RoomType.from_row(rt) for rt in snapshot.room_types}

        async def build_cells() -> Any:
            return [CalendarRow(room_type=room_types[rt], _row=row, _staff=True).cells() for rt, row in rows.items()]

        async def build_series() -> Any:
            return [CalendarRow(room_type=room_types[rt], _row=row, _staff=True).series() for rt, row in rows.items()]

        cells_obj_ms, _ = await time_async(build_cells, runs)
        series_obj_ms, _ = await time_async(build_series, runs)
        exec_cells_ms, result = await time_async(lambda: execute("cells"), runs)
        exec_series_ms, result_series = await time_async(lambda: execute("series"), runs)
        data_cells = {"data": result.data}
        dumps_cells_ms = repeat_ms(lambda: json.dumps(data_cells, separators=SEPARATORS), runs, warmup=0)

        p = {name: percentile(v, 50) for name, v in (
            ("load", load_ms), ("pipeline", pipeline_ms), ("cells_objects", cells_obj_ms),
            ("series_objects", series_obj_ms), ("execute_cells", exec_cells_ms),
            ("execute_series", exec_series_ms), ("json_dumps_cells", dumps_cells_ms))}
        split = {
            "case": "H40 x 300 nights (12,000 cells), no HTTP, no auth",
            "load_inventory": summarize(load_ms),
            "compute_calendar": summarize(pipeline_ms),
            "CalendarRow.cells objects": summarize(cells_obj_ms),
            "CalendarRow.series objects": summarize(series_obj_ms),
            "schema.execute cells": summarize(exec_cells_ms),
            "schema.execute series": summarize(exec_series_ms),
            "json.dumps cells payload": summarize(dumps_cells_ms),
            "graphql_execution_cells_p50_ms": round(
                p["execute_cells"] - p["load"] - p["pipeline"] - p["cells_objects"], 2),
            "graphql_execution_series_p50_ms": round(
                p["execute_series"] - p["load"] - p["pipeline"] - p["series_objects"], 2),
        }
        if profile:
            split["profile"] = await profile_self_time(lambda: execute("cells"), "calendar_http", html=True)
        return split
    finally:
        await app.dispose()


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = http_bench_arguments(argv, "bench.calendar_http", __doc__, runs=15, profiled="the 12k cells query")

    rnd = random.Random(args.seed)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS_DIR / "calendar_http.server.log"
    with scratch_database(keep=args.keep_db) as (url, source):
        seeded = run_seed(seed(url, rnd))

        with running_server(url, log_path) as (base, process):
            print(f"server: staysync serve --no-migrate on {base} (pid {process.pid}, 1 worker)", flush=True)
            http = measure_http(base, admin_token(), seeded.hotel_ids, args.runs, args.warmup, rnd)

        split = asyncio.run(split_in_process(url, seeded.hotel_ids, max(5, args.runs // 2), args.profile))

    cases = http["cases"]

    def p50(case: str, what: str = "request") -> float:
        return cases[case][what]["p50_ms"]

    targets = [
        target("cells 6k: request / json.dumps (p50)", cases["cells_6k"]["ratio_p50"], 3.0, "x"),
        target("cells 12k/6k time ratio (p50)", p50("cells_12k") / p50("cells_6k"), 2.2, "x"),
        target("cells 50x365 p50", p50("cells_50x365"), 300.0, " ms"),
    ]
    compact = [  # the same targets for the compact shape (not in the GraphQL contract's CalendarRow)
        target("series 6k: request / json.dumps (p50)", cases["series_6k"]["ratio_p50"], 3.0, "x"),
        target("series 12k/6k time ratio (p50)", p50("series_12k") / p50("series_6k"), 2.2, "x"),
        target("series 50x365 p50", p50("series_50x365"), 300.0, " ms"),
    ]

    print()
    print(table(
        ["case", "cells", "KiB", "req p50", "req p95", "req min", "dumps p50", "req/dumps"],
        [[case, c["cells"], round(c["response_bytes"] / 1024), c["request"]["p50_ms"], c["request"]["p95_ms"],
          c["request"]["min_ms"], c["json_dumps"]["p50_ms"], c["ratio_p50"]] for case, c in cases.items()]
        + [["GET /health", "-", "-", http["health_request"]["p50_ms"], http["health_request"]["p95_ms"],
            http["health_request"]["min_ms"], "-", "-"]],
    ))
    print("(ms; request = POST until the body is read; dumps = json.dumps of that response's JSON in-process)")
    print()
    print("server time split in-process, 12,000 cells (p50 ms):")
    print(table(["stage", "p50 ms", "p95 ms"], [
        [k, v["p50_ms"], v["p95_ms"]] for k, v in split.items() if isinstance(v, dict) and "p50_ms" in v
    ] + [["=> GraphQL execution (cells) = execute - load - pipeline - objects", split["graphql_execution_cells_p50_ms"], ""],
         ["=> GraphQL execution (series)", split["graphql_execution_series_p50_ms"], ""]]))
    if "profile" in split:
        print_profile(split["profile"], "the 12k cells query")
    print()
    print("targets (the contract shape, rows { cells { ... } }):")
    print(targets_table(targets))
    print("\nthe same targets for the compact shape (rows { series { ... } }), for comparison:")
    print(targets_table(compact))
    path = write_results("calendar_http", {
        "parameters": {"runs": args.runs, "warmup": args.warmup, "seed": args.seed, "postgres": source,
                       "start": START, "hotels": HOTELS, "cases": CASES, "seeded": seeded.counts,
                       "server": "staysync serve --no-migrate, 1 worker, subprocess; client httpx keep-alive",
                       "queries": QUERIES},
        **http,
        "in_process_split": split,
        "targets": targets,
        "compact_shape_targets": compact,
        "pass": all(t["pass"] for t in targets),
    })
    print(f"\nwrote {path.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
