"""The reports over HTTP on 1,000,000 bookings (issue 16, "Fast").

    APP_ENV=development BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python -m bench.reports [--runs 5] [--csv-runs 3] [--keep] [--reseed]

PostgreSQL: BENCH_DATABASE_URL, else TEST_DATABASE_URL, else the embedded server in .data/bench.
The database is `staysync_bench_reports` on that server (its own name: no other is touched). It
is created, migrated and seeded when missing or empty; with `--keep` it stays after the run, and
the next run finds the seed there and skips it (a marker row records the seed's version; a
different version, or `--reseed`, drops and seeds it again). Without `--keep` it is dropped.

The seed is bulk SQL (INSERT ... SELECT over generate_series, in one transaction): 20 agencies,
2 hotels x 50 room types, a contract per room type and year over 2 years (2027-2028), 5
hardblocks per room type with 2 bookings each drawn from them, and 1,000,000 bookings in all
(one booking per group): 85 % CONFIRMED with a sale order, 10 % CANCELLED (half of them with a
cancelled sale order), 5 % HELD; 1-7 nights, 1-3 rooms; `booking.nights` priced per night as
app/services/rateplans.py `nights_json` stores it (net, sell = net + 25 % markup, weekend
uplift) for 97 % of them, and 3 % legacy rows with '[]', no net and the total spread evenly.

Timed over HTTP (httpx, keep-alive, the body fully read) against `python -m app.cli serve
--no-migrate` (uvicorn, one worker, loopback) in a subprocess, with an emulator admin token;
`--runs` timed requests after one warm-up per case, cases interleaved, p50 kept:
  - revenueReport for 2027 grouped by AGENCY (target <= 1 s), HOTEL, ROOM_TYPE and MONTH;
  - utilisationReport of hotel 1 (50 room types) x 365 nights by DAY, against Hotel.calendar of
    the same hotel and nights (rows { series }) in the same rounds (target <= 1.5 x calendar);
  - pickupReport for 2027 (all hotels);
  - GET /reports/bookings.csv over [2027-01-01, 2029-01-01) (every booking, ~1,000,000 lines)
    and over ~100,000 lines (the first 73 nights), streamed and counted: total time (target
    <= 10 s) and the server process's peak RSS. The CSV runs use a fresh server: VmHWM
    (/proc/<pid>/status) is read after the small runs and again after the big ones, and VmRSS is
    sampled every 50 ms during each run. Flat memory: peak over the 1M runs <= peak over the
    100k runs + 64 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from bench.common import (
    PROJECT_ROOT,
    RESULTS_DIR,
    admin_token,
    running_server,
    server_url,
    summarize,
    table,
    target,
    targets_table,
    write_results,
)

DATABASE = "staysync_bench_reports"
SEED_VERSION = "reports-v1"
START, END = date(2027, 1, 1), date(2029, 1, 1)  # the seeded 2 years
YEAR = (date(2027, 1, 1), date(2028, 1, 1))
SMALL_CSV = (date(2027, 3, 1), date(2027, 5, 13))  # 73 nights: ~100,000 lines
BOOKINGS = 1_000_000
AGENCIES, HOTELS, ROOM_TYPES, BLOCKS_PER_ROOM_TYPE, BLOCK_BOOKINGS = 20, 2, 50, 5, 2
FLAT_MEMORY_SLACK_MIB = 64
# The calendar's load_inventory reads ~225,000 whole Booking rows (with `nights`) for a hotel-year
# here, past the default 15 s statement timeout on a busy machine: raised so it can be measured.
SERVER_ENV = {"DB_STATEMENT_TIMEOUT_MS": "600000"}

SEED_SQL = """
SET LOCAL synchronous_commit = off;
SELECT setseed(0.16);
INSERT INTO agency (code, name, tier)
SELECT 'AG' || lpad(a::text, 2, '0'), 'Agency ' || a, CASE WHEN a % 4 = 0 THEN 'GOLD' END
FROM generate_series(1, {agencies}) AS a;
INSERT INTO hotel (code, name, time_zone)
SELECT 'RPH' || h, 'Report Hotel ' || h, 'Europe/Madrid' FROM generate_series(1, {hotels}) AS h;
INSERT INTO inventory_version (hotel_id, version) SELECT id, 1 FROM hotel;
INSERT INTO room_type (hotel_id, code, name)
SELECT h.id, 'RT' || lpad(r::text, 2, '0'), 'Room type ' || r
FROM hotel AS h CROSS JOIN generate_series(1, {room_types}) AS r;
-- one contract per room type and year
INSERT INTO contract (external_id, hotel_id, room_type_id, start_date, end_date, allotment, rate_amount, currency,
                      release_days, status, terms)
SELECT 'REP-' || rt.id || '-' || y, rt.hotel_id, rt.id, make_date(y, 1, 1), make_date(y + 1, 1, 1),
       80 + (random() * 60)::int, 60 + (random() * 140)::int + (y - 2027) * 5, 'EUR', (random() * 14)::int, 'ACTIVE',
       'bench reports'
FROM room_type AS rt CROSS JOIN generate_series(2027, 2028) AS y;
-- hardblocks: 5 per room type, 7-30 nights, 2-5 rooms
INSERT INTO hardblock (reference, agency_id, hotel_id, room_type_id, start_date, end_date, base_start_date,
                       base_end_date, rooms, release_days, status)
SELECT 'RHB-' || rt.id || '-' || k, 1 + (random() * ({agencies} - 1))::int, rt.hotel_id, rt.id, s, s + n, s, s + n,
       2 + (random() * 3)::int, (random() * 3)::int, 'ACTIVE'
FROM room_type AS rt CROSS JOIN generate_series(1, {blocks}) AS k
CROSS JOIN LATERAL (SELECT DATE '{start}' + (random() * 690)::int AS s, 7 + (random() * 23)::int AS n) AS p;

-- the stays: the free sale ones, then {block_bookings} per hardblock from it
CREATE TEMP TABLE stay ON COMMIT DROP AS
SELECT g AS i, NULL::int AS hardblock_id, rt.hotel_id, rt.id AS room_type_id, p.agency_id, p.n,
       DATE '{start}' + (p.u * (730 - p.n))::int AS check_in,
       p.rooms, p.status, p.legacy, c.rate_amount AS rate, p.created_days
FROM (SELECT g, 1 + floor(random() * {hotels} * {room_types})::int AS rt_no,
             -- agencies skewed: a few big ones, a long tail
             1 + floor(power(random(), 1.6) * {agencies})::int AS agency_id,
             1 + (random() * 6)::int AS n, random() AS u,
             CASE WHEN random() < 0.75 THEN 1 WHEN random() < 0.8 THEN 2 ELSE 3 END AS rooms,
             random() AS s, random() < 0.03 AS legacy, (random() * 200)::int AS created_days
      FROM generate_series(1, {free}) AS g) AS q
CROSS JOIN LATERAL (SELECT q.agency_id, q.n, q.u, q.rooms, q.legacy, q.created_days,
                           CASE WHEN q.s < 0.85 THEN 'CONFIRMED' WHEN q.s < 0.95 THEN 'CANCELLED' ELSE 'HELD' END
                               AS status) AS p
JOIN room_type AS rt ON rt.id = (SELECT min(id) FROM room_type) + q.rt_no - 1
JOIN contract AS c ON c.room_type_id = rt.id
 AND c.start_date <= DATE '{start}' + (p.u * (730 - p.n))::int AND c.end_date > DATE '{start}' + (p.u * (730 - p.n))::int;
INSERT INTO stay
SELECT {free} + row_number() OVER (ORDER BY b.id, k), b.id, b.hotel_id, b.room_type_id, b.agency_id, p.n,
       b.start_date + p.o, 1, 'CONFIRMED', false, c.rate_amount, 30
FROM hardblock AS b CROSS JOIN generate_series(1, {block_bookings}) AS k
CROSS JOIN LATERAL (SELECT 1 + (random() * 2)::int AS n, (random() * 4)::int AS o) AS p
JOIN contract AS c ON c.room_type_id = b.room_type_id AND c.start_date <= b.start_date AND c.end_date > b.start_date;

INSERT INTO booking_group (id, reference, agency_id, status, guest_name, expires_at, created_by, created_at,
                           confirmed_at, cancelled_at)
SELECT i, 'RBG' || lpad(i::text, 8, '0'), agency_id, status, 'Guest ' || i || ' Müller, "Jr"',
       CASE WHEN status = 'HELD' THEN now() + interval '400 days' END, 'bench',
       check_in - created_days - interval '10 hours',
       CASE WHEN status <> 'HELD' THEN check_in - created_days - interval '9 hours' END,
       CASE WHEN status = 'CANCELLED' THEN check_in - created_days / 2 - interval '1 hour' END
FROM stay;
SELECT setval('booking_group_id_seq', (SELECT max(id) FROM booking_group));

INSERT INTO booking (id, group_id, agency_id, hotel_id, room_type_id, hardblock_id, check_in, check_out, rooms,
                     status, expires_at, total_amount, currency, nights, net_amount)
SELECT s.i, s.i, s.agency_id, s.hotel_id, s.room_type_id, s.hardblock_id, s.check_in, s.check_in + s.n, s.rooms,
       s.status, CASE WHEN s.status = 'HELD' THEN now() + interval '400 days' END,
       CASE WHEN s.legacy THEN s.rooms * s.n * s.rate ELSE s.rooms * p.sell END, 'EUR',
       CASE WHEN s.legacy THEN '[]'::jsonb ELSE p.nights END,
       CASE WHEN s.legacy THEN NULL ELSE s.rooms * p.net END
FROM stay AS s
CROSS JOIN LATERAL (
    SELECT jsonb_agg(jsonb_build_object('date', to_char(d, 'YYYY-MM-DD'), 'currency', 'EUR', 'net', net::text,
                                        'sell', sell::text,
                                        'applied', jsonb_build_array(jsonb_build_object('rule', 'MARKUP',
                                                                                        'amount', (sell - net)::text)))
                     ORDER BY d) AS nights,
           sum(net) AS net, sum(sell) AS sell
    FROM (SELECT d, x.net, round(x.net * 1.25, 2) AS sell
          FROM generate_series(s.check_in, s.check_in + s.n - 1, interval '1 day') AS d
          CROSS JOIN LATERAL (SELECT round(s.rate * CASE WHEN extract(isodow FROM d) IN (5, 6) THEN 1.2 ELSE 1 END, 2)
                                  AS net) AS x) AS night
) AS p;
SELECT setval('booking_id_seq', (SELECT max(id) FROM booking));

INSERT INTO sale_order (number, group_id, agency_id, status, total_amount, currency, confirmed_at, cancelled_at)
SELECT 'SO-R-' || g.id, g.id, g.agency_id, CASE WHEN g.status = 'CONFIRMED' THEN 'CONFIRMED' ELSE 'CANCELLED' END,
       b.total_amount, 'EUR', g.confirmed_at, g.cancelled_at
FROM booking_group AS g JOIN booking AS b ON b.group_id = g.id
WHERE g.status = 'CONFIRMED' OR (g.status = 'CANCELLED' AND g.id % 2 = 0);

CREATE TABLE bench_seed (version text PRIMARY KEY, seeded_at timestamptz NOT NULL DEFAULT now(), counts jsonb);
"""


def server_maintenance_url() -> tuple[str, str]:
    url, source = server_url()
    return make_url(url).set(database="postgres").render_as_string(hide_password=False), source


async def _admin(url: str, sql: str) -> Any:
    import asyncpg

    from db.engine import plain_url

    connection = await asyncpg.connect(plain_url(url))
    try:
        return await connection.fetch(sql)
    finally:
        await connection.close()


def prepare_database(reseed: bool) -> tuple[str, str, dict[str, Any]]:
    """(url, source, seed info): the bench's own database, created, migrated and seeded unless a
    seed of this version is already there."""
    from db import migrate

    server, source = server_maintenance_url()
    url = make_url(server).set(database=DATABASE).render_as_string(hide_password=False)
    exists = asyncio.run(_admin(server, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"))
    if exists and not reseed:
        found = asyncio.run(_admin(url, "SELECT to_regclass('bench_seed') IS NOT NULL AS t"))
        if found[0]["t"]:
            rows = asyncio.run(_admin(url, "SELECT version, seeded_at, counts FROM bench_seed"))
            if rows and rows[0]["version"] == SEED_VERSION:
                migrate.upgrade(url)  # a new migration (an index) applies to the kept seed
                print(f"PostgreSQL: {source}; database {DATABASE} kept from {rows[0]['seeded_at']:%Y-%m-%d %H:%M}"
                      f" (seed {SEED_VERSION}): seeding skipped", flush=True)
                return url, source, {"skipped": True, "counts": rows[0]["counts"]}
    if exists:
        asyncio.run(_admin(server, f'DROP DATABASE "{DATABASE}" WITH (FORCE)'))
    asyncio.run(_admin(server, f'CREATE DATABASE "{DATABASE}"'))
    print(f"PostgreSQL: {source}; database {DATABASE} created", flush=True)
    migrate.upgrade(url)
    t0 = time.perf_counter()
    counts = asyncio.run(seed(url))
    seconds = time.perf_counter() - t0
    print(f"seeded {counts} in {seconds:.1f} s", flush=True)
    return url, source, {"skipped": False, "seconds": round(seconds, 1), "counts": counts}


async def seed(url: str) -> dict[str, int]:
    import json

    import asyncpg

    from db.engine import plain_url

    blocks = HOTELS * ROOM_TYPES * BLOCKS_PER_ROOM_TYPE
    sql = SEED_SQL.format(agencies=AGENCIES, hotels=HOTELS, room_types=ROOM_TYPES, blocks=BLOCKS_PER_ROOM_TYPE,
                          block_bookings=BLOCK_BOOKINGS, free=BOOKINGS - blocks * BLOCK_BOOKINGS, start=START)
    connection = await asyncpg.connect(plain_url(url))
    try:
        async with connection.transaction():
            await connection.execute(sql)
            counts = {}
            for name in ("agency", "hotel", "room_type", "contract", "hardblock", "booking_group", "booking",
                         "sale_order"):
                counts[name] = await connection.fetchval(f"SELECT count(*) FROM {name}")
            for status, n in await connection.fetch("SELECT status, count(*) FROM booking GROUP BY status"):
                counts[f"booking_{status.lower()}"] = n
            counts["booking_legacy_nights"] = await connection.fetchval(
                "SELECT count(*) FROM booking WHERE nights = '[]'::jsonb")
            await connection.execute("INSERT INTO bench_seed (version, counts) VALUES ($1, $2::jsonb)",
                                     SEED_VERSION, json.dumps(counts))
        await connection.execute("VACUUM (ANALYZE)")
    finally:
        await connection.close()
    return counts


# --- measuring -----------------------------------------------------------------------------------

MONEY = "amount currency"
REVENUE = f"""query Revenue($from: Date!, $to: Date!, $groupBy: RevenueKey!) {{
  revenueReport(from: $from, to: $to, groupBy: $groupBy) {{ key label bookings roomNights revenue {{ {MONEY} }}
    cost {{ {MONEY} }} margin {{ {MONEY} }} cancellations cancelledRoomNights averageDailyRate {{ {MONEY} }} }}
}}"""
UTILISATION = """query Utilisation($hotelId: ID!, $from: Date!, $to: Date!) {
  utilisationReport(hotelId: $hotelId, from: $from, to: $to, groupBy: DAY) { roomType { code } from to allotment
    hardblocked held sold released available overcommitted closedNights utilisationPercent }
}"""
PICKUP = """query Pickup($from: Date!, $to: Date!) {
  pickupReport(from: $from, to: $to) { block { reference } agency { code } roomType { code } roomNightsBlocked
    roomNightsPickedUp roomNightsReleased roomNightsRemaining pickupPercent washPercent }
}"""


def graphql_cases(hotel_gid: str) -> dict[str, dict[str, Any]]:
    from bench.calendar_http import QUERIES

    year = {"from": YEAR[0].isoformat(), "to": YEAR[1].isoformat()}
    cases = {f"revenue {key} 2027": {"query": REVENUE, "variables": {**year, "groupBy": key}}
             for key in ("AGENCY", "HOTEL", "ROOM_TYPE", "MONTH")}
    cases["utilisation 50x365 DAY"] = {"query": UTILISATION, "variables": {**year, "hotelId": hotel_gid}}
    cases["calendar 50x365 series"] = {"query": QUERIES["series"], "variables": {**year, "id": hotel_gid}}
    cases["pickup 2027"] = {"query": PICKUP, "variables": year}
    return cases


def describe(case: str, payload: dict[str, Any]) -> str:
    if payload.get("errors"):
        raise RuntimeError(f"{case}: {payload['errors'][:2]}")
    data = payload["data"]
    if "revenueReport" in data:
        rows = data["revenueReport"]
        return f"{len(rows)} rows, {sum(r['roomNights'] for r in rows)} room nights"
    if "utilisationReport" in data:
        rows = data["utilisationReport"]
        assert len(rows) == ROOM_TYPES * 365, len(rows)
        return f"{len(rows)} rows, {sum(r['sold'] for r in rows)} sold"
    if "pickupReport" in data:
        return f"{len(data['pickupReport'])} blocks"
    rows = data["node"]["calendar"]["rows"]
    assert len(rows) == ROOM_TYPES and all(len(r["series"]["dates"]) == 365 for r in rows)
    return f"{len(rows)} rows x 365, {sum(sum(r['series']['sold']) for r in rows)} sold"


def time_graphql(base: str, token: str, cases: dict[str, dict[str, Any]], runs: int) -> dict[str, Any]:
    import random

    out: dict[str, Any] = {case: {"samples": []} for case in cases}
    rnd = random.Random(16)
    with httpx.Client(base_url=base, timeout=900, headers={"Authorization": f"Bearer {token}"}) as client:
        for case, body in cases.items():  # warm-up, and check
            response = client.post("/graphql", json=body)
            response.raise_for_status()
            out[case]["result"] = describe(case, response.json())
            out[case]["response_bytes"] = len(response.content)
            print(f"  {case}: {out[case]['result']}", flush=True)
        for _ in range(runs):
            order = list(cases)
            rnd.shuffle(order)
            for case in order:
                t0 = time.perf_counter_ns()
                response = client.post("/graphql", json=cases[case])
                response.read()
                out[case]["samples"].append((time.perf_counter_ns() - t0) / 1e6)
                response.raise_for_status()
    return {case: {"result": v["result"], "response_bytes": v["response_bytes"], **summarize(v["samples"])}
            for case, v in out.items()}


def _status_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler:
    """VmRSS of a process sampled every `interval` s in a thread; the peak in MiB."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval, self.peak_kib = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            value = _status_kib(self.pid, "VmRSS")
            if value:
                self.peak_kib = max(self.peak_kib, value)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def csv_run(client: httpx.Client, pid: int, start: date, end: date) -> dict[str, Any]:
    params = {"from": start.isoformat(), "to": end.isoformat()}
    lines = size = 0
    last = b""
    with RssSampler(pid) as sampler:
        t0 = time.perf_counter()
        with client.stream("GET", "/reports/bookings.csv", params=params) as response:
            response.raise_for_status()
            first_byte = None
            for chunk in response.iter_bytes(1 << 16):
                if first_byte is None:
                    first_byte = time.perf_counter() - t0
                lines += chunk.count(b"\n")
                size += len(chunk)
                last = (last + chunk)[-200:]
        seconds = time.perf_counter() - t0
    if b"# error" in last:
        raise RuntimeError(f"the CSV ended with an error trailer: {last!r}")
    return {"seconds": round(seconds, 3), "first_byte_s": round(first_byte or 0, 3), "lines": lines - 1,
            "mib": round(size / 2**20, 1), "peak_rss_sampled_mib": round(sampler.peak_kib / 1024, 1)}


def measure_csv(base: str, pid: int, token: str, runs: int) -> dict[str, Any]:
    out: dict[str, Any] = {"server_pid": pid, "rss_at_start_mib": round((_status_kib(pid, "VmRSS") or 0) / 1024, 1)}
    with httpx.Client(base_url=base, timeout=600, headers={"Authorization": f"Bearer {token}"}) as client:
        for name, (start, end) in (("100k", SMALL_CSV), ("1M", (START, END))):
            results = []
            for n in range(runs):
                result = csv_run(client, pid, start, end)
                print(f"  bookings.csv {name} run {n + 1}: {result}", flush=True)
                results.append(result)
            seconds = [r["seconds"] for r in results]
            out[name] = {"from": start, "to": end, "lines": results[0]["lines"], "runs": results,
                         "p50_s": round(sorted(seconds)[len(seconds) // 2], 3), "min_s": min(seconds),
                         "peak_rss_sampled_mib": max(r["peak_rss_sampled_mib"] for r in results),
                         "vm_hwm_after_mib": round((_status_kib(pid, "VmHWM") or 0) / 1024, 1)}
    return out


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reports", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed requests per GraphQL case (default 5)")
    parser.add_argument("--csv-runs", type=int, default=3, help="runs of each CSV export (default 3)")
    parser.add_argument("--keep", action="store_true", help=f"keep the database {DATABASE} (and reuse its seed)")
    parser.add_argument("--reseed", action="store_true", help="drop and seed it again even when a seed is there")
    args = parser.parse_args(argv)

    from app.api.ids import to_global_id

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    load_before = loadavg()
    url, source, seeded = prepare_database(args.reseed)
    try:
        hotel_id = asyncio.run(_admin(url, "SELECT min(id) AS id FROM hotel"))[0]["id"]
        token = admin_token()
        log_path = RESULTS_DIR / "reports.server.log"
        print(f"load average {load_before}", flush=True)
        with running_server(url, log_path, extra_env=SERVER_ENV) as (base, process):
            print(f"server: python -m app.cli serve --no-migrate on {base} (pid {process.pid}, 1 worker)", flush=True)
            graphql = time_graphql(base, token, graphql_cases(to_global_id("Hotel", hotel_id)), args.runs)
        load_mid = loadavg()
        with running_server(url, log_path, extra_env=SERVER_ENV) as (base, process):  # a fresh server: its VmHWM is the CSV's
            print(f"CSV server pid {process.pid}", flush=True)
            csv = measure_csv(base, process.pid, token, args.csv_runs)
        load_after = loadavg()
    finally:
        if not args.keep:
            server, _ = server_maintenance_url()
            asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))

    def p50(case: str) -> float:
        return graphql[case]["p50_ms"]

    calendar = p50("calendar 50x365 series")
    targets = [
        target("revenue by AGENCY, 1 year, p50", p50("revenue AGENCY 2027"), 1000.0, " ms"),
        target("utilisation 50x365 DAY / calendar (p50)", p50("utilisation 50x365 DAY") / calendar, 1.5, "x"),
        target(f"bookings.csv {csv['1M']['lines']:,} lines, p50", csv["1M"]["p50_s"], 10.0, " s"),
        target("CSV peak RSS 1M - 100k (VmHWM)", csv["1M"]["vm_hwm_after_mib"] - csv["100k"]["vm_hwm_after_mib"],
               float(FLAT_MEMORY_SLACK_MIB), " MiB"),
    ]
    print()
    print(table(["case", "result", "p50 ms", "p95 ms", "min ms", "KiB"],
                [[case, g["result"], g["p50_ms"], g["p95_ms"], g["min_ms"], round(g["response_bytes"] / 1024)]
                 for case, g in graphql.items()]))
    print()
    print(table(["bookings.csv", "lines", "MiB", "p50 s", "min s", "first byte s", "peak RSS sampled MiB",
                 "VmHWM after MiB"],
                [[name, c["lines"], c["runs"][0]["mib"], c["p50_s"], c["min_s"], c["runs"][0]["first_byte_s"],
                  c["peak_rss_sampled_mib"], c["vm_hwm_after_mib"]] for name, c in ((n, csv[n]) for n in ("100k", "1M"))]))
    print(f"(server RSS at start {csv['rss_at_start_mib']} MiB; load average before {load_before}, "
          f"mid {load_mid}, after {load_after}; {os.cpu_count()} CPUs)")
    print()
    print(targets_table(targets))
    path = write_results("reports", {
        "parameters": {"runs": args.runs, "csv_runs": args.csv_runs, "postgres": source, "database": DATABASE,
                       "seed": seeded, "seed_version": SEED_VERSION, "year": YEAR, "small_csv": SMALL_CSV,
                       "server": "python -m app.cli serve --no-migrate, 1 worker, subprocess; client httpx keep-alive",
                       "server_env": SERVER_ENV,
                       "load_average": {"before": load_before, "mid": load_mid, "after": load_after}},
        "graphql": graphql,
        "csv": csv,
        "targets": targets,
        "pass": all(t["pass"] for t in targets),
    })
    print(f"\nwrote {path.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
