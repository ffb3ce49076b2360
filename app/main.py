"""The Starlette application: /graphql (HTTP, GraphiQL, graphql-transport-ws) and health checks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from app.api.booking_mutations import run_expiry_sweeper
from app.api.schema import build_schema
from app.auth import FirebaseVerifier
from app.broadcast import Broadcast
from app.context import Context
from app.settings import Settings, get_settings
from db import migrate
from db.engine import create_engine, session_factory

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 3
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass
class Runtime:
    """What the lifespan owns and every request shares."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    verifier: FirebaseVerifier
    broadcast: Broadcast


class GraphQLApp(GraphQL):
    def __init__(self, app: Starlette, settings: Settings) -> None:
        super().__init__(
            build_schema(settings),
            graphql_ide=None if settings.production else "graphiql",
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_timeout_s),
        )
        self._app = app

    async def get_context(self, request: Any, response: Any = None) -> Context:
        runtime: Runtime = self._app.state.runtime
        context = Context(
            settings=runtime.settings,
            sessions=runtime.sessions,
            verifier=runtime.verifier,
            broadcast=runtime.broadcast,
            request=request,
            response=response,
        )
        supplied = request.headers.get("x-request-id", "")
        if _REQUEST_ID.match(supplied):
            context.request_id = supplied
        if isinstance(request, Request):
            await context.authenticate(request.headers.get("authorization"))
        return context

    async def on_ws_connect(self, context: Context) -> None:
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        authorization = params.get("authorization") or params.get("Authorization")
        await context.authenticate(authorization if isinstance(authorization, str) else None)
        if context.principal is None:
            message = context.auth_error.message if context.auth_error else "connection_init needs an authorization"
            raise ConnectionRejectionError({"message": message, "code": "UNAUTHENTICATED"})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    try:
        # A probe must answer even when the database silently drops packets.
        revision = await asyncio.wait_for(migrate.current_revision(runtime.engine), READY_TIMEOUT_S)
    except Exception as error:  # any failure to reach the database means "not ready"
        log.warning("readiness check failed: %s", error)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    head = migrate.head_revision()
    if revision != head:
        return JSONResponse(
            {"status": "unavailable", "database": "ok", "migrations": {"current": revision, "head": head}},
            status_code=503,
        )
    return JSONResponse({"status": "ok", "database": "ok", "migrations": {"current": revision, "head": head}})


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set; `staysync serve` starts an embedded PostgreSQL for you")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
        broadcast = Broadcast(settings.broadcast_url)
        await broadcast.connect()
        verifier = FirebaseVerifier(settings)
        app.state.runtime = runtime = Runtime(settings, engine, session_factory(engine), verifier, broadcast)
        # Tests run the sweep themselves (a background writer would make them nondeterministic).
        sweeper = None if settings.app_env == "test" else asyncio.create_task(run_expiry_sweeper(
            Context(settings=settings, sessions=runtime.sessions, verifier=verifier, broadcast=broadcast)))
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            await broadcast.disconnect()
            verifier.close()
            await engine.dispose()

    app = Starlette(lifespan=lifespan)
    graphql = GraphQLApp(app, settings)
    app.router.routes.extend(
        [
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/health", health),
            Route("/health/ready", ready),
        ]
    )
    return app
