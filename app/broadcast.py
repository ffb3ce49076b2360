"""Publish/subscribe between workers, published to only after commit.

`Broadcast(url)` picks the backend from the URL scheme: `memory://` (broadcaster's in-process
backend), `postgres://` (LISTEN/NOTIFY) or `redis://` (PUBLISH/SUBSCRIBE). The last two are our
own small backends on asyncpg and redis.asyncio, because broadcaster's (0.3.1) share one
connection for LISTEN and NOTIFY (concurrent publishes fail), never reconnect, and lose their
listener task silently. Whatever the backend:

- every message travels on one wire channel (`staysync`) as `{"c": channel, "m": message}`;
  the fan-out to local subscribers happens here, so subscribing never talks to the backend;
- a message is at most `MAX_PAYLOAD_BYTES` (NOTIFY's limit), for every backend alike;
- a message that `validate(channel, decoded JSON)` refuses is logged and dropped here, once,
  before any subscriber sees it;
- each subscriber has a bounded queue; on overflow its backlog is replaced by one resync event;
- the listener reconnects with backoff after the backend restarts (or stops answering
  health checks), and then sends every subscriber a resync event: messages published while it
  was away are lost, and subscribers must re-read what they show.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from db.engine import plain_url

log = logging.getLogger(__name__)

WIRE_CHANNEL = "staysync"
MAX_PAYLOAD_BYTES = 7999  # PostgreSQL: "payload string too long" from 8000 bytes on
DEFAULT_QUEUE_SIZE = 256
_UNPARSED = object()


class PayloadTooLarge(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Event:
    """A message on a channel, or (`resync`, no message) "you may have missed messages".

    One Event is handed to every local subscriber of its channel, so what they derive from it
    (`json()`) is computed once per message, not once per subscriber.
    """

    channel: str
    message: str | None = None
    _json: Any = field(default=_UNPARSED, init=False, compare=False, repr=False)
    # Scratch space of the subscribers that process this very message (shared work): it lives as
    # long as the message, so nothing in it can outlive the change it was computed for.
    memo: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def resync(self) -> bool:
        return self.message is None

    def json(self) -> Any:
        """The message decoded as JSON (cached; None when it is not JSON). Treat it as read-only."""
        if self._json is _UNPARSED:
            try:
                value = json.loads(self.message)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                value = None
            object.__setattr__(self, "_json", value)
        return self._json


class Subscriber:
    """One subscriber's bounded queue; iterate it for events."""

    def __init__(self, channel: str, maxsize: int) -> None:
        self.channel = channel
        self._maxsize = maxsize
        self._queue: deque[Event] = deque()
        self._ready = asyncio.Event()

    def put(self, event: Event) -> None:
        if event.resync or len(self._queue) >= self._maxsize:
            # Everything queued before a resync is moot: the subscriber re-reads anyway.
            self._queue.clear()
            event = Event(self.channel)
        self._queue.append(event)
        self._ready.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def get(self) -> Event:
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self.get()


Deliver = Callable[[str], None]


class _MemoryBackend:
    """broadcaster's in-process backend: one worker only."""

    def __init__(self, url: str) -> None:
        from broadcaster._backends.memory import MemoryBackend

        self._backend = MemoryBackend(url)
        self._connected = False

    async def publish(self, payload: str) -> None:
        if not self._connected:
            raise ConnectionError("the memory broadcast is not connected")
        await self._backend.publish(WIRE_CHANNEL, payload)

    async def listen(self, deliver: Deliver, ready: Callable[[], None]) -> None:
        await self._backend.connect()
        await self._backend.subscribe(WIRE_CHANNEL)
        self._connected = True
        ready()
        try:
            while True:
                deliver((await self._backend.next_published()).message)
        finally:
            self._connected = False
            await self._backend.unsubscribe(WIRE_CHANNEL)

    async def ping(self) -> None:
        """In-process: there is nothing to reach."""

    async def close(self) -> None:
        await self._backend.disconnect()


class _PostgresBackend:
    """LISTEN on one dedicated connection; NOTIFY through a small pool of others."""

    def __init__(self, url: str, health_check_s: float) -> None:
        self._url = plain_url(url).replace("postgres://", "postgresql://", 1)
        self._health_check_s = health_check_s
        self._pool = None

    async def _publish_pool(self):  # noqa: ANN202 - asyncpg.Pool
        import asyncpg

        if self._pool is None:
            # min_size=0: creating the pool never connects, so a publish during an outage
            # fails on its own instead of poisoning the pool; closed connections are replaced.
            self._pool = await asyncpg.create_pool(self._url, min_size=0, max_size=4, timeout=5,
                                                   max_inactive_connection_lifetime=60)
        return self._pool

    async def publish(self, payload: str) -> None:
        import asyncpg

        pool = await self._publish_pool()
        for attempt in range(2):  # a connection killed by a restart is only noticed on use
            try:
                async with pool.acquire() as connection:
                    await connection.execute("SELECT pg_notify($1, $2)", WIRE_CHANNEL, payload)
                return
            except (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
                    asyncpg.exceptions.OperatorInterventionError, OSError):
                if attempt:
                    raise

    async def ping(self) -> None:
        pool = await self._publish_pool()
        async with pool.acquire() as connection:
            await connection.fetchval("SELECT 1")

    async def listen(self, deliver: Deliver, ready: Callable[[], None]) -> None:
        import asyncpg

        connection = await asyncpg.connect(self._url, timeout=5)
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _: lost.set())
            await connection.add_listener(WIRE_CHANNEL, lambda _c, _pid, _channel, payload: deliver(payload))
            ready()
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self._health_check_s)
                    raise ConnectionError("the LISTEN connection was closed")
                # A half-open connection never reports its loss: ask it something.
                await connection.fetchval("SELECT 1", timeout=self._health_check_s)
        finally:
            connection.terminate()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


class _RedisBackend:
    """SUBSCRIBE on one dedicated connection (never silently re-established); PUBLISH on a pool."""

    def __init__(self, url: str, health_check_s: float) -> None:
        from redis.asyncio import BlockingConnectionPool, Redis

        self._url = url
        self._health_check_s = health_check_s
        # Blocking: a burst of publishes waits for a connection instead of failing with "Too many connections".
        self._publisher = Redis(connection_pool=BlockingConnectionPool.from_url(
            url, max_connections=8, timeout=5, socket_connect_timeout=5, socket_timeout=5))

    async def publish(self, payload: str) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError

        for attempt in range(2):  # a pooled connection killed by a restart is only noticed on use
            try:
                await self._publisher.publish(WIRE_CHANNEL, payload)
                return
            except (RedisConnectionError, OSError):
                if attempt:
                    raise

    async def ping(self) -> None:
        await self._publisher.ping()

    async def listen(self, deliver: Deliver, ready: Callable[[], None]) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        loop = asyncio.get_running_loop()
        # No retries: redis-py would otherwise reconnect and resubscribe behind our back, and the
        # subscribers would never learn that messages were lost in between.
        client = Redis.from_url(self._url, socket_connect_timeout=5, retry=Retry(NoBackoff(), 0))
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(WIRE_CHANNEL)
            while (message := await pubsub.get_message(timeout=5)) is None or message["type"] != "subscribe":
                if message is None:
                    raise ConnectionError("Redis did not confirm the subscription")
            ready()
            last_heard = loop.time()
            while True:
                message = await pubsub.get_message(timeout=self._health_check_s)
                now = loop.time()
                if message is not None:
                    last_heard = now
                    if message["type"] == "message":
                        data = message["data"]
                        deliver(data.decode() if isinstance(data, bytes) else data)
                elif now - last_heard > 2 * self._health_check_s:
                    raise ConnectionError("Redis stopped answering pings")
                else:
                    await pubsub.ping()  # the answer arrives as a message
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()

    async def close(self) -> None:
        await self._publisher.aclose()


class Broadcast:
    def __init__(
        self,
        url: str,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        health_check_s: float = 5.0,
        max_backoff_s: float = 5.0,
        validate: Callable[[str, Any], bool] | None = None,
    ) -> None:
        scheme = urlparse(url).scheme
        if scheme == "memory":
            self._backend = _MemoryBackend(url)
        elif scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+"):
            self._backend = _PostgresBackend(url, health_check_s)
        elif scheme in ("redis", "rediss"):
            self._backend = _RedisBackend(url, health_check_s)
        else:
            raise ValueError(f"unsupported BROADCAST_URL scheme {scheme!r}: use memory://, postgres:// or redis://")
        self.url = url
        self.queue_size = queue_size
        self._validate = validate
        self._max_backoff_s = max_backoff_s
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self.reconnects = 0  # listener (re)connections after the first: for tests and metrics

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def subscriber_count(self) -> int:
        return sum(len(subscribers) for subscribers in self._subscribers.values())

    async def connect(self, timeout: float = 10) -> None:
        """Start the listener and wait (up to `timeout`) for its first connection.

        A backend that is down at startup is not fatal: the listener keeps retrying, and
        publishes fail (and are logged by their callers) until it is back.
        """
        self._closing = False
        self._start_listener()
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            log.warning("broadcast backend %s not reachable yet; still retrying", self._safe_url)

    async def disconnect(self) -> None:
        self._closing = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        self._connected.clear()
        await self._backend.close()

    async def ping(self, timeout: float) -> None:
        """Raises unless the backend answers within `timeout` and the listener is connected:
        without the listener, subscribers on this worker hear nothing."""
        await asyncio.wait_for(self._backend.ping(), timeout)
        if not self.connected:
            raise ConnectionError("the broadcast listener is not connected")

    async def publish(self, channel: str, message: str) -> None:
        payload = json.dumps({"c": channel, "m": message}, separators=(",", ":"))
        if len(payload.encode()) > MAX_PAYLOAD_BYTES:
            raise PayloadTooLarge(f"broadcast messages are limited to {MAX_PAYLOAD_BYTES} bytes; "
                                  "publish ids and ranges, not entities")
        await self._backend.publish(payload)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscriber]:
        subscriber = Subscriber(channel, self.queue_size)
        self._subscribers.setdefault(channel, set()).add(subscriber)
        try:
            yield subscriber
        finally:
            subscribers = self._subscribers.get(channel)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    del self._subscribers[channel]

    def resync_all(self) -> None:
        """Tell every subscriber it may have missed messages."""
        for channel, subscribers in list(self._subscribers.items()):
            for subscriber in list(subscribers):
                subscriber.put(Event(channel))

    # --- the listener --------------------------------------------------------------------------

    @property
    def _safe_url(self) -> str:
        parsed = urlparse(self.url)
        return f"{parsed.scheme}://{parsed.hostname or ''}{':' + str(parsed.port) if parsed.port else ''}"

    def _start_listener(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name=f"broadcast-listener {self._safe_url}")
        self._listener.add_done_callback(self._listener_done)

    def _listener_done(self, task: asyncio.Task[None]) -> None:
        if self._closing:
            return
        # _listen never returns and catches everything; if it still ends, say so and restart it.
        error = None if task.cancelled() else task.exception()
        log.error("broadcast listener ended unexpectedly (%s); restarting it",
                  "cancelled" if error is None else repr(error), exc_info=error)
        self._connected.clear()
        self._start_listener()

    def _deliver(self, payload: str) -> None:
        try:
            envelope = json.loads(payload)
            channel, message = envelope["c"], envelope["m"]
            if not isinstance(channel, str) or not isinstance(message, str):
                raise TypeError("channel and message are strings")
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed broadcast message: %.200r", payload)
            return
        event = Event(channel, message)  # one for all: see Event.json
        if self._validate is not None and not self._validate(channel, event.json()):
            log.warning("dropping a malformed broadcast message on %.100r: %.200r", channel, message)
            return
        for subscriber in list(self._subscribers.get(channel, ())):
            subscriber.put(event)

    async def _listen(self) -> None:
        delay = 0.05
        first = True

        def ready() -> None:
            nonlocal delay, first
            delay = 0.05
            self._connected.set()
            if not first:
                self.reconnects += 1
                log.warning("broadcast listener reconnected to %s; asking %d subscribers to resync",
                            self._safe_url, self.subscriber_count)
                self.resync_all()
            first = False

        while True:
            try:
                await self._backend.listen(self._deliver, ready)
                raise ConnectionError("the listener stopped")
            except asyncio.CancelledError:
                raise
            except Exception as error:  # any failure: log it, back off, reconnect
                # Subscribers that arrive while the backend is down need a resync once it is up.
                first = False
                self._connected.clear()
                log.warning("broadcast listener on %s lost its connection (%s: %s); retrying in %.2fs",
                            self._safe_url, type(error).__name__, error, delay)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._max_backoff_s)
