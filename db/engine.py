"""Async engine and session factory (asyncpg)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import asyncpg
from sqlalchemy import exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def async_url(url: str) -> str:
    """Accept the usual `postgresql://` / `postgres://` forms and select the asyncpg driver."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def plain_url(url: str) -> str:
    """The libpq form (no driver), for asyncpg/broadcaster connections made outside SQLAlchemy."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


# No statement runs, and no transaction sits idle, for longer than these on any connection: a
# runaway query or a stuck client cannot pin a connection (and the locks it holds) for ever.
STATEMENT_TIMEOUT_MS = 15_000
IDLE_IN_TRANSACTION_TIMEOUT_MS = 30_000
# How long a checkout waits for a free connection, or for a new one to connect.
POOL_TIMEOUT_S = 5.0


def create_engine(
    url: str, *, pool_size: int = 10, max_overflow: int | None = None, pool_timeout_s: float = POOL_TIMEOUT_S,
    echo: bool = False, statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
    idle_in_transaction_timeout_ms: int = IDLE_IN_TRANSACTION_TIMEOUT_MS, client_timeout: bool = True,
) -> AsyncEngine:
    """`max_overflow` defaults to `pool_size` (as many again under a burst). `client_timeout`:
    asyncpg's own bound on a statement (off for migrations, whose long statements lift the
    server's timeout with SET LOCAL)."""
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_timeout=pool_timeout_s,
        pool_pre_ping=True,
        echo=echo,
        connect_args={
            "server_settings": {
                "statement_timeout": str(statement_timeout_ms),
                "idle_in_transaction_session_timeout": str(idle_in_transaction_timeout_ms),
            },
            # asyncpg's own bound, a little past the server's: a connection that stops answering.
            "command_timeout": statement_timeout_ms / 1000 + 5 if client_timeout else None,
            # A server that drops packets must not hold a checkout longer than a busy pool would.
            "timeout": pool_timeout_s,
        },
    )


# What opens a session: the engine's sessionmaker, or a ConnectionBudget over it.
Sessions = Callable[[], AbstractAsyncContextManager[AsyncSession]]


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay readable after commit without lazy loads
    # (which would raise MissingGreenlet under asyncio).
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(sessions: Sessions) -> AsyncIterator[AsyncSession]:
    """One session, one transaction: commit on success, roll back on any exception."""
    async with sessions() as session, session.begin():
        yield session


@asynccontextmanager
async def consistent_read(sessions: Sessions) -> AsyncIterator[AsyncSession]:
    """One read-only transaction in one consistent snapshot (REPEATABLE READ): every statement in it
    sees the same data, so a calendar's version matches its numbers and a report agrees with itself."""
    async with transaction(sessions) as session:
        await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        yield session


class ConnectionBudget:
    """At most `limit` sessions open at once through it; the rest wait (up to `timeout_s`).

    A session holds at most one pooled connection, so this bounds the connections one caller
    (a GraphQL request) takes, however many fields it resolves concurrently. Waiting longer
    than `timeout_s` raises the pool's own TimeoutError, like an exhausted pool.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], limit: int, timeout_s: float = POOL_TIMEOUT_S) -> None:
        self._sessions = sessions
        self._slots = asyncio.Semaphore(limit)
        self._timeout_s = timeout_s

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[AsyncSession]:
        try:
            await asyncio.wait_for(self._slots.acquire(), self._timeout_s)
        except TimeoutError:
            raise exc.TimeoutError(f"no connection of this request's budget freed up within {self._timeout_s} s") from None
        try:
            async with self._sessions() as session:
                yield session
        finally:
            self._slots.release()


# Failures that say "the database is not reachable right now" (restarting, shutting down, gone, or
# the pool has nothing to give), as opposed to a bug or a bad statement: the request changed
# nothing it did not commit, and the same request may simply be retried.
_UNAVAILABLE = (
    exc.TimeoutError,  # pool checkout
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, e.g. "connection was closed in the middle of operation"
    asyncpg.AdminShutdownError,  # 57P01 "terminating connection due to administrator command"
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.CannotConnectNowError,  # 57P03 "the database system is shutting down / starting up"
    # The server ended the connection between two statements ("terminating connection due to
    # administrator command" arrives while idle): the next one finds the protocol mid-operation.
    asyncpg.InternalClientError,
    OSError,  # connection refused or reset, connect timeout (TimeoutError is an OSError)
)


def database_unavailable(error: BaseException | None) -> bool:
    """Whether `error` (or what it wraps) is a lost or unreachable database, or an exhausted pool."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, _UNAVAILABLE):
            return True
        if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
            return True
        error = getattr(error, "orig", None) or error.__cause__ or error.__context__
    return False
