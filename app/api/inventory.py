"""Availability: `Hotel.calendar`, and the allotment events that change it."""

from __future__ import annotations

import enum
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Annotated, Any

import strawberry
from aiodataloader import DataLoader
from sqlalchemy import select, text
from strawberry import relay
from strawberry.exceptions import StrawberryGraphQLError

from app.api.bookings import Booking
from app.api.catalog import check_nights, parse_money
from app.api.errors import InvalidInput, InvalidInputError, InvalidTransitionError, InvalidTransition, NotFound, NotFoundError
from app.api.hardblocks import Hardblock, HardblockSlot
from app.api.ids import decode_id
from app.api.permissions import STAFF, Info
from app.api.types import Money, MoneyInput, RoomType, Series, load_room_type, node_pk
from app.context import Context
from app.publish import publish_inventory_change
from db import audit, models
from db.calendar import InventorySnapshot, load_inventory
from db.engine import transaction
from db.inventory import bump_version, lock_room_types
from domain import CalendarRow as PoolRow
from domain import EventKind, compute_hardblock_slots, nights
from domain import InvalidInput as DomainInvalidInput
from domain import Money as DomainMoney
from domain import check_event

log = logging.getLogger(__name__)

MAX_CALENDAR_NIGHTS = 2 * 366


# --- the per-request inventory cache behind the cell loaders ------------------------------------


@dataclass
class LoadedInventory:
    """One snapshot read for a calendar, indexed lazily for the cells' nested fields."""

    snapshot: InventorySnapshot
    rows: dict[int, PoolRow]
    start: date
    end: date
    now: datetime
    _bookings: dict[tuple[int, date], list[models.Booking]] | None = None
    _slots: dict[tuple[int, date], list[HardblockSlot]] | None = None

    def covers(self, room_type_id: int, night: date) -> bool:
        return room_type_id in self.rows and self.start <= night < self.end

    def bookings(self, key: tuple[int, date]) -> list[models.Booking]:
        if self._bookings is None:
            index: dict[tuple[int, date], list[models.Booking]] = defaultdict(list)
            for row, line in zip(self.snapshot.bookings, self.snapshot.booking_lines, strict=True):
                if line.counts(self.now):
                    for night in nights(max(row.check_in, self.start), min(row.check_out, self.end)):
                        index[(row.room_type_id, night)].append(row)
            self._bookings = index
        return self._bookings.get(key, [])

    def slots(self, key: tuple[int, date]) -> list[HardblockSlot]:
        if self._slots is None:
            index: dict[tuple[int, date], list[HardblockSlot]] = defaultdict(list)
            snapshot = self.snapshot
            for block, terms in zip(snapshot.hardblocks, snapshot.hardblock_terms):
                first, last = max(block.start_date, self.start), min(block.end_date, self.end)
                if first >= last:
                    continue
                row = self.rows[block.room_type_id]
                for slot in compute_hardblock_slots(terms, snapshot.events, snapshot.booking_lines, first, last, self.now):
                    rate = row.rate[row.index(slot.date)]
                    index[(block.room_type_id, slot.date)].append(HardblockSlot(
                        date=slot.date, size=slot.size, booked=slot.booked, available=slot.available,
                        released=slot.released, release_at=slot.release_at,
                        rate=Money.of(rate.amount, rate.currency) if rate else None,
                        hardblock_id=block.id, agency_id=block.agency_id,
                        booking_rows=tuple(b for b in self.bookings((block.room_type_id, slot.date))
                                           if b.hardblock_id == block.id),
                    ))
            self._slots = index
        return self._slots.get(key, [])


@dataclass
class InventoryCache:
    loaded: list[LoadedInventory] = field(default_factory=list)

    def find(self, key: tuple[int, date]) -> LoadedInventory | None:
        return next((inv for inv in self.loaded if inv.covers(*key)), None)


def inventory_cache(context: Context) -> InventoryCache:
    cache = getattr(context, "_inventory_cache", None)
    if cache is None:
        cache = InventoryCache()
        context._inventory_cache = cache  # type: ignore[attr-defined]
    return cache


async def read_calendar(
    context: Context, hotel_id: int, start: date, end: date, room_type_ids: list[int] | None
) -> LoadedInventory:
    """One consistent snapshot (REPEATABLE READ), so `version` matches the numbers exactly."""
    loaded = await load_calendar(context.sessions, hotel_id, start, end, room_type_ids)
    inventory_cache(context).loaded.append(loaded)
    return loaded


async def load_calendar(
    sessions: Any, hotel_id: int, start: date, end: date, room_type_ids: list[int] | None
) -> LoadedInventory:
    async with transaction(sessions) as session:
        await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        snapshot = await load_inventory(session, hotel_id, start, end, room_type_ids)
    now = models.utcnow()
    return LoadedInventory(snapshot, snapshot.calendar(start, end, now), start, end, now)


def cell_loaders(context: Context) -> tuple[DataLoader, DataLoader]:
    """Per-request loaders for cells' bookings and hardblock slots, keyed by (room type, night).

    Cells of a calendar are answered from the snapshot the calendar already read (no query);
    any other key loads the missing room types' inventory in one snapshot per hotel.
    """
    loaders = getattr(context, "_cell_loaders", None)
    if loaders is not None:
        return loaders
    cache = inventory_cache(context)

    async def ensure(keys: list[tuple[int, date]]) -> list[LoadedInventory]:
        missing = [key for key in keys if cache.find(key) is None]
        if missing:
            room_types = await context.loaders.room_type.load_many(sorted({rt for rt, _ in missing}))
            by_hotel: dict[int, list[int]] = defaultdict(list)
            for room_type in room_types:
                if room_type is not None:
                    by_hotel[room_type.hotel_id].append(room_type.id)
            start = min(night for _, night in missing)
            end = max(night for _, night in missing) + timedelta(days=1)
            for hotel_id, ids in by_hotel.items():
                await read_calendar(context, hotel_id, start, end, ids)
        return [cache.find(key) for key in keys]  # type: ignore[misc]

    async def batch_bookings(keys: list[tuple[int, date]]) -> list[list[models.Booking]]:
        return [inv.bookings(key) if inv else [] for inv, key in zip(await ensure(keys), keys)]

    async def batch_slots(keys: list[tuple[int, date]]) -> list[list[HardblockSlot]]:
        return [inv.slots(key) if inv else [] for inv, key in zip(await ensure(keys), keys)]

    loaders = (DataLoader(batch_bookings), DataLoader(batch_slots))
    context._cell_loaders = loaders  # type: ignore[attr-defined]
    return loaders


# --- calendar types ------------------------------------------------------------------------------


@strawberry.type(description="Pool availability of one room type on one night.")
class CalendarCell:
    date: date
    room_type: RoomType
    allotment: int
    hardblocked: int
    held: int
    sold: int
    available: int
    overcommitted: int
    closed: bool
    release_date: date | None = strawberry.field(
        description="From this date on the pool night is no longer sold (contract release cut-off)."
    )
    rate: Money | None

    @strawberry.field(description="Bookings holding rooms on this night (agents: their own agency's only).")
    async def bookings(self, info: Info) -> list[Booking]:
        rows = await cell_loaders(info.context)[0].load((self.room_type.id, self.date))
        return [Booking.from_row(row) for row in rows if await info.context.may_see(row.agency_id)]

    @strawberry.field(description="Hardblock slots on this night (agents: their own agency's only).")
    async def hardblocks(self, info: Info) -> list[HardblockSlot]:
        slots = await cell_loaders(info.context)[1].load((self.room_type.id, self.date))
        return [slot for slot in slots if await info.context.may_see(slot.agency_id)]


@strawberry.type(description="A row's numbers as parallel arrays, one entry per night: the compact "
                 "shape for grids of thousands of cells.")
class CalendarSeries:
    dates: Series = strawberry.field(description="ISO dates.")
    allotment: Series
    hardblocked: Series
    held: Series
    sold: Series
    available: Series
    overcommitted: Series
    closed: Series = strawberry.field(description="Booleans.")
    release_date: Series = strawberry.field(description="ISO dates or null.")
    rate: Series = strawberry.field(description="Decimal amounts as strings (or null); see `currency`.")
    currency: str | None


def row_cells(room_type: RoomType, row: PoolRow) -> list[CalendarCell]:
    # One Money per distinct rate, not per cell: rates repeat over whole seasons.
    money = {rate: Money.of(rate.amount, rate.currency) for rate in set(row.rate) if rate is not None}
    return [
        CalendarCell(
            date=row.dates[i], room_type=room_type, allotment=row.allotment[i],
            hardblocked=row.hardblocked[i], held=row.held[i], sold=row.sold[i], available=row.available[i],
            overcommitted=row.overcommitted[i], closed=row.closed[i], release_date=row.release_date[i],
            rate=money.get(row.rate[i]),
        )
        for i in range(len(row.dates))
    ]


@strawberry.type
class CalendarRow:
    room_type: RoomType
    _row: strawberry.Private[PoolRow]

    @strawberry.field
    def cells(self) -> list[CalendarCell]:
        return row_cells(self.room_type, self._row)

    @strawberry.field
    def series(self) -> CalendarSeries:
        row = self._row
        currency = next((rate.currency for rate in row.rate if rate is not None), None)
        return CalendarSeries(
            dates=[day.isoformat() for day in row.dates], allotment=list(row.allotment),
            hardblocked=list(row.hardblocked), held=list(row.held), sold=list(row.sold),
            available=list(row.available), overcommitted=list(row.overcommitted), closed=list(row.closed),
            release_date=[day.isoformat() if day else None for day in row.release_date],
            rate=[f"{rate.amount:.2f}" if rate else None for rate in row.rate], currency=currency,
        )


@strawberry.type
class Calendar:
    version: int = strawberry.field(description="The hotel's inventory version these numbers are at.")
    rows: list[CalendarRow]


async def hotel_calendar(
    info: Info, hotel_id: int, start: date, end: date, room_type_ids: list[strawberry.ID] | None
) -> Calendar:
    if start >= end:
        raise _bad_input(f"to ({end}) must be after from ({start}): ranges are [from, to) over nights")
    if (end - start).days > MAX_CALENDAR_NIGHTS:
        raise _bad_input(f"a calendar spans at most {MAX_CALENDAR_NIGHTS} nights")
    try:
        ids = None if room_type_ids is None else [decode_id(i, "RoomType", "roomTypeIds") for i in room_type_ids]
    except InvalidInputError as error:
        raise _bad_input(error.message) from None
    loaded = await read_calendar(info.context, hotel_id, start, end, ids)
    room_types = {rt.id: RoomType.from_row(rt) for rt in loaded.snapshot.room_types}
    if ids is not None and set(ids) - set(room_types):
        raise _bad_input("roomTypeIds must be room types of this hotel")
    return Calendar(
        version=loaded.snapshot.version,
        rows=[CalendarRow(room_type=room_types[rt.id], _row=loaded.rows[rt.id]) for rt in loaded.snapshot.room_types],
    )


def _bad_input(message: str) -> StrawberryGraphQLError:
    return StrawberryGraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


# --- allotment events ----------------------------------------------------------------------------


@strawberry.enum
class AllotmentEventKind(enum.Enum):
    INCREASE_ALLOTMENT = "INCREASE_ALLOTMENT"
    REDUCE_ALLOTMENT = "REDUCE_ALLOTMENT"
    BLOCK_CONTRACT = "BLOCK_CONTRACT"
    BLOCK_AMENDMENT = "BLOCK_AMENDMENT"
    RATE_CHANGE = "RATE_CHANGE"


@strawberry.type
class AllotmentEvent(relay.Node):
    id: relay.NodeID[int]
    kind: AllotmentEventKind
    from_: date = strawberry.field(name="from")
    to: date
    quantity: int | None
    rate: Money | None
    effective_at: datetime
    created_at: datetime
    created_by: str
    voided: bool
    voided_at: datetime | None
    voided_by: str | None
    row: strawberry.Private[models.AllotmentEvent]

    @staticmethod
    def from_row(row: models.AllotmentEvent) -> AllotmentEvent:
        return AllotmentEvent(
            id=row.id, kind=AllotmentEventKind(row.kind), from_=row.start_date, to=row.end_date,
            quantity=row.quantity,
            rate=Money.of(row.rate_amount, row.currency) if row.rate_amount is not None else None,
            effective_at=row.effective_at, created_at=row.created_at, created_by=row.created_by,
            voided=row.voided_at is not None, voided_at=row.voided_at, voided_by=row.voided_by, row=row,
        )

    @strawberry.field
    async def room_type(self, info: Info) -> RoomType:
        return await load_room_type(info, self.row.room_type_id)

    @strawberry.field
    async def hardblock(self, info: Info) -> Hardblock | None:
        if self.row.hardblock_id is None:
            return None
        return Hardblock.from_row(await info.context.loaders.hardblock.load(self.row.hardblock_id))

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: list[str], required: bool = False) -> list[Any]:
        principal = info.context.principal
        if principal is None or not principal.is_staff:  # the supplier's log: staff only
            return [None for _ in node_ids]
        pks = [pk for pk in map(node_pk, node_ids) if pk is not None]
        async with info.context.sessions() as session:
            rows = await session.execute(select(models.AllotmentEvent).where(models.AllotmentEvent.id.in_(pks)))
            found = {str(row.id): cls.from_row(row) for row in rows.scalars()}
        return [found.get(str(i)) for i in node_ids]


@strawberry.input
class AllotmentEventInput:
    kind: AllotmentEventKind
    room_type_id: strawberry.ID
    from_: date = strawberry.field(name="from")
    to: date
    quantity: int | None = strawberry.field(
        default=None, description="Rooms per night for INCREASE/REDUCE_ALLOTMENT; the new size for BLOCK_AMENDMENT."
    )
    rate: MoneyInput | None = strawberry.field(default=None, description="The new rate, for RATE_CHANGE.")
    hardblock_id: strawberry.ID | None = None


RecordAllotmentEventResult = Annotated[
    AllotmentEvent | InvalidInput | NotFound, strawberry.union("RecordAllotmentEventResult")
]
VoidAllotmentEventResult = Annotated[
    AllotmentEvent | InvalidTransition | NotFound, strawberry.union("VoidAllotmentEventResult")
]


@strawberry.type
class InventoryMutation:
    @strawberry.mutation(
        permission_classes=STAFF,
        description="Append an allotment event from the supplier. BLOCK_AMENDMENT events are written by "
        "amendHardblock, which checks the pool and the block's bookings.",
    )
    async def record_allotment_event(self, info: Info, input: AllotmentEventInput) -> RecordAllotmentEventResult:
        kind = EventKind(input.kind.value)
        if kind is EventKind.BLOCK_AMENDMENT:
            raise InvalidInputError("kind", "BLOCK_AMENDMENT events are recorded through amendHardblock, "
                                            "which checks pool availability and the block's bookings")
        room_type_id = decode_id(input.room_type_id, "RoomType", "roomTypeId")
        if input.hardblock_id is not None:
            raise InvalidInputError("hardblockId", f"hardblockId is not used by {kind.value}")
        rate = None
        if input.rate is not None:
            amount, currency = parse_money(input.rate, "rate")
            rate = DomainMoney(amount, currency)
        check_nights(input.from_, input.to)
        if problem := check_event(kind, input.from_, input.to, input.quantity, rate, None):
            raise _api_input_error(problem)
        context = info.context

        async with transaction(context.sessions) as session:
            room_type = await session.get(models.RoomType, room_type_id)
            if room_type is None:
                raise NotFoundError("no room type with that id", input.room_type_id)
            await lock_room_types(session, [room_type_id], context.settings.lock_timeout_ms)
            event = models.AllotmentEvent(
                hotel_id=room_type.hotel_id, room_type_id=room_type_id, kind=kind.value,
                start_date=input.from_, end_date=input.to, quantity=input.quantity,
                rate_amount=rate.amount if rate else None, currency=rate.currency if rate else None,
                created_by=context.actor.uid,
            )
            session.add(event)
            await session.flush()
            audit.record(session, context.actor, "allotment_event.recorded", "AllotmentEvent", event.id,
                         after=_event_snapshot(event))
            version = await bump_version(session, room_type.hotel_id)
        await publish_inventory_change(context, room_type.hotel_id, version, [room_type_id], input.from_, input.to)
        return AllotmentEvent.from_row(event)

    @strawberry.mutation(permission_classes=STAFF, description="Void (revert) an event: it is then ignored, "
                         "exactly as if it had never been recorded.")
    async def void_allotment_event(self, info: Info, id: strawberry.ID) -> VoidAllotmentEventResult:
        try:
            pk = decode_id(id, "AllotmentEvent", "id")
        except InvalidInputError:
            raise NotFoundError("no allotment event with that id", id) from None
        context = info.context
        async with transaction(context.sessions) as session:
            event = await session.get(models.AllotmentEvent, pk)
            if event is None:
                raise NotFoundError("no allotment event with that id", id)
            if event.kind == EventKind.BLOCK_AMENDMENT.value:
                # Voiding one event of an amendment would resize the block unchecked.
                raise InvalidTransitionError("BLOCK_AMENDMENT events are reverted a whole amendment at a time "
                                             "with revertHardblockAmendment, which checks the pool and the "
                                             "block's bookings", status="BLOCK_AMENDMENT")
            await lock_room_types(session, [event.room_type_id], context.settings.lock_timeout_ms)
            await session.refresh(event, with_for_update=True)  # a concurrent void may have won
            if event.voided_at is not None:
                raise InvalidTransitionError(f"the event was already voided at {event.voided_at.isoformat()}",
                                             status="VOIDED")
            before = _event_snapshot(event)
            event.voided_at, event.voided_by = models.utcnow(), context.actor.uid
            await session.flush()
            audit.record(session, context.actor, "allotment_event.voided", "AllotmentEvent", event.id,
                         before=before, after=_event_snapshot(event))
            version = await bump_version(session, event.hotel_id)
        await publish_inventory_change(context, event.hotel_id, version, [event.room_type_id],
                                       event.start_date, event.end_date)
        return AllotmentEvent.from_row(event)


def _event_snapshot(event: models.AllotmentEvent) -> dict[str, Any]:
    return audit.snapshot(event, "kind", "room_type_id", "start_date", "end_date", "quantity", "rate_amount",
                          "currency", "hardblock_id", "voided_at", "voided_by")


def _api_input_error(problem: DomainInvalidInput) -> InvalidInputError:
    return InvalidInputError(problem.field, f"{problem.field} {problem.message}")
