"""Webhook endpoints: agents manage their own agency's, staff manage any and their own (an
endpoint without an agency hears every agency's events, and may hear availability.changed).

The secret is shown once, when the endpoint is created or its secret rotated; after a rotation
the previous secret keeps signing (a second signature in the header) for ROTATION_GRACE, so the
receiver can switch without losing a delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from app.services.changes import write
from app.services.context import Caller, Services
from app.services.errors import InvalidInput, NotFound
from app.services.notify.urls import UnsafeUrl, check_target
from app.services.pages import Page, paginate
from app.services.scope import own_agency_id
from app.services.webhook_signatures import new_secret
from db import audit, models

# Every event type an endpoint may ask for (DESIGN, "Telling partners"), and the ones only the
# wholesaler's own endpoints may hear.
EVENT_TYPES = (
    "booking_group.held", "booking_group.confirmed", "booking_group.cancelled", "booking_group.expired",
    "booking_group.expiring", "hardblock.created", "hardblock.amended", "hardblock.released",
    "hardblock.release_upcoming", "availability.changed",
)
STAFF_ONLY_EVENTS = frozenset({"availability.changed"})
ROTATION_GRACE = timedelta(hours=24)
MAX_ENDPOINTS_PER_AGENCY = 20


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    url: str
    events: list[str]
    agency_id: int | None = None  # staff: the agency it is for (None: the wholesaler's own)


def _snapshot(row: models.WebhookEndpoint) -> dict[str, Any]:
    """What the audit log keeps of an endpoint: never its secret."""
    return audit.snapshot(row, "agency_id", "url", "events", "enabled", "disabled_reason")


def _check_events(events: list[str], agency_id: int | None) -> list[str]:
    wanted = sorted({e.strip() for e in events})
    if not wanted:
        raise InvalidInput("events", f"events: name at least one of {', '.join(EVENT_TYPES)}")
    if unknown := [e for e in wanted if e not in EVENT_TYPES]:
        raise InvalidInput("events", f"events: unknown event type {unknown[0]!r} (known: {', '.join(EVENT_TYPES)})")
    if agency_id is not None and (staff_only := [e for e in wanted if e in STAFF_ONLY_EVENTS]):
        raise InvalidInput("events", f"events: {staff_only[0]} is for the wholesaler's own endpoints only")
    return wanted


async def _check_url(services: Services, url: str) -> str:
    settings = services.settings
    try:
        return await check_target(url, production=settings.production, allow_private=settings.allows_private_webhooks)
    except UnsafeUrl as error:
        raise InvalidInput("url", f"url {error}") from None


async def _agency_for(session: Any, caller: Caller, agency_id: int | None) -> int | None:
    """The agency a new endpoint belongs to: an agent's own; staff's choice (None: theirs)."""
    own = await own_agency_id(session, caller)
    if own is None:
        if agency_id is not None and await session.get(models.Agency, agency_id) is None:
            raise InvalidInput("agencyId", "agencyId: no agency with that id")
        return agency_id
    if not own:
        raise InvalidInput("agencyId", f"your agency {caller.principal.agency_code!r} is not registered")
    if agency_id is not None and agency_id != own:
        raise InvalidInput("agencyId", "agents manage their own agency's endpoints only")
    return own


async def _visible(session: Any, caller: Caller, endpoint_id: int | None, *, lock: bool = False
                   ) -> models.WebhookEndpoint:
    """The endpoint, if the caller may manage it (else NotFound: another agency's is not theirs
    to know about)."""
    row = None if endpoint_id is None else await session.get(models.WebhookEndpoint, endpoint_id,
                                                              with_for_update=lock)
    own = await own_agency_id(session, caller)
    if row is None or (own is not None and row.agency_id != own):
        raise NotFound("no webhook endpoint with that id", "id")
    return row


async def create_endpoint(services: Services, caller: Caller, spec: EndpointSpec) -> tuple[models.WebhookEndpoint, str]:
    """The new endpoint and its secret (shown this once)."""
    url = await _check_url(services, spec.url)
    async with write(services) as unit:
        session = unit.session
        agency_id = await _agency_for(session, caller, spec.agency_id)
        events = _check_events(spec.events, agency_id)
        if agency_id is not None:
            count = len((await session.execute(select(models.WebhookEndpoint.id).where(
                models.WebhookEndpoint.agency_id == agency_id))).all())
            if count >= MAX_ENDPOINTS_PER_AGENCY:
                raise InvalidInput("url", f"an agency has at most {MAX_ENDPOINTS_PER_AGENCY} webhook endpoints")
        secret = new_secret()
        row = models.WebhookEndpoint(agency_id=agency_id, url=url, events=events, secret=secret,
                                     created_by=caller.actor.uid)
        session.add(row)
        await session.flush()
        audit.record(session, caller.actor, "webhook_endpoint.created", "WebhookEndpoint", row.id,
                     after=_snapshot(row))
    return row, secret


async def update_endpoint(services: Services, caller: Caller, endpoint_id: int | None, *, url: str | None,
                          events: list[str] | None, enabled: bool | None) -> models.WebhookEndpoint:
    """Change the URL, the events or whether it is enabled. Enabling one that was disabled starts
    its failure count afresh; what it missed meanwhile is in its deliveries, to redeliver."""
    checked = None if url is None else await _check_url(services, url)
    async with write(services) as unit:
        session = unit.session
        row = await _visible(session, caller, endpoint_id, lock=True)
        before = _snapshot(row)
        if checked is not None:
            row.url = checked
        if events is not None:
            row.events = _check_events(events, row.agency_id)
        if enabled is not None and enabled != row.enabled:
            row.enabled = enabled
            row.disabled_at = None if enabled else models.utcnow()
            row.disabled_reason = None if enabled else f"disabled by {caller.actor.uid}"
            row.failing_since = None
        after = _snapshot(row)
        if after != before:
            row.updated_at = models.utcnow()
            await session.flush()
            audit.record(session, caller.actor, "webhook_endpoint.updated", "WebhookEndpoint", row.id,
                         before=before, after=after)
    return row


async def rotate_secret(services: Services, caller: Caller, endpoint_id: int | None) -> tuple[models.WebhookEndpoint, str]:
    """A new secret (shown this once); the current one keeps signing for ROTATION_GRACE."""
    async with write(services) as unit:
        session = unit.session
        row = await _visible(session, caller, endpoint_id, lock=True)
        secret = new_secret()
        now = models.utcnow()
        row.previous_secret, row.previous_secret_until = row.secret, now + ROTATION_GRACE
        row.secret, row.updated_at = secret, now
        await session.flush()
        audit.record(session, caller.actor, "webhook_endpoint.secret_rotated", "WebhookEndpoint", row.id,
                     after={"previous_secret_until": row.previous_secret_until.isoformat()})
    return row, secret


async def delete_endpoint(services: Services, caller: Caller, endpoint_id: int | None) -> int:
    """Delete it with its deliveries; the events stay."""
    async with write(services) as unit:
        session = unit.session
        row = await _visible(session, caller, endpoint_id, lock=True)
        assert row.id is not None
        audit.record(session, caller.actor, "webhook_endpoint.deleted", "WebhookEndpoint", row.id,
                     before=_snapshot(row))
        await session.delete(row)
        return row.id


async def redeliver(services: Services, caller: Caller, delivery_id: int | None) -> models.WebhookDelivery:
    """Send a delivery again, as it was (same `webhook-id`, same payload), as soon as a dispatcher
    is free; its attempts so far stay recorded."""
    async with write(services) as unit:
        session = unit.session
        row = None if delivery_id is None else await session.get(models.WebhookDelivery, delivery_id,
                                                                   with_for_update=True)
        if row is not None:
            await _visible(session, caller, row.endpoint_id)  # NotFound for another agency's
        else:
            raise NotFound("no webhook delivery with that id", "deliveryId")
        before = {"status": row.status, "attempts": row.attempts}
        row.status, row.next_attempt_at, row.lease_until = "PENDING", models.utcnow(), None
        await session.flush()
        audit.record(session, caller.actor, "webhook_delivery.redelivered", "WebhookDelivery", row.id,
                     before=before, after={"status": row.status})
    return row


async def endpoints_of(services: Services, caller: Caller, agency_id: int | None) -> list[models.WebhookEndpoint]:
    """An agency's endpoints (agents: only their own agency's)."""
    async with services.sessions() as session:
        own = await own_agency_id(session, caller)
        if own is not None and own != agency_id:
            return []
        rows = await session.execute(select(models.WebhookEndpoint).where(
            models.WebhookEndpoint.agency_id == agency_id).order_by(models.WebhookEndpoint.id))
        return list(rows.scalars())


async def staff_endpoints(services: Services) -> list[models.WebhookEndpoint]:
    """Every endpoint (staff only: the API checks the role)."""
    async with services.sessions() as session:
        rows = await session.execute(select(models.WebhookEndpoint).order_by(models.WebhookEndpoint.id))
        return list(rows.scalars())


async def deliveries(services: Services, caller: Caller, endpoint_id: int, first: int | None,
                     after: str | None) -> Page[models.WebhookDelivery]:
    """An endpoint's deliveries, newest first (the caller may see the endpoint: checked by its
    resolver)."""
    async with services.sessions() as session:
        statement = select(models.WebhookDelivery).where(models.WebhookDelivery.endpoint_id == endpoint_id)
        return await paginate(session, statement, models.WebhookDelivery.id, first=first, after=after,
                              descending=True)
