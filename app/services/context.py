"""Who is asking (`Caller`) and what every use case runs on (`Services`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.auth import Principal
from db.audit import Actor

from db.fastpath import RawPool

if TYPE_CHECKING:
    from app.services.changes import OutboxRelay
    from app.settings import Settings
    from db.engine import Sessions


@dataclass(frozen=True, slots=True)
class Caller:
    """The verified principal behind a request, and the request's id for the audit log."""

    principal: Principal
    request_id: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.principal.is_staff

    @property
    def actor(self) -> Actor:
        principal = self.principal
        return Actor(uid=principal.uid, role=principal.role.value, agency_code=principal.agency_code,
                     request_id=self.request_id)


@dataclass(frozen=True, slots=True)
class Services:
    """What the use cases share: settings, the database and the relay of committed changes."""

    settings: Settings
    # Per request, a ConnectionBudget over the engine's sessionmaker (see app.main.get_context).
    sessions: Sessions
    relay: OutboxRelay
    # asyncpg directly, for the booking hold (db.fastpath).
    raw: RawPool


def raw_pool(settings: Settings) -> RawPool:
    """The asyncpg pool of one process, sized and bounded like SQLAlchemy's."""
    assert settings.database_url, "DATABASE_URL is set before any pool is made"
    return RawPool(settings.database_url, size=settings.db_pool_size, timeout_s=settings.db_pool_timeout_s,
                   statement_timeout_ms=settings.db_statement_timeout_ms,
                   idle_in_transaction_timeout_ms=settings.db_idle_in_transaction_timeout_ms)
