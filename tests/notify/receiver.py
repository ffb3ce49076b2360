"""A partner's webhook receiver, for real, on loopback: a uvicorn serving a Starlette app that
verifies every request with the `standardwebhooks` package (the reference implementation, not
ours) and answers from a script of responses."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified_with: list[str]  # which of the receiver's secrets verified it
    status: int


@dataclass
class Receiver:
    url: str
    secrets: list[str] = field(default_factory=list)
    # Responses to give, in order: (status, headers); once spent, 200. A float: sleep that long first.
    script: list[Any] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def verified(self) -> list[Received]:
        return [r for r in self.received if r.verified_with]

    def delivered_ids(self) -> list[str]:
        """The webhook-ids the receiver accepted (answered 2xx to), in order."""
        return [r.headers["webhook-id"] for r in self.received if 200 <= r.status < 300]

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified_with = []
        for secret in self.secrets:
            with contextlib.suppress(Exception):
                Webhook(secret).verify(body, headers)
                verified_with.append(secret)
        step = self.script.pop(0) if self.script else (200, {})
        if isinstance(step, float):
            self.arrived.set()
            await asyncio.sleep(step)
            step = (200, {})
        status, extra = step
        if not verified_with:
            status = 401
        self.received.append(Received(headers, body, verified_with, status))
        self.arrived.set()
        return Response(status_code=status, headers=extra)


@contextlib.asynccontextmanager
async def running_receiver(*secrets: str) -> AsyncIterator[Receiver]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    receiver = Receiver(url=f"http://127.0.0.1:{sock.getsockname()[1]}/hooks", secrets=list(secrets))
    app = Starlette(routes=[Route("/hooks", receiver.handle, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
        sock.close()
