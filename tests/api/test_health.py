"""Liveness (/health) and readiness (/health/ready: database reachable, migrations at head)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
import httpx
import pytest

from app.settings import Settings
from db import migrate
from db import scratch

SECRET = "hunter2-not-for-clients"


@asynccontextmanager
async def serving(settings: Settings, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An app (lifespan running) on another database, and a client for it."""
    from app.main import create_app

    application = create_app(settings.model_copy(update={"database_url": database_url}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://staysync.test") as http:
            yield http


@pytest.fixture(scope="module")
async def scratch_database(database_url: str) -> AsyncIterator[str]:
    """An empty, unmigrated database on the test server, dropped afterwards (once per module:
    dropping a database makes the server checkpoint, slow on a busy server)."""
    async with scratch.scratch_database(database_url, "staysync_health") as url:
        yield url


def closed_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_liveness_is_ok(client):
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_migrations_are_at_head(client):
    head = migrate.head_revision()

    response = await client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "migrations": {"current": head, "head": head},
    }
    assert head  # there is at least one migration


@pytest.mark.parametrize("prepare", ["never-migrated", "at-base"])
async def test_not_ready_below_head(settings, scratch_database, prepare):
    # given a reachable database whose schema is behind the code
    if prepare == "at-base":
        # alembic_version exists and holds no revision (Alembic runs its own event loop)
        await asyncio.to_thread(migrate.upgrade, scratch_database, "base")

    # when the app on it is asked whether it is ready
    async with serving(settings, scratch_database) as http:
        response = await http.get("/health/ready")

    # then it is not, and says which revision it is at and which it needs
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": "ok",
        "migrations": {"current": None, "head": migrate.head_revision()},
    }


async def test_not_ready_when_the_database_is_unreachable(settings):
    # given credentials and an address that must never reach a client
    port = closed_loopback_port()
    url = f"postgresql://staysync:{SECRET}@127.0.0.1:{port}/staysync_nowhere"

    async with serving(settings, url) as http:
        response = await http.get("/health/ready")
        liveness = await http.get("/health")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable"}
    for leak in (SECRET, "staysync_nowhere", str(port), "127.0.0.1", "postgresql"):
        assert leak not in response.text
    # liveness does not depend on the database
    assert liveness.status_code == 200
