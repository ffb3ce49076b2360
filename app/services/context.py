"""Who is asking (`Caller`) and what every use case runs on (`Services`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.auth import Principal
from db.audit import Actor

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
