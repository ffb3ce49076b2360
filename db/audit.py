"""The audit trail: one append-only row per write, in the write's own transaction."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AuditEntry


@dataclass(frozen=True, slots=True)
class Actor:
    uid: str
    role: str
    agency_code: str | None = None
    request_id: str | None = None


SYSTEM = Actor(uid="system", role="system")
STRIPE = Actor(uid="stripe", role="system")  # what Stripe reported (a webhook, or the polling job's read)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def snapshot(source: Any, *fields: str) -> dict[str, Any]:
    """A JSON-ready picture of `fields` of a row (or of a mapping)."""
    get = source.get if isinstance(source, dict) else lambda name: getattr(source, name)
    return orjson.loads(orjson.dumps({name: get(name) for name in fields}, default=_jsonable))


def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: int,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        actor_uid=actor.uid,
        actor_role=actor.role,
        agency_code=actor.agency_code,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        before=before,
        after=after,
        request_id=actor.request_id,
    )
    session.add(entry)
    return entry


# --- the asyncpg writes: their entries in the write's one statement ----------------------------------

Audited = tuple[str, str, int, dict | None, dict | None]  # action, entity type, entity id, before, after

# Every entry one write adds to the audit log, from parallel arrays (`audit_ids` may name a row the
# same statement inserts).
AUDIT_ENTRIES = (
    "INSERT INTO audit_log (at, actor_uid, actor_role, agency_code, action, entity_type, entity_id, before, after,"
    "                       request_id)"
    " SELECT CAST(:now AS timestamptz), CAST(:actor_uid AS varchar), CAST(:actor_role AS varchar),"
    "        CAST(:actor_agency AS varchar), e.action, e.entity_type, e.entity_id, e.before, e.after,"
    "        CAST(:request_id AS varchar)"
    " FROM unnest(CAST(:audit_actions AS varchar[]), CAST(:audit_types AS varchar[]), CAST(:audit_ids AS bigint[]),"
    "             CAST(:audit_befores AS jsonb[]), CAST(:audit_afters AS jsonb[]))"
    "      AS e(action, entity_type, entity_id, before, after)"
)


def audit_values(actor: Actor, now: datetime, entries: Sequence[Audited]) -> dict[str, Any]:
    """The parameters of AUDIT_ENTRIES."""
    actions, types, ids, befores, afters = (list(column) for column in zip(*entries)) if entries else ([],) * 5
    return {"now": now, "actor_uid": actor.uid, "actor_role": actor.role, "actor_agency": actor.agency_code,
            "request_id": actor.request_id, "audit_actions": actions, "audit_types": types, "audit_ids": ids,
            "audit_befores": befores, "audit_afters": afters}
