"""Helpers shared by the API tests."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import make_emulator_token

if TYPE_CHECKING:
    from app.settings import Settings

EMULATOR_HOST = "127.0.0.1:9099"
PROJECT_ID = "staysync-test"


def token(role: str, agency: str | None = None, **kwargs: Any) -> str:
    return make_emulator_token(role=role, agency=agency, project_id=PROJECT_ID, **kwargs)


class GraphQL:
    """POSTs a document as a given caller; returns the decoded JSON body."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def __call__(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        role: str | None = "admin",
        agency: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        all_headers = dict(headers or {})
        if role is not None:
            all_headers.setdefault("Authorization", f"Bearer {token(role, agency)}")
        response = await self.http.post("/graphql", json={"query": query, "variables": variables or {}},
                                        headers=all_headers)
        assert response.status_code == 200, response.text
        return response.json()


def data(result: dict[str, Any]) -> dict[str, Any]:
    """The `data` of a result that must have no errors."""
    assert not result.get("errors"), result["errors"]
    return result["data"]


@contextmanager
def captured_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements `engine` sends while the block runs, in order (the list fills as they
    go), with "COMMIT" where a transaction commits (the driver sends that outside the cursor)."""
    statements: list[str] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: PLR0913
        statements.append(statement)

    def commit(conn):
        statements.append("COMMIT")

    with listening(engine, before_cursor_execute=capture, commit=commit):
        yield statements


@contextmanager
def listening(engine: AsyncEngine, **listeners: Any) -> Iterator[None]:
    """SQLAlchemy event listeners on `engine` (by event name) while the block runs."""
    for name, listener in listeners.items():
        sa_event.listen(engine.sync_engine, name, listener)
    try:
        yield
    finally:
        for name, listener in listeners.items():
            sa_event.remove(engine.sync_engine, name, listener)


class LiveServer:
    """The app under a real uvicorn (lifespan on) on a free loopback port, in a thread with its own
    event loop. A context manager: it starts on entry (once uvicorn has started) and stops on exit.

    `overrides` update a copy of `settings`; `backlog` is the listening socket's backlog.
    """

    def __init__(self, settings: Settings, *, backlog: int = 2048, **overrides: Any) -> None:
        from app.main import create_app
        from app.server import uvicorn_options

        self.settings = settings.model_copy(update=overrides)
        self.app = create_app(self.settings)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.http_url, self.ws_url = f"http://127.0.0.1:{self.port}", f"ws://127.0.0.1:{self.port}/graphql"
        self._server = uvicorn.Server(uvicorn.Config(self.app, lifespan="on", log_level="warning", backlog=backlog,
                                                     **uvicorn_options(self.settings)))
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"uvicorn-{self.port}", daemon=True)

    def __enter__(self) -> LiveServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        self._thread.start()
        try:
            for _ in range(1000):
                if self._server.started or not self._thread.is_alive():
                    break
                threading.Event().wait(0.01)
            assert self._server.started, "uvicorn did not start"
        except BaseException:
            self.close()
            raise

    def _run(self) -> None:
        # like asyncio.run: when uvicorn returns, leftover tasks are cancelled and the loop closed
        asyncio.set_event_loop(self.loop)
        with asyncio.Runner(loop_factory=lambda: self.loop) as runner:
            runner.run(self._server.serve(sockets=[self._sock]))

    @property
    def broadcast(self) -> Any:
        return self.app.state.runtime.broadcast

    async def call(self, coroutine: Any) -> Any:
        """Run a coroutine on the server's own loop (its broadcast lives there)."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def close(self) -> None:
        self._server.should_exit = True
        if self._thread.ident is not None:
            self._thread.join(timeout=15)
        self._sock.close()
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()  # never started (the thread closes its loop itself)


def live_server(settings: Settings, **overrides: Any) -> LiveServer:
    """`with live_server(settings, **overrides) as server:`, the same as `with LiveServer(...)`."""
    return LiveServer(settings, **overrides)
