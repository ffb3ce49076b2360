"""Alembic environment: async (asyncpg), models' metadata as the autogenerate target."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from db import models  # noqa: F401  (registers every table on the metadata)
from db.engine import create_engine
from db.migrate import MIGRATION_LOCK
from sqlmodel import SQLModel

config = context.config
target_metadata = SQLModel.metadata


def _url() -> str:
    url = config.attributes.get("database_url") or os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("DATABASE_URL is not set (use `staysync migrate`, which starts the embedded server)")
    return url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run() -> None:
    engine = create_engine(_url(), pool_size=1, client_timeout=False)
    try:
        async with engine.connect() as connection:
            # Replicas that start together: the first migrates, the others wait here and then
            # find the database at head. The wait has no statement timeout (another replica's
            # migration may take longer than any statement should); the migrations keep theirs.
            await connection.exec_driver_sql("SET statement_timeout = 0")
            await connection.exec_driver_sql("SELECT pg_advisory_lock(%d, %d)" % MIGRATION_LOCK)
            await connection.exec_driver_sql("RESET statement_timeout")
            await connection.commit()  # a session-level lock outlives the transaction
            await connection.run_sync(_configure)
            await connection.commit()
            # On failure the lock goes with the connection, which dispose() closes.
            await connection.exec_driver_sql("SELECT pg_advisory_unlock(%d, %d)" % MIGRATION_LOCK)
            await connection.commit()
    finally:
        await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _configure(connection)
elif context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run())
