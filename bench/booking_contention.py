"""500 concurrent createBooking over HTTP for the last 50 rooms, 2 app processes, 20 rounds; and
the same race with the inventory lock disabled, which must overbook.

    .venv/bin/python -m bench.booking_contention [--rounds 20] [--racers 500] [--left 50] [--off-rounds 3]

Each round races on its own room type (allotment 80 with 30 rooms already sold, so 50 are left),
one night, one room per request, agents of two agencies alternating, requests alternating between
the two server processes (`staysync serve --workers 1` each, on its own loopback port, one
database). Every round must end with exactly 50 BookingGroup, 450 SoldOut and 0 errors, and 50
rooms HELD in the database. Latency is per request, from send until the body is read.

The comparator, in the same run: both servers restarted with UNSAFE_DISABLE_INVENTORY_LOCKS=1
(refused in production), the same race on fresh room types; it must sell more than 50 rooms.

Targets (DESIGN.md): exactly 50 HELD / 450 SoldOut / 0 errors every round; p99 <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from datetime import timedelta
from typing import Any

from bench.booking_support import (
    AGENCIES,
    START,
    booking_variables,
    client,
    create_booking,
    held_rooms,
    app_servers,
    seed_hotel,
    tokens,
)
from bench.common import PROJECT_ROOT, percentile, scratch_database, table, target, targets_table, write_results

TAKEN = 30  # rooms already sold on each race's room type


async def race(bases: list[str], room_type_id: int, racers: int, token: dict[str, str]) -> dict[str, Any]:
    async with client(racers) as http:
        jobs = []
        for n in range(racers):
            server = n % len(bases)
            agency = AGENCIES[n % len(AGENCIES)]
            jobs.append(create_booking(http, bases[server], server, token[agency],
                                       booking_variables(room_type_id, START + timedelta(days=3))))
        t0 = time.perf_counter()
        outcomes = await asyncio.gather(*jobs)
        wall = time.perf_counter() - t0
    kinds = Counter(o.kind for o in outcomes)
    latencies = [o.ms for o in outcomes]
    return {
        "outcomes": dict(kinds),
        "booked": kinds.get("BookingGroup", 0),
        "sold_out": kinds.get("SoldOut", 0),
        "errors": sum(n for k, n in kinds.items() if k.startswith("error")),
        "served": dict(Counter(f"server{o.server}" for o in outcomes)),
        "wall_s": round(wall, 3),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
        "latencies_ms": [round(x, 1) for x in latencies],
    }


async def warm_up(bases: list[str], room_type_id: int, token: dict[str, str], n: int = 40) -> None:
    async with client(20) as http:
        for batch in range(2):
            await asyncio.gather(*(
                create_booking(http, bases[i % len(bases)], i % len(bases), token[AGENCIES[i % 2]],
                               booking_variables(room_type_id, START + timedelta(days=10 + batch)))
                for i in range(n // 2)))


def run_rounds(url: str, bases: list[str], room_types: list[int], racers: int, left: int,
               token: dict[str, str], label: str) -> list[dict[str, Any]]:
    results = []
    for n, room_type_id in enumerate(room_types, 1):
        result = asyncio.run(race(bases, room_type_id, racers, token))
        result["held_in_db"] = asyncio.run(held_rooms(url, [room_type_id])).get(room_type_id, 0)
        result["exact"] = (result["booked"] == left and result["sold_out"] == racers - left
                           and result["errors"] == 0 and result["held_in_db"] == left)
        results.append(result)
        print(f"{label} round {n:2d}: {result['booked']:3d} HELD  {result['sold_out']:3d} SoldOut  "
              f"{result['errors']} errors  db {result['held_in_db']:3d} rooms held  "
              f"served {result['served']}  p50 {result['p50_ms']:.0f} ms  p99 {result['p99_ms']:.0f} ms  "
              f"wall {result['wall_s']:.2f} s" + ("" if label == "lock off" or result["exact"] else "  <-- WRONG"),
              flush=True)
        if result["errors"]:
            print(f"  errors: {[k for k in result['outcomes'] if k.startswith('error')]}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.booking_contention", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--racers", type=int, default=500)
    parser.add_argument("--left", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--off-rounds", type=int, default=3, help="rounds of the lock-off comparator")
    args = parser.parse_args(argv)

    token = tokens()
    with scratch_database() as (url, source):
        hotel = asyncio.run(seed_hotel(url, "CONTEND", args.rounds + args.off_rounds + 2,
                                       allotment=args.left + TAKEN, taken=TAKEN))
        locked_rts = hotel.room_type_ids[:args.rounds]
        off_rts = hotel.room_type_ids[args.rounds:args.rounds + args.off_rounds]
        warm_rts = hotel.room_type_ids[-2:]
        with app_servers(url, args.workers, "booking_contention") as servers:
            print(f"servers: {args.workers} x staysync serve --workers 1 on {servers.bases}", flush=True)
            asyncio.run(warm_up(servers.bases, warm_rts[0], token))
            locked = run_rounds(url, servers.bases, locked_rts, args.racers, args.left, token, "locked  ")
        with app_servers(url, args.workers, "booking_contention_unlocked", locks=False) as servers:
            print("servers restarted with UNSAFE_DISABLE_INVENTORY_LOCKS=1 (the comparator)", flush=True)
            asyncio.run(warm_up(servers.bases, warm_rts[1], token))
            unlocked = run_rounds(url, servers.bases, off_rts, args.racers, args.left, token, "lock off")

    all_latencies = [x for r in locked for x in r["latencies_ms"]]
    p50, p99 = percentile(all_latencies, 50), percentile(all_latencies, 99)
    exact_rounds = sum(r["exact"] for r in locked)
    overbooked = [r["held_in_db"] - args.left for r in unlocked]
    print()
    print(table(["", "rounds", "HELD per round", "SoldOut per round", "errors", "rooms held (db)", "p50 ms", "p99 ms"], [
        ["locked", len(locked), sorted({r["booked"] for r in locked}), sorted({r["sold_out"] for r in locked}),
         sum(r["errors"] for r in locked), sorted({r["held_in_db"] for r in locked}), round(p50, 1), round(p99, 1)],
        ["lock off", len(unlocked), sorted({r["booked"] for r in unlocked}), sorted({r["sold_out"] for r in unlocked}),
         sum(r["errors"] for r in unlocked), sorted({r["held_in_db"] for r in unlocked}),
         round(percentile([x for r in unlocked for x in r["latencies_ms"]], 50), 1),
         round(percentile([x for r in unlocked for x in r["latencies_ms"]], 99), 1)],
    ]))
    targets = [
        target(f"locked rounds with exactly {args.left} HELD / {args.racers - args.left} SoldOut / 0 errors",
               exact_rounds, len(locked), op=">="),
        target("p99 latency, all locked rounds", p99, 1000.0, " ms"),
        target("lock-off rounds that overbooked", sum(o > 0 for o in overbooked), len(unlocked), op=">="),
    ]
    print(f"\nlock off: rooms sold beyond the {args.left} left, per round: {overbooked}")
    print()
    print(targets_table(targets))
    path = write_results("booking_contention", {
        "parameters": {"rounds": args.rounds, "racers": args.racers, "left": args.left, "taken": TAKEN,
                       "workers": args.workers, "off_rounds": args.off_rounds, "postgres": source,
                       "server": "N x `staysync serve --no-migrate --workers 1`, one loopback port each, one database",
                       "request": "createBooking, 1 room x 1 night, agents of 2 agencies alternating"},
        "locked": {"rounds": [{k: v for k, v in r.items() if k != "latencies_ms"} for r in locked],
                   "p50_ms": round(p50, 1), "p99_ms": round(p99, 1), "exact_rounds": exact_rounds},
        "lock_off": {"rounds": [{k: v for k, v in r.items() if k != "latencies_ms"} for r in unlocked],
                     "overbooked_rooms_per_round": overbooked},
        "targets": targets,
        "pass": all(t["pass"] for t in targets),
    })
    print(f"\nwrote {path.relative_to(PROJECT_ROOT)}")
    return 0 if all(t["pass"] for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
