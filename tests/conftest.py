"""Test fixtures: a real PostgreSQL (TEST_DATABASE_URL, or an embedded server), migrated once.

Each test run creates its own throwaway database on that server and drops it at the end, so
runs never see each other's rows. Tests that touch data get clean tables (`db` fixture).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import DBAPIError

from app.settings import PROJECT_ROOT, Settings
from db import migrate
from db.engine import create_engine, session_factory
from db.scratch import create_scratch_database, drop_scratch_database
from tests.support import EMULATOR_HOST, PROJECT_ID, GraphQL

TABLES = (
    "audit_log, idempotency_key, sale_order, booking, booking_group, allotment_event, "
    "hardblock_night_release, hardblock_amendment, hardblock, contract, inventory_version, "
    "room_type, hotel, agency, status_transform_config, supplier_file, inbound_webhook, sync_run, supplier, outbox, rate_plan, "
    "partner_event, webhook_endpoint, webhook_delivery, webhook_attempt, email_message, release_alert, hold_expiry_notice, night_audit"
)


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
def settings(database_url: str) -> Settings:
    os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = EMULATOR_HOST
    return Settings(
        app_env="test",
        database_url=database_url,
        firebase_project_id=PROJECT_ID,
        firebase_auth_emulator_host=EMULATOR_HOST,
        seed_demo=False,
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[Any]:
    engine = create_engine(settings.database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: Any) -> Any:
    return session_factory(engine)


@pytest.fixture
async def db(engine: Any) -> AsyncIterator[None]:
    """Empty tables for this test. The audit log and the night audits refuse TRUNCATE; the test database's
    owner lifts those guards for this one statement, in this one transaction."""
    for attempt in range(5):
        try:
            async with engine.begin() as connection:
                for table in ("audit_log", "night_audit"):
                    await connection.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER {table}_no_truncate")
                await connection.exec_driver_sql(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
                for table in ("audit_log", "night_audit"):
                    await connection.exec_driver_sql(f"ALTER TABLE {table} ENABLE TRIGGER {table}_no_truncate")
            break
        except DBAPIError as error:
            # A production-mode app's background jobs (test_hardening) may be reading these tables:
            # TRUNCATE locks them one by one and can deadlock with such a read. It lost; go again.
            if "deadlock detected" not in str(error.orig) or attempt == 4:
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
