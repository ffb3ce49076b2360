"""Everything the pool budget of one hotel needs over a date range, in a fixed number of queries.

The rows are turned into `domain` values here so the API and the write paths (under the
advisory lock) feed the very same pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db import models
from db.inventory import current_version
from domain import (
    AllotmentEvent,
    BookingLine,
    BookingStatus,
    CalendarRow,
    ContractTerms,
    EventKind,
    HardblockTerms,
    Money,
    compute_calendar,
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
    bookings: list[models.Booking]
    booking_lines: list[BookingLine] = field(default_factory=list)
    # Manual night releases as recorded, per block: night -> released_at (hardblock_terms holds
    # the ones still standing after amendments; reverting an amendment recomputes from these).
    releases: dict[int, dict[date, datetime]] = field(default_factory=dict)

    def calendar(self, start: date, end: date, now: datetime) -> dict[int, CalendarRow]:
        return compute_calendar(
            self.contracts, self.events, self.hardblock_terms, self.booking_lines,
            [rt.id for rt in self.room_types], start, end, now,
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
    )


def booking_line(row: models.Booking) -> BookingLine:
    return BookingLine(
        id=row.id, group_id=row.group_id, agency_id=row.agency_id, room_type_id=row.room_type_id,
        check_in=row.check_in, check_out=row.check_out, rooms=row.rooms,
        status=BookingStatus(row.status), expires_at=row.expires_at, hardblock_id=row.hardblock_id,
    )


def hardblock_terms(row: models.Hardblock, released_nights: frozenset[date]) -> HardblockTerms:
    return HardblockTerms(
        id=row.id, room_type_id=row.room_type_id, agency_id=row.agency_id,
        start=row.base_start_date or row.start_date, end=row.base_end_date or row.end_date, rooms=row.rooms,
        release_days=row.release_days, released_at=row.released_at,
        released_nights=released_nights,
    )


async def load_inventory(
    session: AsyncSession,
    hotel_id: int,
    start: date,
    end: date,
    room_type_ids: Sequence[int] | None = None,
) -> InventorySnapshot:
    """Seven statements whatever the range, the room types or the number of events.

    A hardblock's stored [start_date, end_date) always spans every night it holds (amendments
    that extend it widen it), so overlap on that span finds every block touching the range.
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
    bookings = list((await session.execute(
        overlapping(models.Booking, models.Booking.check_in, models.Booking.check_out)
        .where(models.Booking.status.in_(COUNTING_STATUSES))
        .order_by(models.Booking.id)
    )).scalars())
    event_list = [event_terms(row) for row in events]
    return InventorySnapshot(
        version=await current_version(session, hotel_id),
        room_types=room_types,
        contracts=[contract_terms(row) for row in contracts],
        events=event_list,
        hardblocks=hardblocks,
        hardblock_terms=[
            hardblock_terms(b, effective_released_nights(b.id, releases.get(b.id, {}), event_list))
            for b in hardblocks
        ],
        bookings=bookings,
        booking_lines=[booking_line(row) for row in bookings],
        releases=releases,
    )
