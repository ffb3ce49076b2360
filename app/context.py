"""The per-request (per-websocket-connection) GraphQL context."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import AuthenticationError, FirebaseVerifier, Principal
from app.settings import Settings
from db.audit import Actor

if TYPE_CHECKING:
    from app.api.loaders import Loaders
    from app.broadcast import Broadcast


@dataclass
class Context:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    verifier: FirebaseVerifier
    broadcast: Broadcast
    request: Any = None
    response: Any = None
    principal: Principal | None = None
    auth_error: AuthenticationError | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Set by Strawberry from the websocket `connection_init` payload.
    connection_params: dict[str, Any] | None = None
    _loaders: Loaders | None = None

    @property
    def loaders(self) -> Loaders:
        # Built lazily inside the running loop: aiodataloader binds the loop in __init__.
        if self._loaders is None:
            from app.api.loaders import Loaders

            self._loaders = Loaders(self.sessions)
        return self._loaders

    def fresh_loaders(self) -> None:
        """Forget every cached read. A websocket's context lives as long as the connection, so a
        subscription calls this before each event: its fields must show the state after the event.
        """
        self._loaders = None
        for cache in ("_cell_loaders", "_inventory_cache"):  # set by app.api.inventory
            self.__dict__.pop(cache, None)

    async def may_see(self, agency_id: int) -> bool:
        """Staff see every agency's bookings and blocks; agents only their own agency's."""
        principal = self.principal
        if principal is None:
            return False
        if principal.is_staff:
            return True
        own = await self.loaders.agency_id_by_code.load(principal.agency_code)
        return own == agency_id

    @property
    def actor(self) -> Actor:
        assert self.principal is not None, "permission classes run before any write"
        return Actor(
            uid=self.principal.uid,
            role=self.principal.role.value,
            agency_code=self.principal.agency_code,
            request_id=self.request_id,
        )

    async def authenticate(self, authorization: str | None) -> None:
        from app.auth import bearer_token

        try:
            token = bearer_token(authorization)
            self.principal = await self.verifier.verify(token) if token else None
        except AuthenticationError as error:
            self.principal, self.auth_error = None, error
