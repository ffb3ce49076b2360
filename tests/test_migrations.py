"""One Alembic history: upgrade from empty, downgrade to base, and no drift from the models."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from app.settings import PROJECT_ROOT
from db import migrate, models  # noqa: F401  (models register the tables)
from db.engine import create_engine, plain_url
from db.scratch import create_scratch_database, drop_scratch_database


@pytest.fixture
def empty_database(database_url: str):
    url = asyncio.run(create_scratch_database(database_url, "staysync_migrations"))
    yield url
    asyncio.run(drop_scratch_database(url))


async def _tables(url: str) -> set[str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await connection.close()
    return {row["tablename"] for row in rows}


def test_upgrade_from_empty_then_downgrade_to_base(empty_database: str):
    migrate.upgrade(empty_database)
    tables = asyncio.run(_tables(empty_database))
    assert set(SQLModel.metadata.tables) <= tables

    migrate.downgrade(empty_database, "base")
    assert asyncio.run(_tables(empty_database)) == {"alembic_version"}

    migrate.upgrade(empty_database)  # and back up again: downgrades leave nothing behind
    assert set(SQLModel.metadata.tables) <= asyncio.run(_tables(empty_database))


async def test_models_and_migrations_do_not_drift(database_url: str):
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True, "compare_server_default": True}),
                    SQLModel.metadata,
                )
            )
    finally:
        await engine.dispose()
    assert diff == []


def test_constraints_guard_the_domain(database_url: str):
    """CHECKs refuse impossible rows even if code forgot to validate."""

    async def attempt(sql: str) -> str:
        connection = await asyncpg.connect(plain_url(database_url))
        try:
            async with connection.transaction():
                await connection.execute(
                    "INSERT INTO hotel (id, code, name) VALUES (-1, 'CHK', 'c');"
                    "INSERT INTO room_type (id, hotel_id, code, name) VALUES (-1, -1, 'R', 'r');"
                    "INSERT INTO agency (id, code, name) VALUES (-1, 'CHKA', 'a');"
                )
                await connection.execute(sql)
                raise AssertionError(f"accepted: {sql}")
        except asyncpg.CheckViolationError as error:
            return error.constraint_name
        finally:
            await connection.close()

    contract = ("INSERT INTO contract (external_id, hotel_id, room_type_id, start_date, end_date, allotment, "
                "rate_amount, currency, release_days, status) VALUES ('x', -1, -1, {0}, {1}, {2}, 10, 'EUR', 0, 'ACTIVE')")
    assert asyncio.run(attempt(contract.format("'2027-01-02'", "'2027-01-01'", 1))) == "ck_contract_nights_ordered"
    assert asyncio.run(attempt(contract.format("'2027-01-01'", "'2027-01-02'", -1))) == "ck_contract_allotment_nonnegative"
    hardblock = ("INSERT INTO hardblock (reference, agency_id, hotel_id, room_type_id, start_date, end_date, "
                 "base_start_date, base_end_date, rooms, release_days, status) VALUES "
                 "('HB', -1, -1, -1, '2027-01-01', '2027-01-03', {0}, {1}, 'ACTIVE')")
    assert asyncio.run(attempt(hardblock.format("'2027-01-01', '2027-01-03'", "0, 0"))) == "ck_hardblock_rooms_positive"
    assert asyncio.run(attempt(hardblock.format("'2027-01-01', '2027-01-04'", "1, 0"))) == (
        "ck_hardblock_base_nights_within_span")


def test_replicas_migrating_together_both_succeed(empty_database: str):
    # given two replicas (processes) that start on a fresh database at the same instant (once
    # both have imported everything)
    at = time.time() + 3
    upgrade = (f"import time; from db import migrate; time.sleep(max(0, {at} - time.time())); "
               f"migrate.upgrade({empty_database!r})")
    replicas = [subprocess.Popen([sys.executable, "-c", upgrade], cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]

    # when both run `alembic upgrade head`
    outcomes = [(replica.wait(120), replica.stderr.read()) for replica in replicas]  # type: ignore[union-attr]

    # then neither fails (one waits for the other's lock) and the database is at head
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    assert asyncio.run(_revision(empty_database)) == migrate.head_revision()


async def _revision(url: str) -> str | None:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval("SELECT version_num FROM alembic_version")
    finally:
        await connection.close()


async def _older_sales(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "INSERT INTO agency (code, name) VALUES ('OLD', 'Old');"
            "INSERT INTO booking_group (reference, agency_id, status, guest_name, created_by)"
            " VALUES ('BG-1', 1, 'CONFIRMED', 'A', 'x'), ('BG-2', 1, 'CANCELLED', 'B', 'x');"
            "INSERT INTO sale_order (number, group_id, agency_id, status, total_amount, currency, confirmed_at,"
            " cancelled_at) VALUES ('SO-1', 1, 1, 'CONFIRMED', 120.00, 'EUR', now(), NULL),"
            " ('SO-2', 2, 1, 'CANCELLED', 80.50, 'EUR', now(), now())")
    finally:
        await connection.close()


async def _ledger(url: str) -> list[tuple[str, str, object]]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT s.number, l.kind, l.amount FROM ledger_entry AS l"
                                      " JOIN sale_order AS s ON s.id = l.sale_order_id ORDER BY s.number, l.kind")
    finally:
        await connection.close()
    return [tuple(row) for row in rows]


def test_sales_made_before_the_ledger_are_put_on_it(empty_database: str):
    """The payments migration posts every existing sale (and the credit note of each cancelled one),
    so that cancelling an older sale later never credits an agency for a sale its ledger never had."""
    from decimal import Decimal

    migrate.upgrade(empty_database, "c3f1a8d5e7b2")  # the revision before the payments
    asyncio.run(_older_sales(empty_database))
    migrate.upgrade(empty_database)
    assert asyncio.run(_ledger(empty_database)) == [
        ("SO-1", "SALE", Decimal("120.00")),
        ("SO-2", "CREDIT_NOTE", Decimal("80.50")), ("SO-2", "SALE", Decimal("80.50")),
    ]
