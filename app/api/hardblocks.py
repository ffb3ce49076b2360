"""Hardblocks: rooms of a room type reserved for one agency. The block, its slot grid, its
amendments and their diff grids; the list; and the writes over app.services.hardblocks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry import relay

from app.api.audit import AuditEntry, audit_trail
from app.api.bookings import Booking
from app.api.catalog import Agency, Hotel, RoomType, load_agency, load_hotel, load_room_type
from app.api.errors import (
    BlockUnderflow,
    HardblockSlotDiff,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    LockTimeout,
    NotFound,
    SoldOut,
    UserError,
    as_user_error,
)
from app.api.ids import decode_id, decode_optional, filter_pk, target_pk
from app.api.pagination import connection
from app.api.permissions import AUTHENTICATED, STAFF, Info
from app.api.types import HardblockStatus, LoadedNode, Money, Series, agency_scoped, bad_input, money
from app.services import hardblocks
from app.services.errors import Failure
from app.services.reads import BlockSlot, amendment_diff, amendment_nights, block_grid, load_calendar
from domain import Money as DomainMoney
from domain import format_amount, hotel_today

if TYPE_CHECKING:
    from db.models import Hardblock as HardblockRow
    from db.models import HardblockAmendment as HardblockAmendmentRow
else:
    HardblockRow = HardblockAmendmentRow = Any

MAX_GRID_NIGHTS = 732


@strawberry.type
class Hardblock(LoadedNode, relay.Node):
    id: relay.NodeID[int]
    reference: str
    from_: date = strawberry.field(name="from")
    to: date
    release_days: int
    status: HardblockStatus
    created_at: datetime
    row: strawberry.Private[HardblockRow]

    loader = "hardblock"
    visible = agency_scoped

    @staticmethod
    def from_row(row: HardblockRow) -> Hardblock:
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
        slots = await self._slots(info, from_, to, overlay, with_bookings=True)
        return [HardblockSlot.of(s, rate) for s, rate in zip(slots, await self._rates(info, slots))]

    @strawberry.field(description="The grid's numbers as parallel arrays, one entry per night (no bookings): "
                      "the compact shape for many blocks at once. Same arguments as `grid`.")
    async def grid_series(
        self, info: Info, from_: Annotated[date | None, strawberry.argument(name="from")] = None,
        to: date | None = None, overlay: HardblockAmendmentInput | None = None,
    ) -> HardblockGridSeries:
        slots = await self._slots(info, from_, to, overlay, with_bookings=False)
        rates = await self._rates(info, slots)
        return HardblockGridSeries(
            dates=[s.slot.date.isoformat() for s in slots], size=[s.slot.size for s in slots],
            booked=[s.slot.booked for s in slots], available=[s.slot.available for s in slots],
            released=[s.slot.released for s in slots],
            release_at=[s.slot.release_at.isoformat() for s in slots],
            rate=[format_amount(rate.amount, rate.currency) if rate else None for rate in rates],
            currency=next((rate.currency for rate in rates if rate), None),
            proposed_size=[s.proposed_size for s in slots],
        )

    async def _rates(self, info: Info, slots: list[BlockSlot]) -> list[DomainMoney | None]:
        """Per slot, the rate the caller sees: staff the pool's net; an agent its own sell price,
        priced on a calendar snapshot of the room type (the occupancy its plan's rules see)."""
        buyer = await info.context.buyer()
        if buyer is None or not slots:
            return [s.rate for s in slots]
        loaded = await load_calendar(info.context.sessions, self.row.hotel_id, slots[0].slot.date,
                                     slots[-1].slot.date + timedelta(days=1), [self.row.room_type_id])
        return [loaded.rate_on(self.row.room_type_id, s.slot.date, buyer) for s in slots]

    async def _slots(self, info: Info, start: date | None, end: date | None,
                     overlay: HardblockAmendmentInput | None, *, with_bookings: bool) -> list[BlockSlot]:
        start, end = start or self.row.start_date, end or self.row.end_date
        if end <= start:
            return []
        if (end - start).days > MAX_GRID_NIGHTS:
            raise GraphQLError(f"a grid spans at most {MAX_GRID_NIGHTS} nights",
                               extensions={"code": "BAD_USER_INPUT"})
        data = await info.context.loaders.block_grid.load((self.row.hotel_id, self.id, start, end))
        proposed, now = None, datetime.now(UTC)
        if overlay is not None and filter_pk(overlay.hardblock_id, "Hardblock") == self.id:
            try:  # the checks of the amendment it draws: at most 50 changes, bounded spans and sizes
                proposed = hardblocks.check_changes(overlay.amendment().changes)
                # ... from the block's hotel's today on
                hardblocks.check_changes_past(proposed, hotel_today(now, data.terms[self.id].time_zone))
            except Failure as failure:
                raise bad_input(f"overlay: {failure.message}") from None
        return block_grid(data, self.id, start, end, now, data.bookings if with_bookings else [], proposed)

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


IDEMPOTENCY_KEY = ("Optional. A retry with the same key returns the first result and changes nothing more; the "
                   "same key with a different request is an IdempotencyConflict. Scoped to the caller (an agent's "
                   "agency; a staff member's own uid).")


@strawberry.input
class HardblockAmendmentInput:
    hardblock_id: strawberry.ID
    reason: str | None = None
    changes: list[HardblockNightsChange]
    idempotency_key: str | None = strawberry.field(
        default=None, description=f"amendHardblock only (previews and overlays write nothing). {IDEMPOTENCY_KEY}")

    def amendment(self) -> hardblocks.Amendment:
        return hardblocks.Amendment([(c.from_, c.to, c.rooms) for c in self.changes], self.reason,
                                    self.idempotency_key)


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


async def _block_visible(info: Info, row: Any) -> bool:
    block = await info.context.loaders.hardblock.load(row.hardblock_id)
    return block is not None and await info.context.may_see(block.agency_id)


@strawberry.type(description="A recorded amendment of a hardblock: its BLOCK_AMENDMENT events, author "
                 "and reason. A reverted amendment's events are voided.")
class HardblockAmendment(LoadedNode, relay.Node):
    id: relay.NodeID[int]
    reason: str
    author_uid: str
    created_at: datetime
    reverted_at: datetime | None
    row: strawberry.Private[HardblockAmendmentRow]

    loader = "hardblock_amendment"
    visible = _block_visible

    @staticmethod
    def from_row(row: HardblockAmendmentRow) -> HardblockAmendment:
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
        own = await info.context.loaders.events_by_amendment.load(self.id)
        if (span := amendment_nights(own)) is None:
            return []
        block = await info.context.loaders.hardblock.load(self.row.hardblock_id)
        data = await info.context.loaders.block_grid.load((block.hotel_id, block.id, *span))
        return [HardblockSlotDiff.of(d) for d in amendment_diff(data, block.id, own, datetime.now(UTC))]


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
    booking_rows: strawberry.Private[tuple[Any, ...] | None] = ()

    @classmethod
    def of(cls, view: BlockSlot, rate: DomainMoney | None) -> HardblockSlot:
        """`rate`: what the caller sees for the night (staff: the pool's net; an agent: its sell)."""
        slot = view.slot
        return cls(date=slot.date, size=slot.size, booked=slot.booked, available=slot.available,
                   released=slot.released, release_at=slot.release_at, rate=money(rate),
                   proposed_size=view.proposed_size, hardblock_id=slot.hardblock_id, agency_id=view.agency_id,
                   booking_rows=view.bookings)

    @strawberry.field
    async def hardblock(self, info: Info) -> Hardblock:
        return Hardblock.from_row(await info.context.loaders.hardblock.load(self.hardblock_id))

    @strawberry.field(description="Bookings taking rooms from this block on this night.")
    def bookings(self) -> list[Booking]:
        # Synchronous (an async resolver sends every slot of a grid down graphql-core's awaitable
        # path): a block's bookings are its agency's, and a slot only reaches callers who may see
        # its block (Hardblock.grid, CalendarCell.hardblocks).
        if self.booking_rows is None:
            raise LookupError("this slot's calendar was read with its bookings summed")
        return [Booking.from_row(row) for row in self.booking_rows]


# --- writes --------------------------------------------------------------------------------------


@strawberry.input
class CreateHardblockInput:
    agency_id: strawberry.ID | None = strawberry.field(
        default=None, description="The agency the block is for (required)."
    )
    room_type_id: strawberry.ID
    from_: date = strawberry.field(name="from")
    to: date = strawberry.field(description="The day after the last night.")
    rooms: int
    release_days: int = strawberry.field(
        default=0, description="Unsold rooms of a night return to the pool this many days before it."
    )
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_KEY)


@strawberry.input(description="Give `rooms` rooms of every night of [from, to) back to the pool.")
class ReturnHardblockRoomsInput:
    hardblock_id: strawberry.ID
    from_: date = strawberry.field(name="from")
    to: date
    rooms: int
    reason: str | None = None
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_KEY)


CreateHardblockResult = Annotated[
    Hardblock | SoldOut | InvalidInput | LockTimeout | IdempotencyConflict, strawberry.union("CreateHardblockResult")
]
AmendHardblockResult = Annotated[
    Hardblock | SoldOut | BlockUnderflow | InvalidInput | NotFound | InvalidTransition | LockTimeout
    | IdempotencyConflict,
    strawberry.union("AmendHardblockResult"),
]
ReleaseHardblockResult = Annotated[
    Hardblock | InvalidTransition | NotFound | InvalidInput | LockTimeout | IdempotencyConflict,
    strawberry.union("ReleaseHardblockResult"),
]


def _block_pk(id: strawberry.ID) -> int | None:
    return target_pk(id, "Hardblock")


def _bulk_ids(ids: list[strawberry.ID]) -> list[tuple[int | None, str]]:
    if len(ids) > hardblocks.MAX_BULK:
        raise bad_input(f"ids lists at most {hardblocks.MAX_BULK} hardblocks, got {len(ids)}")
    return [(_block_pk(id), id) for id in ids]


def _bulk_results(results: list[Any]) -> list[Any]:
    return [as_user_error(r) if isinstance(r, Exception) else Hardblock.from_row(r) for r in results]


@strawberry.type
class HardblockMutation:
    @strawberry.mutation(
        permission_classes=STAFF,
        description="Reserve `rooms` rooms of a room type on every night of [from, to) for one agency. Needs "
        "that many available in the pool on every night; decided under the room type's inventory lock. Staff only.",
    )
    async def create_hardblock(self, info: Info, input: CreateHardblockInput) -> CreateHardblockResult:
        request = hardblocks.NewHardblock(
            room_type_id=decode_id(input.room_type_id, "RoomType", "roomTypeId"), start=input.from_, end=input.to,
            rooms=input.rooms, release_days=input.release_days,
            agency_id=decode_optional(input.agency_id, "Agency", "agencyId"), idempotency_key=input.idempotency_key,
        )
        return Hardblock.from_row(await hardblocks.create_hardblock(info.context.services, info.context.caller, request))

    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="Set the block's size on some nights (extending it beyond its range, or 0 to remove nights), "
        "recorded as BLOCK_AMENDMENT events grouped in one amendment. Never below what is booked from it "
        "(BlockUnderflow); growth needs pool availability (SoldOut). Agents may only shrink their blocks: "
        "growing or extending one is a staff operation (FORBIDDEN).",
    )
    async def amend_hardblock(self, info: Info, input: HardblockAmendmentInput) -> AmendHardblockResult:
        block = await hardblocks.amend_hardblock(info.context.services, info.context.caller,
                                                 _block_pk(input.hardblock_id), input.amendment(), input.hardblock_id)
        return Hardblock.from_row(block)

    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="Give `rooms` rooms of each night of [from, to) back to the pool (an amendment shrinking "
        "those nights; never below what is booked).",
    )
    async def return_hardblock_rooms(self, info: Info, input: ReturnHardblockRoomsInput) -> AmendHardblockResult:
        block = await hardblocks.return_hardblock_rooms(
            info.context.services, info.context.caller, _block_pk(input.hardblock_id), input.from_, input.to,
            input.rooms, input.reason, input.hardblock_id, input.idempotency_key)
        return Hardblock.from_row(block)

    @strawberry.mutation(
        permission_classes=STAFF,
        description="Void an amendment's events, if the block can go back: not below its bookings, and "
        "only with pool availability for what it takes back. Otherwise a typed error naming the nights. Staff only.",
    )
    async def revert_hardblock_amendment(self, info: Info, amendment_id: strawberry.ID) -> AmendHardblockResult:
        pk = target_pk(amendment_id, "HardblockAmendment")
        block = await hardblocks.revert_hardblock_amendment(info.context.services, info.context.caller, pk,
                                                            amendment_id)
        return Hardblock.from_row(block)

    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="Release the whole block: its unsold rooms return to the pool; bookings already made "
        "from it stay. One way: a RELEASED block is an InvalidTransition.",
    )
    async def release_hardblock(self, info: Info, id: strawberry.ID) -> ReleaseHardblockResult:
        return Hardblock.from_row(await hardblocks.release_hardblock(info.context.services, info.context.caller,
                                                                     _block_pk(id), id))

    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="Release the unsold rooms of some nights to the pool (bookings stay). Nights already "
        "released are left as they are; only a new amendment, which checks the pool, re-grows a night.",
    )
    async def release_hardblock_nights(self, info: Info, id: strawberry.ID, dates: list[date]) -> ReleaseHardblockResult:
        block = await hardblocks.release_hardblock_nights(info.context.services, info.context.caller, _block_pk(id),
                                                          dates, id)
        return Hardblock.from_row(block)

    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="Release several blocks: one result per id, in order, each block all or nothing.",
    )
    async def bulk_release_hardblocks(
        self, info: Info, ids: list[strawberry.ID],
        idempotency_key: Annotated[str | None, strawberry.argument(description=IDEMPOTENCY_KEY)] = None,
    ) -> list[ReleaseHardblockResult]:
        return _bulk_results(await hardblocks.bulk_release_hardblocks(info.context.services, info.context.caller,
                                                                      _bulk_ids(ids), idempotency_key))

    @strawberry.mutation(
        permission_classes=STAFF,
        description="Extend several blocks by `nights` nights after their last night, at the size of that "
        "night: one result per id, in order, each block all or nothing (growth needs the pool). Staff only.",
    )
    async def bulk_extend_hardblocks(
        self, info: Info, ids: list[strawberry.ID], nights: int,
        idempotency_key: Annotated[str | None, strawberry.argument(description=IDEMPOTENCY_KEY)] = None,
    ) -> list[AmendHardblockResult]:
        return _bulk_results(await hardblocks.bulk_extend_hardblocks(info.context.services, info.context.caller,
                                                                     _bulk_ids(ids), nights, idempotency_key))

    @strawberry.mutation(
        permission_classes=AUTHENTICATED,
        description="The diff grid an amendment would produce (before, after, delta and conflict per night), "
        "written nowhere.",
    )
    async def preview_hardblock_amendment(self, info: Info, input: HardblockAmendmentInput) -> HardblockAmendmentPreview:
        try:
            preview = await hardblocks.preview_hardblock_amendment(
                info.context.services, info.context.caller, _block_pk(input.hardblock_id), input.amendment(),
                input.hardblock_id)
        except Failure as failure:
            return HardblockAmendmentPreview(feasible=False, slots=[], error=as_user_error(failure))
        return HardblockAmendmentPreview(feasible=preview.feasible,
                                         slots=[HardblockSlotDiff.of(d) for d in preview.slots])


@strawberry.type
class HardblockQuery:
    @strawberry.field(permission_classes=AUTHENTICATED, description="Newest first; agents see their own "
                      "agency's blocks only.")
    async def hardblocks(
        self, info: Info, hotel_id: strawberry.ID | None = None, status: HardblockStatus | None = None,
        first: int | None = None, after: str | None = None,
    ) -> relay.Connection[Hardblock]:
        hotel_pk = None if hotel_id is None else filter_pk(hotel_id, "Hotel")
        page = await hardblocks.hardblocks(info.context.services, info.context.caller, hotel_pk, status, first, after)
        return connection(page, Hardblock.from_row)
