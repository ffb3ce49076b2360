"""Everything the pool budget of one hotel needs over a date range, in a fixed number of queries.

The rows are turned into `domain` values here so the API and the write paths (under the
advisory lock) feed the very same pipeline.
"""

from __future__ import annotations

import dataclasses
from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import asyncpg
from sqlalchemy import Integer, case, cast, func, select, text
from sqlalchemy.orm import defer
from sqlalchemy.ext.asyncio import AsyncSession

from db import models
from db.fastpath import Statement
from db.rateplans import PlanRef, plan_columns, plan_ref, plans_column
from domain import (
    AllotmentEvent,
    BookingLine,
    BookingStatus,
    CalendarRow,
    ContractTerms,
    EventKind,
    HardblockTerms,
    DEFAULT_TIME_ZONE,
    Money,
    RestrictionPatch,
    compute_calendar,
    hotel_today,
    effective_released_nights,
)

COUNTING_STATUSES = (BookingStatus.HELD.value, BookingStatus.CONFIRMED.value)


@dataclass
class InventorySnapshot:
    version: int
    room_types: list[models.RoomType]
    contracts: list[ContractTerms]
    events: list[AllotmentEvent]
    hardblocks: list[models.Hardblock]
    hardblock_terms: list[HardblockTerms]
    # The counting bookings as rows, parallel to booking_lines; None when read summed per stay
    # (load_inventory's default: the numbers need rooms per night, not who booked).
    bookings: list[models.Booking] | None
    booking_lines: list[BookingLine] = field(default_factory=list)
    # Manual night releases as recorded, per block: night -> released_at (hardblock_terms holds
    # the ones still standing after amendments; reverting an amendment recomputes from these).
    releases: dict[int, dict[date, datetime]] = field(default_factory=dict)
    time_zone: str = DEFAULT_TIME_ZONE  # the hotel's: its nights' cut-offs and "today"
    # The hotel's active rate plans, by code (what agents' sell prices are computed with).
    plans: tuple[PlanRef, ...] = ()

    def calendar(self, start: date, end: date, now: datetime) -> dict[int, CalendarRow]:
        return compute_calendar(
            self.contracts, self.events, self.hardblock_terms, self.booking_lines,
            [rt.id for rt in self.room_types], start, end, now, self.time_zone,
        )


def contract_terms(row: models.Contract) -> ContractTerms:
    return ContractTerms(
        id=row.id, room_type_id=row.room_type_id, start=row.start_date, end=row.end_date,
        allotment=row.allotment, rate=Money(row.rate_amount, row.currency),
        release_days=row.release_days, active=row.status == "ACTIVE",
    )


def event_terms(row: models.AllotmentEvent) -> AllotmentEvent:
    return AllotmentEvent(
        id=row.id, kind=EventKind(row.kind), room_type_id=row.room_type_id, start=row.start_date,
        end=row.end_date, effective_at=row.effective_at, quantity=row.quantity,
        rate=Money(row.rate_amount, row.currency) if row.rate_amount is not None else None,
        hardblock_id=row.hardblock_id, voided=row.voided_at is not None,
        restriction=RestrictionPatch(
            min_stay=row.min_stay, max_stay=row.max_stay, closed_to_arrival=row.closed_to_arrival,
            closed_to_departure=row.closed_to_departure, min_advance_days=row.min_advance_days,
            max_advance_days=row.max_advance_days,
        ) if row.kind == EventKind.RESTRICTION.value else None,
        agency_ids=frozenset(row.agency_ids or ()),
    )


def booking_line(row: models.Booking) -> BookingLine:
    return BookingLine(
        id=row.id, group_id=row.group_id, agency_id=row.agency_id, room_type_id=row.room_type_id,
        check_in=row.check_in, check_out=row.check_out, rooms=row.rooms,
        status=BookingStatus(row.status), expires_at=row.expires_at, hardblock_id=row.hardblock_id,
    )


def hardblock_terms(row: models.Hardblock, released_nights: frozenset[date], time_zone: str) -> HardblockTerms:
    """`time_zone`: the block's hotel's (its nights auto-release at the hotel-local midnight)."""
    return HardblockTerms(
        id=row.id, room_type_id=row.room_type_id, agency_id=row.agency_id, start=row.base_start_date or row.start_date,
        end=row.base_end_date or row.end_date, rooms=row.rooms, release_days=row.release_days, released_at=row.released_at,
        released_nights=released_nights, time_zone=time_zone,
    )


_VERSION_ZONE_AND_PLANS = text(
    "SELECT (SELECT version FROM inventory_version WHERE hotel_id = :hotel_id) AS version, "
    "(SELECT time_zone FROM hotel WHERE id = :hotel_id) AS time_zone, "
    + plans_column(":hotel_id")
)


# A HELD booking's expiry is part of its stay's key, so that every booking summed into a line
# lapses at the line's own expires_at; a CONFIRMED one's (left from its hold) is not.
_HELD_EXPIRY = case((models.Booking.status == BookingStatus.HELD.value, models.Booking.expires_at))
_STAY_KEY = (models.Booking.room_type_id, models.Booking.hardblock_id, models.Booking.check_in,
             models.Booking.check_out, models.Booking.status, _HELD_EXPIRY)


async def load_inventory(
    session: AsyncSession,
    hotel_id: int,
    start: date,
    end: date,
    room_type_ids: Sequence[int] | None = None,
    *,
    booking_rows: bool = False,
) -> InventorySnapshot:
    """Seven statements whatever the range, the room types or the number of events.

    A hardblock's stored [start_date, end_date) always spans every night it holds (amendments
    that extend it widen it), so overlap on that span finds every block touching the range.

    Bookings come summed per stay (room type, block, nights, status and, for holds, expiry): a
    busy hotel-year holds hundreds of thousands of them and the numbers need rooms per night. With
    `booking_rows`, they come as rows instead (for a caller showing who booked), one line each.
    """
    room_type_query = select(models.RoomType).where(models.RoomType.hotel_id == hotel_id)
    if room_type_ids is not None:
        room_type_query = room_type_query.where(models.RoomType.id.in_(list(room_type_ids)))
    room_types = list((await session.execute(room_type_query.order_by(models.RoomType.code))).scalars())
    ids = [rt.id for rt in room_types]

    def overlapping(model, start_column, end_column):  # type: ignore[no-untyped-def]
        return select(model).where(model.room_type_id.in_(ids), start_column < end, end_column > start)

    contracts = (await session.execute(
        overlapping(models.Contract, models.Contract.start_date, models.Contract.end_date)
    )).scalars()
    events = (await session.execute(
        overlapping(models.AllotmentEvent, models.AllotmentEvent.start_date, models.AllotmentEvent.end_date)
        .where(models.AllotmentEvent.voided_at.is_(None))
    )).scalars()
    hardblocks = list((await session.execute(
        overlapping(models.Hardblock, models.Hardblock.start_date, models.Hardblock.end_date)
        .order_by(models.Hardblock.id)
    )).scalars())
    releases: dict[int, dict[date, datetime]] = {}
    rows = await session.execute(
        select(models.HardblockNightRelease.hardblock_id, models.HardblockNightRelease.night,
               models.HardblockNightRelease.released_at).where(
            models.HardblockNightRelease.hardblock_id.in_([b.id for b in hardblocks]),
            models.HardblockNightRelease.night >= start,
            models.HardblockNightRelease.night < end,
        )
    )
    for block_id, night, released_at in rows:
        releases.setdefault(block_id, {})[night] = released_at
    counting = (models.Booking.room_type_id.in_(ids), models.Booking.check_in < end, models.Booking.check_out > start,
                models.Booking.status.in_(COUNTING_STATUSES))
    bookings: list[models.Booking] | None = None
    if booking_rows:
        bookings = list((await session.execute(
            select(models.Booking).where(*counting).order_by(models.Booking.id)
            # The frozen price breakdown is not inventory: left in the database (Booking.nights
            # reads it when asked), so a busy year does not load every booking's JSON.
            .options(defer(models.Booking.nights))
        )).scalars())
        booking_lines = [booking_line(row) for row in bookings]
    else:
        booking_lines = [
            BookingLine(id=pk, group_id=0, agency_id=0, room_type_id=room_type_id, check_in=check_in,
                        check_out=check_out, rooms=rooms, status=BookingStatus(status), expires_at=expires_at,
                        hardblock_id=hardblock_id)
            for pk, room_type_id, hardblock_id, check_in, check_out, status, expires_at, rooms in await session.execute(
                select(func.min(models.Booking.id), *_STAY_KEY, cast(func.sum(models.Booking.rooms), Integer))
                .where(*counting).group_by(*_STAY_KEY).order_by(func.min(models.Booking.id)))
        ]
    event_list = [event_terms(row) for row in events]
    # The version, the hotel's zone and its plans in one statement (the count stays seven).
    version, time_zone, plans = (await session.execute(_VERSION_ZONE_AND_PLANS, {"hotel_id": hotel_id})).one()
    time_zone = time_zone or DEFAULT_TIME_ZONE
    return InventorySnapshot(
        version=int(version or 0),
        room_types=room_types,
        contracts=[contract_terms(row) for row in contracts],
        events=event_list,
        hardblocks=hardblocks,
        hardblock_terms=[
            hardblock_terms(b, effective_released_nights(b.id, releases.get(b.id, {}), event_list), time_zone)
            for b in hardblocks
        ],
        bookings=bookings,
        booking_lines=booking_lines,
        releases=releases,
        time_zone=time_zone,
        plans=tuple(plan_ref(p) for p in plans),  # type: ignore[misc]
    )


# --- the write path: one statement, domain values only -------------------------------------------


@dataclass(frozen=True, slots=True)
class StayInventory:
    """The domain inputs of some room types over [start, end), without ORM rows: what a write
    decides on under the advisory locks. Read in one statement (`load_stay_inventory`), so the
    critical section pays one round trip for it."""

    now: datetime  # the database's clock as of the read: the `now` to decide with
    version: int
    room_type_ids: list[int]
    contracts: list[ContractTerms]
    events: list[AllotmentEvent]
    hardblock_terms: list[HardblockTerms]
    booking_lines: list[BookingLine]
    # Manual night releases as recorded, per block (as InventorySnapshot.releases): reverting an
    # amendment recomputes the releases that stand from these.
    releases: dict[int, dict[date, datetime]] = field(default_factory=dict)
    time_zone: str = DEFAULT_TIME_ZONE  # the hotel's
    # Read only for a priced write (stay_inventory_columns' `agency`): the plan that agency buys
    # under and its tier.
    plan: PlanRef | None = None
    agency_tier: str | None = None

    def calendar(self, start: date, end: date, now: datetime) -> dict[int, CalendarRow]:
        return compute_calendar(
            self.contracts, self.events, self.hardblock_terms, self.booking_lines, self.room_type_ids, start, end, now,
            self.time_zone,
        )

    @property
    def today(self) -> date:
        """The hotel's local date as of the read."""
        return hotel_today(self.now, self.time_zone)


def row_record(model: Any, *skip: str) -> tuple[Any, str]:
    """A namedtuple with the table's columns (so the row converters above take it like an ORM
    row, and both loaders build the domain values alike) and the SQL ROW(...) of those columns."""
    names = [column.name for column in model.__table__.columns if column.name not in skip]
    return namedtuple(f"{model.__name__}Record", names), "ROW(" + ", ".join(f"x.{name}" for name in names) + ")"


def plain_row(record: Any, name: str) -> type:
    """A mutable, slotted class with the fields of a table's record type: what the asyncpg paths
    hand back instead of a SQLModel instance, whose instrumented __init__ costs more than the
    rest of building the answer."""
    return dataclasses.make_dataclass(name, [(column, Any, None) for column in record._fields], slots=True)


_ContractRecord, _CONTRACT_ROW = row_record(models.Contract, "search", "terms", "supplier_updated_at", "supplier_hash",
                                             "held_increases")  # not the inventory's: reconciliation's memory
_EventRecord, _EVENT_ROW = row_record(models.AllotmentEvent)
_HardblockRecord, _HARDBLOCK_ROW = row_record(models.Hardblock)


def _overlapping(table: str, start_column: str, end_column: str, start: str, end: str) -> str:
    return (f"FROM {table} AS x WHERE x.room_type_id = ANY(CAST(:ids AS integer[])) "
            f"AND x.{start_column} < {end} AND x.{end_column} > {start}")


# The same rows as load_inventory's queries, as arrays of anonymous records (asyncpg decodes them
# into typed tuples): a select list for one statement. `hotel`, `start` and `end` are the SQL of
# the hotel's id and of the range (a hardblock's reads widen it to the block's span, read in the
# same statement); `agency`, the SQL of an agency's id, adds the rate plan it buys under.
def stay_inventory_columns(hotel: str = ":hotel_id", start: str = ":start", end: str = ":end",
                           agency: str | None = None) -> str:
    def overlapping(table: str, start_column: str, end_column: str) -> str:
        return _overlapping(table, start_column, end_column, start, end)

    return (
        f"ARRAY(SELECT {_CONTRACT_ROW} {overlapping('contract', 'start_date', 'end_date')}) AS contracts, "
        f"ARRAY(SELECT {_EVENT_ROW} {overlapping('allotment_event', 'start_date', 'end_date')} "
        "  AND x.voided_at IS NULL) AS events, "
        f"ARRAY(SELECT {_HARDBLOCK_ROW} {overlapping('hardblock', 'start_date', 'end_date')} ORDER BY x.id) AS hardblocks, "
        "ARRAY(SELECT ROW(r.hardblock_id, r.night, r.released_at) FROM hardblock_night_release AS r "
        "  WHERE r.hardblock_id IN (SELECT x.id "
        + overlapping("hardblock", "start_date", "end_date") + f") AND r.night >= {start} AND r.night < {end}) AS releases, "
        # Bookings summed per stay and status: the decision needs rooms per night, not who booked,
        # and a hot room type holds thousands of one-room bookings. Lapsed holds drop out, as of the
        # database's clock (`now` below), which every app host shares.
        "ARRAY(SELECT ROW(min(x.id), x.room_type_id, x.hardblock_id, x.check_in, x.check_out, x.status, "
        "  max(x.expires_at), CAST(sum(x.rooms) AS integer)) "
        f"  {overlapping('booking', 'check_in', 'check_out')} "
        "  AND (x.status = 'CONFIRMED' OR (x.status = 'HELD' AND x.expires_at > statement_timestamp())) "
        "  GROUP BY x.room_type_id, x.hardblock_id, x.check_in, x.check_out, x.status ORDER BY 1) AS bookings, "
        f"(SELECT version FROM inventory_version WHERE hotel_id = {hotel}) AS version, "
        f"(SELECT time_zone FROM hotel WHERE id = {hotel}) AS time_zone, "
        + ("" if agency is None else plan_columns(hotel, agency) + ", ")
        + "statement_timestamp() AS now"
    )


_STAY_INVENTORY = Statement("SELECT " + stay_inventory_columns())


def stay_inventory(row: Any, room_type_ids: Sequence[int]) -> StayInventory:
    """The StayInventory of a row holding `stay_inventory_columns`."""
    releases: dict[int, dict[date, datetime]] = {}
    for block_id, night, released_at in row["releases"]:
        releases.setdefault(block_id, {})[night] = released_at
    events = [event_terms(_EventRecord(*e)) for e in row["events"]]
    hardblocks = [_HardblockRecord(*h) for h in row["hardblocks"]]
    time_zone = row["time_zone"] or DEFAULT_TIME_ZONE
    return StayInventory(
        now=row["now"],
        time_zone=time_zone,
        version=int(row["version"] or 0),
        room_type_ids=sorted(room_type_ids),
        contracts=[contract_terms(_ContractRecord(*c)) for c in row["contracts"]],
        events=events,
        hardblock_terms=[
            hardblock_terms(
                b, effective_released_nights(b.id, releases.get(b.id, {}), events), time_zone)  # type: ignore[arg-type]
            for b in hardblocks
        ],
        booking_lines=[
            BookingLine(id=pk, group_id=0, agency_id=0, room_type_id=room_type_id, check_in=check_in,
                        check_out=check_out, rooms=rooms, status=BookingStatus(status), expires_at=expires_at,
                        hardblock_id=hardblock_id)
            for pk, room_type_id, hardblock_id, check_in, check_out, status, expires_at, rooms in row["bookings"]
        ],
        releases=releases,
        plan=plan_ref(row.get("plan")),
        agency_tier=row.get("agency_tier"),
    )


async def load_stay_inventory(
    connection: asyncpg.Connection, hotel_id: int, room_type_ids: Sequence[int], start: date, end: date
) -> StayInventory:
    """What `load_inventory` reads for `room_type_ids` of the hotel over [start, end), as domain
    values only, in one statement (the write paths call it under the advisory locks). Bookings
    come summed per (room type, block, stay, status), without holds lapsed at the database's
    `now`, which comes back with them: decide with that same `now`."""
    row = await _STAY_INVENTORY.fetchrow(connection, ids=list(room_type_ids), start=start, end=end, hotel_id=hotel_id)
    return stay_inventory(row, room_type_ids)
