"""Webhook deliveries: claimed with a lease by any worker, POSTed signed (Standard Webhooks), each
attempt recorded, retried with backoff and jitter.

- 2xx: DELIVERED. 410 Gone: GAVE_UP and the endpoint is disabled (the receiver said so).
- Anything else (another status, a timeout, a refused connection, a target that now resolves to
  a private address): FAILED, tried again after BACKOFF[attempt] (+-20 %), or after the
  receiver's `Retry-After` when it asks for longer; GAVE_UP once the schedule is spent.
- An endpoint failing for FAILING_LIMIT without a single success is disabled, and its agency told
  by email.
- A worker that dies mid-delivery leaves the row leased; when the lease runs out another worker
  sends it again (at least once: the receiver dedupes on `webhook-id`).
Redirects are never followed: a 3xx is a failure (a public URL must not bounce us inward).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from collections.abc import Awaitable
from typing import Any

import httpx
import orjson
from sqlalchemy import text

from app.services.context import Services
from app.services.notify import mail
from app.services.notify.urls import UnsafeUrl, check_target
from app.services.retry_after import retry_after_s
from app.services.webhook_signatures import signed_headers
from db import audit, models
from db.engine import transaction

log = logging.getLogger(__name__)

BACKOFF = (timedelta(seconds=5), timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10),
           timedelta(hours=1), timedelta(hours=6))
MAX_RETRY_AFTER = timedelta(hours=24)
FAILING_LIMIT = timedelta(days=3)
CONCURRENCY = 20
PER_RECEIVER = 8  # connections kept per receiver
USER_AGENT = "StaySync-Webhooks/1"

_CLAIM = text("""
UPDATE webhook_delivery AS d SET lease_until = now() + make_interval(secs => :lease_s), attempts = d.attempts + 1
FROM webhook_endpoint AS e
WHERE e.id = d.endpoint_id AND d.id IN (
    SELECT x.id FROM webhook_delivery AS x JOIN webhook_endpoint AS y ON y.id = x.endpoint_id
    WHERE x.status IN ('PENDING', 'FAILED') AND x.next_attempt_at <= now()
      AND (x.lease_until IS NULL OR x.lease_until < now()) AND y.enabled
    ORDER BY x.next_attempt_at LIMIT :limit FOR UPDATE OF x SKIP LOCKED)
RETURNING d.id, d.webhook_id, d.payload, d.attempts, d.endpoint_id, e.url, e.secret, e.previous_secret,
          e.previous_secret_until, e.agency_id
""")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to."""

    status_code: int | None
    error: str | None
    duration_ms: int
    retry_after: timedelta | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


class Clients:
    """One httpx client per receiver (scheme, host, port), each with a small pool of kept-alive
    connections: httpcore looks over every connection of its pool for each request, so one big
    pool for all receivers costs more CPU than the requests themselves (bench/README.md,
    `bench.webhooks`)."""

    def __init__(self, services: Services) -> None:
        self._timeout = services.settings.webhook_timeout_s
        self._clients: dict[tuple[str, str, int | None], httpx.AsyncClient] = {}

    def for_url(self, url: str) -> httpx.AsyncClient:
        parts = httpx.URL(url)
        key = (parts.scheme, parts.host, parts.port)
        client = self._clients.get(key)
        if client is None:
            limits = httpx.Limits(max_connections=PER_RECEIVER, max_keepalive_connections=PER_RECEIVER,
                                  keepalive_expiry=30)
            client = self._clients[key] = httpx.AsyncClient(
                timeout=self._timeout, follow_redirects=False, trust_env=False, limits=limits,
                headers={"user-agent": USER_AGENT, "content-type": "application/json"})
        return client

    async def __aenter__(self) -> Clients:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def new_client(services: Services) -> Clients:
    return Clients(services)


async def deliver_due(services: Services, client: Clients, *, limit: int = 100) -> int:
    """Claim up to `limit` due deliveries, send them concurrently, record what happened (one
    transaction for the batch); returns how many."""
    settings = services.settings
    # Long enough for every wave of the batch to time out: a lease that runs out while the batch is
    # still sending lets another worker claim (and send) the same deliveries again.
    lease_s = settings.webhook_timeout_s * -(-limit // CONCURRENCY) + 20
    async with transaction(services.sessions) as session:
        claimed = list((await session.execute(_CLAIM, {"lease_s": lease_s, "limit": limit})).mappings())
    if not claimed:
        return 0
    gate = asyncio.Semaphore(CONCURRENCY)
    checked: dict[str, asyncio.Task[str]] = {}  # each URL checked (resolved) once a batch, not per delivery

    async def one(row: Any) -> Outcome:
        if row["url"] not in checked:
            checked[row["url"]] = asyncio.ensure_future(check_target(
                row["url"], production=settings.production, allow_private=settings.allows_private_webhooks))
        async with gate:
            return await send(services, client, row, checked[row["url"]])

    outcomes = await asyncio.gather(*(one(row) for row in claimed))
    await record(services, claimed, outcomes)
    return len(claimed)


def _signatures(row: Any, body: bytes, now: datetime) -> dict[str, str]:
    headers = signed_headers(row["secret"], row["webhook_id"], body, now)
    previous, until = row["previous_secret"], row["previous_secret_until"]
    if previous and until and until > now:  # rotating: the old secret signs too, until it lapses
        old = signed_headers(previous, row["webhook_id"], body, now)["webhook-signature"]
        headers["webhook-signature"] = f"{headers['webhook-signature']} {old}"
    return headers


async def send(services: Services, client: Clients, row: Any, target: Awaitable[str]) -> Outcome:
    """POST one delivery to `target`: its URL as check_target passed it (again for each batch: a name
    can be pointed somewhere else after it was saved)."""
    settings = services.settings
    started = time.perf_counter()

    def elapsed() -> int:
        return int((time.perf_counter() - started) * 1000)

    try:
        url = await target
    except UnsafeUrl as error:
        return Outcome(None, f"refused: the URL {error}", elapsed())
    body = orjson.dumps(row["payload"])
    try:
        response = await client.for_url(url).post(url, content=body,
                                                  headers=_signatures(row, body, datetime.now(UTC)))
    except httpx.TimeoutException:
        return Outcome(None, f"timed out after {settings.webhook_timeout_s:g} s", elapsed())
    except httpx.HTTPError as error:
        return Outcome(None, f"{type(error).__name__}: {error}"[:500], elapsed())
    error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
    return Outcome(response.status_code, error, elapsed(), retry_after(response.headers.get("retry-after")))


def retry_after(value: str | None, now: datetime | None = None) -> timedelta | None:
    """A `Retry-After` header (seconds, or an HTTP date) as a delay, at most MAX_RETRY_AFTER."""
    seconds = retry_after_s(value, now or datetime.now(UTC))
    return None if seconds is None else min(timedelta(seconds=seconds), MAX_RETRY_AFTER)


def next_delay(attempts: int, asked: timedelta | None, rnd: random.Random | None = None) -> timedelta | None:
    """When to try again after `attempts` failed attempts (None: give up)."""
    if attempts > len(BACKOFF):
        return None
    base = BACKOFF[attempts - 1] * (rnd or random).uniform(0.8, 1.2)
    return max(base, asked) if asked is not None else base


_ATTEMPTS = text("""
INSERT INTO webhook_attempt (delivery_id, status_code, error, duration_ms)
SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:codes AS integer[]), CAST(:errors AS varchar[]),
                     CAST(:ms AS integer[]))
""")
_OUTCOMES = text("""
UPDATE webhook_delivery AS d
SET status = x.status, lease_until = NULL, last_status_code = x.code, last_error = x.error,
    delivered_at = CASE WHEN x.status = 'DELIVERED' THEN now() ELSE d.delivered_at END,
    next_attempt_at = CASE WHEN x.status = 'FAILED' THEN now() + make_interval(secs => x.delay) ELSE d.next_attempt_at END
FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS varchar[]), CAST(:codes AS integer[]),
            CAST(:errors AS varchar[]), CAST(:delays AS double precision[])) AS x(id, status, code, error, delay)
WHERE d.id = x.id
""")
# An endpoint that answered once in the batch is alive; one that only failed starts (or goes on)
# failing. Rows are touched only when that changes something.
_HEALTHY = text("UPDATE webhook_endpoint SET failing_since = NULL "
                "WHERE id = ANY(CAST(:ids AS integer[])) AND failing_since IS NOT NULL")
_FAILING = text("UPDATE webhook_endpoint SET failing_since = coalesce(failing_since, now()) "
                "WHERE id = ANY(CAST(:ids AS integer[])) RETURNING id, failing_since, now() AS now")


async def record(services: Services, rows: list[Any], outcomes: list[Outcome]) -> None:
    """The attempts, the deliveries' new states and the endpoints' health, in one transaction."""
    statuses, delays = [], []
    for row, outcome in zip(rows, outcomes):
        delay = None if outcome.delivered or outcome.gone else next_delay(row["attempts"], outcome.retry_after)
        statuses.append("DELIVERED" if outcome.delivered else "FAILED" if delay is not None else "GAVE_UP")
        delays.append((delay or timedelta(0)).total_seconds())
    ids = [row["id"] for row in rows]
    codes = [o.status_code for o in outcomes]
    errors = [o.error for o in outcomes]
    healthy = {row["endpoint_id"] for row, o in zip(rows, outcomes) if o.delivered}
    failing = {row["endpoint_id"] for row, o in zip(rows, outcomes) if not o.delivered} - healthy
    gone = {row["endpoint_id"] for row, o in zip(rows, outcomes) if o.gone}
    async with transaction(services.sessions) as session:
        await session.execute(_ATTEMPTS, {"ids": ids, "codes": codes, "errors": errors,
                                          "ms": [o.duration_ms for o in outcomes]})
        await session.execute(_OUTCOMES, {"ids": ids, "statuses": statuses, "codes": codes, "errors": errors,
                                          "delays": delays})
        if healthy:
            await session.execute(_HEALTHY, {"ids": sorted(healthy)})
        for endpoint_id in sorted(gone):
            await disable(session, endpoint_id, "the receiver answered 410 Gone")
        if failing:
            for endpoint in (await session.execute(_FAILING, {"ids": sorted(failing)})).all():
                if endpoint.now - endpoint.failing_since >= FAILING_LIMIT:
                    await disable(session, endpoint.id, f"every delivery failed for {FAILING_LIMIT.days} days")


async def disable(session: Any, endpoint_id: int, reason: str) -> None:
    """Disable an endpoint (once: a disabled one is left as it is) and tell its agency by email."""
    endpoint = (await session.execute(text(
        "UPDATE webhook_endpoint SET enabled = false, disabled_at = now(), disabled_reason = :reason, "
        "updated_at = now() WHERE id = :id AND enabled RETURNING id, url, agency_id"),
        {"id": endpoint_id, "reason": reason})).one_or_none()
    if endpoint is None:
        return
    log.warning("webhook endpoint %s disabled: %s", endpoint_id, reason)
    audit.record(session, audit.SYSTEM, "webhook_endpoint.disabled", "WebhookEndpoint", endpoint_id,
                 after={"enabled": False, "disabled_reason": reason})
    agency = await session.get(models.Agency, endpoint.agency_id) if endpoint.agency_id else None
    if agency is not None and agency.contact_email:
        subject, text_body, html_body = mail.render("endpoint_disabled", {
            "agency_name": agency.name, "url": endpoint.url, "reason": reason})
        session.add(models.EmailMessage(
            agency_id=agency.id, kind="endpoint_disabled", to_address=agency.contact_email, subject=subject,
            text_body=text_body, html_body=html_body,
            message_id=f"<endpoint-{endpoint_id}-disabled-{int(time.time())}@staysync>"))
