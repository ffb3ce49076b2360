"""500 concurrent createBooking over HTTP for the last 50 rooms, 2 app processes, 20 rounds; and
the same race with the inventory lock disabled, which must overbook.

    .venv/bin/python -m bench.booking_contention [--rounds 20] [--racers 500] [--left 50] [--off-rounds 3]

The client is wrk (bench/loadgen.py, bench/wrk/create_booking.lua; installed from Debian when
missing), not Python: one wrk process, one thread per server process, `--racers` connections (250
per server) that each send their createBooking at once; every thread sends exactly its share and
stops when all its responses are in. Each round races on its own room type (allotment 80 with 30
rooms already sold, so 50 are left), one night, one room per request, the tokens of agents of four
agencies rotating, a unique idempotency key per request. Two server processes
(`staysync serve --workers 1` each, on its own loopback port, one database). Every round must end
with exactly 500 requests sent, 50 BookingGroup, 450 SoldOut, 0 errors, and 50 rooms HELD in the
database. Latency is wrk's, per request, from its first byte sent until the response is read.

CPU per request, for each round and overall: the client (wrk's rusage), the two servers and the
PostgreSQL cluster (/proc; see bench/loadgen.py for what is summed).

The comparator, in the same run: both servers restarted with UNSAFE_DISABLE_INVENTORY_LOCKS=1
(refused in production), the same race on fresh room types; it must sell more than 50 rooms.

Targets (DESIGN.md): exactly 50 HELD / 450 SoldOut / 0 errors every round; p99 <= 0.5 s (the p99 of
every round); the lock-off rounds overbook.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from datetime import timedelta
from typing import Any

from bench.booking_support import (
    START,
    Servers,
    app_servers,
    booking_config,
    booking_outcomes,
    held_rooms,
    seed_hotel,
    tokens,
)
from bench.common import (
    PROJECT_ROOT,
    per_unit_ms,
    postgres_server_pid,
    scratch_database,
    table,
    target,
    targets_table,
    write_results,
)
from bench.loadgen import cpu_per, cpu_table, ensure_wrk, run_wrk, sum_cpu

TAKEN = 30  # rooms already sold on each race's room type
P99_LIMIT_MS = 500.0


def race(servers: Servers, room_type_id: int, night_offset: int, racers: int, threads: int, token: list[str],
         postmaster: int | None, limit_s: int, name: str) -> dict[str, Any]:
    """One burst of `racers` createBooking of 1 room on one room type and night."""
    run = run_wrk("create_booking", servers.bases,
                  booking_config([room_type_id], [START + timedelta(days=night_offset)], token),
                  name=name, connections=racers, threads=threads, seconds=limit_s, timeout_s=limit_s,
                  quota=racers // threads, cpu_roots={**servers.cpu_roots(), "postgres": postmaster})
    return {**booking_outcomes(run), **run, "cpu_ms_per_request": cpu_per(run, run["sent"])}


def run_rounds(url: str, servers: Servers, room_types: list[int], args: argparse.Namespace, token: list[str],
               postmaster: int | None, label: str) -> list[dict[str, Any]]:
    results = []
    for n, room_type_id in enumerate(room_types, 1):
        result = race(servers, room_type_id, 3, args.racers, args.threads, token, postmaster, args.limit,
                      "booking_contention")
        result["held_in_db"] = asyncio.run(held_rooms(url, [room_type_id])).get(room_type_id, 0)
        result["exact"] = (result["sent"] == args.racers and result["booked"] == args.left
                           and result["sold_out"] == args.racers - args.left and result["errors"] == 0
                           and result["held_in_db"] == args.left)
        results.append(result)
        cpu = result["cpu_ms_per_request"]
        served = {t["host"].rsplit(":", 1)[1]: t["responses"] for t in result["per_thread"]}
        print(f"{label} round {n:2d}: sent {result['sent']}  {result['booked']:3d} HELD  {result['sold_out']:3d} SoldOut  "
              f"{result['errors']} errors  db {result['held_in_db']:3d} rooms held  served by port {served}  "
              f"p50 {result['latency_ms']['p50']:.0f} ms  p99 {result['latency_ms']['p99']:.0f} ms  "
              f"wall {result['wall_s']:.2f} s  CPU ms/request client {_ms(cpu['client'])} server {_ms(cpu['server'])} "
              f"PostgreSQL {_ms(cpu['postgres'])}"
              + ("" if label == "lock off" or result["exact"] else "  <-- WRONG"), flush=True)
        if result["errors"]:
            print(f"  outcomes {result['outcomes']}  socket errors {result['socket_errors']}  "
                  f"samples {result['samples'][:2]}", flush=True)
    return results


def warm_up(servers: Servers, room_type_id: int, threads: int, token: list[str], postmaster: int | None) -> None:
    """Two bursts of 40 on a room type of their own (first connections, pools, caches)."""
    for night in (10, 11):
        race(servers, room_type_id, night, 40, threads, token, postmaster, 60, "booking_contention.warmup")


def overall(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """What the rounds add up to: p99 per round (worst and median), CPU per request over all of them."""
    p99s = [r["latency_ms"]["p99"] for r in rounds]
    sent = sum(r["sent"] for r in rounds)

    def total(key: str) -> float | None:
        values = [r["cpu_s"].get(key) if key != "server" else sum_cpu(r["cpu_s"], "server") for r in rounds]
        return None if any(v is None for v in values) else sum(values)  # type: ignore[arg-type]

    return {
        "p99_ms_per_round": p99s, "p99_ms_worst": max(p99s), "p99_ms_median": round(statistics.median(p99s), 1),
        "p50_ms_median": round(statistics.median(r["latency_ms"]["p50"] for r in rounds), 1),
        "max_ms": max(r["latency_ms"]["max"] for r in rounds),
        "wall_s_median": round(statistics.median(r["wall_s"] for r in rounds), 3),
        "requests": sent,
        "cpu_ms_per_request": {k: per_unit_ms(total(k), sent) for k in ("client", "server", "postgres")},
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.booking_contention", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--racers", type=int, default=500, help="requests per burst (default 500)")
    parser.add_argument("--left", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="app processes (default 2)")
    parser.add_argument("--threads", type=int, help="wrk threads (default: one per app process)")
    parser.add_argument("--off-rounds", type=int, default=3, help="rounds of the lock-off comparator")
    parser.add_argument("--limit", type=int, default=60,
                        help="seconds a burst may take (and wrk's request timeout) before it counts as failed")
    args = parser.parse_args(argv)
    args.threads = args.threads or args.workers
    if args.threads % args.workers or args.racers % args.threads:
        parser.error("--threads must be a multiple of --workers, and --racers of --threads")
    ensure_wrk()

    token = tokens()
    with scratch_database() as (url, source):
        postmaster = postgres_server_pid(url)
        if postmaster is None:
            print("PostgreSQL's processes are not visible here: its CPU is not measured", flush=True)
        hotel = asyncio.run(seed_hotel(url, "CONTEND", args.rounds + args.off_rounds + 2,
                                       allotment=args.left + TAKEN, taken=TAKEN))
        locked_rts = hotel.room_type_ids[:args.rounds]
        off_rts = hotel.room_type_ids[args.rounds:args.rounds + args.off_rounds]
        warm_rts = hotel.room_type_ids[-2:]
        with app_servers(url, args.workers, "booking_contention") as servers:
            print(f"servers: {args.workers} x staysync serve --workers 1 on {servers.bases}; client: wrk, "
                  f"{args.threads} threads, {args.racers} connections, one request each", flush=True)
            warm_up(servers, warm_rts[0], args.threads, token, postmaster)
            locked = run_rounds(url, servers, locked_rts, args, token, postmaster, "locked  ")
        with app_servers(url, args.workers, "booking_contention_unlocked", locks=False) as servers:
            print("servers restarted with UNSAFE_DISABLE_INVENTORY_LOCKS=1 (the comparator)", flush=True)
            warm_up(servers, warm_rts[1], args.threads, token, postmaster)
            unlocked = run_rounds(url, servers, off_rts, args, token, postmaster, "lock off")

    exact_rounds = sum(r["exact"] for r in locked)
    overbooked = [r["held_in_db"] - args.left for r in unlocked]
    summary = {"locked": overall(locked), "lock off": overall(unlocked)}
    print()
    print(table(["", "rounds", "sent", "HELD per round", "SoldOut per round", "errors", "rooms held (db)",
                 "p50 ms (median)", "p99 ms (median)", "p99 ms (worst round)"], [
        [label, len(rounds), sorted({r["sent"] for r in rounds}), sorted({r["booked"] for r in rounds}),
         sorted({r["sold_out"] for r in rounds}), sum(r["errors"] for r in rounds),
         sorted({r["held_in_db"] for r in rounds}), summary[label]["p50_ms_median"],
         summary[label]["p99_ms_median"], summary[label]["p99_ms_worst"]]
        for label, rounds in (("locked", locked), ("lock off", unlocked))]))
    print()
    print(cpu_table([(label, summary[label]["cpu_ms_per_request"]) for label in summary], "request"))
    targets = [
        target(f"locked rounds with exactly {args.racers} sent, {args.left} HELD / {args.racers - args.left} "
               "SoldOut / 0 errors, db held = left", exact_rounds, len(locked), op=">="),
        target("p99 latency, worst locked round", summary["locked"]["p99_ms_worst"], P99_LIMIT_MS, " ms"),
        target("lock-off rounds that overbooked", sum(o > 0 for o in overbooked), len(unlocked), op=">="),
    ]
    print(f"\nlock off: rooms sold beyond the {args.left} left, per round: {overbooked}")
    print()
    print(targets_table(targets))

    def kept(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k not in ("connections", "threads", "quota")} for r in rounds]

    path = write_results("booking_contention", {
        "parameters": {"rounds": args.rounds, "racers": args.racers, "left": args.left, "taken": TAKEN,
                       "workers": args.workers, "off_rounds": args.off_rounds, "postgres": source,
                       "postgres_cpu": "postmaster of the benchmark's database and all its children (the cluster)"
                                       if postmaster else "not measured (processes not visible)",
                       "client": f"wrk ({ensure_wrk()}), {args.threads} threads, {args.racers} connections, "
                                 "bench/wrk/create_booking.lua, one request per connection",
                       "server": "N x `staysync serve --no-migrate --workers 1`, one loopback port each, one database",
                       "request": "createBooking, 1 room x 1 night, agent tokens of 4 agencies rotating"},
        "locked": {"rounds": kept(locked), **summary["locked"], "exact_rounds": exact_rounds},
        "lock_off": {"rounds": kept(unlocked), **summary["lock off"], "overbooked_rooms_per_round": overbooked},
        "targets": targets,
        "pass": all(t["pass"] for t in targets),
    })
    print(f"\nwrote {path.relative_to(PROJECT_ROOT)}")
    return 0 if all(t["pass"] for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
