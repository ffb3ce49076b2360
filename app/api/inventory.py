"""Availability: `Hotel.calendar`, and the allotment events that change it."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from aiodataloader import DataLoader
from strawberry import relay
from strawberry.types.nodes import SelectedField

from app.api.bookings import Booking
from app.api.catalog import Agency, RoomType, load_agency, load_room_type
from app.api.context import Context
from app.api.errors import IdempotencyConflict, InvalidInput, InvalidTransition, LockTimeout, NotFound
from app.api.hardblocks import IDEMPOTENCY_KEY, Hardblock, HardblockSlot
from app.api.ids import decode_id, filter_pk, target_pk
from app.api.permissions import STAFF, Info
from app.api.types import (
    AllotmentEventKind,
    LoadedNode,
    bad_input,
    Money,
    MoneyInput,
    Series,
    check_room_type_ids,
    related,
    staff_only,
)
from app.services import inventory
from app.services.errors import InvalidInput as InvalidInputFailure
from app.services.reads import LoadedInventory, load_calendar
from domain import CalendarRow as PoolRow
from domain import RestrictionPatch, RestrictionRow, format_amount
from domain import UnavailableReason as DomainReason
from domain import Restrictions as DomainRestrictions
from domain import Money as DomainMoney

if TYPE_CHECKING:
    from db.models import AllotmentEvent as AllotmentEventRow
    from db.models import Booking as BookingRow
else:
    AllotmentEventRow = BookingRow = Any

log = logging.getLogger(__name__)

MAX_CALENDAR_NIGHTS = 2 * 366


# --- the per-request inventory cache behind the cell loaders ------------------------------------


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


def selects(selections: list[Any], name: str) -> bool:
    """Whether a field called `name` is selected anywhere below (through fragments, whatever their
    directives: reading too much is only slower, never wrong)."""
    return any((isinstance(s, SelectedField) and s.name == name) or selects(s.selections, name) for s in selections)


async def read_calendar(
    context: Context, hotel_id: int, start: date, end: date, room_type_ids: list[int] | None, *,
    booking_rows: bool = True,
) -> LoadedInventory:
    loaded = await load_calendar(context.sessions, hotel_id, start, end, room_type_ids, booking_rows=booking_rows)
    inventory_cache(context).loaded.append(loaded)
    return loaded


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

    async def batch_bookings(keys: list[tuple[int, date]]) -> list[list[BookingRow]]:
        return [inv.bookings(key) if inv else [] for inv, key in zip(await ensure(keys), keys)]

    async def batch_slots(keys: list[tuple[int, date]]) -> list[list[HardblockSlot]]:
        buyer = await context.buyer()
        return [[HardblockSlot.of(view, inv.rate_on(*key, buyer)) for view in inv.slots(key)] if inv else []
                for inv, key in zip(await ensure(keys), keys)]

    loaders = (DataLoader(batch_bookings), DataLoader(batch_slots))
    context._cell_loaders = loaders  # type: ignore[attr-defined]
    return loaders


# --- calendar types ------------------------------------------------------------------------------


# The wholesaler's own position (what it bought, what other agencies hold): staff only. Agents
# read null in these fields of cells, series and availability changes.
_STAFF_ONLY = "Staff only: null for agents."


@strawberry.type(description="The selling restrictions in force on a night (for the caller's agency; staff: "
                 "the ones binding every agency). Null numbers: no limit.")
class Restrictions:
    min_stay: int | None = strawberry.field(description="Stays arriving this night need at least this many nights.")
    max_stay: int | None = strawberry.field(description="Stays arriving this night last at most this many nights.")
    closed_to_arrival: bool = strawberry.field(description="No stay may arrive this night.")
    closed_to_departure: bool = strawberry.field(description="No stay may depart on this date.")
    min_advance_days: int | None = strawberry.field(
        description="Stays arriving this night must be booked at least this many days ahead (the hotel's today).")
    max_advance_days: int | None = strawberry.field(
        description="Stays arriving this night may be booked at most this many days ahead (the hotel's today).")

    @staticmethod
    def of(value: DomainRestrictions) -> Restrictions:
        return Restrictions(
            min_stay=value.min_stay, max_stay=value.max_stay, closed_to_arrival=value.closed_to_arrival,
            closed_to_departure=value.closed_to_departure, min_advance_days=value.min_advance_days,
            max_advance_days=value.max_advance_days,
        )


UnavailableReason = strawberry.enum(DomainReason, name="UnavailableReason", description=(
    "Why a night cannot be sold (SOLD_OUT, CLOSED, RELEASED, NO_CONTRACT, PAST) or arrived on "
    "(CLOSED_TO_ARRIVAL, ADVANCE_WINDOW, for the caller's agency)."))


@strawberry.type(description="Pool availability of one room type on one night.")
class CalendarCell:
    date: date
    room_type: RoomType
    allotment: int | None = strawberry.field(description=f"Contract rooms plus allotment events. {_STAFF_ONLY}")
    hardblocked: int | None = strawberry.field(description=f"Rooms in hardblocks of any agency. {_STAFF_ONLY}")
    held: int | None = strawberry.field(description=f"Rooms of unexpired holds. {_STAFF_ONLY}")
    sold: int | None = strawberry.field(description=f"Rooms of confirmed bookings. {_STAFF_ONLY}")
    available: int
    overcommitted: int | None = strawberry.field(
        description=f"How far commitments exceed the allotment (0 when they fit). {_STAFF_ONLY}")
    closed: bool
    release_date: date | None = strawberry.field(
        description="From this date on the pool night is no longer sold (contract release cut-off)."
    )
    release_at: datetime | None = strawberry.field(
        description="The exact instant of the cut-off: the hotel-local midnight beginning releaseDate, in UTC."
    )
    rate: Money | None
    restrictions: Restrictions = strawberry.field(
        description="The restrictions in force on this night for the caller's agency (staff: those binding every agency).")
    reasons: list[UnavailableReason] = strawberry.field(
        description="Why this night cannot be sold or arrived on (empty: it can); minStay, maxStay and "
        "closedToDeparture depend on the stay and are judged by createBooking.")

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
    allotment: Series | None = strawberry.field(description=_STAFF_ONLY)
    hardblocked: Series | None = strawberry.field(description=_STAFF_ONLY)
    held: Series | None = strawberry.field(description=_STAFF_ONLY)
    sold: Series | None = strawberry.field(description=_STAFF_ONLY)
    available: Series
    overcommitted: Series | None = strawberry.field(description=_STAFF_ONLY)
    closed: Series = strawberry.field(description="Booleans.")
    release_date: Series = strawberry.field(description="ISO dates or null.")
    release_at: Series = strawberry.field(description="ISO timestamps (UTC) or null: the cut-off instants.")
    rate: Series = strawberry.field(description="Decimal amounts as strings (or null); see `currency`.")
    currency: str | None
    min_stay: Series = strawberry.field(description="Restrictions (as in cells): integers or null.")
    max_stay: Series = strawberry.field(description="Integers or null.")
    closed_to_arrival: Series = strawberry.field(description="Booleans.")
    closed_to_departure: Series = strawberry.field(description="Booleans.")
    min_advance_days: Series = strawberry.field(description="Integers or null.")
    max_advance_days: Series = strawberry.field(description="Integers or null.")
    reasons: Series = strawberry.field(description="Per night, a list of UnavailableReason names (empty: it "
                                       "can be sold and arrived on).")


def restriction_series(restrictions: RestrictionRow, start: date, n: int) -> dict[str, list]:
    """The restriction fields of CalendarSeries for the `n` nights from `start`."""
    offset = (start - restrictions.start).days
    nights = restrictions.nights[offset:offset + n]
    return {
        "min_stay": [r.min_stay for r in nights], "max_stay": [r.max_stay for r in nights],
        "closed_to_arrival": [r.closed_to_arrival for r in nights],
        "closed_to_departure": [r.closed_to_departure for r in nights],
        "min_advance_days": [r.min_advance_days for r in nights], "max_advance_days": [r.max_advance_days for r in nights],
    }


def row_cells(room_type: RoomType, row: PoolRow, staff: bool, restrictions: RestrictionRow,
              reasons: tuple[tuple[DomainReason, ...], ...], rates: tuple[DomainMoney | None, ...]
              ) -> list[CalendarCell]:
    """`rates`: per night, the rate the caller sees (LoadedInventory.rates)."""
    # One Money per distinct rate, not per cell: rates repeat over whole seasons (so restrictions).
    money = {rate: Money.of(rate.amount, rate.currency) for rate in set(rates) if rate is not None}
    offset = (row.start - restrictions.start).days
    nights = restrictions.nights[offset:offset + len(row.dates)]
    shown = {value: Restrictions.of(value) for value in set(nights)}
    # Cells are built by filling their __dict__ (what the dataclass __init__ does field by field, at
    # twice the cost): a year of fifty room types is 18,250 of them.
    new, cells = CalendarCell.__new__, []
    for i in range(len(row.dates)):
        cell = new(CalendarCell)
        cell.__dict__ = {
            "date": row.dates[i], "room_type": room_type, "available": row.available[i], "closed": row.closed[i],
            "release_date": row.release_date[i], "release_at": row.release_at[i], "rate": money.get(rates[i]),
            "allotment": row.allotment[i] if staff else None, "hardblocked": row.hardblocked[i] if staff else None,
            "held": row.held[i] if staff else None, "sold": row.sold[i] if staff else None,
            "overcommitted": row.overcommitted[i] if staff else None,
            "restrictions": shown[nights[i]], "reasons": list(reasons[i]),
        }
        cells.append(cell)
    return cells


@strawberry.type
class CalendarRow:
    room_type: RoomType
    _row: strawberry.Private[PoolRow]
    _staff: strawberry.Private[bool]
    _restrictions: strawberry.Private[RestrictionRow]
    _reasons: strawberry.Private[tuple[tuple[DomainReason, ...], ...]]
    _rates: strawberry.Private[tuple[DomainMoney | None, ...]]

    @strawberry.field
    def cells(self) -> list[CalendarCell]:
        return row_cells(self.room_type, self._row, self._staff, self._restrictions, self._reasons, self._rates)

    @strawberry.field
    def series(self) -> CalendarSeries:
        row = self._row
        currency = next((rate.currency for rate in self._rates if rate is not None), None)

        def staff_only(values: tuple) -> list | None:
            return list(values) if self._staff else None

        return CalendarSeries(
            dates=[day.isoformat() for day in row.dates], allotment=staff_only(row.allotment),
            hardblocked=staff_only(row.hardblocked), held=staff_only(row.held), sold=staff_only(row.sold),
            available=list(row.available), overcommitted=staff_only(row.overcommitted), closed=list(row.closed),
            release_date=[day.isoformat() if day else None for day in row.release_date],
            release_at=[at.isoformat() if at else None for at in row.release_at],
            rate=[format_amount(rate.amount, rate.currency) if rate else None for rate in self._rates], currency=currency,
            **restriction_series(self._restrictions, row.start, len(row.dates)),
            reasons=[[reason.value for reason in night] for night in self._reasons],
        )


@strawberry.type
class Calendar:
    version: int = strawberry.field(description="The hotel's inventory version these numbers are at.")
    rows: list[CalendarRow]

    @classmethod
    async def read(cls, info: Info, hotel_id: int, start: date, end: date,
                   room_type_ids: list[strawberry.ID] | None) -> Calendar:
        """`Hotel.calendar`: one consistent snapshot of the hotel's pool over [start, end)."""
        if start >= end:
            raise bad_input(f"to ({end}) must be after from ({start}): ranges are [from, to) over nights")
        if (end - start).days > MAX_CALENDAR_NIGHTS:
            raise bad_input(f"a calendar spans at most {MAX_CALENDAR_NIGHTS} nights")
        check_room_type_ids(room_type_ids)
        try:
            ids = None if room_type_ids is None else [decode_id(i, "RoomType", "roomTypeIds") for i in room_type_ids]
        except InvalidInputFailure as error:
            raise bad_input(error.message) from None
        # Bookings as rows only when some cell shows them: the numbers read them summed per stay.
        loaded = await read_calendar(info.context, hotel_id, start, end, ids,
                                     booking_rows=selects(info.selected_fields, "bookings"))
        room_types = {rt.id: RoomType.from_row(rt) for rt in loaded.snapshot.room_types}
        if ids is not None and set(ids) - set(room_types):
            raise bad_input("roomTypeIds must be room types of this hotel")
        staff = info.context.caller.is_staff
        buyer = await info.context.buyer()
        restrictions = loaded.restrictions(None if buyer is None else buyer.agency_id)
        reasons = loaded.reasons(restrictions)
        return cls(
            version=loaded.snapshot.version,
            rows=[CalendarRow(room_type=room_types[rt.id], _row=loaded.rows[rt.id], _staff=staff,
                              _restrictions=restrictions[rt.id], _reasons=reasons[rt.id],
                              _rates=loaded.rates(rt.id, buyer))
                  for rt in loaded.snapshot.room_types],
        )




# --- allotment events ----------------------------------------------------------------------------


@strawberry.type
class AllotmentEvent(LoadedNode, relay.Node):
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
    restrictions: Restrictions | None = strawberry.field(
        description="RESTRICTION events: the fields they set (the others read as no limit / false).")
    row: strawberry.Private[AllotmentEventRow]

    loader = "allotment_event"
    visible = staff_only  # the supplier's log

    @staticmethod
    def from_row(row: AllotmentEventRow) -> AllotmentEvent:
        return AllotmentEvent(
            id=row.id, kind=AllotmentEventKind(row.kind), from_=row.start_date, to=row.end_date,
            quantity=row.quantity,
            rate=Money.of(row.rate_amount, row.currency) if row.rate_amount is not None else None,
            effective_at=row.effective_at, created_at=row.created_at, created_by=row.created_by,
            voided=row.voided_at is not None, voided_at=row.voided_at, voided_by=row.voided_by, row=row,
            restrictions=Restrictions.of(DomainRestrictions(
                min_stay=row.min_stay, max_stay=row.max_stay, closed_to_arrival=bool(row.closed_to_arrival),
                closed_to_departure=bool(row.closed_to_departure), min_advance_days=row.min_advance_days,
                max_advance_days=row.max_advance_days,
            )) if row.kind == AllotmentEventKind.RESTRICTION.value else None,
        )

    @strawberry.field(description="RESTRICTION events: the agencies they bind (empty: every agency).")
    async def agencies(self, info: Info) -> list[Agency]:
        return [await load_agency(info, pk) for pk in (self.row.agency_ids or [])]

    @strawberry.field
    async def room_type(self, info: Info) -> RoomType:
        return await load_room_type(info, self.row.room_type_id)

    @strawberry.field
    async def hardblock(self, info: Info) -> Hardblock | None:
        return await related(info, "Hardblock", self.row.hardblock_id)


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
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_KEY)


@strawberry.input(description="Selling restrictions over [from, to): each field given is set on those nights "
                  "(later events win, field by field); omitted fields stay as earlier events set them.")
class SetRestrictionsInput:
    room_type_id: strawberry.ID
    from_: date = strawberry.field(name="from")
    to: date
    agency_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="The agencies bound; omitted or empty: every agency.")
    min_stay: int | None = None
    max_stay: int | None = None
    closed_to_arrival: bool | None = None
    closed_to_departure: bool | None = None
    min_advance_days: int | None = None
    max_advance_days: int | None = None
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_KEY)


RecordAllotmentEventResult = Annotated[
    AllotmentEvent | InvalidInput | NotFound | IdempotencyConflict | LockTimeout,
    strawberry.union("RecordAllotmentEventResult"),
]
VoidAllotmentEventResult = Annotated[
    AllotmentEvent | InvalidTransition | NotFound | LockTimeout, strawberry.union("VoidAllotmentEventResult")
]


@strawberry.type
class InventoryMutation:
    @strawberry.mutation(
        permission_classes=STAFF,
        description="Append an allotment event from the supplier. BLOCK_AMENDMENT events are written by "
        "amendHardblock, which checks the pool and the block's bookings.",
    )
    async def record_allotment_event(self, info: Info, input: AllotmentEventInput) -> RecordAllotmentEventResult:
        spec = inventory.EventSpec(
            kind=input.kind, room_type_id=decode_id(input.room_type_id, "RoomType", "roomTypeId"),
            start=input.from_, end=input.to, quantity=input.quantity,
            rate=None if input.rate is None else inventory.parse_money(input.rate.amount, input.rate.currency, "rate"),
            hardblock_id=None if input.hardblock_id is None else filter_pk(input.hardblock_id, "Hardblock"),
            idempotency_key=input.idempotency_key,
        )
        event = await inventory.record_allotment_event(info.context.services, info.context.caller, spec)
        return AllotmentEvent.from_row(event)

    @strawberry.mutation(
        permission_classes=STAFF,
        description="Set selling restrictions (minStay, maxStay, closedToArrival, closedToDeparture, the advance "
        "window) on a room type's nights, for some agencies or all: an allotment event of kind RESTRICTION, "
        "voided with voidAllotmentEvent.",
    )
    async def set_restrictions(self, info: Info, input: SetRestrictionsInput) -> RecordAllotmentEventResult:
        spec = inventory.RestrictionSpec(
            room_type_id=decode_id(input.room_type_id, "RoomType", "roomTypeId"), start=input.from_, end=input.to,
            restriction=RestrictionPatch(
                min_stay=input.min_stay, max_stay=input.max_stay, closed_to_arrival=input.closed_to_arrival,
                closed_to_departure=input.closed_to_departure, min_advance_days=input.min_advance_days,
                max_advance_days=input.max_advance_days,
            ),
            agency_ids=tuple(decode_id(pk, "Agency", "agencyIds") for pk in input.agency_ids or ()),
            idempotency_key=input.idempotency_key,
        )
        event = await inventory.set_restrictions(info.context.services, info.context.caller, spec)
        return AllotmentEvent.from_row(event)

    @strawberry.mutation(permission_classes=STAFF, description="Void (revert) an event: it is then ignored, "
                         "exactly as if it had never been recorded.")
    async def void_allotment_event(self, info: Info, id: strawberry.ID) -> VoidAllotmentEventResult:
        event = await inventory.void_allotment_event(info.context.services, info.context.caller,
                                                     target_pk(id, "AllotmentEvent"), id)
        return AllotmentEvent.from_row(event)
