"""`availabilityChanged` fan-out: 1,000 websocket subscribers, memory vs postgres broadcast backend.

    .venv/bin/python -m bench.subscriptions [--subscribers 1000] [--events 40] [--backends memory,postgres]
                                            [--client-processes 4] [--scopes 10]

PostgreSQL: BENCH_DATABASE_URL, else TEST_DATABASE_URL, else an embedded server in .data/bench.
A throwaway database is created, migrated and given one hotel (STD, SUP; contracts over 60
nights). For each backend, `staysync serve --no-migrate` runs in a subprocess (one worker,
127.0.0.1, a free port, BROADCAST_URL=memory:// or the throwaway database for LISTEN/NOTIFY).

The subscribers run in `--client-processes` child processes (this module with an internal flag),
so the server is measured, not one client process decoding 1,000 messages in a row. Each child
holds its share of the sockets with a light client (an asyncio.Protocol speaking RFC 6455 itself,
permessage-deflate negotiated as browsers do, no task per socket) and, per version, reports the
wall-clock time (time.time(), one machine clock) of its first and last arrival. Every subscriber
has its own token (its own uid); the tokens cycle over `--scopes` permission scopes (admin,
operator, then agents of distinct agencies), as a real audience would. All watch STD over 14
nights and ask for `version cells { date available held }`.

One event = one `recordAllotmentEvent` over HTTP on one watched night, sent one at a time.
Latency of an event: from just before the mutation is sent to the moment the *last* subscriber,
over all the child processes, has received that version (first delivery and the mutation's own
time are kept too). Server and client CPU seconds over the timed events are reported per event,
to tell where the time goes. Both share the machine's cores, so client work still competes.

Targets: p99 last delivery <= 250 ms; postgres p99 <= 1.5 x memory p99.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import time
import zlib
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from bench.common import (
    PROJECT_ID,
    PROJECT_ROOT,
    RESULTS_DIR,
    admin_token,
    cpu_seconds,
    free_port,
    percentile,
    server_url,
    start_server,
    stop_server,
    summarize,
    table,
    target,
    targets_table,
    wait_ready,
    write_results,
)

START = date.today() + timedelta(days=30)
SUBSCRIPTION = """
subscription($hotelId: ID!, $from: Date!, $to: Date!, $roomTypeIds: [ID!]) {
  availabilityChanged(hotelId: $hotelId, from: $from, to: $to, roomTypeIds: $roomTypeIds) {
    version resync cells { date available held }
  }
}
"""
UPSERT_HOTEL = """
mutation($input: UpsertHotelInput!) { upsertHotel(input: $input) {
  __typename ... on Hotel { id roomTypes { id code } } } }
"""
UPSERT_CONTRACT = """
mutation($input: UpsertContractInput!) { upsertContract(input: $input) { __typename } }
"""
RECORD = """
mutation($input: AllotmentEventInput!) { recordAllotmentEvent(input: $input) { __typename } }
"""


async def gql(http: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    return body["data"]


async def seed(http: httpx.AsyncClient) -> tuple[str, str]:
    hotel = (await gql(http, UPSERT_HOTEL, {"input": {"code": "BENCH", "name": "Bench", "roomTypes": [
        {"code": "STD", "name": "Standard"}, {"code": "SUP", "name": "Superior"}]}}))["upsertHotel"]
    for room_type in hotel["roomTypes"]:
        await gql(http, UPSERT_CONTRACT, {"input": {
            "externalId": f"B-{room_type['code']}", "hotelId": hotel["id"], "roomTypeId": room_type["id"],
            "from": START.isoformat(), "to": (START + timedelta(days=60)).isoformat(), "allotment": 50,
            "rate": {"amount": "100.00", "currency": "EUR"}, "releaseDays": 0, "terms": "bench"}})
    std = next(rt["id"] for rt in hotel["roomTypes"] if rt["code"] == "STD")
    return hotel["id"], std


# --- the light client: runs in the child processes -----------------------------------------------

_VERSION = re.compile(rb'"version":\s*(-?\d+)')
_DEFLATE_TAIL = b"\x00\x00\xff\xff"


def scope_of(index: int, scopes: int) -> tuple[str, str | None]:
    """Subscriber `index`'s role and agency: admin, operator, then agents of agencies BA01, BA02..."""
    slot = index % scopes
    if slot == 0:
        return "admin", None
    if slot == 1 and scopes > 1:
        return "operator", None
    return "agent", f"BA{slot:02d}"


def _mask(payload: bytes) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    stream = (key * (n // 4 + 1))[:n]
    return key + (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def _frame(opcode: int, payload: bytes) -> bytes:
    """A client frame (FIN, masked, never compressed: permessage-deflate lets each message choose)."""
    n = len(payload)
    if n < 126:
        header = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        header = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return header + _mask(payload)


class _Socket(asyncio.Protocol):
    """One graphql-transport-ws subscriber: RFC 6455 by hand, so a message costs a parse and a regex."""

    def __init__(self, pool: _ClientPool, host: str, port: int, path: str, bearer: str) -> None:
        self.pool, self.host, self.port, self.path, self.bearer = pool, host, port, path, bearer
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.inflate = None
        self.parts: list[bytes] = []
        self.compressed = False
        self.opcode = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write((
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: graphql-transport-ws\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n").encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.acknowledged.done():
            self.acknowledged.set_exception(ConnectionError(f"socket closed before connection_ack ({exc})"))
        elif not self.pool.closing:
            self.pool.report({"error": f"a subscriber's socket closed mid-run ({exc})"})

    def send_text(self, text: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_frame(0x1, text.encode()))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1").lower()
            del self.buffer[:end + 4]
            if not head.startswith("http/1.1 101"):
                self.acknowledged.set_exception(ConnectionError(head.splitlines()[0]))
                return
            if "permessage-deflate" in head:
                self.inflate = zlib.decompressobj(-15)
            self.upgraded = True
            self.send_text(json.dumps({"type": "connection_init", "payload": {"authorization": self.bearer}}))
        buffer = self.buffer
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            length, at = second & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, at = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, at = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < at + length:
                return
            payload = bytes(buffer[at:at + length])
            del buffer[:at + length]
            opcode = first & 0x0F
            if opcode >= 0x8:  # control frames: close, ping, pong
                if opcode == 0x9 and self.transport is not None:
                    self.transport.write(_frame(0xA, payload))
                elif opcode == 0x8 and self.transport is not None:
                    self.transport.close()
                continue
            if opcode:  # the first frame of a message
                self.opcode, self.compressed, self.parts = opcode, bool(first & 0x40), []
            self.parts.append(payload)
            if first & 0x80:
                message = b"".join(self.parts)
                if self.compressed:
                    message = self.inflate.decompress(message + _DEFLATE_TAIL)  # type: ignore[union-attr]
                self.on_message(message)

    def on_message(self, message: bytes) -> None:
        now = time.time()
        if b'"next"' in message:
            if b'"errors"' in message or b'"resync": true' in message or b'"resync":true' in message:
                self.pool.report({"error": f"unexpected message {message[:300]!r}"})
                return
            found = _VERSION.search(message)
            if found is None:
                self.pool.report({"error": f"a next message without version {message[:300]!r}"})
                return
            self.pool.arrived(int(found.group(1)), now)
            return
        kind = json.loads(message)["type"]
        if kind == "ping":
            self.send_text('{"type":"pong"}')
        elif kind == "connection_ack":
            self.send_text(json.dumps({"id": "1", "type": "subscribe", "payload": {
                "query": SUBSCRIPTION, "variables": self.pool.variables}}))
            self.acknowledged.set_result(None)
        elif kind != "pong":
            self.pool.report({"error": f"unexpected message {message[:300]!r}"})


class _ClientPool:
    """A child process's share of the subscribers; one stdout line per version they all received."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.variables = config["variables"]
        self.n = config["count"]
        self.sockets: list[_Socket] = []
        self.arrivals: dict[int, list[float]] = {}  # version -> [count, first, last]
        self.closing = False

    def report(self, line: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    def arrived(self, version: int, at: float) -> None:
        seen = self.arrivals.get(version)
        if seen is None:
            seen = self.arrivals[version] = [0, at, at]
        seen[0] += 1
        seen[2] = at
        if seen[0] == self.n:
            self.report({"version": version, "first": seen[1], "last": seen[2]})
            del self.arrivals[version]

    async def open(self) -> None:
        from app.auth import make_emulator_token

        loop = asyncio.get_running_loop()
        config = self.config
        limit = asyncio.Semaphore(50)

        async def one(index: int) -> None:
            role, agency = scope_of(index, config["scopes"])
            bearer = "Bearer " + make_emulator_token(role=role, agency=agency, uid=f"bench-{index}",
                                                     project_id=PROJECT_ID, lifetime_s=6 * 3600)
            async with limit:
                _, socket = await loop.create_connection(
                    lambda: _Socket(self, config["host"], config["port"], config["path"], bearer),
                    config["host"], config["port"])
                self.sockets.append(socket)
                await asyncio.wait_for(socket.acknowledged, 30)

        await asyncio.gather(*(one(index) for index in range(config["first"], config["first"] + self.n)))

    async def run(self) -> None:
        await self.open()
        self.report({"ready": self.n})
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        mark = time.process_time()
        while line := (await reader.readline()).strip():
            if line == b"mark":
                mark = time.process_time()
        self.closing = True
        self.report({"cpu_s": time.process_time() - mark})
        for socket in self.sockets:
            if socket.transport is not None:
                socket.transport.close()


def client_process(config_json: str) -> int:
    asyncio.run(_ClientPool(json.loads(config_json)).run())
    return 0


# --- the parent: starts the children, sends the changes, collects the arrivals --------------------

class Clients:
    """The child processes; per version, the first and last arrival over all of them."""

    def __init__(self, processes: int) -> None:
        self.processes: list[asyncio.subprocess.Process] = []
        self.reports: dict[int, list[tuple[float, float]]] = {}
        self.complete: dict[int, asyncio.Event] = {}
        self.ready = 0
        self.cpu_s: list[float] = []
        self.errors: list[str] = []
        self.expected = processes
        self._readers: list[asyncio.Task] = []
        self._all_ready = asyncio.Event()

    def expect(self, version: int) -> asyncio.Event:
        return self.complete.setdefault(version, asyncio.Event())

    async def open(self, port: int, subscribers: int, scopes: int, variables: dict[str, Any]) -> None:
        per, extra = divmod(subscribers, self.expected)
        first = 0
        for k in range(self.expected):
            count = per + (k < extra)
            config = {"host": "127.0.0.1", "port": port, "path": "/graphql", "first": first, "count": count,
                      "scopes": scopes, "variables": variables}
            first += count
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.subscriptions", "--client-process", json.dumps(config),
                cwd=PROJECT_ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            self.processes.append(process)
            self._readers.append(asyncio.create_task(self._read(process)))
        await asyncio.wait_for(self._all_ready.wait(), 300)

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            report = json.loads(line)
            if "version" in report:
                reports = self.reports.setdefault(report["version"], [])
                reports.append((report["first"], report["last"]))
                if len(reports) == self.expected:
                    self.expect(report["version"]).set()
            elif "ready" in report:
                self.ready += 1
                if self.ready == self.expected:
                    self._all_ready.set()
            elif "cpu_s" in report:
                self.cpu_s.append(report["cpu_s"])
            elif "error" in report:
                self.errors.append(report["error"])
                print(f"client error: {report['error']}", file=sys.stderr, flush=True)
        if not self._all_ready.is_set():
            raise RuntimeError(f"a client process exited with {await process.wait()} before it was ready")

    def mark(self) -> None:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(b"mark\n")

    async def close(self) -> None:
        for process in self.processes:
            if process.stdin is not None and not process.stdin.is_closing():
                process.stdin.close()
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
        await asyncio.gather(*self._readers, return_exceptions=True)


async def run_backend(base: str, port: int, server_pid: int, subscribers: int, events: int, warmup: int,
                      processes: int, scopes: int, profile: Path | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {admin_token()}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, trust_env=False, timeout=60) as http:
        hotel_id, std = await seed(http)
        clients = Clients(processes)
        variables = {"hotelId": hotel_id, "from": START.isoformat(),
                     "to": (START + timedelta(days=14)).isoformat(), "roomTypeIds": [std]}
        t0 = time.perf_counter()
        profiler = None
        try:
            await clients.open(port, subscribers, scopes, variables)
            opened_s = time.perf_counter() - t0
            version = await current_version(http, hotel_id)
            last, first, mutation = [], [], []

            async def change(i: int) -> tuple[int, float, float]:
                nonlocal version
                night = START + timedelta(days=i % 14)
                kind = "INCREASE_ALLOTMENT" if i % 2 == 0 else "REDUCE_ALLOTMENT"
                version += 1
                sent = time.time()
                await gql(http, RECORD, {"input": {"kind": kind, "roomTypeId": std, "from": night.isoformat(),
                                                   "to": (night + timedelta(days=1)).isoformat(), "quantity": 1}})
                return version, sent, time.time()

            # Subscriptions register asynchronously: change until one change reaches every subscriber.
            for attempt in range(60):
                ready, _, _ = await change(attempt)
                try:
                    await asyncio.wait_for(clients.expect(ready).wait(), 2)
                    break
                except TimeoutError:
                    continue
            else:
                raise RuntimeError("the subscribers never all received one change")
            for i in range(warmup + events):
                if i == warmup:
                    clients.mark()
                    if profile is not None:
                        profiler = start_profiler(server_pid, profile.with_suffix(".profile.raw"))
                    server_cpu0 = cpu_seconds(server_pid)
                expected, sent, answered = await change(i)
                await asyncio.wait_for(clients.expect(expected).wait(), 60)
                if i >= warmup:
                    reports = clients.reports[expected]
                    last.append((max(r[1] for r in reports) - sent) * 1000)
                    first.append((min(r[0] for r in reports) - sent) * 1000)
                    mutation.append((answered - sent) * 1000)
                await asyncio.sleep(0.05)  # one change at a time: each event measured alone
            server_cpu = cpu_seconds(server_pid) - server_cpu0
        finally:
            if profiler is not None:
                stop_profiler(profiler, profile)  # type: ignore[arg-type]
            await clients.close()
    if clients.errors:
        raise RuntimeError(f"{len(clients.errors)} client errors, the first: {clients.errors[0]}")
    return {"subscribers": subscribers, "events": events, "open_s": round(opened_s, 2),
            "last_delivery": summarize(last) | {"p99_ms": round(percentile(last, 99), 3)},
            "first_delivery": summarize(first), "mutation": summarize(mutation),
            "cpu_ms_per_event": {"server": round(server_cpu / events * 1000, 1),
                                 "clients": round(sum(clients.cpu_s) / events * 1000, 1)}}


async def current_version(http: httpx.AsyncClient, hotel_id: str) -> int:
    query = ("query($id: ID!, $from: Date!, $to: Date!) { node(id: $id) { ... on Hotel { "
             "calendar(from: $from, to: $to) { version } } } }")
    data = await gql(http, query, {"id": hotel_id, "from": START.isoformat(),
                                   "to": (START + timedelta(days=1)).isoformat()})
    return data["node"]["calendar"]["version"]


def start_profiler(pid: int, raw: Path) -> subprocess.Popen[bytes] | None:
    """py-spy on the server during the timed events, when it is installed."""
    import shutil

    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        print("--profile: py-spy not found (pip install py-spy); not profiling", file=sys.stderr)
        return None
    return subprocess.Popen([py_spy, "record", "-p", str(pid), "-r", "200", "-f", "raw", "-o", str(raw),
                             "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profiler(profiler: subprocess.Popen[bytes], stem: Path) -> None:
    """Stop py-spy and write the functions with the most samples (inclusive and own)."""
    import collections
    import signal

    profiler.send_signal(signal.SIGINT)
    try:
        profiler.wait(timeout=30)
    except subprocess.TimeoutExpired:
        profiler.kill()
    raw = stem.with_suffix(".profile.raw")
    if not raw.exists():
        return
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():  # a frame name with a line break in it
            continue
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", frame).replace(str(PROJECT_ROOT) + "/", "") for frame in stack.split(";")]
        frames = [re.sub(r"\(.*site-packages/", "(", frame) for frame in frames]
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    lines = [f"{total} samples of the server (py-spy, 200 Hz, busy time only)", "", "inclusive:"]
    lines += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(60)]
    lines += ["", "own:"] + [f"{100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(30)]
    stem.with_suffix(".profile.txt").write_text("\n".join(lines) + "\n")
    raw.unlink()


def main(argv: list[str] | None = None) -> int:
    if argv is None and sys.argv[1:2] == ["--client-process"]:
        return client_process(sys.argv[2])
    parser = argparse.ArgumentParser(prog="python -m bench.subscriptions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=40, help="timed events per backend (default 40)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--backends", default="memory,postgres")
    parser.add_argument("--client-processes", type=int, default=4,
                        help="child processes the subscribers are spread over (default 4)")
    parser.add_argument("--scopes", type=int, default=10,
                        help="permission scopes the subscribers cycle over: admin, operator, agents of "
                        "distinct agencies (default 10)")
    parser.add_argument("--profile", action="store_true",
                        help="sample the server with py-spy (if installed) during the timed events; "
                        "writes bench/results/subscriptions.<backend>.profile.txt")
    args = parser.parse_args(argv)

    from db import migrate
    from db.scratch import create_scratch_database, drop_scratch_database

    server, source = server_url()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    print(f"PostgreSQL: {source}", flush=True)
    for backend in args.backends.split(","):
        url = asyncio.run(create_scratch_database(server, "staysync_bench"))
        process = None
        try:
            migrate.upgrade(url)
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            process = start_server(url, port, RESULTS_DIR / f"subscriptions.{backend}.server.log",
                                   extra_env={"BROADCAST_URL": "memory://" if backend == "memory" else url})
            wait_ready(base, process)
            print(f"{backend}: server on {base} (pid {process.pid}, 1 worker, database {make_url(url).database}); "
                  f"{args.subscribers} subscribers over {args.client_processes} client processes", flush=True)
            profile = RESULTS_DIR / f"subscriptions.{backend}.profile" if args.profile else None
            results[backend] = asyncio.run(run_backend(base, port, process.pid, args.subscribers, args.events,
                                                       args.warmup, args.client_processes, args.scopes, profile))
        finally:
            if process is not None:
                stop_server(process)
            asyncio.run(drop_scratch_database(url))

    rows = []
    for backend, result in results.items():
        for what in ("last_delivery", "first_delivery", "mutation"):
            figures = result[what]
            rows.append([backend, what, figures["n"], figures["p50_ms"], figures["p95_ms"],
                         figures.get("p99_ms", percentile(figures["samples_ms"], 99)), figures["max_ms"]])
    print()
    print(f"{args.subscribers} subscribers, {args.events} events per backend (ms from sending the mutation)")
    print(table(["backend", "measure", "n", "p50", "p95", "p99", "max"], rows))
    print()
    print(table(["backend", "server CPU ms/event", "clients CPU ms/event (all processes)"],
                [[backend, result["cpu_ms_per_event"]["server"], result["cpu_ms_per_event"]["clients"]]
                 for backend, result in results.items()]))
    targets = [target(f"{backend}: p99 last delivery", result["last_delivery"]["p99_ms"], 250, " ms")
               for backend, result in results.items()]
    if "memory" in results and "postgres" in results:
        ratio = results["postgres"]["last_delivery"]["p99_ms"] / results["memory"]["last_delivery"]["p99_ms"]
        targets.append(target("postgres p99 / memory p99", ratio, 1.5, "x"))
    print()
    print(targets_table(targets))
    path = write_results("subscriptions", {
        "setup": {"subscribers": args.subscribers, "events": args.events, "warmup": args.warmup,
                  "client_processes": args.client_processes, "scopes": args.scopes,
                  "server": "staysync serve --no-migrate, 1 worker, subprocess",
                  "clients": f"{args.client_processes} child processes, light RFC 6455 client (permessage-deflate), "
                             f"graphql-transport-ws, one token (uid) each over {args.scopes} permission scopes",
                  "event": "recordAllotmentEvent on one watched night; latency from sending it"},
        "results": results, "targets": targets,
    })
    print(f"\nwrote {path.relative_to(PROJECT_ROOT)}")
    return 0 if all(t["pass"] for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
