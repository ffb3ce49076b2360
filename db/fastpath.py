"""asyncpg directly, for the inventory writes on the request's hot path (the booking hold).

SQLAlchemy costs about four times asyncpg's client CPU per statement (issue 12's profile: 0.121 ms
against 0.028 ms), and its pool pings every checkout. The hold needs five round trips here: one
read before any transaction (who, what, whether the key was used, and the inventory: a request
that is already sold out answers from it), then
`BEGIN` with the sorted advisory locks in one simple-protocol message, the read after the locks,
the one-statement write, and `COMMIT`. asyncpg prepares each statement once per connection and
reuses it. The rules stay in `domain`; these statements only read and write.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg
import orjson

import db.inventory
from db.engine import plain_url
from db.inventory import LockTimeout, agency_ledger_lock_key, room_type_lock_key

# `:name` parameters (not `::type` casts) in SQL written for SQLAlchemy's text(), so that one text
# serves both drivers.
_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


class Statement:
    """SQL with `:name` parameters, as asyncpg's positional `$n` and the names in their order."""

    def __init__(self, sql: str) -> None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        self.sql = _NAMED.sub(number, sql)
        self.names = tuple(names)

    def args(self, values: dict[str, Any]) -> list[Any]:
        return [values[name] for name in self.names]

    async def fetchrow(self, connection: asyncpg.Connection, **values: Any) -> asyncpg.Record | None:
        return await connection.fetchrow(self.sql, *self.args(values))


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init(connection: asyncpg.Connection) -> None:
    # jsonb as Python values, as SQLAlchemy's JSONB type gives them.
    await connection.set_type_codec("jsonb", encoder=_dumps, decoder=orjson.loads, schema="pg_catalog")
    # An integer[] inside an anonymous record (a group's footprint, an event's agencies) decodes
    # only once the connection has met integer[] as a column or a parameter (asyncpg issue 360): a
    # fresh connection whose first statement is a confirmation would fail otherwise.
    await connection.fetchval("SELECT CAST('{}' AS integer[])")


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to reset on release: these transactions always end (asyncpg rolls back one that
    did not), their locks are transaction-scoped and their settings `SET LOCAL`. asyncpg's
    default reset would cost a round trip per request."""


_BROKEN = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError,
           asyncio.CancelledError)


class RawPool:
    """An asyncpg pool beside SQLAlchemy's, created on first use (inside the running loop)."""

    def __init__(self, url: str, *, size: int, timeout_s: float, statement_timeout_ms: int,
                 idle_in_transaction_timeout_ms: int) -> None:
        self._url, self._size, self.timeout_s = plain_url(url), size, timeout_s
        self._server_settings = {
            "statement_timeout": str(statement_timeout_ms),
            "idle_in_transaction_session_timeout": str(idle_in_transaction_timeout_ms),
        }
        self._command_timeout = statement_timeout_ms / 1000 + 5  # as db.engine: past the server's own
        self._pool: asyncpg.Pool | None = None
        self._creating = asyncio.Lock()
        self._loggers: list[Callable[[Any], None]] = []

    async def _get(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._creating:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._url, min_size=0, max_size=self._size, init=_init, reset=_keep_session,
                        server_settings=self._server_settings, command_timeout=self._command_timeout,
                        timeout=self.timeout_s,
                    )
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        pool = await self._get()
        async with pool.acquire(timeout=self.timeout_s) as connection:
            for logger in self._loggers:
                connection.add_query_logger(logger)
            terminated = False
            try:
                yield connection
            except _BROKEN:
                # With no reset round trip on release, nothing else would notice: a connection
                # that failed (or was cancelled) mid-statement never goes back to the pool.
                connection.terminate()
                terminated = True
                raise
            finally:
                # A terminated connection's proxy refuses every call (and the loggers went with
                # it): asking it anything here would replace the error being raised.
                if not terminated and not connection.is_closed():
                    for logger in self._loggers:
                        connection.remove_query_logger(logger)

    @contextmanager
    def logging_queries(self) -> Any:
        """The statements sent while the block runs, in order (tests count round trips with it)."""
        sent: list[str] = []

        def log(record: Any) -> None:
            sent.append(record.query)

        self._loggers.append(log)
        try:
            yield sent
        finally:
            self._loggers.remove(log)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


@asynccontextmanager
async def locked_transaction(connection: asyncpg.Connection, room_type_ids: Iterable[int],
                             lock_timeout_ms: int, agency_id: int | None = None) -> AsyncIterator[None]:
    """BEGIN, `lock_timeout` and the room types' advisory locks (sorted), then the agency's credit
    lock if `agency_id` is given, in one round trip; COMMIT when the block ends, ROLLBACK when it
    raises. LockTimeout when a lock (or a row lock later in the transaction) is not granted within
    the timeout."""
    ids = sorted(set(room_type_ids))
    # Simple query protocol: several statements, one message. Only integers are inlined.
    script = f"BEGIN; SELECT set_config('lock_timeout', '{int(lock_timeout_ms)}', true)"
    if ids and db.inventory.locking_enabled:
        keys = ",".join(str(room_type_lock_key(i)) for i in ids)
        script += f"; SELECT pg_advisory_xact_lock(k) FROM unnest(ARRAY[{keys}]::bigint[]) AS k ORDER BY k"
    if agency_id is not None and db.inventory.locking_enabled:
        script += f"; SELECT pg_advisory_xact_lock({agency_ledger_lock_key(int(agency_id))})"
    try:
        await connection.execute(script)
        yield
    except asyncpg.LockNotAvailableError as error:
        await _rollback(connection)
        raise LockTimeout(ids) from error
    except BaseException:
        await _rollback(connection)
        raise
    await connection.execute("COMMIT")


async def _rollback(connection: asyncpg.Connection) -> None:
    """Release the locks now. On a connection that broke mid-statement this fails too: the error
    that matters is the one being raised, and the pool discards (or resets) the connection."""
    if not connection.is_closed() and connection.is_in_transaction():
        with contextlib.suppress(Exception):
            await connection.execute("ROLLBACK")
