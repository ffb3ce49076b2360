"""The GraphQL context: who is calling (per request, or per websocket connection), and the reads
cached for one operation."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from app.api.loaders import Loaders
from app.auth import AuthenticationError, FirebaseVerifier, Principal, bearer_token
from app.services.context import Caller, Services
from app.services.rateplans import Buyer

if TYPE_CHECKING:
    from app.broadcast import Broadcast
    from app.settings import Settings

log = logging.getLogger(__name__)

# What a 503 asks the client to wait: a restarting database is usually back within seconds.
RETRY_AFTER_S = 1


@dataclass
class Context:
    services: Services
    verifier: FirebaseVerifier
    broadcast: Broadcast
    request: Any = None
    response: Any = None
    principal: Principal | None = None
    auth_error: AuthenticationError | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # The caller's own X-Request-Id, if it sent a well-formed one: logged beside ours.
    client_request_id: str | None = None
    # Set by Strawberry from the websocket `connection_init` payload.
    connection_params: dict[str, Any] | None = None
    # Reads cached for one operation (see for_operation); never copied, never shared.
    _loaders: Loaders | None = field(default=None, init=False, repr=False)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def sessions(self) -> Any:
        return self.services.sessions

    @property
    def caller(self) -> Caller:
        assert self.principal is not None, "permission classes run before any use case"
        return Caller(self.principal, self.request_id)

    @property
    def loaders(self) -> Loaders:
        # Built lazily inside the running loop: aiodataloader binds the loop in __init__.
        if self._loaders is None:
            self._loaders = Loaders(self.services.sessions)
        return self._loaders

    def for_operation(self) -> Context:
        """The same caller with no cached reads: the context of one operation (app.api.schema's
        OneOperationContext). A websocket's context lives as long as the socket; its queries and
        mutations must not read through the loaders of earlier ones.
        """
        return replace(self)  # the loaders (init=False) and app.api.inventory's caches stay behind

    def fresh_loaders(self) -> None:
        """Forget every cached read. A subscription is one operation that lasts, so it calls this
        before each event: its fields must show the state after the event.
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
        found = await self.loaders.agency_by_code.load(principal.agency_code)
        return found is not None and found[0] == agency_id

    async def buyer(self) -> Buyer | None:
        """Whose sell prices the caller sees: None for staff (they see net), else the agent's
        agency and its tier (an unregistered agency buys under the plan for all agencies)."""
        principal = self.principal
        if principal is None or principal.is_staff:
            return None
        found = await self.loaders.agency_by_code.load(principal.agency_code)
        return Buyer(-1, None) if found is None else Buyer(*found)

    def answer_unavailable(self) -> None:
        """Make a plain HTTP answer a retryable 503 (a websocket's error carries the code alone)."""
        if isinstance(self.request, Request) and self.response is not None:
            self.response.status_code = 503
            self.response.headers["Retry-After"] = str(RETRY_AFTER_S)

    async def authenticate(self, authorization: str | None, *, fresh: bool = False) -> None:
        """Sets the principal, or the reason there is none. `fresh`: see FirebaseVerifier.verify."""
        try:
            token = bearer_token(authorization)
            self.principal = await self.verifier.verify(token, fresh=fresh) if token else None
        except AuthenticationError as error:
            self.principal, self.auth_error = None, error
            # The fixed reason only: the message may quote the token, which no log may hold.
            log.warning("token refused: request %s (client id %s), uid %s, reason %s", self.request_id,
                        self.client_request_id, error.uid, error.reason)
