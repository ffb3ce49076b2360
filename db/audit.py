"""The audit trail: one append-only row per write, in the write's own transaction."""

from __future__ import annotations

import dataclasses
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
