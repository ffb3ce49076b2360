"""Async engine and session factory (asyncpg)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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


def create_engine(
    url: str, *, pool_size: int = 10, echo: bool = False, statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
    idle_in_transaction_timeout_ms: int = IDLE_IN_TRANSACTION_TIMEOUT_MS,
) -> AsyncEngine:
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        echo=echo,
        connect_args={
            "server_settings": {
                "statement_timeout": str(statement_timeout_ms),
                "idle_in_transaction_session_timeout": str(idle_in_transaction_timeout_ms),
            },
            # asyncpg's own bound, a little past the server's: a connection that stops answering.
            "command_timeout": statement_timeout_ms / 1000 + 5,
        },
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay readable after commit without lazy loads
    # (which would raise MissingGreenlet under asyncio).
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One session, one transaction: commit on success, roll back on any exception."""
    async with sessions() as session, session.begin():
        yield session
