"""Telling partners: webhook endpoints and their deliveries (agents manage their own agency's,
staff any and the wholesaler's own), over the use cases of app.services.notify."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from app.api.catalog import Agency, load_agency
from app.api.errors import InvalidInput, NotFound
from app.api.ids import decode_optional, target_pk
from app.api.pagination import connection
from app.api.permissions import AUTHENTICATED, Info
from app.api.types import LoadedNode, agency_scoped
from app.services.errors import InvalidInput as InvalidInputFailure
from app.services.errors import NotFound as NotFoundFailure
from app.services.notify import endpoints

if TYPE_CHECKING:
    from db.models import WebhookDelivery as DeliveryRow
    from db.models import WebhookEndpoint as EndpointRow
else:
    DeliveryRow = EndpointRow = Any


@strawberry.enum(description="PENDING: not sent yet; FAILED: the last attempt failed, another is due at "
                 "`nextAttemptAt`; DELIVERED: a 2xx came back; GAVE_UP: no more attempts (see `lastError`).")
class DeliveryStatus(Enum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    GAVE_UP = "GAVE_UP"


async def _delivery_visible(info: Info, row: Any) -> bool:
    """A delivery is seen by whoever sees its endpoint (staff: every one; an agent: its agency's)."""
    endpoint = await info.context.loaders.webhook_endpoint.load(row.endpoint_id)
    return endpoint is not None and await agency_scoped(info, endpoint)


@strawberry.type(description="One event sent to one endpoint, with its attempts so far.")
class WebhookDelivery(LoadedNode, relay.Node):
    id: relay.NodeID[int]
    event_type: str
    webhook_id: str = strawberry.field(description="The `webhook-id` header: the same on every attempt and "
                                       "replay, the receiver's dedupe key.")
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None = strawberry.field(description="When the next attempt is due (null once "
                                                        "DELIVERED or GAVE_UP).")
    created_at: datetime
    payload: JSON = strawberry.field(description="The body sent: {type, timestamp, data}.")

    loader = "webhook_delivery"
    visible = _delivery_visible

    @staticmethod
    def from_row(row: DeliveryRow) -> WebhookDelivery:
        due = row.status in ("PENDING", "FAILED")
        return WebhookDelivery(
            id=row.id, event_type=row.event_type, webhook_id=row.webhook_id, status=DeliveryStatus(row.status),
            attempts=row.attempts, last_status_code=row.last_status_code, last_error=row.last_error,
            next_attempt_at=row.next_attempt_at if due else None, created_at=row.created_at, payload=row.payload)


@strawberry.type(description="Where an agency's systems (or the wholesaler's own) hear about events.")
class WebhookEndpoint(LoadedNode, relay.Node):
    id: relay.NodeID[int]
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    agency_id: strawberry.Private[int | None]

    loader = "webhook_endpoint"
    visible = agency_scoped

    @staticmethod
    def from_row(row: EndpointRow) -> WebhookEndpoint:
        return WebhookEndpoint(id=row.id, url=row.url, events=list(row.events), enabled=row.enabled,
                               disabled_reason=row.disabled_reason, created_at=row.created_at, agency_id=row.agency_id)

    @strawberry.field(description="The agency it belongs to; null for the wholesaler's own (staff) endpoints.")
    async def agency(self, info: Info) -> Agency | None:
        return None if self.agency_id is None else await load_agency(info, self.agency_id)

    @strawberry.field(description="Newest first.")
    async def deliveries(self, info: Info, first: int | None = None, after: str | None = None
                         ) -> relay.Connection[WebhookDelivery]:
        page = await endpoints.deliveries(info.context.services, info.context.caller, self.id, first, after)
        return connection(page, WebhookDelivery.from_row)


@strawberry.type(description="An endpoint and its signing secret: shown this once.")
class WebhookEndpointSecret:
    endpoint: WebhookEndpoint
    secret: str = strawberry.field(description="whsec_...: verify each delivery's `webhook-signature` with it.")


@strawberry.type
class DeletedWebhookEndpoint:
    id: strawberry.ID


@strawberry.input
class CreateWebhookEndpointInput:
    url: str = strawberry.field(description="https in production; never a private, loopback or link-local address.")
    events: list[str] = strawberry.field(description="Event types, e.g. booking_group.confirmed.")
    agency_id: strawberry.ID | None = strawberry.field(
        default=None, description="Staff: the agency it is for (omitted: the wholesaler's own, which hears every "
        "agency's events). Agents: their own agency, always.")


@strawberry.input(description="Fields left out stay as they are.")
class UpdateWebhookEndpointInput:
    id: strawberry.ID
    url: str | None = None
    events: list[str] | None = None
    enabled: bool | None = strawberry.field(default=None, description="Enabling a disabled endpoint starts its "
                                            "failure count afresh; redeliver what it missed.")


CreateWebhookEndpointResult = Annotated[WebhookEndpointSecret | InvalidInput,
                                        strawberry.union("CreateWebhookEndpointResult")]
UpdateWebhookEndpointResult = Annotated[WebhookEndpoint | InvalidInput | NotFound,
                                        strawberry.union("UpdateWebhookEndpointResult")]
DeleteWebhookEndpointResult = Annotated[DeletedWebhookEndpoint | NotFound, strawberry.union("DeleteWebhookEndpointResult")]
RedeliverWebhookResult = Annotated[WebhookDelivery | NotFound, strawberry.union("RedeliverWebhookResult")]


@strawberry.type
class NotifyQuery:
    @strawberry.field(permission_classes=AUTHENTICATED, description="Staff: every endpoint (the wholesaler's own "
                      "too); agents: their own agency's.")
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint]:
        context = info.context
        if context.caller.is_staff:
            rows = await endpoints.staff_endpoints(context.services)
        else:
            buyer = await context.buyer()
            rows = [] if buyer is None else await endpoints.endpoints_of(context.services, context.caller,
                                                                          buyer.agency_id)
        return [WebhookEndpoint.from_row(row) for row in rows]


@strawberry.type
class NotifyMutation:
    @strawberry.mutation(permission_classes=AUTHENTICATED, description="The secret is in the answer, and only there.")
    async def create_webhook_endpoint(self, info: Info, input: CreateWebhookEndpointInput) -> CreateWebhookEndpointResult:
        spec = endpoints.EndpointSpec(url=input.url, events=input.events,
                                      agency_id=decode_optional(input.agency_id, "Agency", "agencyId"))
        row, secret = await endpoints.create_endpoint(info.context.services, info.context.caller, spec)
        return WebhookEndpointSecret(endpoint=WebhookEndpoint.from_row(row), secret=secret)

    @strawberry.mutation(permission_classes=AUTHENTICATED)
    async def update_webhook_endpoint(self, info: Info, input: UpdateWebhookEndpointInput) -> UpdateWebhookEndpointResult:
        row = await endpoints.update_endpoint(info.context.services, info.context.caller,
                                              target_pk(input.id, "WebhookEndpoint"), url=input.url,
                                              events=input.events, enabled=input.enabled)
        return WebhookEndpoint.from_row(row)

    @strawberry.mutation(permission_classes=AUTHENTICATED, description="A new secret (in the answer, only there); "
                         "the old one keeps signing, as a second signature, for 24 hours.")
    async def rotate_webhook_secret(self, info: Info, id: strawberry.ID) -> CreateWebhookEndpointResult:
        try:
            row, secret = await endpoints.rotate_secret(info.context.services, info.context.caller,
                                                        target_pk(id, "WebhookEndpoint"))
        except NotFoundFailure as failure:  # the contract's union has no NotFound
            raise InvalidInputFailure("id", failure.message) from None
        return WebhookEndpointSecret(endpoint=WebhookEndpoint.from_row(row), secret=secret)

    @strawberry.mutation(permission_classes=AUTHENTICATED, description="Its deliveries go with it.")
    async def delete_webhook_endpoint(self, info: Info, id: strawberry.ID) -> DeleteWebhookEndpointResult:
        await endpoints.delete_endpoint(info.context.services, info.context.caller, target_pk(id, "WebhookEndpoint"))
        return DeletedWebhookEndpoint(id=id)

    @strawberry.mutation(permission_classes=AUTHENTICATED, description="Send a delivery again, as it was (same "
                         "webhook-id and body), as soon as a dispatcher is free.")
    async def redeliver_webhook(self, info: Info, delivery_id: strawberry.ID) -> RedeliverWebhookResult:
        row = await endpoints.redeliver(info.context.services, info.context.caller,
                                        target_pk(delivery_id, "WebhookDelivery"))
        return WebhookDelivery.from_row(row)


