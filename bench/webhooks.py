"""Partner webhooks (issue 15): deliveries/s, delivery lag, and what recording and sending events
costs createBooking.

    APP_ENV=development BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python -m bench.webhooks [--events 10000] [--endpoints 10] [--quick]

Everything on loopback, on a throwaway database (bench.common.scratch_database).

Receivers: one child process (`--_receiver`) serving `--endpoints` ports with a minimal asyncio
HTTP/1.1 server (keep-alive, answers 200 at once), recording per request its `webhook-id` and
`time.time()` of arrival; every `--verify-every`-th request is verified with the `standardwebhooks`
package (the reference implementation) against its endpoint's secret.

Endpoints: `--endpoints` staff endpoints (agency NULL, so each hears every agency's events), each
subscribed to `booking_group.held`, one per receiver port. So every booking_group.held event is
`--endpoints` deliveries (10,000 events x 10 endpoints = 100,000 deliveries).

1. Deliveries/s. Dispatchers: `--dispatch-workers` child processes (`--_dispatcher`), each running
   `--dispatch-coroutines` copies of the real `app.services.jobs.run_webhook_dispatcher` (real
   `fan_out` + `deliver_due`, httpx, signing), as that many app workers would. Events: this process
   commits `--events` bookings in transactions of `--batch`: booking_group + booking rows and a
   `booking_group.created` audit entry each, so the audit_log trigger records the partner_event
   exactly as for a real createBooking (the fan-out reads the group, bookings, agency and audit
   entry as it does in production; the bookings themselves skip the API). Deliveries/s = deliveries
   received / (last arrival - first event's created_at); the drain rate after the first arrival is
   shown too. Lag per delivery = arrival - partner_event.created_at (the audit entry's `at`: the
   write's transaction time, a few ms before its commit). Part 1 waits at most `--timeout` seconds
   (90) from the first event, so the default run stays near 5 minutes on a slow machine; then
   deliveries/s counts what arrived by then, and the JSON says how many of the 100,000 that was.
2. Lag at a light steady rate: two app servers (`staysync serve --workers 1` each, their own
   dispatchers at the default NOTIFY_INTERVAL_S), `--light-rate` createBooking/s through the API
   (an httpx client paced by this process) for `--light-seconds`, first with all the endpoints
   enabled (20 bookings/s x 10 = 200 deliveries/s), then with one (20 deliveries/s: the lag the
   polling interval gives when the dispatchers keep up); lag as above, waiting up to
   `--drain-timeout` for the deliveries after the last booking.
3. Write-path overhead: createBooking over HTTP from wrk as bench.booking_throughput does (two app
   servers, 32 connections, spread over 50 room types), in three cases, alternating, best of
   `--repeats`: `no endpoints` (events recorded and fanned out to nobody), `10 endpoints` (every
   booking is 10 deliveries, the servers' dispatchers sending while wrk runs; after the run the
   backlog is drained before the next case), `no trigger` (the audit_log and outbox triggers
   disabled: no events recorded at all). Target: 10 endpoints >= 0.9 x no endpoints bookings/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    EMULATOR_HOST,
    PROJECT_ID,
    PROJECT_ROOT,
    RESULTS_DIR,
    percentile,
    postgres_server_pid,
    scratch_database,
    table,
    target,
    targets_table,
    tree_cpu_seconds,
    cpu_used,
    write_results,
)

NAME = "webhooks"
EVENT = "booking_group.held"
OVERHEAD_LIMIT = 0.10
ROOM_TYPES = 50
NIGHTS = 365
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


# --- the receivers (child process) ---------------------------------------------------------------


def receiver_main(secrets: list[str], out: Path, status: Path, verify_every: int) -> None:
    from standardwebhooks import Webhook

    hooks = [Webhook(s) for s in secrets]
    arrivals: list[tuple[str, float, int]] = []
    checks = {"verified": 0, "failed": 0, "seen": 0}

    class Hook(asyncio.Protocol):
        def __init__(self, index: int) -> None:
            self.index = index
            self.buf = bytearray()

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while True:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                headers = {}
                for line in bytes(self.buf[:end]).decode("latin-1").split("\r\n")[1:]:
                    key, _, value = line.partition(":")
                    headers[key.strip().lower()] = value.strip()
                size = int(headers.get("content-length", "0"))
                if len(self.buf) < end + 4 + size:
                    return
                body = bytes(self.buf[end + 4:end + 4 + size])
                del self.buf[:end + 4 + size]
                arrivals.append((headers.get("webhook-id", ""), time.time(), self.index))
                checks["seen"] += 1
                if verify_every and checks["seen"] % verify_every == 1:
                    try:
                        hooks[self.index].verify(body.decode(), headers)
                        checks["verified"] += 1
                    except Exception:
                        checks["failed"] += 1
                self.transport.write(RESPONSE)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        ports = []
        for index in range(len(secrets)):
            server = await loop.create_server(lambda i=index: Hook(i), "127.0.0.1", 0, backlog=1024)
            ports.append(server.sockets[0].getsockname()[1])
        print(json.dumps(ports), flush=True)
        stop = asyncio.Event()

        def dump() -> None:
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps({"arrivals": arrivals, "checks": checks}))
            tmp.rename(out)
            arrivals.clear()
            for k in checks:
                checks[k] = 0

        loop.add_signal_handler(signal.SIGUSR1, dump)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        while not stop.is_set():
            status.write_text(str(len(arrivals)))
            try:
                await asyncio.wait_for(stop.wait(), 0.05)
            except TimeoutError:
                pass

    asyncio.run(run())


class Receivers:
    """The receiver child process: its ports, the count of arrivals since the last collect()."""

    def __init__(self, secrets: list[str], verify_every: int) -> None:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        self.out = RESULTS_DIR / f"{NAME}.arrivals.json"
        self.status = RESULTS_DIR / f"{NAME}.receiver-status"
        self.status.write_text("0")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.webhooks", "--_receiver", json.dumps(secrets), "--verify-every",
             str(verify_every)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE)
        self.ports = json.loads(self.process.stdout.readline())  # type: ignore[union-attr]
        self.urls = [f"http://127.0.0.1:{port}/hooks" for port in self.ports]

    def count(self) -> int:
        try:
            return int(self.status.read_text() or 0)
        except (OSError, ValueError):
            return 0

    def collect(self) -> dict[str, Any]:
        """Every arrival since the last collect (and reset)."""
        self.out.unlink(missing_ok=True)
        self.process.send_signal(signal.SIGUSR1)
        while not self.out.exists():
            time.sleep(0.02)
        data = json.loads(self.out.read_text())
        self.out.unlink()
        return data

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


# --- dispatchers (child processes) ---------------------------------------------------------------


def dispatcher_main(url: str, coroutines: int, interval: float, profile: str | None) -> None:
    from app.services.changes import OutboxRelay
    from app.services.context import Services, raw_pool
    from app.services.jobs import run_webhook_dispatcher
    from app.settings import Settings
    from bench.common import _discard
    from db.engine import create_engine, session_factory

    async def run() -> None:
        settings = Settings(database_url=url, app_env="development", firebase_project_id=PROJECT_ID,
                            firebase_auth_emulator_host=EMULATOR_HOST, notify_interval_s=interval)
        engine = create_engine(url, pool_size=coroutines + 1)
        sessions = session_factory(engine)
        services = Services(settings, sessions, OutboxRelay(sessions, _discard), raw_pool(settings))
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        tasks = [asyncio.create_task(run_webhook_dispatcher(services, interval)) for _ in range(coroutines)]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await services.raw.close()
        await engine.dispose()

    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        asyncio.run(run())
        profiler.disable()
        profiler.dump_stats(profile.replace(".txt", ".prof"))
        with open(profile, "w") as file:
            stats = pstats.Stats(profiler, stream=file)
            stats.sort_stats("tottime").print_stats(40)
            stats.sort_stats("cumulative").print_stats(40)
            stats.print_callers("find_spec|socket.*send|connect' of")
    else:
        asyncio.run(run())


def start_dispatchers(url: str, workers: int, coroutines: int, interval: float, profile: bool) -> list[subprocess.Popen[bytes]]:
    processes = []
    for n in range(workers):
        command = [sys.executable, "-m", "bench.webhooks", "--_dispatcher", url, "--dispatch-coroutines",
                   str(coroutines), "--interval", str(interval)]
        if profile and n == 0:
            command += ["--_profile", str(RESULTS_DIR / f"{NAME}.dispatcher.profile.txt")]
        log = (RESULTS_DIR / f"{NAME}.dispatcher{n}.log").open("wb")
        processes.append(subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT))
    return processes


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the database --------------------------------------------------------------------------------


async def sql(url: str, *statements: tuple[str, tuple[Any, ...]], fetch: bool = False) -> Any:
    import asyncpg

    from db.engine import plain_url

    connection = await asyncpg.connect(plain_url(url))
    try:
        result = None
        for statement, args in statements:
            result = await (connection.fetch(statement, *args) if fetch else connection.execute(statement, *args))
        return result
    finally:
        await connection.close()


async def create_endpoints(url: str, urls: list[str], secrets: list[str]) -> list[int]:
    rows = await sql(url, ("INSERT INTO webhook_endpoint (agency_id, url, events, secret, created_by) "
                           "SELECT NULL, u, ARRAY[$3::text], s, 'bench' FROM unnest($1::text[], $2::text[]) AS x(u, s) "
                           "RETURNING id", (urls, secrets, EVENT)), fetch=True)
    return [r["id"] for r in rows]


async def produce_events(url: str, hotel: Any, events: int, batch: int) -> list[float]:
    """`events` bookings committed in transactions of `batch`, each with its booking_group.created
    audit entry (so the trigger records its partner_event); the commit times."""
    import asyncpg

    from db.engine import plain_url

    agencies = list(hotel.agency_ids.values())
    connection = await asyncpg.connect(plain_url(url))
    commits = []
    try:
        for start in range(0, events, batch):
            n = min(batch, events - start)
            async with connection.transaction():
                ids = [r["id"] for r in await connection.fetch(
                    "INSERT INTO booking_group (reference, agency_id, status, guest_name, expires_at, created_by, "
                    "created_at) SELECT 'BGW-' || $1::int || '-' || i, ($2::int[])[1 + i % cardinality($2::int[])], "
                    "'HELD', 'Bench Guest', now() + interval '1 day', 'bench', now() "
                    "FROM generate_series(1, $3::int) AS i RETURNING id", start, agencies, n)]
                await connection.execute(
                    "INSERT INTO booking (group_id, agency_id, hotel_id, room_type_id, check_in, check_out, rooms, "
                    "status, expires_at, total_amount, currency) "
                    "SELECT g.id, g.agency_id, $2, ($3::int[])[1 + g.id % cardinality($3::int[])], $4::date + g.id % 300, "
                    "$4::date + g.id % 300 + 1, 1, 'HELD', g.expires_at, 100.00, 'EUR' "
                    "FROM booking_group AS g WHERE g.id = ANY($1::int[])", ids, hotel.id, hotel.room_type_ids,
                    _start())
                await connection.execute(
                    "INSERT INTO audit_log (at, actor_uid, actor_role, agency_code, action, entity_type, entity_id, "
                    "after) SELECT now(), 'bench', 'agent', a.code, 'booking_group.created', 'BookingGroup', g.id, "
                    "jsonb_build_object('status', 'HELD', 'expires_at', g.expires_at) "
                    "FROM booking_group AS g JOIN agency AS a ON a.id = g.agency_id WHERE g.id = ANY($1::int[]) "
                    "ORDER BY g.id", ids)
            commits.append(time.time())
    finally:
        await connection.close()
    return commits


def _start() -> Any:
    from bench.booking_support import START

    return START


async def event_times(url: str) -> dict[int, float]:
    rows = await sql(url, ("SELECT id, extract(epoch FROM created_at)::float8 AS t FROM partner_event "
                           "WHERE type = $1", (EVENT,)), fetch=True)
    return {r["id"]: r["t"] for r in rows}


async def delivery_state(url: str) -> dict[str, Any]:
    rows = await sql(url, ("SELECT status, count(*) AS n, sum(attempts) AS attempts FROM webhook_delivery "
                           "GROUP BY status", ()), fetch=True)
    pending = await sql(url, ("SELECT count(*) AS n FROM partner_event WHERE fanned_out_at IS NULL", ()), fetch=True)
    errors = await sql(url, ("SELECT last_error, count(*) AS n FROM webhook_delivery WHERE last_error IS NOT NULL "
                             "GROUP BY 1 ORDER BY 2 DESC LIMIT 3", ()), fetch=True)
    return {"deliveries": {r["status"]: r["n"] for r in rows}, "errors": {r["last_error"]: r["n"] for r in errors},
            "attempts": sum(int(r["attempts"] or 0) for r in rows),
            "events_not_fanned_out": pending[0]["n"]}


def lag_stats(arrivals: list[list[Any]], created: dict[int, float]) -> dict[str, Any]:
    lags = []
    ids = set()
    for webhook_id, at, _ in arrivals:
        ids.add(webhook_id)
        event_id = int(webhook_id.split("_")[1])
        if event_id in created:
            lags.append((at - created[event_id]) * 1000)
    if not lags:
        return {"n": 0}
    return {"n": len(lags), "distinct_webhook_ids": len(ids), "duplicates": len(arrivals) - len(ids),
            "p50_ms": round(percentile(lags, 50), 1), "p90_ms": round(percentile(lags, 90), 1),
            "p99_ms": round(percentile(lags, 99), 1), "max_ms": round(max(lags), 1), "min_ms": round(min(lags), 1)}


def wait_for(receivers: Receivers, expected: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if receivers.count() >= expected:
            return True
        time.sleep(0.05)
    return False


# --- 1. deliveries/s -----------------------------------------------------------------------------


def throughput(url: str, hotel: Any, receivers: Receivers, args: argparse.Namespace, postmaster: int | None) -> dict[str, Any]:
    expected = args.events * args.endpoints
    dispatchers = start_dispatchers(url, args.dispatch_workers, args.dispatch_coroutines, args.interval, args.profile)
    roots = {**{f"dispatcher{n}": p.pid for n, p in enumerate(dispatchers)}, "receiver": receivers.process.pid,
             "postgres": postmaster}
    try:
        time.sleep(1.0)  # let them start and find nothing to do
        before = tree_cpu_seconds(roots)
        t0 = time.time()
        commits = asyncio.run(produce_events(url, hotel, args.events, args.batch))
        produced = time.time()
        done = wait_for(receivers, expected, args.timeout)
        finished = time.time()
        after = tree_cpu_seconds(roots)
    finally:
        stop_processes(dispatchers)
    data = receivers.collect()
    arrivals = data["arrivals"]
    created = asyncio.run(event_times(url))
    state = asyncio.run(delivery_state(url))
    first_event = min(created.values())
    last = max(a[1] for a in arrivals)
    first_arrival = min(a[1] for a in arrivals)
    cpu = cpu_used(before, after)
    dispatcher_cpu = sum(v or 0 for k, v in cpu.items() if k.startswith("dispatcher"))
    n = len(arrivals)
    return {
        "events": args.events, "endpoints": args.endpoints, "expected_deliveries": expected, "received": n,
        "complete": done and n >= expected,
        "dispatchers": f"{args.dispatch_workers} processes x {args.dispatch_coroutines} run_webhook_dispatcher "
                       f"(interval {args.interval} s, batch 100)",
        "produce_s": round(produced - t0, 2), "events_per_s_committed": round(args.events / (produced - t0), 1),
        "transactions": len(commits),
        "end_to_end_s": round(last - first_event, 2),
        "deliveries_per_s": round(n / (last - first_event), 1),
        "drain_deliveries_per_s": round(n / (last - first_arrival), 1) if last > first_arrival else None,
        "waited_s": round(finished - t0, 2),
        "lag": lag_stats(arrivals, created),
        "signature_checks": data["checks"],
        "database": state,
        "cpu_s": cpu,
        "cpu_ms_per_delivery": {"dispatchers": round(dispatcher_cpu * 1000 / max(n, 1), 3),
                                "receiver": round((cpu.get("receiver") or 0) * 1000 / max(n, 1), 3),
                                "postgres": None if cpu.get("postgres") is None
                                else round(cpu["postgres"] * 1000 / max(n, 1), 3)},
    }


# --- 2. light steady rate through the API --------------------------------------------------------


async def paced_bookings(bases: list[str], hotel: Any, rate: float, seconds: float) -> dict[str, Any]:
    import httpx

    from app.api.ids import to_global_id
    from bench.booking_support import START, booking_template, tokens

    template = booking_template()
    token = tokens()
    room_types = [to_global_id("RoomType", rt) for rt in hotel.room_type_ids]
    outcomes: dict[str, int] = {}
    latencies = []
    total = int(rate * seconds)
    async with httpx.AsyncClient(timeout=30) as client:
        async def one(n: int) -> None:
            night = START + timedelta(days=n % NIGHTS)
            body = template % (f"light-{time.time_ns()}-{n}", room_types[n % len(room_types)], night.isoformat(),
                               (night + timedelta(days=1)).isoformat())
            t0 = time.perf_counter()
            response = await client.post(f"{bases[n % len(bases)]}/graphql", content=body,
                                         headers={"authorization": f"Bearer {token[n % len(token)]}",
                                                  "content-type": "application/json"})
            latencies.append((time.perf_counter() - t0) * 1000)
            kind = response.json().get("data", {}).get("createBooking", {}).get("__typename", "error") \
                if response.status_code == 200 else f"HTTP {response.status_code}"
            outcomes[kind] = outcomes.get(kind, 0) + 1

        start = time.perf_counter()
        tasks = []
        for n in range(total):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return {"requests": total, "outcomes": outcomes, "request_p50_ms": round(percentile(latencies, 50), 1),
            "request_p99_ms": round(percentile(latencies, 99), 1)}


def light(url: str, servers: Any, hotel: Any, receivers: Receivers, args: argparse.Namespace,
          endpoints: int) -> dict[str, Any]:
    """`--light-rate` bookings/s through the API with `endpoints` of the endpoints enabled."""
    asyncio.run(sql(url, ("UPDATE webhook_endpoint SET enabled = id IN (SELECT id FROM webhook_endpoint ORDER BY id "
                          "LIMIT $1)", (endpoints,))))
    receivers.collect()  # start afresh
    sent = asyncio.run(paced_bookings(servers.bases, hotel, args.light_rate, args.light_seconds))
    booked = sent["outcomes"].get("BookingGroup", 0)
    expected = booked * endpoints
    complete = wait_for(receivers, expected, args.drain_timeout)
    time.sleep(0.3)
    data = receivers.collect()
    created = asyncio.run(event_times(url))
    left = drain(url, 0)
    return {"rate_per_s": args.light_rate, "seconds": args.light_seconds, "endpoints": endpoints, **sent,
            "expected_deliveries": expected, "received": len(data["arrivals"]), "complete": complete,
            "abandoned_after_wait": left["abandoned"], "lag": lag_stats(data["arrivals"], created),
            "signature_checks": data["checks"]}


# --- 3. write-path overhead ----------------------------------------------------------------------


CASES = ("no endpoints", "10 endpoints", "no trigger")


async def set_case(url: str, case: str) -> None:
    enabled = "true" if case == "10 endpoints" else "false"
    trigger = "DISABLE" if case == "no trigger" else "ENABLE"
    await sql(url, (f"UPDATE webhook_endpoint SET enabled = {enabled}", ()),
              (f"ALTER TABLE audit_log {trigger} TRIGGER audit_log_partner_events", ()),
              (f"ALTER TABLE outbox {trigger} TRIGGER outbox_partner_events", ()))


def drain(url: str, timeout_s: float) -> dict[str, Any]:
    """Wait until the servers' dispatchers have fanned out every event and sent every delivery."""
    t0 = time.monotonic()
    while True:
        state = asyncio.run(delivery_state(url))
        pending = state["deliveries"].get("PENDING", 0) + state["deliveries"].get("FAILED", 0)
        if (not pending and not state["events_not_fanned_out"]) or time.monotonic() - t0 > timeout_s:
            break
        time.sleep(0.5)
    abandoned = 0
    if pending:
        result = asyncio.run(sql(url, ("UPDATE webhook_delivery SET status = 'GAVE_UP' "
                                       "WHERE status IN ('PENDING', 'FAILED')", ())))
        abandoned = int(result.split()[-1])
    return {"drain_s": round(time.monotonic() - t0, 1), "abandoned": abandoned,
            "events_not_fanned_out": state["events_not_fanned_out"]}


def overhead(url: str, servers: Any, hotel: Any, receivers: Receivers, args: argparse.Namespace,
             postmaster: int | None) -> dict[str, Any]:
    from bench.booking_support import START, booking_config, booking_outcomes, tokens
    from bench.loadgen import cpu_per, run_wrk

    config = booking_config(hotel.room_type_ids, [START + timedelta(days=n) for n in range(NIGHTS)], tokens())
    common = {"name": NAME, "connections": args.clients, "threads": len(servers.bases)}
    runs: dict[str, list[dict[str, Any]]] = {case: [] for case in CASES}
    for repeat in range(args.repeats):
        order = CASES if repeat % 2 == 0 else tuple(reversed(CASES))
        for case in order:
            asyncio.run(set_case(url, case))
            receivers.collect()
            delivered_before = asyncio.run(delivery_state(url))["deliveries"].get("DELIVERED", 0)
            if args.warmup:
                run_wrk("create_booking", servers.bases, {**config, "seed": repeat}, seconds=args.warmup, **common)
            run = run_wrk("create_booking", servers.bases, {**config, "seed": 100 + repeat}, seconds=args.seconds,
                          cpu_roots={**servers.cpu_roots(), "postgres": postmaster}, **common)
            outcomes = booking_outcomes(run)
            during = asyncio.run(delivery_state(url))["deliveries"].get("DELIVERED", 0) - delivered_before
            result = {"bookings_per_s": round(outcomes["booked"] / run["seconds"], 1), **outcomes,
                      "p50_ms": run["latency_ms"]["p50"], "p99_ms": run["latency_ms"]["p99"],
                      "seconds": run["seconds"], "cpu_s": run["cpu_s"],
                      "cpu_ms_per_booking": cpu_per(run, outcomes["booked"]),
                      "delivered_by_end_of_run": during}
            if case == "10 endpoints":
                result["drain"] = drain(url, args.drain_timeout)
                result["received"] = receivers.count()
            runs[case].append(result)
            cpu = result["cpu_ms_per_booking"]
            print(f"  {case:13s} repeat {repeat + 1}: {result['bookings_per_s']:7.1f} bookings/s  p50 "
                  f"{result['p50_ms']} ms  p99 {result['p99_ms']} ms  errors {result['errors']}  server CPU "
                  f"{cpu['server']} ms/booking  PostgreSQL {cpu['postgres']} ms/booking"
                  + (f"  delivered during run {during}, drained in {result['drain']['drain_s']} s"
                     f" (abandoned {result['drain']['abandoned']})" if "drain" in result else ""), flush=True)
    asyncio.run(set_case(url, "no endpoints"))
    best = {case: max(values, key=lambda r: r["bookings_per_s"]) for case, values in runs.items()}
    return {"runs": runs, "best": best}


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--batch", type=int, default=200, help="events per committed transaction (default 200)")
    parser.add_argument("--dispatch-workers", type=int, default=2, help="dispatcher processes (default 2)")
    parser.add_argument("--dispatch-coroutines", type=int, default=2,
                        help="run_webhook_dispatcher coroutines per process (default 2)")
    parser.add_argument("--interval", type=float, default=1.0, help="their NOTIFY interval, s (default 1.0)")
    parser.add_argument("--timeout", type=float, default=90,
                        help="part 1: stop waiting for deliveries after this many seconds from the first event; "
                             "deliveries/s counts what arrived by then (default 90)")
    parser.add_argument("--verify-every", type=int, default=100, help="verify every n-th request's signature")
    parser.add_argument("--light-rate", type=float, default=20)
    parser.add_argument("--light-seconds", type=float, default=15)
    parser.add_argument("--seconds", type=int, default=8, help="wrk measured seconds per overhead case")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--drain-timeout", type=float, default=45)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: throughput,light,overhead")
    parser.add_argument("--quick", action="store_true",
                        help="a short run: 2,000 events, 8 s light, 5 s overhead runs, 1 repeat")
    parser.add_argument("--profile", action="store_true", help="cProfile the first dispatcher process")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--_receiver", help=argparse.SUPPRESS)
    parser.add_argument("--_dispatcher", help=argparse.SUPPRESS)
    parser.add_argument("--_profile", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._receiver:
        receiver_main(json.loads(args._receiver), RESULTS_DIR / f"{NAME}.arrivals.json",
                      RESULTS_DIR / f"{NAME}.receiver-status", args.verify_every)
        return 0
    if args._dispatcher:
        dispatcher_main(args._dispatcher, args.dispatch_coroutines, args.interval, args._profile)
        return 0
    if args.quick:
        args.events, args.light_seconds, args.seconds, args.warmup, args.repeats = 2000, 8, 5, 1, 1
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    from app.services.webhook_signatures import new_secret
    from bench.booking_support import app_servers, seed_hotel
    from bench.loadgen import ensure_wrk

    if "overhead" not in skip:
        ensure_wrk()
    load_before = os.getloadavg()
    secrets = [new_secret() for _ in range(args.endpoints)]
    results: dict[str, Any] = {}
    receivers = Receivers(secrets, args.verify_every)
    try:
        with scratch_database(keep=args.keep_db) as (url, source):
            postmaster = postgres_server_pid(url)
            hotel = asyncio.run(seed_hotel(url, "HOOKS", ROOM_TYPES, allotment=1_000_000, nights=NIGHTS + 5))
            asyncio.run(create_endpoints(url, receivers.urls, secrets))
            if "throughput" not in skip:
                print(f"1. {args.events} events x {args.endpoints} endpoints, {args.dispatch_workers} dispatcher "
                      f"processes x {args.dispatch_coroutines} coroutines ...", flush=True)
                results["throughput"] = throughput(url, hotel, receivers, args, postmaster)
                t = results["throughput"]
                print(f"   {t['received']}/{t['expected_deliveries']} deliveries in {t['end_to_end_s']} s: "
                      f"{t['deliveries_per_s']}/s end to end, {t['drain_deliveries_per_s']}/s after the first; "
                      f"lag p50 {t['lag'].get('p50_ms')} ms p99 {t['lag'].get('p99_ms')} ms; "
                      f"CPU ms/delivery {t['cpu_ms_per_delivery']}; {t['database']}", flush=True)
                # Clear the backlog's rows (and what was not fanned out in time) so the next parts
                # start on small tables and do not inherit part 1's backlog.
                asyncio.run(sql(url, ("DELETE FROM webhook_attempt", ()), ("DELETE FROM webhook_delivery", ()),
                                ("UPDATE partner_event SET fanned_out_at = now() WHERE fanned_out_at IS NULL", ()),
                                ("VACUUM ANALYZE webhook_delivery", ()), ("VACUUM ANALYZE partner_event", ())))
            if not {"light", "overhead"} <= skip:
                with app_servers(url, 2, NAME) as servers:
                    if "light" not in skip:
                        print(f"2. {args.light_rate:g} createBooking/s through the API for {args.light_seconds:g} s, "
                              "dispatchers in the 2 servers at the default interval ...", flush=True)
                        for key, n in (("light", args.endpoints), ("light_1", 1)):
                            results[key] = light(url, servers, hotel, receivers, args, n)
                            l = results[key]
                            print(f"   {n} endpoint(s): {l['outcomes']}, {l['received']}/{l['expected_deliveries']} "
                                  f"deliveries; lag p50 {l['lag'].get('p50_ms')} ms p99 {l['lag'].get('p99_ms')} ms",
                                  flush=True)
                    if "overhead" not in skip:
                        print(f"3. createBooking over HTTP (wrk, {args.clients} connections, 2 servers), "
                              f"{args.repeats} alternating repeats ...", flush=True)
                        results["overhead"] = overhead(url, servers, hotel, receivers, args, postmaster)
    finally:
        receivers.stop()
        load_after = os.getloadavg()

    targets = []
    rows = []
    if "throughput" in results:
        t = results["throughput"]
        rows.append(["deliveries/s end to end (backlog of 10 x events)", f"{t['deliveries_per_s']:.0f}/s",
                     f"{t['received']}/{t['expected_deliveries']} in {t['end_to_end_s']} s"])
        rows.append(["lag under that load p50 / p99", f"{t['lag'].get('p50_ms')} / {t['lag'].get('p99_ms')} ms", ""])
        # Not a throughput target (the issue sets none): every delivery that arrived arrived once,
        # and none failed. How many of the 100,000 arrived within --timeout is in the table above.
        failed = sum(n for k, n in t["database"]["deliveries"].items() if k in ("FAILED", "GAVE_UP"))
        targets.append(target("duplicate or failed deliveries", t["lag"].get("duplicates", 0) + failed, 0))
        targets.append(target("signatures failing (standardwebhooks sample)", t["signature_checks"]["failed"], 0))
    for key in ("light", "light_1"):
        if key not in results:
            continue
        l = results[key]
        rows.append([f"lag at {l['rate_per_s']:g} bookings/s x {l['endpoints']} endpoint(s) p50 / p99",
                     f"{l['lag'].get('p50_ms')} / {l['lag'].get('p99_ms')} ms",
                     f"{l['received']}/{l['expected_deliveries']} deliveries"])
        if l["lag"].get("p99_ms") is not None:
            # Not a number from the issue: a poll interval (NOTIFY_INTERVAL_S, 1 s) plus a second to send.
            targets.append(target(f"lag p99 at {l['rate_per_s']:g}/s x {l['endpoints']} (<= interval + 1 s)",
                                  l["lag"]["p99_ms"] / 1000, 2.0, " s"))
    if "overhead" in results:
        best = results["overhead"]["best"]
        for case in CASES:
            b = best[case]
            rows.append([f"createBooking {case}", f"{b['bookings_per_s']:.0f}/s",
                         f"p50 {b['p50_ms']} ms p99 {b['p99_ms']} ms server CPU {b['cpu_ms_per_booking']['server']} ms"])
        base = best["no endpoints"]["bookings_per_s"]
        slowdown = 1 - best["10 endpoints"]["bookings_per_s"] / base
        results["overhead"]["slowdown_10_endpoints"] = round(slowdown, 3)
        results["overhead"]["slowdown_trigger"] = round(1 - base / best["no trigger"]["bookings_per_s"], 3)
        targets.append(target("createBooking slower with 10 endpoints", slowdown * 100, OVERHEAD_LIMIT * 100, " %"))
    print()
    print(table(["figure", "value", "detail"], rows))
    print()
    print(targets_table(targets))
    print(f"\nload average before {load_before}, after {load_after} ({os.cpu_count()} CPUs)")
    if args.profile:
        print(f"dispatcher profile: {RESULTS_DIR / f'{NAME}.dispatcher.profile.txt'}")
    path = write_results(NAME, {"parameters": {k: v for k, v in vars(args).items() if not k.startswith("_")},
                                "load_average": {"before": load_before, "after": load_after},
                                **results, "targets": targets, "pass": all(t["pass"] for t in targets)})
    print(f"wrote {path.relative_to(PROJECT_ROOT)}")
    return 0 if all(t["pass"] for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
