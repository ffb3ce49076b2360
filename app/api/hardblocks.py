"""Hardblocks: rooms of a room type reserved for one agency (read side)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import strawberry
from strawberry import relay

from app.api.bookings import Booking, visible_rows
from app.api.permissions import Info
from app.api.types import Agency, Hotel, Money, RoomType, load_agency, load_hotel, load_room_type
from db import models


@strawberry.enum
class HardblockStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    RELEASED = "RELEASED"


@strawberry.type
class Hardblock(relay.Node):
    id: relay.NodeID[int]
    reference: str
    from_: date = strawberry.field(name="from")
    to: date
    release_days: int
    status: HardblockStatus
    created_at: datetime
    row: strawberry.Private[models.Hardblock]

    @staticmethod
    def from_row(row: models.Hardblock) -> Hardblock:
        return Hardblock(
            id=row.id, reference=row.reference, from_=row.start_date, to=row.end_date,
            release_days=row.release_days, status=HardblockStatus(row.status), created_at=row.created_at, row=row,
        )

    @strawberry.field
    async def agency(self, info: Info) -> Agency:
        return await load_agency(info, self.row.agency_id)

    @strawberry.field
    async def hotel(self, info: Info) -> Hotel:
        return await load_hotel(info, self.row.hotel_id)

    @strawberry.field
    async def room_type(self, info: Info) -> RoomType:
        return await load_room_type(info, self.row.room_type_id)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await visible_rows(info, info.context.loaders.hardblock, node_ids)
        return [cls.from_row(row) if row else None for row in rows]


@strawberry.type(description="One night of a hardblock: its size, what is booked from it, and what it released.")
class HardblockSlot:
    date: date
    size: int
    booked: int
    available: int
    released: int
    release_at: datetime = strawberry.field(description="When the night's unsold rooms return to the pool.")
    rate: Money | None
    proposed_size: int | None = strawberry.field(
        default=None, description="Set only by an amendment overlay, on the nights it touches."
    )
    hardblock_id: strawberry.Private[int]
    booking_rows: strawberry.Private[tuple[models.Booking, ...]] = ()

    @strawberry.field
    async def hardblock(self, info: Info) -> Hardblock:
        return Hardblock.from_row(await info.context.loaders.hardblock.load(self.hardblock_id))

    @strawberry.field(description="Bookings taking rooms from this block on this night.")
    async def bookings(self, info: Info) -> list[Booking]:
        return [Booking.from_row(row) for row in self.booking_rows if await info.context.may_see(row.agency_id)]
