"""The Starlette application: /graphql (HTTP, GraphiQL, graphql-transport-ws) and health checks."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from json import JSONDecodeError
from typing import Any

import orjson
from cross_web import HTTPException as ViewRefusal
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived, WebSocketDisconnected
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.types import ExecutionResult

import db.inventory
from app.api.context import Context
from app.api.schema import build_schema
from app.api.subscriptions import SharedData
from app.auth import AuthenticationError, FirebaseVerifier, UserLookupFailed
from app.broadcast import Broadcast
from app.dashboard import dashboard
from app.graphql_http import GRAPHQL_RESPONSE_JSON, is_request_error, request_error_status, response_media_type
from app.limits import RequestBodyLimit
from app.persisted_queries import PersistedQueries, PersistedQueryError, load_registry
from app.services.changes import OutboxRelay, is_valid_message
from app.services.context import Services, raw_pool
from app.services.jobs import (
    run_alert_job,
    run_expiry_sweeper,
    run_mail_dispatcher,
    run_night_audit_job,
    run_payment_poller,
    run_release_job,
    run_webhook_dispatcher,
    supplier_jobs,
)
from app.stripe_webhooks import stripe_webhook
from app.supplier_webhooks import supplier_webhook
from app.reports_csv import report_csv
from app.settings import Settings, get_settings
from db import migrate
from db.engine import ConnectionBudget, create_engine, session_factory

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
    services: Services
    sockets: OpenSockets


class OpenSockets:
    """The acknowledged websockets of each user (uid) in this worker, capped at
    WS_MAX_SOCKETS_PER_USER. The count is per worker process: sockets the same user holds on other
    workers or hosts are not seen here."""

    def __init__(self, max_per_user: int) -> None:
        self.max_per_user = max_per_user
        self._by_user: dict[str, set[int]] = {}  # uid -> id() of each socket's (connection) context

    def claim(self, context: Context) -> bool:
        """Count an authenticated socket against its user's cap; False when the user is at the cap."""
        assert context.principal is not None
        sockets = self._by_user.setdefault(context.principal.uid, set())
        if len(sockets) >= self.max_per_user:
            return False
        sockets.add(id(context))  # the context lives as long as its socket, so its id stays unique
        return True

    def release(self, context: Context) -> None:
        if context.principal is None:
            return
        sockets = self._by_user.get(context.principal.uid)
        if sockets is not None:
            sockets.discard(id(context))
            if not sockets:
                del self._by_user[context.principal.uid]


class SocketRejected(Exception):
    """on_ws_connect refusing a socket with a close code of its own (Strawberry closes a socket for
    any ConnectionRejectionError with 4403)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class LimitedWebSocketAdapter(ASGIWebSocketAdapter):
    """Strawberry's websocket adapter, with a size limit: a message over WS_MAX_MESSAGE_BYTES closes
    the socket with 4400 (graphql-transport-ws: a bad message) before it is decoded."""

    async def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object, None]:
        # ASGIWebSocketAdapter.iter_json, with the size check before decoding
        limit = self.view.max_message_bytes
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                text = await self.ws.receive_text()
                if len(text.encode()) > limit:
                    await self.close(4400, f"Message larger than {limit} bytes")
                    return
                try:
                    yield self.view.decode_json(text)
                except JSONDecodeError as error:
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from error
        except KeyError as error:  # a binary message
            raise NonTextMessageReceived from error
        except WebSocketDisconnect:
            pass

    async def send_json(self, message: Mapping[str, object]) -> None:
        # encode_json gives bytes, which ASGIWebSocketAdapter would send as a binary frame;
        # graphql-transport-ws messages are text frames.
        try:
            await self.ws.send_text(self.view.encode_json_string(message))
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


class TransportWSHandler(BaseGraphQLTransportWSHandler):
    """graphql-transport-ws with watchdogs: server pings, and a close when the token expires or is revoked.

    Once acknowledged, the server sends `ping` every WS_PING_INTERVAL_S; a client that does not
    answer `pong` within WS_PING_TIMEOUT_S (a half-open connection, a frozen tab) is dropped and
    its subscriptions freed. When the token of `connection_init` expires the socket closes with
    4403, like a bad token at connect, even while a ping is outstanding, and no event is sent past
    `exp`; the client reconnects with a fresh one. With FIREBASE_CREDENTIALS, the user is looked up
    again every AUTH_REVOCATION_CHECK_S, and a disabled user or a revoked token closes it with 4403.
    """

    CLOSE_TIMEOUT_S = 2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watchdogs: list[asyncio.Task] = []
        self._pong = asyncio.Event()
        self._sockets: OpenSockets = self.view.runtime.sockets

    async def handle_connection_init(self, message: Any) -> None:
        try:
            await super().handle_connection_init(message)
        except SocketRejected as rejection:
            await self.websocket.close(code=rejection.code, reason=rejection.reason)
            return
        if self.connection_acknowledged and not self._watchdogs:
            watches = [self._watch()]
            if self.context.verifier.checks_revocation:
                watches.append(self._watch_revocation())
            for watch in watches:
                task = asyncio.create_task(watch)
                task.add_done_callback(self._task_done)
                self._watchdogs.append(task)

    async def handle_pong(self, message: Any) -> None:
        self._pong.set()

    async def handle_subscribe(self, message: Any) -> None:
        # Strawberry's own check answers without an error code; the socket stays open either way.
        limit = self.max_subscriptions_per_connection
        if (self.connection_acknowledged and limit is not None and len(self.operations) >= limit
                and message["id"] not in self.operations):
            error = {"message": f"at most {limit} subscriptions (operations in flight) per socket: complete one first",
                     "extensions": {"code": "TOO_MANY_SUBSCRIPTIONS"}}
            await self.send_message({"id": message["id"], "type": "error", "payload": [error]})
            return
        payload = message["payload"]
        if self.connection_acknowledged and message["id"] not in self.operations and isinstance(payload, dict):
            # The allow-list (PERSISTED_QUERIES_ONLY) holds on sockets too, and a persisted query's hash works here as well.
            try:
                document = self.view.persisted_queries.document(payload.get("query"), payload.get("extensions"))
            except PersistedQueryError as refusal:
                await self.send_message({"id": message["id"], "type": "error", "payload": [refusal.formatted]})
                return
            if document is not None:
                payload["query"] = document
        await super().handle_subscribe(message)

    async def send_message(self, message: Any) -> None:
        if message.get("type") == "next" and self._token_expired():
            return  # nothing reaches a client past its token's `exp`; the watchdog is closing the socket
        # A result shared by several subscribers (app.api.subscriptions.SharedData) is encoded to
        # JSON once; each socket only adds its own operation id around it.
        payload = message.get("payload") if message.get("type") == "next" else None
        data = payload.get("data") if isinstance(payload, dict) and len(payload) == 1 else None
        if not isinstance(data, SharedData):
            await super().send_message(message)
            return
        text = f'{{"id":{json.dumps(message["id"])},"type":"next","payload":{{"data":{data.encoded(self.view.encode_json)}}}}}'
        try:
            await self.websocket.ws.send_text(text)  # type: ignore[attr-defined] # ASGIWebSocketAdapter
        except WebSocketDisconnect as exc:  # as ASGIWebSocketAdapter.send_json does
            raise WebSocketDisconnected from exc

    async def shutdown(self) -> None:
        for task in self._watchdogs:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await super().shutdown()
        finally:
            self._sockets.release(self.context)

    async def _watch(self) -> None:
        settings = self.context.settings
        try:
            while True:
                await asyncio.sleep(max(self._until_expiry(settings.ws_ping_interval_s), 0))
                if self._token_expired():
                    await self._drop(4403, "Token expired")
                    return
                self._pong.clear()
                try:
                    # An outstanding ping never outlasts the token: at `exp` the socket closes
                    # (4403), whether or not the client still answers.
                    await asyncio.wait_for(self._ping_and_wait(), self._until_expiry(settings.ws_ping_timeout_s))
                except TimeoutError:
                    await self._drop(*((4403, "Token expired") if self._token_expired() else (4408, "Ping timeout")))
                    return
        except Exception as error:  # noqa: BLE001 - logged like Strawberry's own tasks
            await self.handle_task_exception(error)

    async def _watch_revocation(self) -> None:
        context: Context = self.context
        assert context.principal is not None
        try:
            while True:
                await asyncio.sleep(context.settings.auth_revocation_check_s)
                try:
                    await context.verifier.check_revocation(context.principal, fresh=True)
                except UserLookupFailed:
                    continue  # logged; Firebase Auth unreachable is no reason to drop every socket
                except AuthenticationError as error:
                    await self._drop(4403, error.message)
                    return
        except Exception as error:  # noqa: BLE001 - logged like Strawberry's own tasks
            await self.handle_task_exception(error)

    def _until_expiry(self, limit: float) -> float:
        """`limit` seconds, or fewer if the token expires sooner."""
        expires_at = self._expires_at()
        return limit if expires_at is None else min(limit, expires_at - time.time())

    def _token_expired(self) -> bool:
        expires_at = self._expires_at()
        return expires_at is not None and time.time() >= expires_at

    def _expires_at(self) -> float | None:
        principal = self.context.principal
        return principal.expires_at if principal else None

    async def _ping_and_wait(self) -> None:
        await self.send_message({"type": "ping"})
        await self._pong.wait()

    async def _drop(self, code: int, reason: str) -> None:
        # Free the subscriptions first: closing a half-open socket may never complete.
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.websocket.close(code=code, reason=reason), self.CLOSE_TIMEOUT_S)


# A full collection walks every tracked object: with a thousand open websockets that is ~300 ms
# during which nothing is delivered. What the app built at startup (schema, modules) never dies:
# freeze it out of the collector's walks; and let the young generation grow, so the objects of
# one request or one fan-out die young instead of being promoted towards full collections.
GC_YOUNG_THRESHOLD = 20_000


def _tune_gc() -> None:
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


class GraphQLApp(GraphQL):
    graphql_transport_ws_handler_class = TransportWSHandler
    websocket_adapter_class = LimitedWebSocketAdapter  # type: ignore[assignment]

    def __init__(self, app: Starlette, settings: Settings) -> None:
        schema = build_schema(settings)
        super().__init__(
            schema,
            graphql_ide=None if settings.production else "graphiql",
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_timeout_s),
            max_subscriptions_per_connection=settings.ws_max_subscriptions_per_socket,
        )
        self.max_message_bytes = settings.ws_max_message_bytes
        self.persisted_queries = PersistedQueries(
            settings.persisted_queries_cache_size,
            load_registry(settings.persisted_queries_file) if settings.persisted_queries_only else None,
        )
        self._app = app

    @property
    def runtime(self) -> Runtime:
        return self._app.state.runtime

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET that names its document by hash alone (a persisted query) is a query, whatever it accepts.
        return super().should_render_graphql_ide(request) and request.query_params.get("extensions") is None

    async def get_sub_response(self, request: Request) -> Response:
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = response_media_type(request.headers.get("accept"))
        return sub_response

    async def execute_single(self, request: Request, request_adapter: Any, sub_response: Response, context: Context,
                             root_value: Any, request_data: GraphQLRequestData) -> ExecutionResult:
        try:
            request_data.query = self.persisted_queries.document(request_data.query, request_data.extensions)
        except PersistedQueryError as error:
            return ExecutionResult(data=None, errors=[error])
        try:
            return await super().execute_single(request, request_adapter, sub_response, context, root_value,
                                                request_data)
        except ViewRefusal as refusal:
            if request_adapter.method == "GET" and isinstance(refusal.__cause__, InvalidOperationTypeError):
                # GraphQL over HTTP: a mutation asked for over GET is 405 (Strawberry says 400).
                raise HTTPException(405, refusal.reason, headers={"Allow": "POST"}) from refusal
            raise

    def create_response(self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
                        sub_response: Response) -> Response:
        media_type = sub_response.media_type or "application/json"
        if media_type == GRAPHQL_RESPONSE_JSON and isinstance(response_data, dict) and is_request_error(response_data):
            # GraphQL over HTTP: a request that never executed answers with no `data` at all, and a
            # 4xx status (5xx when we failed). application/json keeps 200 and `data: null`.
            response_data = {key: value for key, value in response_data.items() if key != "data"}  # type: ignore[assignment]
            sub_response.status_code = sub_response.status_code or request_error_status(response_data)  # type: ignore[arg-type]
        response = super().create_response(response_data, sub_response)
        if media_type == GRAPHQL_RESPONSE_JSON:
            response.headers["content-type"] = f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"
        # The answer depends on both, so a cache in front of GET queries must key on both.
        response.headers.add_vary_header("Accept, Authorization")
        return response

    def encode_json(self, data: object) -> bytes:
        # Every response body and websocket message. What reaches here is plain JSON already:
        # Strawberry has serialised each scalar (dates, decimals, Series) to str, int, float, bool
        # or None before the result is encoded, and our extensions hold the same.
        return orjson.dumps(data)

    async def get_context(self, request: Any, response: Any = None) -> Context:
        runtime = self.runtime
        settings = runtime.settings
        # Every session of this request (use cases, loaders, calendars) goes through one budget.
        budget = ConnectionBudget(runtime.sessions, settings.db_connections_per_request, settings.db_pool_timeout_s)
        context = Context(
            services=dataclasses.replace(runtime.services, sessions=budget), verifier=runtime.verifier,
            broadcast=runtime.broadcast, request=request, response=response,
        )
        # Our own id names the request in logs, errors and the audit log; a client's id is kept
        # beside it (logged, never trusted as ours) so both sides can find the same request.
        supplied = request.headers.get("x-request-id", "")
        if _REQUEST_ID.match(supplied):
            context.client_request_id = supplied
        if isinstance(request, Request):
            response.headers["X-Request-Id"] = context.request_id
            await context.authenticate(request.headers.get("authorization"))
        return context

    async def on_ws_connect(self, context: Context) -> None:
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        authorization = params.get("authorization") or params.get("Authorization")
        # The user's record is read now, whatever HTTP requests cached: a socket lasts.
        await context.authenticate(authorization if isinstance(authorization, str) else None, fresh=True)
        if context.principal is None:
            message = context.auth_error.message if context.auth_error else "connection_init needs an authorization"
            raise ConnectionRejectionError({"message": message, "code": "UNAUTHENTICATED"})
        expires_at = context.principal.expires_at
        if expires_at is not None and expires_at <= time.time():
            # Emulator mode accepts expired tokens; a socket would outlive one anyway.
            raise ConnectionRejectionError({"message": "ID token has expired", "code": "UNAUTHENTICATED"})
        if not self.runtime.sockets.claim(context):
            raise SocketRejected(4429, "Too many open sockets for this user")


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> JSONResponse:
    """Ready when the database is reachable with its migrations at head, and the broadcast
    backend answers; a 503 says which part failed."""
    runtime: Runtime = request.app.state.runtime
    body: dict[str, Any] = {"status": "ok"}
    try:
        # A probe must answer even when the database silently drops packets.
        revision = await asyncio.wait_for(migrate.current_revision(runtime.engine), READY_TIMEOUT_S)
    except Exception as error:  # any failure to reach the database means "not ready"
        log.warning("readiness check: database unreachable: %s", error)
        body["database"] = "unreachable"
    else:
        head = migrate.head_revision()
        body["database"] = "ok"
        body["migrations"] = {"current": revision, "head": head}
        if revision != head:
            body["status"] = "unavailable"
    try:
        await runtime.broadcast.ping(READY_TIMEOUT_S)
    except Exception as error:  # any failure means subscribers would miss changes
        log.warning("readiness check: broadcast backend unreachable: %r", error)
        body["broadcast"] = "unreachable"
    else:
        body["broadcast"] = "ok"
    if "unreachable" in (body["database"], body["broadcast"]):
        body["status"] = "unavailable"
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set; `staysync serve` starts an embedded PostgreSQL for you")
    if settings.unsafe_disable_inventory_locks:  # benchmarks' comparator only; refused in production
        log.warning("UNSAFE_DISABLE_INVENTORY_LOCKS is set: inventory writes skip their locks and can overbook")
        db.inventory.locking_enabled = False

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, pool_size=settings.db_pool_size,
                               pool_timeout_s=settings.db_pool_timeout_s,
                               statement_timeout_ms=settings.db_statement_timeout_ms,
                               idle_in_transaction_timeout_ms=settings.db_idle_in_transaction_timeout_ms)
        broadcast = Broadcast(settings.broadcast_url, queue_size=settings.broadcast_queue_size,
                              validate=is_valid_message)
        await broadcast.connect()
        verifier = FirebaseVerifier(settings)
        sessions = session_factory(engine)
        services = Services(settings, sessions, OutboxRelay(sessions, broadcast.publish), raw_pool(settings))
        app.state.runtime = Runtime(settings, engine, sessions, verifier, broadcast, services,
                                    OpenSockets(settings.ws_max_sockets_per_user))
        if settings.app_env != "test":  # a test process builds many apps; it keeps its own GC
            _tune_gc()
        # The background writers: the outbox relay, the expiry sweeper, the hardblock release job,
        # the partner notifications' dispatchers and alert job, the night audit and the payment poller.
        # Tests run them themselves (a background writer would make them nondeterministic).
        jobs = [] if settings.app_env == "test" else [
            asyncio.create_task(services.relay.run()),
            *(asyncio.create_task(job(services)) for job in (run_expiry_sweeper, run_release_job, run_alert_job,
                                                              run_night_audit_job, run_payment_poller)),
            *(asyncio.create_task(job(services)) for job in (run_webhook_dispatcher, run_mail_dispatcher)
              if settings.notify_in_workers),
            *(asyncio.create_task(job) for job in supplier_jobs(services)),
        ]
        try:
            yield
        finally:
            for task in jobs:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await broadcast.disconnect()
            verifier.close()
            await services.raw.close()
            await engine.dispose()

    app = Starlette(lifespan=lifespan, middleware=[
        # Outermost, so that refusals (413) carry CORS headers and browsers can read them.
        Middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                   allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
                   expose_headers=["X-Request-Id", "Retry-After"], max_age=600),
        Middleware(RequestBodyLimit, max_bytes=settings.max_request_bytes),
    ])
    graphql = GraphQLApp(app, settings)
    app.router.routes.extend(
        [
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/health", health),
            Route("/health/ready", ready),
            Route("/webhooks/suppliers/{code}", supplier_webhook, methods=["POST"]),
            Route("/webhooks/stripe", stripe_webhook, methods=["POST"]),
            Route("/reports/{name}.csv", report_csv, methods=["GET"]),
            Route("/dashboard", dashboard, methods=["GET"]),
        ]
    )
    return app
