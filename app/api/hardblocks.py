"""Hardblocks: rooms of a room type reserved for one agency (read side: the block, its slot grid,
its amendments and their diff grids)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry import relay

from app.api.audit import AuditEntry, audit_trail
from app.api.bookings import Booking, visible_rows
from app.api.errors import UserError
from app.api.ids import filter_pk
from app.api.permissions import Info
from app.api.types import (
    Agency, Hotel, Money, RoomType, Series, load_agency, load_hotel, load_room_type, node_pk,
)
from db import models
from db.hardblocks import BlockGridData
from domain import (
    AllotmentEvent,
    compute_hardblock_slots,
    nights,
    order_key,
    proposed_amendments,
    resolve,
)

MAX_GRID_NIGHTS = 732


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

    @strawberry.field(description="The size the block was created with; amendments change it per night.")
    def rooms(self) -> int:
        return self.row.rooms

    @strawberry.field(description="When the whole block was released; null while ACTIVE.")
    def released_at(self) -> datetime | None:
        return self.row.released_at

    @strawberry.field
    async def agency(self, info: Info) -> Agency:
        return await load_agency(info, self.row.agency_id)

    @strawberry.field
    async def hotel(self, info: Info) -> Hotel:
        return await load_hotel(info, self.row.hotel_id)

    @strawberry.field
    async def room_type(self, info: Info) -> RoomType:
        return await load_room_type(info, self.row.room_type_id)

    @strawberry.field(description="Slot-level inventory, one slot per night of [from, to) (default: the "
                      "block's span). `overlay` draws a proposed amendment of this block as `proposedSize` on "
                      "the nights it touches, and nowhere else.")
    async def grid(
        self, info: Info, from_: Annotated[date | None, strawberry.argument(name="from")] = None,
        to: date | None = None, overlay: HardblockAmendmentInput | None = None,
    ) -> list[HardblockSlot]:
        return await self._slots(info, from_, to, overlay, with_bookings=True)

    @strawberry.field(description="The grid's numbers as parallel arrays, one entry per night (no bookings): "
                      "the compact shape for many blocks at once. Same arguments as `grid`.")
    async def grid_series(
        self, info: Info, from_: Annotated[date | None, strawberry.argument(name="from")] = None,
        to: date | None = None, overlay: HardblockAmendmentInput | None = None,
    ) -> HardblockGridSeries:
        slots = await self._slots(info, from_, to, overlay, with_bookings=False)
        return HardblockGridSeries(
            dates=[s.date.isoformat() for s in slots], size=[s.size for s in slots],
            booked=[s.booked for s in slots], available=[s.available for s in slots],
            released=[s.released for s in slots],
            release_at=[s.release_at.isoformat() for s in slots],
            rate=[s.rate.amount if s.rate else None for s in slots],
            currency=next((s.rate.currency for s in slots if s.rate), None),
            proposed_size=[s.proposed_size for s in slots],
        )

    async def _slots(self, info: Info, start: date | None, end: date | None,
                     overlay: HardblockAmendmentInput | None, *, with_bookings: bool) -> list[HardblockSlot]:
        start, end = start or self.row.start_date, end or self.row.end_date
        if end <= start:
            return []
        if (end - start).days > MAX_GRID_NIGHTS:
            raise GraphQLError(f"a grid spans at most {MAX_GRID_NIGHTS} nights",
                               extensions={"code": "BAD_USER_INPUT"})
        data = await info.context.loaders.block_grid.load((self.row.hotel_id, self.id, start, end))
        proposed = None
        if overlay is not None and filter_pk(overlay.hardblock_id, "Hardblock") == self.id:
            proposed = [(c.from_, c.to, c.rooms) for c in overlay.changes if c.from_ < c.to and c.rooms >= 0]
        return block_grid(data, self.id, start, end, models.utcnow(), data.bookings if with_bookings else [], proposed)

    @strawberry.field(description="What happened to the block (created, amended, rooms returned, released, "
                      "nights released by hand or at their release time, amendments reverted), oldest first.")
    async def audit_trail(self, info: Info) -> list[AuditEntry]:
        if not await info.context.may_see(self.row.agency_id):
            return []
        return await audit_trail(info, [("Hardblock", self.id)])

    @strawberry.field(description="Its amendments, oldest first (reverted ones too, with `revertedAt`).")
    async def amendments(self, info: Info) -> list[HardblockAmendment]:
        rows = await info.context.loaders.amendments_by_block.load(self.id)
        return [HardblockAmendment.from_row(row) for row in rows]

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await visible_rows(info, info.context.loaders.hardblock, node_ids)
        return [cls.from_row(row) if row else None for row in rows]


def block_grid(
    data: BlockGridData,
    hardblock_id: int,
    start: date,
    end: date,
    now: datetime,
    bookings: Sequence[models.Booking],
    proposed: list[tuple[date, date, int]] | None = None,
) -> list[HardblockSlot]:
    """The slots of one block on [start, end) with the pool rate of each night and the bookings
    taking rooms from it; with `proposed` changes, their sizes on the nights they touch."""
    terms = data.terms[hardblock_id]
    slots = compute_hardblock_slots(terms, data.amendments, data.booking_lines, start, end, now)
    rates = resolve(data.contracts.get(terms.room_type_id, []), data.rate_events.get(terms.room_type_id, []),
                    [terms.room_type_id], start, end)[terms.room_type_id].rate
    by_night: dict[date, list[models.Booking]] = {}
    lines = {line.id: line for line in data.booking_lines}
    for row in bookings:
        if row.hardblock_id == hardblock_id and lines[row.id].counts(now):
            for night in nights(max(row.check_in, start), min(row.check_out, end)):
                by_night.setdefault(night, []).append(row)
    sizes: dict[date, int] = {}
    if proposed:
        events = proposed_amendments(terms, proposed, data.amendments, now)
        touched = {night for e in events for night in nights(max(e.start, start), min(e.end, end))}
        regrown = dataclasses.replace(terms, released_nights=terms.released_nights - touched)
        after = compute_hardblock_slots(regrown, [*data.amendments, *events], data.booking_lines, start, end, now)
        sizes = {slot.date: slot.size for slot in after if slot.date in touched}
    return [
        HardblockSlot(
            date=slot.date, size=slot.size, booked=slot.booked, available=slot.available, released=slot.released,
            release_at=slot.release_at, rate=Money.of(rate.amount, rate.currency) if rate else None,
            proposed_size=sizes.get(slot.date), hardblock_id=hardblock_id, agency_id=terms.agency_id,
            booking_rows=tuple(by_night.get(slot.date, ())),
        )
        for slot, rate in zip(slots, rates)
    ]


@strawberry.type(description="A block's slots as parallel arrays, one entry per night.")
class HardblockGridSeries:
    dates: Series = strawberry.field(description="ISO dates.")
    size: Series
    booked: Series
    available: Series
    released: Series
    release_at: Series = strawberry.field(description="ISO timestamps (UTC).")
    rate: Series = strawberry.field(description="Decimal amounts as strings (or null); see `currency`.")
    currency: str | None
    proposed_size: Series = strawberry.field(description="With an overlay: the proposed size on the nights it "
                                             "touches, null elsewhere.")


@strawberry.input(description="Sets the block to `rooms` on nights [from, to); nights outside the block "
                  "extend it; 0 removes them.")
class HardblockNightsChange:
    from_: date = strawberry.field(name="from")
    to: date
    rooms: int


@strawberry.input
class HardblockAmendmentInput:
    hardblock_id: strawberry.ID
    reason: str | None = None
    changes: list[HardblockNightsChange]


@strawberry.type(description="One night of an amendment's diff grid.")
class HardblockSlotDiff:
    date: date
    before: int
    after: int
    delta: int
    conflict: str | None = strawberry.field(description="Why the change cannot be made on this night: "
                                            "BLOCK_UNDERFLOW, SOLD_OUT or RELEASED; null when it can.")
    booked: int = strawberry.field(default=0, description="Rooms booked from the block on this night.")
    pool_needed: int = strawberry.field(default=0, description="Rooms the change takes from the pool.")
    pool_available: int | None = strawberry.field(default=None, description="Pool rooms available on this "
                                                  "night before the change (previews only).")


@strawberry.type(description="What an amendment would do, written nowhere.")
class HardblockAmendmentPreview:
    feasible: bool
    slots: list[HardblockSlotDiff]
    error: UserError | None = strawberry.field(
        default=None, description="Why there is nothing to preview (an unknown block, bad input); "
        "`feasible` is then false.")


@strawberry.type(description="One change of an amendment: the block was set to `rooms` on [from, to).")
class HardblockAmendmentChange:
    from_: date = strawberry.field(name="from")
    to: date
    rooms: int


@strawberry.type(description="A recorded amendment of a hardblock: its BLOCK_AMENDMENT events, author "
                 "and reason. A reverted amendment's events are voided.")
class HardblockAmendment(relay.Node):
    id: relay.NodeID[int]
    reason: str
    author_uid: str
    created_at: datetime
    reverted_at: datetime | None
    row: strawberry.Private[models.HardblockAmendment]

    @staticmethod
    def from_row(row: models.HardblockAmendment) -> HardblockAmendment:
        return HardblockAmendment(id=row.id, reason=row.reason, author_uid=row.author_uid,
                                  created_at=row.created_at, reverted_at=row.reverted_at, row=row)

    @strawberry.field
    async def hardblock(self, info: Info) -> Hardblock:
        return Hardblock.from_row(await info.context.loaders.hardblock.load(self.row.hardblock_id))

    @strawberry.field
    async def changes(self, info: Info) -> list[HardblockAmendmentChange]:
        rows = await info.context.loaders.events_by_amendment.load(self.id)
        return [HardblockAmendmentChange(from_=e.start_date, to=e.end_date, rooms=e.quantity or 0) for e in rows]

    @strawberry.field(description="The amendment's own diff grid: the block's sizes on the nights it touched, "
                      "just before it and with it (amendments recorded later left out).")
    async def slots(self, info: Info) -> list[HardblockSlotDiff]:
        from db.calendar import event_terms

        own = [dataclasses.replace(event_terms(row), voided=False)
               for row in await info.context.loaders.events_by_amendment.load(self.id)]
        if not own:
            return []
        block = await info.context.loaders.hardblock.load(self.row.hardblock_id)
        touched = sorted({night for e in own for night in nights(e.start, e.end)})
        start, end = touched[0], touched[-1] + timedelta(days=1)
        data = await info.context.loaders.block_grid.load((block.hotel_id, block.id, start, end))
        first = min(map(order_key, own))
        earlier = [e for e in data.amendments if order_key(e) < first]
        return amendment_diff(data, block.id, earlier, own, touched, start, end)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        pks = [node_pk(i) or 0 for i in node_ids]
        rows = await info.context.loaders.hardblock_amendment.load_many(pks)
        blocks = await info.context.loaders.hardblock.load_many([row.hardblock_id if row else 0 for row in rows])
        return [cls.from_row(row) if row and block and await info.context.may_see(block.agency_id) else None
                for row, block in zip(rows, blocks)]


def amendment_diff(
    data: BlockGridData, hardblock_id: int, earlier: list[AllotmentEvent], own: list[AllotmentEvent],
    touched: list[date], start: date, end: date,
) -> list[HardblockSlotDiff]:
    terms = data.terms[hardblock_id]
    now = models.utcnow()
    before = compute_hardblock_slots(terms, earlier, data.booking_lines, start, end, now)
    after = compute_hardblock_slots(terms, [*earlier, *own], data.booking_lines, start, end, now)
    wanted = set(touched)
    return [
        HardblockSlotDiff(date=b.date, before=b.size, after=a.size, delta=a.size - b.size, conflict=None,
                          booked=a.booked)
        for b, a in zip(before, after) if b.date in wanted
    ]


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
    agency_id: strawberry.Private[int]
    booking_rows: strawberry.Private[tuple[models.Booking, ...]] = ()

    @strawberry.field
    async def hardblock(self, info: Info) -> Hardblock:
        return Hardblock.from_row(await info.context.loaders.hardblock.load(self.hardblock_id))

    @strawberry.field(description="Bookings taking rooms from this block on this night.")
    def bookings(self) -> list[Booking]:
        # Synchronous (an async resolver sends every slot of a grid down graphql-core's awaitable
        # path): a block's bookings are its agency's, and a slot only reaches callers who may see
        # its block (Hardblock.grid, CalendarCell.hardblocks).
        return [Booking.from_row(row) for row in self.booking_rows]
