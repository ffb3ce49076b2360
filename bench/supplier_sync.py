"""Supplier sync: reconcile 2,000 contracts x 365 nights, then the same snapshot again, then one
with 5 % of the contracts changed.

    .venv/bin/python -m bench.supplier_sync [--contracts 2000] [--changed 0.05] [--repeats 3]

The feed is the supplier simulator (app/supplier_sim.py) under uvicorn on a loopback port in a
thread of this process, read by the real HTTP client; the sync runs in this process through the
same use case as syncSupplier (`sources.sync_now`), against a throwaway database. The snapshot:
20 hotels x 100 room types, one contract of 365 nights each (every tenth with two single-night
overrides). The changed snapshot reduces the allotment of 5 % of them on every night and moves
their rate (two events each); reductions apply at once, so the run records them all.

Reported per run: wall time, records/s, and the CPU seconds of this process (fetch, validation,
reconciliation, the ORM) and of the PostgreSQL cluster (the database's share).

Targets (issue 13): an unchanged re-run of 2,000 contracts <= 2 s; a run that changes 5 % <= 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    cpu_used,
    postgres_server_pid,
    scratch_database,
    table,
    target,
    targets_table,
    tree_cpu_seconds,
    write_results,
)

HOTELS, ROOM_TYPES = 20, 100
START = date(2027, 1, 1)
NIGHTS = 365
LIMITS = {"unchanged": 2.0, "changed": 10.0}


def snapshot(contracts: int, changed: frozenset[int], round_: int) -> dict[str, Any]:
    """The feed after `round_` changed rounds: in odd rounds the changed contracts have 3 rooms
    fewer and a higher rate, in even ones they are back (an increase: the bench's supplier
    confirms increases at once). Their `updated_at` moves on every round."""
    hotels = [{"code": f"B{h:02d}", "name": f"Bench hotel {h}",
               "room_types": [{"code": f"R{r:03d}", "name": f"Room {r}"} for r in range(ROOM_TYPES)]}
              for h in range(HOTELS)]
    records = []
    for n in range(contracts):
        touched = n in changed and round_ > 0
        moved = touched and round_ % 2 == 1
        stamp = START - timedelta(days=60) + timedelta(days=round_ if touched else 0)
        record = {
            "id": f"BENCH-{n:05d}", "hotel_code": f"B{n // ROOM_TYPES % HOTELS:02d}",
            "room_type_code": f"R{n % ROOM_TYPES:03d}", "start_date": START.isoformat(),
            "end_date": (START + timedelta(days=NIGHTS - 1)).isoformat(),  # the last night, inclusive
            "allotment": 17 if moved else 20, "rate": {"amount": "110.00" if moved else "100.00", "currency": "EUR"},
            "release_days": 3, "status": "CONFIRMED", "terms": f"Bench contract {n}",
            "updated_at": f"{stamp.isoformat()}T00:00:00Z",
        }
        if n % 10 == 0:
            record["nights"] = [{"date": (START + timedelta(days=40)).isoformat(), "allotment": 12},
                                {"date": (START + timedelta(days=41)).isoformat(), "allotment": 12}]
        records.append(record)
    return {"hotels": hotels, "contracts": records}


async def run(url: str, args: argparse.Namespace, feed: Path, postmaster: int | None) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from app.services.changes import OutboxRelay
    from app.services.context import Services, raw_pool
    from app.services.supply.sources import sync_now
    from app.services.supply.suppliers import SupplierSpec, upsert_supplier
    from app.settings import Settings
    from app.supplier_sim import Switches, create_app
    from db import models
    from db.engine import create_engine, session_factory
    from tests.supply.loopback import Loopback

    async def discard(channel: str, message: str) -> None:
        """Nobody subscribes here."""

    settings = Settings(app_env="development", database_url=url, seed_demo=False)
    engine = create_engine(url, pool_size=4)
    sessions = session_factory(engine)
    services = Services(settings, sessions, OutboxRelay(sessions, discard), raw_pool(settings))
    rng = random.Random(args.seed)
    changed = frozenset(rng.sample(range(args.contracts), int(args.contracts * args.changed)))
    results = []
    feed.write_text(json.dumps(snapshot(args.contracts, changed, 0)))
    try:
        with Loopback(create_app(feed, switches=Switches(page_size=500))) as base:
            from app.services.context import Caller
            from app.auth import Principal, Role

            admin = Caller(Principal(uid="bench", role=Role.ADMIN, agency_code=None))
            await upsert_supplier(services, admin, SupplierSpec(code="BENCH", name="Bench", kind="HTTP",
                                                                base_url=base, confirm_increases_after=1))
            async with sessions() as session:
                supplier_id = await session.scalar(select(models.Supplier.id))
            plan = [("create", 0)] + [("unchanged", 0)] * args.repeats
            for round_ in range(1, args.repeats + 1):
                plan += [("changed", round_), ("unchanged", round_)]
            written = 0
            for case, round_ in plan:
                if round_ != written:
                    feed.write_text(json.dumps(snapshot(args.contracts, changed, round_)))
                    written = round_
                before = tree_cpu_seconds({"postgres": postmaster})
                cpu0, t0 = time.process_time(), time.perf_counter()
                sync_run = await sync_now(services, supplier_id, "MANUAL")
                wall, app_cpu = time.perf_counter() - t0, time.process_time() - cpu0
                used = cpu_used(before, tree_cpu_seconds({"postgres": postmaster}))
                stats = sync_run.stats
                results.append({"case": case, "status": sync_run.status, "wall_s": round(wall, 3),
                                "records_per_s": round(stats["records"] / wall), "stats": stats,
                                "cpu_s": {"app": round(app_cpu, 3), "postgres": used.get("postgres")}})
                print(f"{case:10s} {sync_run.status:9s} {wall:6.2f} s  {stats['records'] / wall:7.0f} records/s  "
                      f"events {stats['events_recorded']:4d}  CPU app {app_cpu:.2f} s, PostgreSQL "
                      f"{used.get('postgres')} s", flush=True)
    finally:
        await services.raw.close()
        await engine.dispose()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.supplier_sync", description=__doc__.split("\n\n")[0])
    parser.add_argument("--contracts", type=int, default=2000)
    parser.add_argument("--changed", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261130)
    args = parser.parse_args(argv)
    with scratch_database() as (url, source), tempfile.TemporaryDirectory() as folder:
        postmaster = postgres_server_pid(url)
        results = asyncio.run(run(url, args, Path(folder) / "feed.json", postmaster))
    rows = [[r["case"], r["status"], r["wall_s"], r["records_per_s"], r["stats"]["events_recorded"],
             r["cpu_s"]["app"], r["cpu_s"]["postgres"]] for r in results]
    print(table(["run", "status", "wall s", "records/s", "events", "app CPU s", "PostgreSQL CPU s"], rows))
    worst = {case: max(r["wall_s"] for r in results if r["case"] == case) for case in LIMITS}
    targets = [target(f"{case} re-run of {args.contracts} contracts (worst)", worst[case], limit, "s")
               for case, limit in LIMITS.items()]
    print(targets_table(targets))
    write_results("supplier_sync", {"source": source, "contracts": args.contracts, "nights": NIGHTS,
                                    "changed": args.changed, "runs": results, "targets": targets})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
