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
import email.utils
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import text

from app.services.context import Services
from app.services.notify import mail
from app.services.notify.urls import UnsafeUrl, check_target
from app.services.webhook_signatures import signed_headers
from db import audit, models
from db.engine import transaction

log = logging.getLogger(__name__)

BACKOFF = (timedelta(seconds=5), timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10),
           timedelta(hours=1), timedelta(hours=6))
MAX_RETRY_AFTER = timedelta(hours=24)
FAILING_LIMIT = timedelta(days=3)
CONCURRENCY = 20
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


def new_client(services: Services) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=services.settings.webhook_timeout_s, follow_redirects=False, trust_env=False,
                             headers={"user-agent": USER_AGENT, "content-type": "application/json"})


async def deliver_due(services: Services, client: httpx.AsyncClient, *, limit: int = 100) -> int:
    """Claim up to `limit` due deliveries, send them, record what happened; returns how many."""
    lease_s = services.settings.webhook_timeout_s + 20
    async with transaction(services.sessions) as session:
        claimed = list((await session.execute(_CLAIM, {"lease_s": lease_s, "limit": limit})).mappings())
    if not claimed:
        return 0
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(row: Any) -> tuple[Any, Outcome]:
        async with gate:
            return row, await send(services, client, row)

    for row, outcome in await asyncio.gather(*(one(row) for row in claimed)):
        await record(services, row, outcome)
    return len(claimed)


def _signatures(row: Any, body: bytes, now: datetime) -> dict[str, str]:
    headers = signed_headers(row["secret"], row["webhook_id"], body, now)
    previous, until = row["previous_secret"], row["previous_secret_until"]
    if previous and until and until > now:  # rotating: the old secret signs too, until it lapses
        old = signed_headers(previous, row["webhook_id"], body, now)["webhook-signature"]
        headers["webhook-signature"] = f"{headers['webhook-signature']} {old}"
    return headers


async def send(services: Services, client: httpx.AsyncClient, row: Any) -> Outcome:
    settings = services.settings
    started = time.perf_counter()

    def elapsed() -> int:
        return int((time.perf_counter() - started) * 1000)

    try:  # again at each delivery: a name can be pointed somewhere else after it was saved
        url = await check_target(row["url"], production=settings.production,
                                 allow_private=settings.allows_private_webhooks)
    except UnsafeUrl as error:
        return Outcome(None, f"refused: the URL {error}", elapsed())
    body = orjson.dumps(row["payload"])
    try:
        response = await client.post(url, content=body, headers=_signatures(row, body, datetime.now(UTC)))
    except httpx.TimeoutException:
        return Outcome(None, f"timed out after {settings.webhook_timeout_s:g} s", elapsed())
    except httpx.HTTPError as error:
        return Outcome(None, f"{type(error).__name__}: {error}"[:500], elapsed())
    error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
    return Outcome(response.status_code, error, elapsed(), retry_after(response.headers.get("retry-after")))


def retry_after(value: str | None, now: datetime | None = None) -> timedelta | None:
    """A `Retry-After` header (seconds, or an HTTP date) as a delay, at most MAX_RETRY_AFTER."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        delay = timedelta(seconds=int(value))
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delay = when - (now or datetime.now(UTC))
    return max(timedelta(0), min(delay, MAX_RETRY_AFTER))


def next_delay(attempts: int, asked: timedelta | None, rnd: random.Random | None = None) -> timedelta | None:
    """When to try again after `attempts` failed attempts (None: give up)."""
    if attempts > len(BACKOFF):
        return None
    base = BACKOFF[attempts - 1] * (rnd or random).uniform(0.8, 1.2)
    return max(base, asked) if asked is not None else base


async def record(services: Services, row: Any, outcome: Outcome) -> None:
    """The attempt, the delivery's new state, and the endpoint's health, in one transaction."""
    async with transaction(services.sessions) as session:
        params = {"id": row["id"], "code": outcome.status_code, "error": outcome.error,
                  "ms": outcome.duration_ms, "endpoint": row["endpoint_id"]}
        await session.execute(text(
            "INSERT INTO webhook_attempt (delivery_id, status_code, error, duration_ms) "
            "VALUES (:id, :code, :error, :ms)"), params)
        if outcome.delivered:
            await session.execute(text(
                "UPDATE webhook_delivery SET status = 'DELIVERED', delivered_at = now(), lease_until = NULL, "
                "last_status_code = :code, last_error = NULL WHERE id = :id"), params)
            await session.execute(text("UPDATE webhook_endpoint SET failing_since = NULL WHERE id = :endpoint"),
                                  params)
            return
        delay = None if outcome.gone else next_delay(row["attempts"], outcome.retry_after)
        await session.execute(text(
            "UPDATE webhook_delivery SET status = :status, lease_until = NULL, last_status_code = :code, "
            "last_error = :error, next_attempt_at = now() + make_interval(secs => :delay) WHERE id = :id"),
            {**params, "status": "FAILED" if delay is not None else "GAVE_UP",
             "delay": (delay or timedelta(0)).total_seconds()})
        failing_since = (await session.execute(text(
            "UPDATE webhook_endpoint SET failing_since = coalesce(failing_since, now()) WHERE id = :endpoint "
            "RETURNING failing_since, now() AS now"), params)).one()
        if outcome.gone:
            await disable(session, row["endpoint_id"], "the receiver answered 410 Gone")
        elif failing_since.now - failing_since.failing_since >= FAILING_LIMIT:
            await disable(session, row["endpoint_id"], f"every delivery failed for {FAILING_LIMIT.days} days")


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
