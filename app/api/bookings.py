"""Booking groups, their bookings and sale orders (read side)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from app.api.audit import AuditEntry, audit_trail
from app.api.permissions import Info
from app.api.types import (
    Agency, Hotel, Money, RoomType, load_agency, load_hotel, load_room_type, node_pk,
)
from db import models
from domain import BookingStatus as DomainBookingStatus
from domain import effective_status

if TYPE_CHECKING:
    from app.api.hardblocks import Hardblock


@strawberry.enum
class BookingStatus(enum.Enum):
    HELD = "HELD"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


def _status(status: str, expires_at: datetime | None) -> BookingStatus:
    """A hold past its expiry reads as EXPIRED at once, before the sweeper records it."""
    return BookingStatus(effective_status(DomainBookingStatus(status), expires_at, models.utcnow()).value)


async def visible_rows(info: Info, loader: Any, node_ids: Iterable[str]) -> list[Any]:
    """Rows for `node_ids`, None where missing or belonging to an agency the caller may not see."""
    pks = [node_pk(i) or 0 for i in node_ids]
    rows = await loader.load_many(pks)
    return [row if row is not None and await info.context.may_see(row.agency_id) else None for row in rows]


@strawberry.type
class Booking(relay.Node):
    id: relay.NodeID[int]
    check_in: date
    check_out: date
    rooms: int
    status: BookingStatus
    total: Money
    row: strawberry.Private[models.Booking]

    @staticmethod
    def from_row(row: models.Booking) -> Booking:
        return Booking(
            id=row.id, check_in=row.check_in, check_out=row.check_out, rooms=row.rooms,
            status=_status(row.status, row.expires_at), total=Money.of(row.total_amount, row.currency), row=row,
        )

    @strawberry.field
    async def group(self, info: Info) -> BookingGroup:
        return BookingGroup.from_row(await info.context.loaders.booking_group.load(self.row.group_id))

    @strawberry.field
    async def hotel(self, info: Info) -> Hotel:
        return await load_hotel(info, self.row.hotel_id)

    @strawberry.field
    async def room_type(self, info: Info) -> RoomType:
        return await load_room_type(info, self.row.room_type_id)

    @strawberry.field(description="The hardblock the rooms come from; null for pool bookings.")
    async def hardblock(self, info: Info) -> Annotated[Hardblock, strawberry.lazy("app.api.hardblocks")] | None:
        from app.api.hardblocks import Hardblock

        if self.row.hardblock_id is None:
            return None
        return Hardblock.from_row(await info.context.loaders.hardblock.load(self.row.hardblock_id))

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await visible_rows(info, info.context.loaders.booking, node_ids)
        return [cls.from_row(row) if row else None for row in rows]


@strawberry.type
class BookingGroup(relay.Node):
    id: relay.NodeID[int]
    reference: str
    status: BookingStatus
    expires_at: datetime | None
    guest_name: str
    created_at: datetime
    row: strawberry.Private[models.BookingGroup]

    @staticmethod
    def from_row(row: models.BookingGroup) -> BookingGroup:
        return BookingGroup(
            id=row.id, reference=row.reference, status=_status(row.status, row.expires_at),
            expires_at=row.expires_at, guest_name=row.guest_name, created_at=row.created_at, row=row,
        )

    @strawberry.field
    async def agency(self, info: Info) -> Agency:
        return await load_agency(info, self.row.agency_id)

    @strawberry.field
    async def bookings(self, info: Info) -> list[Booking]:
        return [Booking.from_row(row) for row in await info.context.loaders.bookings_by_group.load(self.id)]

    @strawberry.field(description="Sum of the bookings' prices, frozen when the rooms were held.")
    async def total(self, info: Info) -> Money:
        rows = await info.context.loaders.bookings_by_group.load(self.id)
        currency = rows[0].currency if rows else "EUR"
        return Money.of(sum((row.total_amount for row in rows), Decimal(0)), currency)

    @strawberry.field
    async def sale_order(self, info: Info) -> SaleOrder | None:
        row = await info.context.loaders.sale_order_by_group.load(self.id)
        return SaleOrder.from_row(row) if row else None

    @strawberry.field(description="What happened to the group and its sale order (created, confirmed, "
                      "cancelled, expired), oldest first.")
    async def audit_trail(self, info: Info) -> list[AuditEntry]:
        if not await info.context.may_see(self.row.agency_id):
            return []
        entities = [("BookingGroup", self.id)]
        if order := await info.context.loaders.sale_order_by_group.load(self.id):
            entities.append(("SaleOrder", order.id))
        return await audit_trail(info, entities)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await visible_rows(info, info.context.loaders.booking_group, node_ids)
        return [cls.from_row(row) if row else None for row in rows]


@strawberry.type
class SaleOrder(relay.Node):
    id: relay.NodeID[int]
    number: str
    status: str
    total: Money
    confirmed_at: datetime
    cancelled_at: datetime | None
    row: strawberry.Private[models.SaleOrder]

    @staticmethod
    def from_row(row: models.SaleOrder) -> SaleOrder:
        return SaleOrder(
            id=row.id, number=row.number, status=row.status, total=Money.of(row.total_amount, row.currency),
            confirmed_at=row.confirmed_at, cancelled_at=row.cancelled_at, row=row,
        )

    @strawberry.field
    async def group(self, info: Info) -> BookingGroup:
        return BookingGroup.from_row(await info.context.loaders.booking_group.load(self.row.group_id))

    @strawberry.field
    async def agency(self, info: Info) -> Agency:
        return await load_agency(info, self.row.agency_id)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await visible_rows(info, info.context.loaders.sale_order, node_ids)
        return [cls.from_row(row) if row else None for row in rows]
