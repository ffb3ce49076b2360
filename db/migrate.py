"""Run Alembic programmatically (the CLI, `make run` and the tests share this)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine


PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The session-level advisory lock that serialises upgrades (migrations/env.py takes it), so
# replicas starting together migrate one after the other. The two-integer form lives in a key
# space of its own: it never meets the inventory's one-bigint transaction locks.
MIGRATION_LOCK = (0x5359_4E43, 1)  # ("SYNC", 1)


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
