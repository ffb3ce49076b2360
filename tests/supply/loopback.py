"""A scripted supplier, and any ASGI app served on a free 127.0.0.1 port under a real uvicorn."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


class Loopback:
    """`app` under uvicorn in a thread with its own event loop; a context manager giving the base URL."""

    def __init__(self, app: Any) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        # a handler still sleeping when a test ends must not hold the shutdown for long
        config = uvicorn.Config(app, lifespan="off", log_level="warning", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve(sockets=[self._sock])),
                                        name="loopback-supplier", daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        for _ in range(1000):
            if self._server.started or not self._thread.is_alive():
                break
            threading.Event().wait(0.01)
        assert self._server.started, "uvicorn did not start"
        return self.url

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Answer:
    status: int = 200
    json: Any = None
    body: bytes | None = None  # sent as it is, instead of `json`
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0  # before the answer starts


def page(data: list[Any], next_page: int | None = None) -> Answer:
    return Answer(json={"data": data, "next_page": next_page})


@dataclass(frozen=True)
class Seen:
    path: str
    page: str | None
    authorization: str | None


class ScriptedSupplier:
    """Answers requests, whatever their path, with the scripted answers in order; 418 once they run
    out (so an unexpected extra request fails the fetch, and the test, loudly). Records each request."""

    def __init__(self) -> None:
        self.answers: deque[Answer] = deque()
        self.requests: list[Seen] = []
        self.app = Starlette(routes=[Route("/{path:path}", self._answer)])

    def script(self, *answers: Answer) -> None:
        self.answers = deque(answers)
        self.requests = []

    @property
    def pages(self) -> list[tuple[str, str | None]]:
        return [(seen.path, seen.page) for seen in self.requests]

    async def _answer(self, request: Request) -> Response:
        self.requests.append(Seen(request.url.path, request.query_params.get("page"),
                                  request.headers.get("authorization")))
        if not self.answers:
            return PlainTextResponse("the script has no more answers", status_code=418)
        answer = self.answers.popleft()
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        if answer.body is not None:
            return Response(answer.body, status_code=answer.status, headers=answer.headers,
                            media_type="application/json")
        return JSONResponse(answer.json, status_code=answer.status, headers=answer.headers)
