"""The audit log, readable by staff."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from app.api.ids import decode_any, to_global_id
from app.api.pagination import connection
from app.api.permissions import STAFF, Info
from app.api.types import LoadedNode, staff_only
from app.services import history
from app.services.errors import InvalidInput

if TYPE_CHECKING:
    from db.models import AuditEntry as AuditEntryRow
else:
    AuditEntryRow = Any


@strawberry.type
class AuditEntry(LoadedNode, relay.Node):
    id: relay.NodeID[int]
    at: datetime
    actor_uid: str
    actor_role: str
    agency_code: str | None
    action: str
    entity_type: str
    entity_pk: strawberry.Private[int]
    before: JSON | None
    after: JSON | None
    request_id: str | None

    loader = "audit_entry"
    visible = staff_only

    @strawberry.field(description="Global id of the entity the entry is about.")
    def entity_id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id(self.entity_type, self.entity_pk))

    @staticmethod
    def from_row(row: AuditEntryRow) -> AuditEntry:
        return AuditEntry(
            id=row.id, at=row.at, actor_uid=row.actor_uid, actor_role=row.actor_role,
            agency_code=row.agency_code, action=row.action, entity_type=row.entity_type,
            entity_pk=row.entity_id, before=row.before, after=row.after, request_id=row.request_id,
        )


async def audit_trail(info: Info, entities: list[tuple[str, int]]) -> list[AuditEntry]:
    """The audit entries of `entities`, oldest first. Call it from a field of a node the caller may
    see (a `BookingGroup.auditTrail`, a `Hardblock.auditTrail`), for that node's own entities."""
    return [AuditEntry.from_row(row) for row in await history.audit_trail(info.context.services, entities)]


@strawberry.type
class AuditQuery:
    @strawberry.field(permission_classes=STAFF, description="Newest first; `entityId` narrows it to one entity.")
    async def audit_log(
        self, info: Info, entity_id: strawberry.ID | None = None, first: int | None = None, after: str | None = None
    ) -> relay.Connection[AuditEntry]:
        entity = None
        if entity_id is not None:
            try:
                entity = decode_any(entity_id, "entityId")
            except InvalidInput:  # names nothing: nothing was audited about it
                entity = ("", 0)
        return connection(await history.audit_log(info.context.services, entity, first, after), AuditEntry.from_row)
