"""Test fixtures: a real PostgreSQL (TEST_DATABASE_URL, or an embedded server), migrated once.

Each test run creates its own throwaway database on that server and drops it at the end, so
runs never see each other's rows. Tests that touch data get clean tables (`db` fixture).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from app.settings import PROJECT_ROOT, Settings
from db import migrate
from db.engine import create_engine, session_factory
from db.scratch import create_scratch_database, drop_scratch_database
from tests.support import EMULATOR_HOST, PROJECT_ID, GraphQL



def _server_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    from db.embedded import start_embedded

    return start_embedded(PROJECT_ROOT / ".data" / "test", database="postgres")


@pytest.fixture(scope="session")
def database_url() -> Any:
    url = asyncio.run(create_scratch_database(_server_url(), "staysync_test"))
    migrate.upgrade(url)
    yield url
    asyncio.run(drop_scratch_database(url))


@pytest.fixture(scope="session")
def stripe_base() -> Any:
    """localstripe on loopback for the whole run: the Stripe the card payments are made against."""
    from app import localstripe

    child, base = localstripe.start(localstripe.free_port())
    yield base
    child.terminate()
    child.wait(10)


@pytest.fixture(scope="session")
def settings(database_url: str, stripe_base: str) -> Settings:
    from app import localstripe

    os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = EMULATOR_HOST
    return Settings(
        app_env="test",
        database_url=database_url,
        firebase_project_id=PROJECT_ID,
        firebase_auth_emulator_host=EMULATOR_HOST,
        seed_demo=False,
        stripe_api_key=localstripe.DEV_SECRET_KEY,
        stripe_api_base=stripe_base,
        stripe_webhook_secret=localstripe.DEV_WEBHOOK_SECRET,
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[Any]:
    engine = create_engine(settings.database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: Any) -> Any:
    return session_factory(engine)


@pytest.fixture(scope="session")
async def cleanup_sql(engine: Any) -> str:
    """One statement list emptying every table of the schema and restarting every sequence (as
    `TRUNCATE ... RESTART IDENTITY` would, at a thousandth of its cost: a TRUNCATE of 30 tables
    creates and syncs new files for each, 0.2 s a test). Replica mode skips the foreign keys and
    the audit log's and night audits' refusals (triggers), for this one transaction."""
    async with engine.connect() as connection:
        if not (await connection.exec_driver_sql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar():
            pytest.exit("TEST_DATABASE_URL must name a superuser (the tests empty tables in replica mode)", 2)
        tables = (await connection.exec_driver_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")).scalars()
        sequences = (await connection.exec_driver_sql(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")).scalars()
        return ("SET LOCAL session_replication_role = replica; "
                + "".join(f"DELETE FROM {table}; " for table in tables)
                + "".join(f"SELECT setval('{sequence}', 1, false); " for sequence in sequences))


@pytest.fixture
async def db(engine: Any, cleanup_sql: str) -> AsyncIterator[None]:
    """Empty tables and fresh ids for this test."""
    for attempt in range(5):
        try:
            async with engine.begin() as connection:
                await (await connection.get_raw_connection()).driver_connection.execute(cleanup_sql)
            break
        except asyncpg.DeadlockDetectedError:
            # A production-mode app's background jobs (test_hardening) may be writing these rows at the
            # same moment, in another order. It lost; go again.
            if attempt == 4:
                raise
    yield


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Any]:
    from app.main import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any, db: None) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://staysync.test") as http:
        yield http


@pytest.fixture
def gql(client: httpx.AsyncClient) -> GraphQL:
    return GraphQL(client)


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens firebase-admin is asked to verify, in order (it still verifies them)."""
    from firebase_admin import auth as firebase_auth

    asked: list[str] = []
    verify_id_token = firebase_auth.verify_id_token

    def spy(token: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        asked.append(token)
        return verify_id_token(token, *args, **kwargs)

    monkeypatch.setattr(firebase_auth, "verify_id_token", spy)
    return asked
