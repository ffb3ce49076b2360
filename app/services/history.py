"""The audit trail, read back: an entity's history and the staff's audit log."""

from __future__ import annotations

from sqlalchemy import select, tuple_

from app.services.context import Services
from app.services.pages import Page, paginate
from db import models


async def audit_trail(services: Services, entities: list[tuple[str, int]]) -> list[models.AuditEntry]:
    """The audit entries of `entities` ((entity type, primary key) pairs), oldest first, in one query.

    It does not check access: the caller asks for entities it may already see (a booking group's
    and its sale order's, a hardblock's)."""
    if not entities:
        return []
    entry = models.AuditEntry
    async with services.sessions() as session:
        rows = await session.execute(
            select(entry).where(tuple_(entry.entity_type, entry.entity_id).in_(entities)).order_by(entry.at, entry.id))
        return list(rows.scalars())


async def audit_log(services: Services, entity: tuple[str, int] | None, first: int | None,
                    after: str | None) -> Page[models.AuditEntry]:
    """Newest first; `entity` ((type, primary key)) narrows it to one entity."""
    statement = select(models.AuditEntry)
    if entity is not None:
        statement = statement.where(models.AuditEntry.entity_type == entity[0],
                                    models.AuditEntry.entity_id == entity[1])
    async with services.sessions() as session:
        return await paginate(session, statement, models.AuditEntry.id, first=first, after=after, descending=True)
