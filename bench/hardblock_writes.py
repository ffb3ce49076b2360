"""The hardblock writes over real HTTP against a real PostgreSQL, one at a time, and their round
trips to the database counted in-process.

    .venv/bin/python -m bench.hardblock_writes [--runs 40] [--warmup 5] [--keep-db]

PostgreSQL: BENCH_DATABASE_URL, else TEST_DATABASE_URL, else an embedded server in .data/bench.
A throwaway database is created on it, migrated, seeded with one hotel of 20 room types (contracts
of 1,000,000 rooms a night over 400 nights, so every write succeeds), served by `python -m app.cli
serve --no-migrate` in a subprocess (one worker, 127.0.0.1, a free port), and dropped at the end.

Each round is one block's life, by an admin, on the next room type and a random first night:
createHardblock (10 nights x 5 rooms), amendHardblock (4 nights grown to 7), returnHardblockRooms
(1 room of 4 nights), releaseHardblockNights (1 night), bulkExtendHardblocks (that block, 2 nights),
revertHardblockAmendment (the extension; its id read untimed), releaseHardblock. Each answer is
checked. Timed: the POST until the body is read.

Round trips, in-process (the schema executed as an admin, no HTTP), one warmed-up round: on
SQLAlchemy's connections the statements (`before_cursor_execute`) plus what asyncpg sends outside
them (BEGIN, COMMIT, ROLLBACK, the pool's pre-ping); on the asyncpg pool (`RawPool.logging_queries`)
every query. Prepared statements are cached per connection, so a warmed-up round prepares nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx

from bench.booking_support import START, seed_hotel
from bench.common import (
    PROJECT_ROOT,
    RESULTS_DIR,
    InProcessApp,
    admin_token,
    running_server,
    scratch_database,
    summarize,
    table,
    write_results,
)

ROOM_TYPES = 20
BLOCK_NIGHTS, BLOCK_ROOMS = 10, 5
OPERATIONS = ("createHardblock", "amendHardblock", "returnHardblockRooms", "releaseHardblockNights",
              "bulkExtendHardblocks", "revertHardblockAmendment", "releaseHardblock")

ANSWER = "__typename ... on Hardblock { id } ... on UserError { message }"
DOCUMENTS = {
    "createHardblock": f"mutation($input: CreateHardblockInput!) {{ createHardblock(input: $input) {{ {ANSWER} }} }}",
    "amendHardblock": f"mutation($input: HardblockAmendmentInput!) {{ amendHardblock(input: $input) {{ {ANSWER} }} }}",
    "returnHardblockRooms": "mutation($input: ReturnHardblockRoomsInput!) { returnHardblockRooms(input: $input) "
                            f"{{ {ANSWER} }} }}",
    "releaseHardblockNights": "mutation($id: ID!, $dates: [Date!]!) { releaseHardblockNights(id: $id, dates: $dates) "
                              f"{{ {ANSWER} }} }}",
    "bulkExtendHardblocks": "mutation($ids: [ID!]!, $n: Int!) { bulkExtendHardblocks(ids: $ids, nights: $n) "
                            f"{{ {ANSWER} }} }}",
    "revertHardblockAmendment": f"mutation($id: ID!) {{ revertHardblockAmendment(amendmentId: $id) {{ {ANSWER} }} }}",
    "releaseHardblock": f"mutation($id: ID!) {{ releaseHardblock(id: $id) {{ {ANSWER} }} }}",
}
AMENDMENTS = "query($id: ID!) { node(id: $id) { ... on Hardblock { amendments { id } } } }"

Send = Callable[[str, str, dict[str, Any]], Any]  # (operation, document, variables) -> data


def _night(offset: int) -> str:
    return (START + timedelta(days=offset)).isoformat()


async def block_life(send: Send, agency_id: str, room_type_id: str, first: int) -> None:
    """One round: the seven writes of one block, in order (see the module's docstring)."""

    def checked(name: str, answer: Any) -> Any:
        results = answer if isinstance(answer, list) else [answer]
        if any(r["__typename"] != "Hardblock" for r in results):
            raise RuntimeError(f"{name} answered {answer}")
        return answer

    async def write(name: str, variables: dict[str, Any]) -> Any:
        return checked(name, (await send(name, DOCUMENTS[name], variables))[name])

    block = (await write("createHardblock", {"input": {
        "agencyId": agency_id, "roomTypeId": room_type_id, "from": _night(first),
        "to": _night(first + BLOCK_NIGHTS), "rooms": BLOCK_ROOMS}}))["id"]
    await write("amendHardblock", {"input": {"hardblockId": block, "reason": "bench", "changes": [
        {"from": _night(first), "to": _night(first + 4), "rooms": BLOCK_ROOMS + 2}]}})
    await write("returnHardblockRooms", {"input": {"hardblockId": block, "from": _night(first + 5),
                                                   "to": _night(first + 9), "rooms": 1}})
    await write("releaseHardblockNights", {"id": block, "dates": [_night(first + 9)]})
    await write("bulkExtendHardblocks", {"ids": [block], "n": 2})
    amendments = (await send("amendments", AMENDMENTS, {"id": block}))["node"]["amendments"]
    await write("revertHardblockAmendment", {"id": amendments[-1]["id"]})
    await write("releaseHardblock", {"id": block})


# --- over HTTP -------------------------------------------------------------------------------------


def measure_http(base: str, token: str, agency_id: str, room_types: list[str], runs: int, warmup: int,
                 rnd: random.Random) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {name: [] for name in OPERATIONS}
    timed = False

    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:

        async def send(name: str, document: str, variables: dict[str, Any]) -> Any:
            t0 = time.perf_counter_ns()
            response = client.post("/graphql", json={"query": document, "variables": variables})  # body read
            elapsed = (time.perf_counter_ns() - t0) / 1e6
            response.raise_for_status()
            body = response.json()
            if body.get("errors"):
                raise RuntimeError(f"{name}: {body['errors']}")
            if timed and name in timings:
                timings[name].append(elapsed)
            return body["data"]

        async def rounds() -> None:
            nonlocal timed
            for n in range(warmup + runs):
                timed = n >= warmup
                await block_life(send, agency_id, room_types[n % len(room_types)], rnd.randrange(0, 300))

        asyncio.run(rounds())
    return timings


# --- in-process: round trips -------------------------------------------------------------------------


@contextmanager
def counting_round_trips(app: InProcessApp) -> Any:
    """`sent()` per operation: {"sqlalchemy": [...], "asyncpg": [...]} of what went to the database
    while `capture(name)` was current."""
    from sqlalchemy import event as sa_event

    current: dict[str, Any] = {"name": None}
    sent: dict[str, dict[str, list[str]]] = {}

    def note(kind: str, text: str) -> None:
        if current["name"] is not None:
            sent.setdefault(current["name"], {"sqlalchemy": [], "asyncpg": []})[kind].append(" ".join(text.split()))

    def statement(conn: Any, cursor: Any, text: str, *args: Any) -> None:
        note("sqlalchemy", text)

    def outside_statements(record: Any) -> None:  # BEGIN, COMMIT, ROLLBACK, the pre-ping's ";"
        note("sqlalchemy", record.query)

    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(outside_statements)

    engine = app.engine.sync_engine
    sa_event.listen(engine, "before_cursor_execute", statement)
    sa_event.listen(engine, "connect", on_connect)
    try:
        with app.raw.logging_queries() as raw_queries:
            def capture(name: str | None) -> None:
                if current["name"] is not None:
                    sent.setdefault(current["name"], {"sqlalchemy": [], "asyncpg": []})["asyncpg"].extend(
                        " ".join(q.split()) for q in raw_queries)
                raw_queries.clear()
                current["name"] = name

            yield capture, sent
    finally:
        sa_event.remove(engine, "before_cursor_execute", statement)
        sa_event.remove(engine, "connect", on_connect)


async def round_trips(url: str, agency_id: str, room_types: list[str]) -> dict[str, dict[str, list[str]]]:
    app = InProcessApp(url)
    try:
        with counting_round_trips(app) as (capture, sent):
            async def send(name: str, document: str, variables: dict[str, Any]) -> Any:
                capture(name if name in DOCUMENTS else None)
                try:
                    return (await app.execute(document, variables)).data
                finally:
                    capture(None)

            for n in range(3):  # warm up: connections made, statements prepared
                await block_life(send, agency_id, room_types[n], 320 + n)
            sent.clear()
            await block_life(send, agency_id, room_types[3], 330)
        return dict(sent)
    finally:
        await app.dispose()


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hardblock_writes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="timed rounds (default 40)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed rounds first (default 5)")
    parser.add_argument("--seed", type=int, default=20260501)
    parser.add_argument("--keep-db", action="store_true", help="do not drop the throwaway database")
    args = parser.parse_args(argv)

    from app.api.ids import to_global_id

    rnd = random.Random(args.seed)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with open("/proc/loadavg") as loadavg:
        load_before = loadavg.read().split()[:3]
    with scratch_database(keep=args.keep_db) as (url, source):
        hotel = asyncio.run(seed_hotel(url, "BENCH-HB", ROOM_TYPES, 1_000_000))
        agency = to_global_id("Agency", next(iter(hotel.agency_ids.values())))
        room_types = [to_global_id("RoomType", rt) for rt in hotel.room_type_ids]
        with running_server(url, RESULTS_DIR / "hardblock_writes.server.log") as (base, process):
            print(f"server: python -m app.cli serve --no-migrate on {base} (pid {process.pid}, 1 worker)", flush=True)
            timings = measure_http(base, admin_token(), agency, room_types, args.runs, args.warmup, rnd)
        sent = asyncio.run(round_trips(url, agency, room_types))
    with open("/proc/loadavg") as loadavg:
        load_after = loadavg.read().split()[:3]

    results = {name: {"request": summarize(timings[name]),
                      "round_trips": {kind: len(queries) for kind, queries in sent[name].items()},
                      "sent": sent[name]} for name in OPERATIONS}
    print()
    print(table(["operation", "req p50", "req p95", "req mean", "SQLAlchemy round trips", "asyncpg round trips"],
                [[name, r["request"]["p50_ms"], r["request"]["p95_ms"], r["request"]["mean_ms"],
                  r["round_trips"]["sqlalchemy"], r["round_trips"]["asyncpg"]] for name, r in results.items()]))
    print(f"(ms over HTTP, {args.runs} rounds; round trips in-process, one warmed-up round; load average "
          f"{' '.join(load_before)} before, {' '.join(load_after)} after)")
    path = write_results("hardblock_writes", {
        "parameters": {"runs": args.runs, "warmup": args.warmup, "seed": args.seed, "postgres": source,
                       "start": START, "room_types": ROOM_TYPES, "load_average": [load_before, load_after],
                       "server": "python -m app.cli serve --no-migrate, 1 worker, subprocess; client httpx keep-alive"},
        "operations": results,
    })
    print(f"\nwrote {path.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
