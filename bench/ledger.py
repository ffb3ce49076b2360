"""What a credit agency's ledger costs confirmBooking: the locked read of a confirmation
(`db.bookings.lock_group_raw`, which sums the agency's ledger when it has a credit limit) timed
against ledger size, inside the transaction and the locks it runs under in production.

    APP_ENV=development BENCH_DATABASE_URL=postgresql://... .venv/bin/python -m bench.ledger [--runs 50]

PostgreSQL: BENCH_DATABASE_URL, else TEST_DATABASE_URL, else the embedded server; a throwaway
database. One held group per case, of an agency whose ledger holds N entries (2/3 SALE, 1/3
PAYMENT, bulk-inserted, then VACUUM ANALYZE), with a credit limit and without one (the ledger is
then not read). `--runs` timed reads after 5 warm-ups, each in its own transaction (BEGIN, the
room type's and the agency's advisory locks, the read, ROLLBACK), p50 reported.

Each case is timed twice: with the entries as seeded (no checkpoint: the whole ledger is summed),
then after a confirmation's read moved the agency's checkpoint (db/ledger.py), as one does once it
has read CHECKPOINT_EVERY entries. No target: the figures say what a long ledger costs a credit
check, with and without the checkpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import asyncpg

from bench.common import scratch_database, summarize, table, write_results
from db.bookings import lock_group_raw
from db.engine import plain_url
from db.fastpath import _init, locked_transaction
from db.ledger import CHECKPOINT_EVERY, move_checkpoint

SIZES = (0, 2_000, 20_000, 200_000)

_SEED = """
INSERT INTO hotel (code, name) VALUES ('BENCH', 'Bench');
INSERT INTO room_type (hotel_id, code, name) VALUES (1, 'STD', 'Standard');
"""


async def _case(connection: asyncpg.Connection, entries: int, limit: bool, runs: int) -> dict[str, Any]:
    code = f"A{entries}{'L' if limit else 'N'}"
    agency_id = await connection.fetchval(
        "INSERT INTO agency (code, name, credit_limit, credit_currency) VALUES ($1, $1, $2, $3) RETURNING id",
        code, 10**9 if limit else None, "EUR" if limit else None)
    await connection.execute(
        "INSERT INTO ledger_entry (agency_id, kind, amount, currency, created_by) "
        "SELECT $1, CASE WHEN g % 3 = 0 THEN 'PAYMENT' ELSE 'SALE' END, 100, 'EUR', 'bench' "
        "FROM generate_series(1, $2) AS g", agency_id, entries)
    group_id = await connection.fetchval(
        "INSERT INTO booking_group (reference, agency_id, status, guest_name, expires_at, created_by) "
        "VALUES ($1, $2, 'HELD', 'Bench', now() + interval '1 day', 'bench') RETURNING id", f"BG-{code}", agency_id)
    await connection.execute(
        "INSERT INTO booking (group_id, agency_id, hotel_id, room_type_id, check_in, check_out, rooms, status, "
        "expires_at, total_amount, currency) VALUES ($1, $2, 1, 1, current_date + 30, current_date + 32, 1, 'HELD', "
        "now() + interval '1 day', 200, 'EUR')", group_id, agency_id)
    await connection.execute("VACUUM ANALYZE ledger_entry")
    before = await _time_reads(connection, agency_id, group_id, runs)
    # What a confirmation that read more than CHECKPOINT_EVERY entries does (app.services.bookings
    # confirm_locked), then the same reads again.
    async with locked_transaction(connection, [1], 5000, agency_id=agency_id):
        locked = await lock_group_raw(connection, group_id)
        if locked.ledger_read[0] >= CHECKPOINT_EVERY:
            await move_checkpoint(connection, agency_id, locked.ledger_read[1],
                                  [(e.kind.value, e.amount.currency, e.amount.amount) for e in locked.agency_ledger])
    after = await _time_reads(connection, agency_id, group_id, runs)
    return {"without checkpoint": before, "after a checkpoint": after}


async def _time_reads(connection: asyncpg.Connection, agency_id: int, group_id: int, runs: int) -> dict[str, Any]:
    samples = []
    for n in range(runs + 5):
        try:
            async with locked_transaction(connection, [1], 5000, agency_id=agency_id):
                started = time.perf_counter_ns()
                locked = await lock_group_raw(connection, group_id)
                elapsed = (time.perf_counter_ns() - started) / 1e6
                raise _Done
        except _Done:
            pass
        if n >= 5:
            samples.append(elapsed)
    return summarize(samples)


class _Done(Exception):
    """Ends the timed transaction (rolled back: nothing is confirmed)."""


async def run(url: str, runs: int) -> dict[str, Any]:
    connection = await asyncpg.connect(plain_url(url))
    await _init(connection)
    try:
        await connection.execute(_SEED)
        return {f"{entries} entries, {'limit' if limit else 'no limit'}": await _case(connection, entries, limit, runs)
                for entries in SIZES for limit in (True, False)}
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with scratch_database() as (url, _):
        cases = asyncio.run(run(url, args.runs))
    print(table(["case", "no checkpoint p50 ms", "p95 ms", "after a checkpoint p50 ms", "p95 ms"],
                [[name, c["without checkpoint"]["p50_ms"], c["without checkpoint"]["p95_ms"],
                  c["after a checkpoint"]["p50_ms"], c["after a checkpoint"]["p95_ms"]] for name, c in cases.items()]))
    print(f"wrote {write_results('ledger', {'runs': args.runs, 'cases': cases})}")


if __name__ == "__main__":
    main()
