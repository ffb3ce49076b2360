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

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from bench.common import (
    PROJECT_ROOT,
    RESULTS_DIR,
    percentile,
    summarize,
    table,
    target,
    targets_table,
    write_results,
)

EMULATOR_HOST = "127.0.0.1:9099"
PROJECT_ID = "staysync-bench"
SEPARATORS = (",", ":")  # what Strawberry's encode_json uses for the response body

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


def server_url() -> tuple[str, str]:
    for name in ("BENCH_DATABASE_URL", "TEST_DATABASE_URL"):
        if os.environ.get(name):
            return os.environ[name], name
    from db.embedded import start_embedded

    return start_embedded(PROJECT_ROOT / ".data" / "bench", database="postgres"), "embedded (.data/bench)"


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


# --- the server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(url: str, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": url, "SEED_DEMO": "0", "APP_ENV": "development",
           "FIREBASE_AUTH_EMULATOR_HOST": EMULATOR_HOST, "FIREBASE_PROJECT_ID": PROJECT_ID,
           "BROADCAST_URL": "memory://", "WEB_CONCURRENCY": "1"}
    script = Path(sys.executable).with_name("staysync")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]
    command += ["serve", "--no-migrate", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = log_path.open("wb")
    return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(base: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}; see its log")
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready in time")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
    request_ms: dict[str, list[float]] = {case: [] for case in CASES}
    dumps_ms: dict[str, list[float]] = {case: [] for case in CASES}
    body_bytes: dict[str, int] = {}
    cell_counts: dict[str, int] = {}
    health_ms: list[float] = []
    last: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {token}"}) as client:
        for round_no in range(warmup + runs):
            order = list(CASES)
            rnd.shuffle(order)
            for case in order:
                body = {"query": QUERIES[CASES[case][2]], "variables": variables(hotel_ids, case)}
                t0 = time.perf_counter_ns()
                response = client.post("/graphql", json=body)
                content = response.content
                elapsed = (time.perf_counter_ns() - t0) / 1e6
                response.raise_for_status()
                payload = json.loads(content)
                t0 = time.perf_counter_ns()
                json.dumps(payload, separators=SEPARATORS)
                dumped = (time.perf_counter_ns() - t0) / 1e6
                if round_no < warmup:
                    cell_counts[case] = check_payload(case, payload)
                    body_bytes[case] = len(content)
                    last[case] = payload
                    continue
                request_ms[case].append(elapsed)
                dumps_ms[case].append(dumped)
            t0 = time.perf_counter_ns()
            client.get("/health").raise_for_status()
            if round_no >= warmup:
                health_ms.append((time.perf_counter_ns() - t0) / 1e6)
    check_parity(last["cells_6k"], last["series_6k"])
    check_parity(last["cells_50x365"], last["series_50x365"])
    return {
        "cases": {
            case: {
                "hotel": CASES[case][0], "room_types": HOTELS[CASES[case][0]], "nights": CASES[case][1],
                "shape": CASES[case][2], "cells": cell_counts[case], "response_bytes": body_bytes[case],
                "request": summarize(request_ms[case]), "json_dumps": summarize(dumps_ms[case]),
                "ratio_p50": round(percentile(request_ms[case], 50) / percentile(dumps_ms[case], 50), 2),
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
    from app.api.schema import build_schema
    from app.api.types import RoomType
    from app.auth import Principal, Role
    from app.context import Context
    from app.settings import Settings
    from db.calendar import load_inventory
    from db.engine import create_engine, session_factory, transaction

    settings = Settings(app_env="development", database_url=url, seed_demo=False,
                        firebase_project_id=PROJECT_ID, firebase_auth_emulator_host=EMULATOR_HOST)
    schema = build_schema(settings)
    engine = create_engine(url, pool_size=2)
    sessions = session_factory(engine)
    hotel_id = hotel_ids["H40"]
    start, end = START, START + timedelta(days=300)
    principal = Principal(uid="bench", role=Role.ADMIN, agency_code=None)

    def context() -> Context:
        ctx = Context(settings=settings, sessions=sessions, verifier=None, broadcast=None)  # type: ignore[arg-type]
        ctx.principal = principal
        return ctx

    async def load() -> Any:
        async with transaction(sessions) as session:
            await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
            return await load_inventory(session, hotel_id, start, end)

    async def execute(shape: str) -> Any:
        result = await schema.execute(QUERIES[shape], variable_values=variables(hotel_ids, f"{shape}_12k"),
                                      context_value=context())
        if result.errors:
            raise RuntimeError(result.errors)
        return result

    async def timed(fn: Any, n: int = runs) -> tuple[list[float], Any]:
        out, value = [], None
        for _ in range(2):
            value = await fn()
        for _ in range(n):
            t0 = time.perf_counter_ns()
            value = await fn()
            out.append((time.perf_counter_ns() - t0) / 1e6)
        return out, value

    try:
        load_ms, snapshot = await timed(load)
        now = datetime.now(timezone.utc)

        async def pipeline() -> Any:
            return snapshot.calendar(start, end, now)

        pipeline_ms, rows = await timed(pipeline)
        room_types = {rt.id: RoomType.from_row(rt) for rt in snapshot.room_types}

        async def build_cells() -> Any:
            return [CalendarRow(room_type=room_types[rt], _row=row).cells() for rt, row in rows.items()]

        async def build_series() -> Any:
            return [CalendarRow(room_type=room_types[rt], _row=row).series() for rt, row in rows.items()]

        cells_obj_ms, _ = await timed(build_cells)
        series_obj_ms, _ = await timed(build_series)
        exec_cells_ms, result = await timed(lambda: execute("cells"))
        exec_series_ms, result_series = await timed(lambda: execute("series"))
        data_cells = {"data": result.data}
        dumps_cells_ms = [_time(lambda: json.dumps(data_cells, separators=SEPARATORS)) for _ in range(runs)]

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
            split["profile"] = await _profile(lambda: execute("cells"))
        return split
    finally:
        await engine.dispose()


def _time(fn: Any) -> float:
    t0 = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t0) / 1e6


async def _profile(run: Any, n: int = 5) -> dict[str, Any]:
    try:
        from pyinstrument import Profiler
    except ImportError:
        return {"error": "pyinstrument is not installed (.venv/bin/pip install pyinstrument)"}
    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    for _ in range(n):
        await run()
    session = profiler.stop()
    text_path = RESULTS_DIR / "calendar_http.profile.txt"
    text_path.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    (RESULTS_DIR / "calendar_http.profile.html").write_text(profiler.output_html())

    by_package: dict[str, float] = {}
    by_function: dict[str, float] = {}

    def walk(frame: Any, parent: tuple[str, str]) -> None:
        # Self time shows up as synthetic "[self]" children without a file: their parent's.
        if frame.file_path:
            key = (_package(frame.file_path), f"{frame.function}  {frame.file_path_short}:{frame.line_no}")
        else:
            key = parent
        own = frame.time - sum(child.time for child in frame.children)
        by_package[key[0]] = by_package.get(key[0], 0.0) + own
        by_function[key[1]] = by_function.get(key[1], 0.0) + own
        for child in frame.children:
            walk(child, key)

    root = session.root_frame()
    if root is not None:
        walk(root, ("(unknown)", "(unknown)"))
    total = sum(by_package.values()) or 1.0
    return {
        "runs": n,
        "self_time_share_by_package": {k: round(v / total, 3) for k, v in
                                       sorted(by_package.items(), key=lambda kv: -kv[1])},
        "top_functions_by_self_time": {k: round(v / total, 3) for k, v in
                                       sorted(by_function.items(), key=lambda kv: -kv[1])[:25]},
        "text": str(text_path.relative_to(PROJECT_ROOT)),
        "html": str((RESULTS_DIR / "calendar_http.profile.html").relative_to(PROJECT_ROOT)),
    }


def _package(path: str) -> str:
    path = path.replace("\\", "/")
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0]
    for ours in ("app", "db", "domain", "bench"):
        if f"/{ours}/" in path and str(PROJECT_ROOT) in path:
            return f"(ours) {ours}"
    if path.startswith("<string>"):
        return "(generated: dataclass __init__ etc.)"
    if path.startswith("<"):
        return "(builtins)"
    return "(stdlib) " + Path(path).stem


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.calendar_http", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="timed requests per case (default 15)")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up requests per case (default 5)")
    parser.add_argument("--seed", type=int, default=20260501)
    parser.add_argument("--profile", action="store_true", help="pyinstrument profile of the 12k cells query")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the throwaway database")
    args = parser.parse_args(argv)

    from app.auth import make_emulator_token
    from db import migrate
    from db.scratch import create_scratch_database, drop_scratch_database

    rnd = random.Random(args.seed)
    server, source = server_url()
    url = asyncio.run(create_scratch_database(server, "staysync_bench"))
    name = make_url(url).database
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS_DIR / "calendar_http.server.log"
    print(f"PostgreSQL: {source}; throwaway database {name}", flush=True)

    process = None
    try:
        migrate.upgrade(url)
        t0 = time.perf_counter()
        seeded = asyncio.run(seed(url, rnd))
        print(f"seeded {seeded.counts} in {time.perf_counter() - t0:.1f} s", flush=True)

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        process = start_server(url, port, log_path)
        wait_ready(base, process)
        print(f"server: staysync serve --no-migrate on {base} (pid {process.pid}, 1 worker)", flush=True)
        token = make_emulator_token(role="admin", project_id=PROJECT_ID, lifetime_s=6 * 3600)
        try:
            http = measure_http(base, token, seeded.hotel_ids, args.runs, args.warmup, rnd)
        except httpx.TransportError:
            if process.poll() is not None:
                raise RuntimeError(f"the server (pid {process.pid}) exited with {process.returncode} during the "
                                   f"measurement; see {log_path.relative_to(PROJECT_ROOT)}") from None
            raise
        stop_server(process)
        process = None

        split = asyncio.run(split_in_process(url, seeded.hotel_ids, max(5, args.runs // 2), args.profile))
    finally:
        if process is not None:
            stop_server(process)
        if not args.keep_db:
            asyncio.run(drop_scratch_database(url))

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
        prof = split["profile"]
        if "error" in prof:
            print(f"\nprofile: {prof['error']}")
        else:
            print(f"\nprofile ({prof['runs']} runs of the 12k cells query), self time by package:")
            print(table(["package", "share"], [[k, f"{v:.1%}"] for k, v in
                                               list(prof["self_time_share_by_package"].items())[:12]]))
            print("top functions by self time:")
            print(table(["function", "share"], [[k, f"{v:.1%}"] for k, v in
                                                list(prof["top_functions_by_self_time"].items())[:15]]))
            print(f"full tree: {prof['text']} / {prof['html']}")
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
