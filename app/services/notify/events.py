"""Fan-out: committed partner events become webhook deliveries (one per event and endpoint that
asked for it) and emails, in one transaction per batch, by whichever worker claims the batch
(`FOR UPDATE SKIP LOCKED`). An event's payload is built here, once, and frozen on its
deliveries: retries and replays send the same bytes.

A payload carries ids, statuses, numbers and the entity's `updatedAt` and `sequence` (the audit
entry's), never another agency's data and never a buying (net) price. Deliveries are not ordered:
a receiver keeps, per entity, the state with the highest `sequence`.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.relay import GlobalID

from app.services.context import Services
from app.services.notify import mail
from app.services.rateplans import nights_of
from db import models
from db.queries import bookings_by_group, rows_by_id, sale_order_by_group
from db.engine import transaction

log = logging.getLogger(__name__)

# Events that become an email to the agency's contact address, and the template each uses.
EMAIL_KINDS = {
    "booking_group.confirmed": "booking_confirmed",
    "booking_group.cancelled": "booking_cancelled",
    "booking_group.expiring": "hold_expiring",
    "hardblock.release_upcoming": "release_alert",
}
_CLAIM = text(
    "SELECT * FROM partner_event WHERE fanned_out_at IS NULL ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED")


def node_id(type_name: str, pk: int) -> str:
    """The id the GraphQL API gives the entity (a receiver can ask `node(id:)` for more)."""
    return str(GlobalID(type_name, str(pk)))


def body(event_type: str, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    """Standard Webhooks' envelope."""
    return {"type": event_type, "timestamp": at.isoformat(), "data": data}


# webhook_id: stable per event and endpoint, the receiver's dedupe key across retries and replays.
_DELIVERIES = text("""
INSERT INTO webhook_delivery (event_id, endpoint_id, webhook_id, event_type, payload)
SELECT x.event_id, x.endpoint_id, 'msg_' || x.event_id || '_' || x.endpoint_id, x.event_type, CAST(x.payload AS jsonb)
FROM unnest(CAST(:event_ids AS bigint[]), CAST(:endpoint_ids AS integer[]), CAST(:types AS varchar[]),
            CAST(:payloads AS text[])) AS x(event_id, endpoint_id, event_type, payload)
ON CONFLICT DO NOTHING
""")
_FANNED_OUT = text("""
UPDATE partner_event AS e SET fanned_out_at = now(), payload = coalesce(e.payload, CAST(x.payload AS jsonb))
FROM unnest(CAST(:ids AS bigint[]), CAST(:payloads AS text[])) AS x(id, payload) WHERE e.id = x.id
""")


async def fan_out(services: Services, *, limit: int = 200) -> int:
    """Turn up to `limit` committed, not yet fanned-out events into deliveries and emails; returns
    how many events were handled. Set-based: whatever the batch, a handful of statements."""
    async with transaction(services.sessions) as session:
        events = [models.PartnerEvent(**row._mapping) for row in await session.execute(_CLAIM, {"limit": limit})]
        if not events:
            return 0
        endpoints = list((await session.execute(
            select(models.WebhookEndpoint).where(models.WebhookEndpoint.enabled))).scalars())
        listeners = {event.id: [e for e in endpoints if _wants(e, event)] for event in events}
        facts = await _Facts.read(session, [e for e in events if listeners[e.id] or e.type in EMAIL_KINDS])
        deliveries: dict[str, list[Any]] = {"event_ids": [], "endpoint_ids": [], "types": [], "payloads": []}
        stored: dict[str, list[Any]] = {"ids": [], "payloads": []}
        for event, data in _payloads(events, facts, listeners):
            text_data = None if data is None else orjson.dumps(data).decode()
            if data is not None:
                envelope = orjson.dumps(body(event.type, event.created_at, data)).decode()
                for endpoint in listeners[event.id]:
                    for name, value in zip(deliveries, (event.id, endpoint.id, event.type, envelope)):
                        deliveries[name].append(value)
                await _email(session, event, data, facts)
            stored["ids"].append(event.id)
            stored["payloads"].append(text_data)  # what was sent, kept with the event
        if deliveries["event_ids"]:
            await session.execute(_DELIVERIES, deliveries)
        await session.execute(_FANNED_OUT, stored)
    return len(events)


def _wants(endpoint: models.WebhookEndpoint, event: models.PartnerEvent) -> bool:
    """An endpoint hears the events it asked for, of its own agency (the wholesaler's: all)."""
    if event.type not in endpoint.events:
        return False
    if endpoint.agency_id is None:
        return True
    return event.agency_id is not None and event.agency_id == endpoint.agency_id


# --- what the events are about ----------------------------------------------------------------


class _Facts:
    """The rows a batch of events needs, each read once for the batch."""

    def __init__(self) -> None:
        self.audit: dict[int, models.AuditEntry] = {}
        self.groups: dict[int, models.BookingGroup] = {}
        self.bookings: dict[int, list[models.Booking]] = defaultdict(list)
        self.orders: dict[int, models.SaleOrder] = {}
        self.blocks: dict[int, models.Hardblock] = {}
        self.agencies: dict[int, models.Agency] = {}
        self.hotels: dict[int, models.Hotel] = {}
        self.room_types: dict[int, models.RoomType] = {}

    @classmethod
    async def read(cls, session: AsyncSession, events: Sequence[models.PartnerEvent]) -> _Facts:
        facts = cls()
        audit_ids = [e.audit_id for e in events if e.audit_id is not None]
        group_ids = [e.entity_id for e in events if e.entity_type == "BookingGroup" and e.entity_id is not None]
        block_ids = [e.entity_id for e in events if e.entity_type == "Hardblock" and e.entity_id is not None]
        facts.audit = await rows_by_id(session, models.AuditEntry, audit_ids)
        facts.groups = await rows_by_id(session, models.BookingGroup, group_ids)
        facts.blocks = await rows_by_id(session, models.Hardblock, block_ids)
        facts.bookings = defaultdict(list, await bookings_by_group(session, group_ids))
        facts.orders = await sale_order_by_group(session, group_ids)
        facts.agencies = await rows_by_id(session, models.Agency, [e.agency_id for e in events if e.agency_id])
        facts.hotels = await rows_by_id(session, models.Hotel, [e.hotel_id for e in events if e.hotel_id])
        room_types = {b.room_type_id for rows in facts.bookings.values() for b in rows}
        room_types |= {b.room_type_id for b in facts.blocks.values()}
        facts.room_types = await rows_by_id(session, models.RoomType, list(room_types))
        return facts


def _money(amount: Any, currency: str) -> dict[str, str]:
    return {"amount": str(amount), "currency": currency}


def _payloads(events: Sequence[models.PartnerEvent], facts: _Facts, listeners: dict[Any, list[Any]]
              ) -> list[tuple[models.PartnerEvent, dict[str, Any] | None]]:
    """Each event with its `data` (None: nothing to tell: nobody listens and it has no email, or
    its entity is gone). availability.changed events of one hotel in the batch are coalesced into
    the first."""
    out: list[tuple[models.PartnerEvent, dict[str, Any] | None]] = []
    availability: dict[int, tuple[models.PartnerEvent, dict[str, Any]]] = {}
    for event in events:
        if not listeners[event.id] and event.type not in EMAIL_KINDS:
            out.append((event, None))
        elif event.type == "availability.changed":
            data = dict(event.payload or {})
            first = availability.get(event.hotel_id or 0)
            if first is None:
                availability[event.hotel_id or 0] = (event, data)
                out.append((event, data))
            else:  # one delivery per hotel and batch: the widest range, the latest version
                merged = first[1]
                merged["version"] = max(merged.get("version") or 0, data.get("version") or 0)
                merged["roomTypeIds"] = sorted(set(merged.get("roomTypeIds") or []) | set(data.get("roomTypeIds") or []))
                merged["from"] = min(merged["from"], data["from"])
                merged["to"] = max(merged["to"], data["to"])
                out.append((event, None))
        elif event.payload is not None:  # written whole by the job that recorded it
            out.append((event, event.payload))
        elif event.entity_type == "BookingGroup":
            out.append((event, _group_data(event, facts)))
        elif event.entity_type == "Hardblock":
            out.append((event, _block_data(event, facts)))
        else:
            out.append((event, None))
    return out


def _entry_facts(event: models.PartnerEvent, facts: _Facts) -> tuple[dict[str, Any], dict[str, Any]]:
    entry = facts.audit.get(event.audit_id or 0)
    after = (entry.after if entry is not None else None) or {}
    # `sequence` orders an entity's changes (the audit log's order); a notice that changes nothing
    # (a hold about to expire) has none.
    return after, {"updatedAt": (entry.at if entry else event.created_at).isoformat(),
                   "sequence": entry.id if entry else None}


def _group_data(event: models.PartnerEvent, facts: _Facts) -> dict[str, Any] | None:
    group = facts.groups.get(event.entity_id or 0)
    if group is None:
        return None
    after, stamp = _entry_facts(event, facts)
    bookings = facts.bookings.get(group.id or 0, [])
    agency = facts.agencies.get(group.agency_id)
    currency = bookings[0].currency if bookings else None
    order = facts.orders.get(group.id or 0)
    status = after.get("status", group.status)
    return {
        "id": node_id("BookingGroup", group.id or 0), "reference": group.reference, "status": status,
        "agencyCode": agency.code if agency else None, "guestName": group.guest_name,
        "hotelId": node_id("Hotel", event.hotel_id) if event.hotel_id else None,
        "expiresAt": after.get("expires_at", group.expires_at and group.expires_at.isoformat()),
        "total": None if currency is None else _money(sum(b.total_amount for b in bookings), currency),
        "saleOrderNumber": order.number if order is not None and status != "HELD" else None,
        "items": [{"roomTypeId": node_id("RoomType", b.room_type_id), "checkIn": b.check_in.isoformat(),
                   "checkOut": b.check_out.isoformat(), "rooms": b.rooms,
                   "hardblockId": node_id("Hardblock", b.hardblock_id) if b.hardblock_id else None,
                   "total": _money(b.total_amount, b.currency)} for b in bookings],
        **stamp,
    }


def _block_data(event: models.PartnerEvent, facts: _Facts) -> dict[str, Any] | None:
    block = facts.blocks.get(event.entity_id or 0)
    if block is None:
        return None
    after, stamp = _entry_facts(event, facts)
    entry = facts.audit.get(event.audit_id or 0)
    agency = facts.agencies.get(block.agency_id)
    return {
        "id": node_id("Hardblock", block.id or 0), "reference": block.reference,
        "agencyCode": agency.code if agency else None, "hotelId": node_id("Hotel", block.hotel_id),
        "roomTypeId": node_id("RoomType", block.room_type_id),
        "status": after.get("status", block.status), "from": after.get("start_date", block.start_date.isoformat()),
        "to": after.get("end_date", block.end_date.isoformat()),
        "change": entry.action.removeprefix("hardblock.") if entry else None,
        "nights": after.get("nights"),
        **stamp,
    }


# --- emails ------------------------------------------------------------------------------------


async def _email(session: AsyncSession, event: models.PartnerEvent, data: dict[str, Any], facts: _Facts) -> None:
    """The event's email to its agency's contact address, if it has one and the event has one."""
    kind = EMAIL_KINDS.get(event.type)
    agency = facts.agencies.get(event.agency_id or 0)
    if kind is None or agency is None or not agency.contact_email:
        return
    hotel = facts.hotels.get(event.hotel_id or 0)
    context = _email_context(kind, event, data, facts, agency, hotel)
    if context is None:
        return
    subject, text_body, html_body = mail.render(kind, context)
    assert event.id is not None
    session.add(models.EmailMessage(
        event_id=event.id, agency_id=agency.id, kind=kind, to_address=agency.contact_email, subject=subject,
        text_body=text_body, html_body=html_body, message_id=f"<event-{event.id}.{kind}@staysync>"))


def _email_context(kind: str, event: models.PartnerEvent, data: dict[str, Any], facts: _Facts,
                   agency: models.Agency, hotel: models.Hotel | None) -> dict[str, Any] | None:
    common = {"agency_name": agency.name, "hotel_name": hotel.name if hotel else "", "reference": data.get("reference")}
    if kind in ("booking_confirmed", "booking_cancelled", "hold_expiring"):
        group = facts.groups.get(event.entity_id or 0)
        if group is None:
            return None
        common["guest_name"] = group.guest_name
        if kind == "hold_expiring":
            left = (group.expires_at - event.created_at).total_seconds() if group.expires_at else 0
            return {**common, "expires_at": data.get("expiresAt"), "minutes_left": max(1, math.ceil(left / 60))}
        order = facts.orders.get(group.id or 0)
        if kind == "booking_cancelled":
            reason = (facts.audit[event.audit_id].after or {}).get("reason", "") if event.audit_id in facts.audit else ""
            return {**common, "sale_order_number": order.number if order else None, "reason": reason or ""}
        bookings = facts.bookings.get(group.id or 0, [])
        return {
            **common, "sale_order_number": order.number if order else "", "currency": bookings[0].currency,
            "total": str(sum(b.total_amount for b in bookings)),
            "items": [{"room_type": _room_type_name(facts, b.room_type_id), "check_in": b.check_in.isoformat(),
                       "check_out": b.check_out.isoformat(), "rooms": b.rooms, "total": str(b.total_amount),
                       "nights": [{"date": n.date.isoformat(), "sell": str(n.sell.amount)} for n in nights_of(b.nights)]}
                      for b in bookings],
        }
    # release_alert: the job wrote the nights into the payload
    return {**common, "room_type": data.get("roomTypeName", ""), "hours": data.get("hours"),
            "nights": [{"date": n["date"], "release_at": n["releaseAt"], "unsold": n["unsold"]}
                       for n in data.get("nights", [])]}


def _room_type_name(facts: _Facts, room_type_id: int) -> str:
    room_type = facts.room_types.get(room_type_id)
    return f"{room_type.name} ({room_type.code})" if room_type else str(room_type_id)
