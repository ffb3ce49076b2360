"""createBooking throughput over HTTP, hot (one room type) and spread (distinct room types), against
pgbench running the same lock + availability check + insert as one SQL function, in the same run.

    .venv/bin/python -m bench.booking_throughput [--seconds 10] [--clients 32] [--pgbench-clients 16]

Two app processes (`staysync serve --workers 1` each, one loopback port each, one database). The
client is wrk (bench/loadgen.py, bench/wrk/create_booking.lua; installed from Debian when missing):
one thread per server process, `--clients` connections in all, each sending createBooking back to
back for `--seconds` after a `--warmup` run; agent tokens of four agencies rotating, a unique
idempotency key per request, every request 1 room x 1 night on a random night of the year, so
every request succeeds (allotment 1,000,000) and rows per night stay few. Hot: every request on
one room type, so they all queue on one advisory lock. Spread: a random one of 50 room types of
the same hotel. Bookings/s = BookingGroup responses / wrk's run time.

The comparator (the ceiling): pgbench (`/usr/bin/pgbench` or on PATH; skipped with a message when
missing) calling `bench_create_booking()`, a PL/pgSQL function created in the throwaway database
that does in one call what createBooking's critical section does: `pg_advisory_xact_lock` on the
room type's key (under `lock_timeout`), the per-night availability check (contracts, allotment
events, hardblocks, counting bookings), then the writes (group, booking, audit entry, version
bump). Same nights, same room types, same database.

CPU per booking of every run: the client (wrk's or pgbench's rusage), the two servers and the
PostgreSQL cluster (/proc; see bench/loadgen.py for what is summed).

Targets (DESIGN.md): hot >= 0.5 x pgbench hot; spread >= 0.35 x pgbench spread; server CPU per
successful booking <= 1.0 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import timedelta
from typing import Any

from bench.booking_support import (
    AGENCIES,
    START,
    Servers,
    app_servers,
    booking_config,
    booking_outcomes,
    seed_hotel,
    tokens,
)
from bench.common import (
    PROJECT_ROOT,
    cpu_used,
    postgres_server_pid,
    scratch_database,
    table,
    target,
    targets_table,
    tree_cpu_seconds,
    write_results,
)
from bench.loadgen import cpu_per, cpu_table, ensure_wrk, run_wrk

NIGHTS = 365
SPREAD_ROOM_TYPES = 50
ALLOTMENT = 1_000_000
RATIO_LIMITS = {"hot": 0.5, "spread": 0.35}
SERVER_CPU_LIMIT_MS = 1.0  # per successful booking

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


def load(servers: Servers, room_types: list[int], args: argparse.Namespace, token: list[str],
         postmaster: int | None, seed: int) -> dict[str, Any]:
    """A warm-up run of wrk, then the measured one: bookings/s, outcomes, latency, CPU."""
    config = {**booking_config(room_types, [START + timedelta(days=n) for n in range(NIGHTS)], token), "seed": seed}
    common = {"name": "booking_throughput", "connections": args.clients, "threads": args.threads}
    if args.warmup:
        run_wrk("create_booking", servers.bases, config, seconds=args.warmup, **common)
    run = run_wrk("create_booking", servers.bases, config, seconds=args.seconds,
                  cpu_roots={**servers.cpu_roots(), "postgres": postmaster}, **common)
    outcomes = booking_outcomes(run)
    return {
        "bookings_per_s": round(outcomes["booked"] / run["seconds"], 1),
        "requests": run["responses"],
        **outcomes,
        "outcomes": run["outcomes"],
        "p50_ms": run["latency_ms"]["p50"],
        "p99_ms": run["latency_ms"]["p99"],
        "seconds": run["seconds"],
        "cpu_s": run["cpu_s"],
        "cpu_ms_per_booking": cpu_per(run, outcomes["booked"]),
        "cpu_ms_per_request": cpu_per(run, run["responses"]),
        "samples": run["samples"],
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


def pgbench(binary: str, url: str, script: str, clients: int, seconds: int,
            postmaster: int | None = None) -> dict[str, Any]:
    from db.engine import plain_url

    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as file:
        file.write(script)
    try:
        command = [binary, "-n", "-f", file.name, "-c", str(clients), "-j", str(min(clients, os.cpu_count() or 1)),
                   "-T", str(seconds), "-r", plain_url(url)]
        before = tree_cpu_seconds({"postgres": postmaster})
        with tempfile.TemporaryFile("w+") as output:
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, text=True)
            # Reaped here rather than by Popen, for its rusage: the client's CPU.
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            output.seek(0)
            stdout = output.read()
        cpu_s = {"client": round(usage.ru_utime + usage.ru_stime, 3), **cpu_used(before, tree_cpu_seconds({"postgres": postmaster}))}
    finally:
        os.unlink(file.name)
    if process.returncode != 0:
        raise RuntimeError(f"pgbench failed ({process.returncode}): {stdout.strip()[-2000:]}")
    tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", stdout)
    latency = re.search(r"latency average = ([0-9.]+) ms", stdout)
    failed = re.search(r"number of failed transactions: (\d+)", stdout)
    processed = re.search(r"number of transactions actually processed: (\d+)", stdout)
    transactions = int(processed.group(1)) if processed else 0
    return {
        "bookings_per_s": round(float(tps.group(1)), 1) if tps else None,
        "latency_avg_ms": float(latency.group(1)) if latency else None,
        "failed": int(failed.group(1)) if failed else 0,
        "transactions": transactions,
        "clients": clients,
        "seconds": seconds,
        "cpu_s": cpu_s,
        "cpu_ms_per_booking": cpu_per({"cpu_s": cpu_s}, transactions),
        "output": stdout[-1500:],
    }


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.booking_throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per case (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds per app case (default 3)")
    parser.add_argument("--clients", type=int, default=32,
                        help="wrk connections, i.e. requests in flight over HTTP (default 32)")
    parser.add_argument("--pgbench-clients", type=int, default=16, help="pgbench connections (default 16)")
    parser.add_argument("--workers", type=int, default=2, help="app processes (default 2)")
    parser.add_argument("--threads", type=int, help="wrk threads (default: one per app process)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved app/pgbench repeats; best kept")
    parser.add_argument("--seed", type=int, default=20260501)
    args = parser.parse_args(argv)
    args.threads = args.threads or args.workers
    if args.threads % args.workers or args.clients % args.threads:
        parser.error("--threads must be a multiple of --workers, and --clients of --threads")
    ensure_wrk()

    token = tokens()
    binary = find_pgbench()
    with scratch_database() as (url, source):
        postmaster = postgres_server_pid(url)
        if postmaster is None:
            print("PostgreSQL's processes are not visible here: its CPU is not measured", flush=True)
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
            print(f"servers: {args.workers} x staysync serve --workers 1 on {servers.bases}; client: wrk, "
                  f"{args.threads} threads, {args.clients} connections; {args.repeats} interleaved repeats", flush=True)
            # App and pgbench runs alternate, so drift (other load on the machine) hits both alike.
            for repeat in range(args.repeats):
                for name, (_, room_types) in cases.items():
                    result = load(servers, room_types, args, token, postmaster, args.seed + repeat)
                    runs[f"app {name}"].append(result)
                    cpu = result["cpu_ms_per_booking"]
                    print(f"app      {name:6s}: {result['bookings_per_s']:7.1f} bookings/s  p50 {result['p50_ms']} ms"
                          f"  p99 {result['p99_ms']} ms  outcomes {result['outcomes']}  CPU ms/booking client "
                          f"{_ms(cpu['client'])} server {_ms(cpu['server'])} PostgreSQL {_ms(cpu['postgres'])}", flush=True)
                    if result["errors"]:
                        print(f"  samples {result['samples'][:2]}", flush=True)
                    if binary is None:
                        continue
                    if repeat == 0:
                        pgbench(binary, url, scripts[name], args.pgbench_clients, 2)  # warm-up
                    result = pgbench(binary, url, scripts[name], args.pgbench_clients, args.seconds, postmaster)
                    runs[f"pgbench {name}"].append(result)
                    cpu = result["cpu_ms_per_booking"]
                    print(f"pgbench  {name:6s}: {result['bookings_per_s']:7.1f} bookings/s  "
                          f"avg latency {result['latency_avg_ms']} ms  failed {result['failed']}  CPU ms/booking "
                          f"client {_ms(cpu['client'])} PostgreSQL {_ms(cpu['postgres'])}", flush=True)

    def best(key: str) -> dict[str, Any]:
        return max(runs[key], key=lambda r: r["bookings_per_s"] or 0)

    app = {name: best(f"app {name}") for name in cases}
    ceiling = {name: best(f"pgbench {name}") for name in cases} if binary else {}

    targets = []
    ratios = {}
    if ceiling:
        for name, limit in RATIO_LIMITS.items():
            ratios[name] = app[name]["bookings_per_s"] / ceiling[name]["bookings_per_s"]
            targets.append(target(f"{name}: app bookings/s / pgbench bookings/s", ratios[name], limit, "x", op=">="))
    for name in cases:
        server_ms = app[name]["cpu_ms_per_booking"]["server"]
        if server_ms is not None:
            targets.append(target(f"{name}: server CPU per successful booking", server_ms, SERVER_CPU_LIMIT_MS, " ms"))
    print()
    print(f"\nbest of {args.repeats} interleaved runs each:")
    print(table(["case", "app bookings/s", "app p50 ms", "app p99 ms", "errors", "pgbench bookings/s", "ratio"], [
        [name, app[name]["bookings_per_s"], app[name]["p50_ms"], app[name]["p99_ms"], app[name]["errors"],
         ceiling[name]["bookings_per_s"] if ceiling else "skipped",
         f"{ratios[name]:.2f}" if ceiling else "-"] for name in app]))
    print()
    print(cpu_table([*((f"app {name}", app[name]["cpu_ms_per_booking"]) for name in app),
                     *((f"pgbench {name}", ceiling[name]["cpu_ms_per_booking"]) for name in ceiling)], "booking"))
    if targets:
        print()
        print(targets_table(targets))
    path = write_results("booking_throughput", {
        "parameters": {"seconds": args.seconds, "warmup": args.warmup, "clients": args.clients,
                       "pgbench_clients": args.pgbench_clients, "workers": args.workers, "postgres": source,
                       "nights": NIGHTS, "spread_room_types": SPREAD_ROOM_TYPES,
                       "client": f"wrk ({ensure_wrk()}), {args.threads} threads, {args.clients} connections, "
                                 "bench/wrk/create_booking.lua",
                       "postgres_cpu": "postmaster of the benchmark's database and all its children (the cluster)"
                                       if postmaster else "not measured (processes not visible)",
                       "request": "createBooking, 1 room x 1 night on a random night, agent tokens of 4 agencies "
                                  "rotating",
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


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    sys.exit(main())
