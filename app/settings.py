"""Configuration from the environment (pydantic-settings); see the README's table."""

from __future__ import annotations

import ipaddress
import os
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# scheme://host[:port] and nothing else: no wildcard, path or trailing slash.
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
GOOGLE_ID_TOKEN_CERT_URL = (
    "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    # Fail closed: a deployment that says nothing is production. `make run`, `make test` and the
    # compose file say `development` (tests `test`) explicitly.
    app_env: Literal["development", "test", "production"] = "production"
    host: str = "127.0.0.1"
    port: int = 3001
    web_concurrency: int = Field(default=1, ge=1)
    # uvicorn's line per request. Unset: on, except in production, where the proxy in front logs the
    # same requests and the line costs a worker 40-100 us of CPU per request (8-15% of a small query).
    access_log: bool | None = None
    # At shutdown (SIGTERM), in-flight requests get this long to finish; websockets close at once (1001).
    shutdown_timeout_s: float = Field(default=10, gt=0)

    # Unset: an embedded PostgreSQL is started in `data_dir` (see db/embedded.py).
    database_url: str | None = None
    data_dir: Path = PROJECT_ROOT / ".data"
    db_pool_size: int = Field(default=10, ge=1)
    # How long a request waits for a pooled connection (or for a new one to connect) before it
    # gets a retryable 503: a lost or saturated database answers quickly instead of hanging.
    db_pool_timeout_s: float = Field(default=5, gt=0)
    # Pooled connections one GraphQL request (or one websocket) may hold at once: a document of
    # many aliased calendars must not take the whole pool.
    db_connections_per_request: int = Field(default=2, ge=1)
    # Unset: seed an empty database with demo data, except in production.
    seed_demo: bool | None = None

    broadcast_url: str = "memory://"
    # Events a slow subscriber may fall behind by before it is told to resync instead.
    broadcast_queue_size: int = Field(default=256, ge=1)
    booking_expiry_minutes: float = Field(default=15, gt=0)
    lock_timeout_ms: int = Field(default=2000, ge=1)
    db_statement_timeout_ms: int = Field(default=15_000, ge=1)
    db_idle_in_transaction_timeout_ms: int = Field(default=30_000, ge=1)
    # Test/benchmark only: writes skip the inventory advisory locks, so they can overbook (the
    # comparator that proves the race tests can fail). Refused in production.
    unsafe_disable_inventory_locks: bool = False
    # Every this many seconds, a SCHEDULE run of each enabled supplier (unset: no schedule).
    supplier_sync_interval_s: float | None = Field(default=None, gt=0)
    # Watch the enabled FILE suppliers' drop folders and run when a *.json file changes.
    supplier_watch_folders: bool = True
    # Development: `staysync serve` starts the supplier simulator here (over .data/supplier-sim.json)
    # for the demo's HTTP supplier. Unset: on when the demo data is seeded, outside production.
    demo_supplier_sim: bool | None = None
    demo_supplier_url: str = "http://127.0.0.1:3101"

    # Telling partners (app/services/notify). Unset SMTP_URL: emails are recorded and logged, not
    # sent. smtp://[user:password@]host[:port] (STARTTLS when the server offers it) or smtps://.
    smtp_url: str | None = None
    smtp_from: str = "StaySync <no-reply@staysync.localhost>"
    # Webhook URLs may point at private, loopback or link-local addresses (development, tests).
    # Unset: allowed outside production only.
    webhook_allow_private: bool | None = None
    webhook_timeout_s: float = Field(default=10, gt=0, le=60)
    # Unsold hardblock nights are announced this many hours before they return to the pool.
    release_alert_hours: int = Field(default=48, ge=1, le=24 * 30)
    # DEPOSIT sales: the agency is reminded once when the balance falls due within this many days.
    balance_reminder_days: int = Field(default=3, ge=0, le=365)
    # The hotel-local hour after which each worker's night audit job closes the previous business day.
    night_audit_hour: int = Field(default=2, ge=0, le=23)
    # How often each worker's dispatchers look for due deliveries and emails.
    notify_interval_s: float = Field(default=1.0, gt=0)
    # Run the webhook and email dispatchers in the web workers. Off: run `staysync notify` (one or
    # more processes, anywhere) instead, so deliveries never take CPU from requests.
    notify_in_workers: bool = True

    # Card payments through Stripe (app/services/payments). STRIPE_API_BASE: another server than
    # Stripe's (localstripe in development and tests; refused on loopback in production). Unset
    # STRIPE_API_KEY in development: `staysync serve` starts localstripe on LOCALSTRIPE_PORT and
    # registers this app's webhook with it.
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None
    stripe_webhook_secret: str | None = None
    localstripe_port: int = Field(default=8420, ge=1, le=65535)
    # While a card payment is in flight, a hold is extended once by at most this much.
    payment_hold_extension_minutes: int = Field(default=10, ge=0, le=60)
    # Card payments in flight this long without a webhook are asked for (lost webhooks).
    payment_poll_after_s: float = Field(default=60, gt=0)
    payment_poll_interval_s: float = Field(default=15, gt=0)

    firebase_project_id: str = "staysync-local"
    firebase_auth_emulator_host: str | None = None
    # Where signed ID tokens' public certificates are fetched; only tests and air-gapped
    # deployments (a mirror of Google's endpoint) change it.
    firebase_cert_url: str = GOOGLE_ID_TOKEN_CERT_URL
    # A service-account JSON key of the Firebase project. With it, revoked tokens and disabled users
    # are refused (user records are read from Firebase Auth); without it, a token holds until its exp.
    firebase_credentials: Path | None = None
    # How long HTTP requests trust one look-up of a user's record (per uid, per worker).
    auth_revocation_cache_s: float = Field(default=60, ge=0)
    # How often an open websocket's user is looked up again (it is also looked up at connect).
    auth_revocation_check_s: float = Field(default=300, gt=0)

    # Largest HTTP request body, counted as it streams in (Content-Length or chunked).
    max_request_bytes: int = Field(default=262_144, ge=1024)
    # Browser origins allowed to call the API (CORS): exact `scheme://host[:port]`, comma-separated.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()

    graphql_max_depth: int = Field(default=10, ge=1)
    graphql_max_aliases: int = Field(default=15, ge=1)
    graphql_max_tokens: int = Field(default=2000, ge=1)
    # The static cost an operation may have (app/api/cost.py): about 250,000 calendar cells.
    graphql_max_cost: int = Field(default=500_000, ge=1)
    # Automatic persisted queries: documents remembered by hash, per worker.
    persisted_queries_cache_size: int = Field(default=1000, ge=1)
    # Production's allow-list: only the documents of PERSISTED_QUERIES_FILE run.
    persisted_queries_only: bool = False
    persisted_queries_file: Path | None = None
    ws_connection_init_timeout_s: float = Field(default=5, gt=0)
    # graphql-transport-ws `ping` from the server; no `pong` within the timeout drops the socket.
    ws_ping_interval_s: float = Field(default=15, gt=0)
    ws_ping_timeout_s: float = Field(default=10, gt=0)
    # Operations in flight on one socket (subscriptions, and queries or mutations still running);
    # one more is refused with an error, and the socket stays open.
    ws_max_subscriptions_per_socket: int = Field(default=100, ge=1)
    # Acknowledged sockets of one user (token uid) in one worker process; one more closes with 4429.
    ws_max_sockets_per_user: int = Field(default=20, ge=1)
    # A larger client message closes the socket with 4400; the same default as the HTTP body limit.
    ws_max_message_bytes: int = Field(default=262_144, ge=1)

    # Reading a supplier's HTTP feed (app/services/supply/fetch.py): per request, and per page.
    supplier_connect_timeout_s: float = Field(default=5, gt=0)
    supplier_read_timeout_s: float = Field(default=30, gt=0)
    supplier_fetch_attempts: int = Field(default=4, ge=1)
    # A feed with more pages than this is taken for a broken pager, and the run fails.
    supplier_max_pages: int = Field(default=1000, ge=1)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _exact_origins(cls, value: object) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else value
        origins = tuple(item.strip() for item in items if item.strip())  # type: ignore[union-attr]
        for origin in origins:
            if not _ORIGIN.match(origin):
                raise ValueError(f"CORS_ORIGINS takes exact origins such as https://app.example.com, not {origin!r}")
        return origins

    @property
    def production(self) -> bool:
        return self.app_env == "production"

    @property
    def allows_private_webhooks(self) -> bool:
        return self.webhook_allow_private if self.webhook_allow_private is not None else not self.production

    @property
    def logs_access(self) -> bool:
        return not self.production if self.access_log is None else self.access_log

    @property
    def should_seed_demo(self) -> bool:
        return not self.production if self.seed_demo is None else self.seed_demo

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.production and self.firebase_auth_emulator_host:
            raise ValueError(
                "APP_ENV=production refuses FIREBASE_AUTH_EMULATOR_HOST: emulator mode accepts "
                "unsigned and expired tokens. Unset it to run in production."
            )
        if self.web_concurrency > 1 and self.broadcast_url.startswith("memory://"):
            raise ValueError(
                "BROADCAST_URL=memory:// reaches one process only: with WEB_CONCURRENCY > 1 a subscriber "
                "would miss every change made by another worker. Use redis://… or postgresql://…"
            )
        if self.persisted_queries_only and self.persisted_queries_file is None:
            raise ValueError(
                "PERSISTED_QUERIES_ONLY needs PERSISTED_QUERIES_FILE: the registry of the documents allowed to run"
            )
        if self.production and self.unsafe_disable_inventory_locks:
            raise ValueError(
                "APP_ENV=production refuses UNSAFE_DISABLE_INVENTORY_LOCKS: without the inventory "
                "locks bookings can overbook. It exists for tests and benchmarks only."
            )
        if self.production and self.stripe_api_base and _is_loopback(self.stripe_api_base):
            raise ValueError(
                "APP_ENV=production refuses a loopback STRIPE_API_BASE: that is a fake Stripe (localstripe), "
                "and no card would be charged. Unset it to use Stripe."
            )
        return self

    def export_firebase_env(self) -> None:
        """firebase-admin reads the emulator switch from os.environ on every verification."""
        if self.firebase_auth_emulator_host:
            os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = self.firebase_auth_emulator_host
        else:
            os.environ.pop("FIREBASE_AUTH_EMULATOR_HOST", None)


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@lru_cache
def get_settings() -> Settings:
    return Settings()
