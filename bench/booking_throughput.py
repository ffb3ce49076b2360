"""createBooking throughput over HTTP, hot (one room type) and spread (distinct room types), against
pgbench running the same lock + availability check + insert as one SQL function, in the same run.

    .venv/bin/python -m bench.booking_throughput [--seconds 10] [--clients 32] [--pgbench-clients 16]

Two app processes (`staysync serve --workers 1` each, one loopback port each, one database); the
client keeps `--clients` createBooking requests in flight (alternating servers and agencies) for
`--seconds` after a warm-up, every request 1 room x 1 night on a random night of the year, so
every request succeeds (allotment 1,000,000) and rows per night stay few. Hot: every request on
one room type, so they all queue on one advisory lock. Spread: a random one of 50 room types of
the same hotel.

The comparator (the ceiling): pgbench (`/usr/bin/pgbench` or on PATH; skipped with a message when
missing) calling `bench_create_booking()`, a PL/pgSQL function created in the throwaway database
that does in one call what createBooking's critical section does: `pg_advisory_xact_lock` on the
room type's key (under `lock_timeout`), the per-night availability check (contracts, allotment
events, hardblocks, counting bookings), then the writes (group, booking, audit entry, version
bump). Same nights, same room types, same database.

Targets (DESIGN.md): hot >= 0.4 x pgbench hot; spread >= 0.25 x pgbench spread.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from typing import Any

from bench.booking_support import (
    AGENCIES,
    START,
    app_servers,
    booking_variables,
    client,
    create_booking,
    seed_hotel,
    tokens,
)
from bench.common import PROJECT_ROOT, percentile, scratch_database, table, target, targets_table, write_results

NIGHTS = 365
SPREAD_ROOM_TYPES = 50
ALLOTMENT = 1_000_000

FUNCTION = """
CREATE FUNCTION bench_create_booking(p_agency int, p_hotel int, p_room_type int, p_check_in date, p_rooms int)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  v_check_out date := p_check_in + 1;
  v_short int;
  v_group int;
BEGIN
  PERFORM set_config('lock_timeout', '2000', true);
  PERFORM pg_advisory_xact_lock((p_room_type::bigint << 8) | 1);
  SELECT count(*) INTO v_short
  FROM generate_series(p_check_in, v_check_out - 1, interval '1 day') AS n(night)
  WHERE greatest(0,
          (SELECT coalesce(sum(c.allotment), 0) FROM contract c
            WHERE c.room_type_id = p_room_type AND c.status = 'ACTIVE'
              AND c.start_date <= n.night AND c.end_date > n.night)
        + (SELECT coalesce(sum(CASE e.kind WHEN 'INCREASE_ALLOTMENT' THEN e.quantity
                                           WHEN 'REDUCE_ALLOTMENT' THEN -e.quantity ELSE 0 END), 0)
             FROM allotment_event e
            WHERE e.room_type_id = p_room_type AND e.voided_at IS NULL
              AND e.start_date <= n.night AND e.end_date > n.night))
      - (SELECT coalesce(sum(h.rooms), 0) FROM hardblock h
          WHERE h.room_type_id = p_room_type AND h.status = 'ACTIVE'
            AND h.start_date <= n.night AND h.end_date > n.night)
      - (SELECT coalesce(sum(b.rooms), 0) FROM booking b
          WHERE b.room_type_id = p_room_type AND b.hardblock_id IS NULL
            AND b.check_in <= n.night AND b.check_out > n.night
            AND (b.status = 'CONFIRMED' OR (b.status = 'HELD' AND b.expires_at > now())))
      < p_rooms;
  IF v_short > 0 THEN
    RETURN 0;
  END IF;
  INSERT INTO booking_group (reference, agency_id, status, guest_name, expires_at, created_by, created_at)
  VALUES ('BG-' || upper(substr(md5(random()::text), 1, 10)), p_agency, 'HELD', 'Bench Guest',
          now() + interval '15 minutes', 'pgbench', now())
  RETURNING id INTO v_group;
  INSERT INTO booking (group_id, agency_id, hotel_id, room_type_id, check_in, check_out, rooms, status,
                       expires_at, total_amount, currency)
  VALUES (v_group, p_agency, p_hotel, p_room_type, p_check_in, v_check_out, p_rooms, 'HELD',
          now() + interval '15 minutes', 100.00 * p_rooms, 'EUR');
  INSERT INTO audit_log (at, actor_uid, actor_role, agency_code, action, entity_type, entity_id, after)
  VALUES (now(), 'pgbench', 'agent', 'BENCHA', 'booking_group.created', 'BookingGroup', v_group,
          jsonb_build_object('status', 'HELD', 'rooms', p_rooms));
  INSERT INTO inventory_version (hotel_id, version) VALUES (p_hotel, 1)
  ON CONFLICT (hotel_id) DO UPDATE SET version = inventory_version.version + 1;
  RETURN v_group;
END $$;
"""

SCRIPT = """\\set night random(0, {last_night})
\\set rt random({first_rt}, {last_rt})
SELECT bench_create_booking({agency}, {hotel}, :rt, DATE '{start}' + :night, 1);
"""


# --- the app over HTTP ---------------------------------------------------------------------------


async def load(bases: list[str], room_types: list[int], clients: int, seconds: float, warmup: float,
               token: dict[str, str], seed: int) -> dict[str, Any]:
    rnd = random.Random(seed)
    outcomes: list[Any] = []
    measuring = False
    deadline = time.perf_counter() + warmup + seconds

    async def worker(n: int) -> None:
        server = n % len(bases)
        agency = AGENCIES[n % len(AGENCIES)]
        while time.perf_counter() < deadline:
            variables = booking_variables(rnd.choice(room_types), START + timedelta(days=rnd.randrange(NIGHTS)))
            outcome = await create_booking(http, bases[server], server, token[agency], variables)
            if measuring:
                outcomes.append(outcome)

    async with client(clients) as http:
        tasks = [asyncio.create_task(worker(n)) for n in range(clients)]
        await asyncio.sleep(warmup)
        measuring = True
        t0 = time.perf_counter()
        await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - t0
        measuring = False
        await asyncio.gather(*tasks)
    kinds = Counter(o.kind for o in outcomes)
    latencies = [o.ms for o in outcomes]
    return {
        "bookings_per_s": round(kinds.get("BookingGroup", 0) / elapsed, 1),
        "requests": len(outcomes),
        "outcomes": dict(kinds),
        "errors": sum(n for k, n in kinds.items() if k.startswith("error")),
        "p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 99), 1) if latencies else None,
        "seconds": round(elapsed, 2),
    }


# --- pgbench -------------------------------------------------------------------------------------


def find_pgbench() -> str | None:
    for candidate in ("/usr/bin/pgbench", shutil.which("pgbench")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


async def create_function(url: str) -> None:
    import asyncpg

    from db.engine import plain_url

    connection = await asyncpg.connect(plain_url(url))
    try:
        await connection.execute(FUNCTION)
    finally:
        await connection.close()


def pgbench(binary: str, url: str, script: str, clients: int, seconds: int) -> dict[str, Any]:
    from db.engine import plain_url

    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as file:
        file.write(script)
    try:
        command = [binary, "-n", "-f", file.name, "-c", str(clients), "-j", str(min(clients, os.cpu_count() or 1)),
                   "-T", str(seconds), "-r", plain_url(url)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    finally:
        os.unlink(file.name)
    if result.returncode != 0:
        raise RuntimeError(f"pgbench failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", result.stdout)
    latency = re.search(r"latency average = ([0-9.]+) ms", result.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", result.stdout)
    return {
        "bookings_per_s": round(float(tps.group(1)), 1) if tps else None,
        "latency_avg_ms": float(latency.group(1)) if latency else None,
        "failed": int(failed.group(1)) if failed else 0,
        "clients": clients,
        "seconds": seconds,
        "output": result.stdout[-1500:],
    }


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.booking_throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per case (default 10)")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds per app case (default 3)")
    parser.add_argument("--clients", type=int, default=32, help="requests in flight over HTTP (default 32)")
    parser.add_argument("--pgbench-clients", type=int, default=16, help="pgbench connections (default 16)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved app/pgbench repeats; best kept")
    parser.add_argument("--seed", type=int, default=20260501)
    args = parser.parse_args(argv)

    token = tokens()
    binary = find_pgbench()
    with scratch_database() as (url, source):
        hot = asyncio.run(seed_hotel(url, "HOT", 1, allotment=ALLOTMENT, nights=NIGHTS + 5))
        spread = asyncio.run(seed_hotel(url, "SPREAD", SPREAD_ROOM_TYPES, allotment=ALLOTMENT, nights=NIGHTS + 5))
        cases = {"hot": (hot, hot.room_type_ids), "spread": (spread, spread.room_type_ids)}
        assert spread.room_type_ids == list(range(spread.room_type_ids[0], spread.room_type_ids[0] + SPREAD_ROOM_TYPES))

        if binary is None:
            print("pgbench not found (/usr/bin/pgbench or PATH): the comparator is SKIPPED, no ratios", flush=True)
        else:
            asyncio.run(create_function(url))
        scripts = {name: SCRIPT.format(last_night=NIGHTS - 1, first_rt=room_types[0], last_rt=room_types[-1],
                                       agency=hotel.agency_ids[AGENCIES[0]], hotel=hotel.id, start=START.isoformat())
                   for name, (hotel, room_types) in cases.items()}
        runs: dict[str, list[dict[str, Any]]] = {f"{side} {name}": [] for side in ("app", "pgbench") for name in cases}
        with app_servers(url, args.workers, "booking_throughput") as servers:
            print(f"servers: {args.workers} x staysync serve --workers 1 on {servers.bases}; "
                  f"{args.clients} requests in flight; {args.repeats} interleaved repeats", flush=True)
            # App and pgbench runs alternate, so drift (other load on the machine) hits both alike.
            for repeat in range(args.repeats):
                for name, (_, room_types) in cases.items():
                    result = asyncio.run(load(servers.bases, room_types, args.clients, args.seconds, args.warmup,
                                              token, args.seed + repeat))
                    runs[f"app {name}"].append(result)
                    print(f"app      {name:6s}: {result['bookings_per_s']:7.1f} bookings/s  p50 {result['p50_ms']} ms"
                          f"  p99 {result['p99_ms']} ms  outcomes {result['outcomes']}", flush=True)
                    if binary is None:
                        continue
                    if repeat == 0:
                        pgbench(binary, url, scripts[name], args.pgbench_clients, 2)  # warm-up
                    result = pgbench(binary, url, scripts[name], args.pgbench_clients, args.seconds)
                    runs[f"pgbench {name}"].append(result)
                    print(f"pgbench  {name:6s}: {result['bookings_per_s']:7.1f} bookings/s  "
                          f"avg latency {result['latency_avg_ms']} ms  failed {result['failed']}", flush=True)

    def best(key: str) -> dict[str, Any]:
        return max(runs[key], key=lambda r: r["bookings_per_s"] or 0)

    app = {name: best(f"app {name}") for name in cases}
    ceiling = {name: best(f"pgbench {name}") for name in cases} if binary else {}

    targets = []
    ratios = {}
    if ceiling:
        for name, limit in (("hot", 0.4), ("spread", 0.25)):
            ratios[name] = app[name]["bookings_per_s"] / ceiling[name]["bookings_per_s"]
            targets.append(target(f"{name}: app bookings/s / pgbench bookings/s", ratios[name], limit, "x", op=">="))
    print()
    print(f"\nbest of {args.repeats} interleaved runs each:")
    print(table(["case", "app bookings/s", "app p50 ms", "app p99 ms", "errors", "pgbench bookings/s", "ratio"], [
        [name, app[name]["bookings_per_s"], app[name]["p50_ms"], app[name]["p99_ms"], app[name]["errors"],
         ceiling[name]["bookings_per_s"] if ceiling else "skipped",
         f"{ratios[name]:.2f}" if ceiling else "-"] for name in app]))
    if targets:
        print()
        print(targets_table(targets))
    path = write_results("booking_throughput", {
        "parameters": {"seconds": args.seconds, "warmup": args.warmup, "clients": args.clients,
                       "pgbench_clients": args.pgbench_clients, "workers": args.workers, "postgres": source,
                       "nights": NIGHTS, "spread_room_types": SPREAD_ROOM_TYPES,
                       "request": "createBooking, 1 room x 1 night on a random night, agents of 2 agencies",
                       "pgbench": binary or "not found", "pgbench_function": FUNCTION},
        "app": app,
        "pgbench": ceiling or "skipped: pgbench not found",
        "all_runs": {key: [{k: v for k, v in r.items() if k != "output"} for r in values] for key, values in runs.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "targets": targets,
        "pass": bool(targets) and all(t["pass"] for t in targets),
    })
    print(f"\nwrote {path.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
