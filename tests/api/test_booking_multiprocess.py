"""Two uvicorn worker processes on one database race for the last rooms: the advisory locks hold
across processes (each process has its own connection pool; only PostgreSQL is shared).

Each worker is a separate `uvicorn app.main:create_app --factory` subprocess serving a loopback
socket this test bound (port 0, handed over with `--fd`), so the client knows which process
served each request and sends half of the requests to each.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from app.settings import PROJECT_ROOT
from tests.api.test_booking_races import held_rooms
from tests.api.test_bookings import CREATE, booking_input, item, setup
from tests.support import EMULATOR_HOST, PROJECT_ID, token

WORKERS = 2
RACERS = 200
LEFT = 4


def _wait_healthy(base: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker {process.pid} exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"worker {process.pid} did not answer /health within {timeout_s} s")


@pytest.fixture(scope="module")
def workers(settings) -> Iterator[list[str]]:
    """Two worker processes on the test database; stopped (killed if need be) whatever happens."""
    env = {**os.environ, "DATABASE_URL": settings.database_url, "APP_ENV": "test", "SEED_DEMO": "0",
           "FIREBASE_AUTH_EMULATOR_HOST": EMULATOR_HOST, "FIREBASE_PROJECT_ID": PROJECT_ID,
           "BROADCAST_URL": "memory://", "LOCK_TIMEOUT_MS": "20000", "DB_POOL_SIZE": "10",
           # Correctness under contention, not latency: 100 requests per worker queue for 10 connections.
           "DB_POOL_TIMEOUT_S": "30"}
    processes: list[subprocess.Popen[bytes]] = []
    sockets: list[socket.socket] = []
    bases = []
    try:
        for _ in range(WORKERS):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sock.listen(2048)
            sockets.append(sock)
            bases.append(f"http://127.0.0.1:{sock.getsockname()[1]}")
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--fd", str(sock.fileno()),
                 "--log-level", "warning", "--no-access-log", "--backlog", "2048"],
                cwd=PROJECT_ROOT, env=env, pass_fds=(sock.fileno(),),
            ))
        for base, process in zip(bases, processes):
            _wait_healthy(base, process)
        yield bases
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for sock in sockets:
            sock.close()


async def test_two_worker_processes_never_sell_the_last_rooms_twice(gql, sessions, workers):
    # given: 10 rooms, 6 of them taken, so 4 are left
    hotel, ids, agencies = await setup(gql, allotment=10)
    limits = httpx.Limits(max_connections=RACERS, max_keepalive_connections=RACERS)
    async with httpx.AsyncClient(limits=limits, timeout=60, trust_env=False) as http:
        first = await http.post(f"{workers[0]}/graphql", json={"query": CREATE, "variables": {"input": booking_input(
            agencies["BLUEWAVE"], item(ids["STD"], rooms=10 - LEFT))}}, headers={"Authorization": f"Bearer {token('admin')}"})
        assert first.json()["data"]["createBooking"]["__typename"] == "BookingGroup", first.text
        before = await held_rooms(sessions)

        # when: 200 agents race for them, alternating between the two processes
        async def racer(n: int) -> tuple[int, str]:
            worker = n % WORKERS
            agency = ("SUNTRAVEL", "BLUEWAVE")[n // WORKERS % 2]
            request = {"query": CREATE, "variables": {"input": booking_input(None, item(ids["STD"], rooms=1))}}
            headers = {"Authorization": f"Bearer {token('agent', agency)}"}
            try:
                response = await http.post(f"{workers[worker]}/graphql", json=request, headers=headers)
            except httpx.TransportError:
                # A keep-alive connection the server closed as it was reused (a loaded machine): what
                # any client does, a retry with the same idempotency key, which is always safe.
                response = await http.post(f"{workers[worker]}/graphql", json=request, headers=headers)
            if response.status_code != 200:
                return worker, f"HTTP {response.status_code}"
            body = response.json()
            if body.get("errors"):
                return worker, f"error {body['errors'][0].get('message')}"
            return worker, body["data"]["createBooking"]["__typename"]

        results = await asyncio.gather(*(racer(n) for n in range(RACERS)))

    # then: exactly the rooms left were held, the rest sold out, nothing failed, both served
    outcomes = Counter(outcome for _, outcome in results)
    assert outcomes == {"BookingGroup": LEFT, "SoldOut": RACERS - LEFT}, outcomes
    assert await held_rooms(sessions) - before == LEFT
    served = Counter(worker for worker, outcome in results if outcome in ("BookingGroup", "SoldOut"))
    assert served == {w: RACERS // WORKERS for w in range(WORKERS)}, served
