"""The audit log, readable by staff."""

from __future__ import annotations

from datetime import datetime

import strawberry
from sqlalchemy import select, tuple_
from strawberry import relay
from strawberry.scalars import JSON

from app.api.errors import InvalidInputError
from app.api.ids import decode_any, to_global_id
from app.api.pagination import paginate
from app.api.permissions import STAFF, Info
from app.api.types import node_pk
from db import models


@strawberry.type
class AuditEntry(relay.Node):
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

    @strawberry.field(description="Global id of the entity the entry is about.")
    def entity_id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id(self.entity_type, self.entity_pk))

    @staticmethod
    def from_row(row: models.AuditEntry) -> AuditEntry:
        return AuditEntry(
            id=row.id, at=row.at, actor_uid=row.actor_uid, actor_role=row.actor_role,
            agency_code=row.agency_code, action=row.action, entity_type=row.entity_type,
            entity_pk=row.entity_id, before=row.before, after=row.after, request_id=row.request_id,
        )

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: list[str], required: bool = False) -> list[AuditEntry | None]:
        principal = info.context.principal
        if principal is None or not principal.is_staff:
            return [None for _ in node_ids]
        pks = [pk for pk in map(node_pk, node_ids) if pk is not None]
        async with info.context.sessions() as session:
            rows = (await session.execute(select(models.AuditEntry).where(models.AuditEntry.id.in_(pks)))).scalars()
            found = {str(row.id): cls.from_row(row) for row in rows}
        return [found.get(str(i)) for i in node_ids]


async def audit_trail(info: Info, entities: list[tuple[str, int]]) -> list[AuditEntry]:
    """The audit entries of `entities` ((entity type, primary key) pairs), oldest first, in one query.

    It does not check access: call it from a field of a node the caller may see (a
    `BookingGroup.auditTrail`, a `Hardblock.auditTrail`), for that node's own entities.
    """
    if not entities:
        return []
    entry = models.AuditEntry
    async with info.context.sessions() as session:
        rows = (await session.execute(
            select(entry).where(tuple_(entry.entity_type, entry.entity_id).in_(entities)).order_by(entry.at, entry.id)
        )).scalars()
        return [AuditEntry.from_row(row) for row in rows]


@strawberry.type
class AuditQuery:
    @strawberry.field(permission_classes=STAFF, description="Newest first; `entityId` narrows it to one entity.")
    async def audit_log(
        self, info: Info, entity_id: strawberry.ID | None = None, first: int | None = None, after: str | None = None
    ) -> relay.Connection[AuditEntry]:
        statement = select(models.AuditEntry)
        if entity_id is not None:
            try:
                entity_type, pk = decode_any(entity_id, "entityId")
            except InvalidInputError:  # names nothing: nothing was audited about it
                entity_type, pk = "", 0
            statement = statement.where(
                models.AuditEntry.entity_type == entity_type, models.AuditEntry.entity_id == pk
            )
        async with info.context.sessions() as session:
            return await paginate(
                session, statement, models.AuditEntry.id, first=first, after=after,
                node=AuditEntry.from_row, descending=True,
            )
