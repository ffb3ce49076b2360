"""Liveness (/health) and readiness (/health/ready: database reachable, migrations at head,
broadcast backend answering)."""

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
from tests.test_broadcast import WAIT_S, dedicated_postgres, redis_server  # noqa: F401 (fixtures)

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
        "broadcast": "ok",
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
        "broadcast": "ok",
    }


async def test_not_ready_when_the_database_is_unreachable(settings):
    # given credentials and an address that must never reach a client
    port = closed_loopback_port()
    url = f"postgresql://staysync:{SECRET}@127.0.0.1:{port}/staysync_nowhere"

    async with serving(settings, url) as http:
        response = await http.get("/health/ready")
        liveness = await http.get("/health")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable", "broadcast": "ok"}
    for leak in (SECRET, "staysync_nowhere", str(port), "127.0.0.1", "postgresql"):
        assert leak not in response.text
    # liveness does not depend on the database
    assert liveness.status_code == 200


async def ready_body(http: httpx.AsyncClient, status: int) -> dict:
    """The readiness answer once it has `status` (the listener notices a loss within seconds)."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while (response := await http.get("/health/ready")).status_code != status:
        assert asyncio.get_running_loop().time() < deadline, response.text
        await asyncio.sleep(0.1)
    return response.json()


@pytest.mark.parametrize("backend", ["redis", "postgres"])
async def test_not_ready_while_the_broadcast_backend_is_down(settings, request, backend):
    # given an app whose broadcast backend is a server of the test's own
    server = request.getfixturevalue({"redis": "redis_server", "postgres": "dedicated_postgres"}[backend])
    async with serving(settings.model_copy(update={"broadcast_url": server.url}), settings.database_url) as http:
        assert (await ready_body(http, 200))["broadcast"] == "ok"

        # when that server stops, the app says it is not ready, and which part failed
        await asyncio.to_thread(server.stop)
        try:
            body = await ready_body(http, 503)
        finally:
            await asyncio.to_thread(server.start)
        assert body["status"] == "unavailable" and body["broadcast"] == "unreachable" and body["database"] == "ok"
        assert server.url not in str(body)

        # and once it is back, ready again
        assert (await ready_body(http, 200))["broadcast"] == "ok"
