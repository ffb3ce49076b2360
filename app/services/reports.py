"""Reports: pickup per hardblock, utilisation per room type and period (staff), revenue by stay
night. Each reads one snapshot: pickup and utilisation run the calendar pipeline on it (so they
agree with a calendar read to the room), revenue is aggregated in SQL (db.reports). Agents get
their own agency's rows, and sell prices only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from app.services.context import Caller, Services
from app.services.errors import Forbidden, InvalidInput
from app.services.reads import LoadedInventory, load_calendar
from app.services.inventory import check_nights
from app.services.scope import own_agency_id
from db import models, reports
from db.engine import consistent_read
from domain.reports import (
    Period,
    PickupRow,
    UtilisationRow,
    period_start,
    periods,
    pickup,
    released_by_night,
    utilisation,
)

MAX_REPORT_NIGHTS = 2 * 366  # pickup and utilisation run the calendar over the range
MAX_REVENUE_NIGHTS = 5 * 366
REVENUE_KEYS = ("AGENCY", "HOTEL", "ROOM_TYPE", "MONTH")


# --- pickup ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pickup:
    figures: PickupRow
    block: models.Hardblock


async def pickup_report(services: Services, caller: Caller, hotel_id: int | None, agency_id: int | None,
                        start: date, end: date) -> list[Pickup]:
    """Per hardblock overlapping [start, end) (of the hotel, of the agency: an agent's own always),
    its room nights blocked, picked up, released unsold and remaining, by hotel then reference."""
    check_nights(start, end, limit=MAX_REPORT_NIGHTS)
    async with services.sessions() as session:
        own = await own_agency_id(session, caller)
        if own is not None:
            agency_id = own
        statement = select(models.Hardblock.hotel_id).where(
            models.Hardblock.start_date < end, models.Hardblock.end_date > start).distinct()
        if hotel_id is not None:
            statement = statement.where(models.Hardblock.hotel_id == hotel_id)
        if agency_id is not None:
            statement = statement.where(models.Hardblock.agency_id == agency_id)
        hotels = sorted((await session.execute(statement)).scalars())
    out: list[Pickup] = []
    for hotel in hotels:  # one snapshot per hotel, the calendar's
        loaded = await load_calendar(services.sessions, hotel, start, end, None)
        snapshot = loaded.snapshot
        for block, terms in sorted(zip(snapshot.hardblocks, snapshot.hardblock_terms), key=lambda bt: bt[0].reference):
            if agency_id is not None and block.agency_id != agency_id:
                continue
            slots = loaded.block_slots(block, terms)
            if slots:
                out.append(Pickup(pickup(block.id, slots), block))
    return out


# --- utilisation -------------------------------------------------------------------------------


async def utilisation_report(services: Services, caller: Caller, hotel_id: int, start: date, end: date,
                             period: Period) -> tuple[list[UtilisationRow], dict[int, models.RoomType]]:
    """Staff only: per room type and period, the calendar's numbers over the nights, from one
    snapshot. Every period is a row, zeros included."""
    if not caller.is_staff:
        raise Forbidden("utilisation is the wholesaler's own position: staff only")
    check_nights(start, end, limit=MAX_REPORT_NIGHTS)
    loaded = await load_calendar(services.sessions, hotel_id, start, end, None)
    snapshot = loaded.snapshot
    released = released_by_night(
        (block.room_type_id, slot)
        for block, terms in zip(snapshot.hardblocks, snapshot.hardblock_terms)
        for slot in loaded.block_slots(block, terms))
    return (utilisation(loaded.rows, released, start, end, period),
            {rt.id: rt for rt in snapshot.room_types})  # type: ignore[misc]


# --- revenue -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RevenueRow:
    key: str  # the agency, hotel or room type code, or YYYY-MM
    label: str
    currency: str
    bookings: int
    room_nights: int
    revenue: Decimal
    cost: Decimal | None  # staff only; None also when some nights have no frozen net
    cancellations: int
    cancelled_room_nights: int

    @property
    def margin(self) -> Decimal | None:
        return None if self.cost is None else self.revenue - self.cost

    @property
    def average_daily_rate(self) -> Decimal | None:
        """Revenue per room night sold."""
        if not self.room_nights:
            return None
        return (self.revenue / self.room_nights).quantize(Decimal("0.01"))

    @property
    def margin_percent(self) -> Decimal | None:
        margin = self.margin
        return None if margin is None or not self.revenue else (margin * 100 / self.revenue).quantize(Decimal("0.01"))


async def revenue_report(services: Services, caller: Caller, start: date, end: date, group_by: str,
                         hotel_id: int | None) -> list[RevenueRow]:
    """Confirmed sales by stay night over [start, end) per key (agents: their own agency's, sell
    only), with every key that could have sales as a row, zeros included."""
    if group_by not in REVENUE_KEYS:
        raise InvalidInput("groupBy", f"groupBy must be one of {', '.join(REVENUE_KEYS)}")
    check_nights(start, end, limit=MAX_REVENUE_NIGHTS)
    async with consistent_read(services.sessions) as session:
        own = await own_agency_id(session, caller)
        # own == 0: an agent whose agency is not registered; nothing is theirs
        figures = [] if own == 0 else await reports.revenue(session, group_by, start, end, hotel_id=hotel_id,
                                                            agency_id=own)
        keys = await _keys(session, group_by, start, end, hotel_id, own)
        currency = await _usual_currency(session, hotel_id, figures)
    by_key: dict[Any, list[reports.RevenueFigures]] = defaultdict(list)
    for f in figures:
        by_key[f.key].append(f)
    return [RevenueRow(key=code, label=label, currency=f.currency, bookings=f.bookings, room_nights=f.room_nights,
                       revenue=f.revenue, cost=f.cost if caller.is_staff else None, cancellations=f.cancellations,
                       cancelled_room_nights=f.cancelled_room_nights)
            for key, (code, label) in keys.items()
            for f in by_key.get(key) or [reports.RevenueFigures.zero(key, currency)]]


async def _keys(session: Any, group_by: str, start: date, end: date, hotel_id: int | None,
                own: int | None) -> dict[Any, tuple[str, str]]:
    """Every key the report has a row for, in order, with its code and name."""
    if group_by == "MONTH":
        months = (period_start(first, Period.MONTH) for first, _ in periods(start, end, Period.MONTH))
        return {month: (month.strftime("%Y-%m"), month.strftime("%B %Y")) for month in months}
    if group_by == "AGENCY":
        statement = select(models.Agency.id, models.Agency.code, models.Agency.name).order_by(models.Agency.code)
        if own is not None:
            statement = statement.where(models.Agency.id == own)
    elif group_by == "HOTEL":
        statement = select(models.Hotel.id, models.Hotel.code, models.Hotel.name).order_by(models.Hotel.code)
        if hotel_id is not None:
            statement = statement.where(models.Hotel.id == hotel_id)
    else:
        hotel = models.Hotel
        statement = (select(models.RoomType.id, func.concat(hotel.code, "/", models.RoomType.code),
                            models.RoomType.name).join(hotel, hotel.id == models.RoomType.hotel_id)
                     .order_by(hotel.code, models.RoomType.code))
        if hotel_id is not None:
            statement = statement.where(models.RoomType.hotel_id == hotel_id)
    return {pk: (code, name) for pk, code, name in (await session.execute(statement)).all()}


async def _usual_currency(session: Any, hotel_id: int | None, figures: list[reports.RevenueFigures]) -> str:
    """The currency of a row with no sales: the report's most used, else the contracts'."""
    if figures:
        counts: dict[str, int] = {}
        for f in figures:
            counts[f.currency] = counts.get(f.currency, 0) + f.room_nights
        return max(counts, key=lambda c: counts[c])
    statement = select(models.Contract.currency).group_by(models.Contract.currency).order_by(
        func.count().desc()).limit(1)
    if hotel_id is not None:
        statement = statement.where(models.Contract.hotel_id == hotel_id)
    return (await session.execute(statement)).scalar_one_or_none() or "EUR"


# --- booking lines (CSV) ---------------------------------------------------------------------


EXPORT_TIMEOUT_MS = 10 * 60 * 1000  # a year of a busy wholesaler is a long statement; not an unbounded one
_EXPORT_BUFFER = 16  # COPY chunks waiting for the client at most: memory stays flat


async def booking_lines_csv(services: Services, caller: Caller, start: date, end: date,
                            hotel_id: int | None) -> AsyncIterator[bytes]:
    """Every booking with nights in [start, end) as CSV with a header row (agents: their own
    agency's, without net), from one snapshot, written by PostgreSQL's COPY and passed on chunk by
    chunk with back-pressure. Arguments are checked before the first chunk."""
    check_nights(start, end, limit=MAX_REVENUE_NIGHTS)
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue(_EXPORT_BUFFER)
    # An agent's lines are its agency's, by code (an unregistered code matches nothing).
    own = None if caller.is_staff else caller.principal.agency_code
    async with services.raw.connection() as connection:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            await connection.execute(f"SET LOCAL statement_timeout = {EXPORT_TIMEOUT_MS}")

            async def keep(data: bytes) -> None:
                await chunks.put(bytes(data))  # a copy: asyncpg may reuse its buffer

            async def copy() -> None:
                try:
                    await connection.copy_from_query(reports.booking_lines_copy(caller.is_staff), start, end,
                                                     hotel_id, own, output=keep, format="csv", header=True)
                finally:
                    await chunks.put(None)

            task = asyncio.create_task(copy())
            try:
                while (chunk := await chunks.get()) is not None:
                    yield chunk
                await task  # its failure, if it failed, is the stream's
            finally:
                if not task.done():  # the client went away: stop the COPY
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
