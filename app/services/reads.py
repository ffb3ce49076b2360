"""The read side: calendars (one consistent snapshot each), hardblock slot grids, amendment diff
grids, and the batch reads behind the API's loaders. Reads take no locks and write nothing.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession

from app.services.errors import SlotDiff
from app.services.rateplans import Buyer, sell_rates
from db import models, queries
from db.calendar import InventorySnapshot, event_terms, load_inventory
from db.engine import Sessions, consistent_read
from db.hardblocks import BlockGridData, load_block_grids
from db.inventory import current_version
from domain import (
    AllotmentEvent,
    BookingLine,
    CalendarRow,
    HardblockSlot,
    HardblockTerms,
    Money,
    RestrictionRow,
    UnavailableReason,
    compute_hardblock_slots,
    hotel_today,
    nights,
    order_key,
    proposed_amendments,
    resolve,
    resolve_restrictions,
    unavailable_reasons,
)

@dataclass(frozen=True, slots=True)
class BlockSlot:
    """One night of a hardblock with what the API shows beside it: the pool rate of the night,
    the bookings taking rooms from the block, and an overlay's proposed size."""

    slot: HardblockSlot
    rate: Money | None
    agency_id: int
    # None: read from a calendar whose bookings were summed (LoadedInventory.slots), so not at hand.
    bookings: tuple[models.Booking, ...] | None = ()
    proposed_size: int | None = None


# --- calendars -----------------------------------------------------------------------------------


@dataclass
class LoadedInventory:
    """One snapshot read for a calendar, indexed lazily for the cells' nested fields."""

    snapshot: InventorySnapshot
    rows: dict[int, CalendarRow]
    start: date
    end: date
    now: datetime
    _bookings: dict[tuple[int, date], list[models.Booking]] | None = None
    _slots: dict[tuple[int, date], list[BlockSlot]] | None = None
    _block_lines: dict[int | None, list[BookingLine]] | None = None
    _rates: dict[tuple[int, Buyer], tuple[Money | None, ...]] = dataclasses.field(default_factory=dict)

    def rates(self, room_type_id: int, buyer: Buyer | None) -> tuple[Money | None, ...]:
        """Per night of the room type's row, the rate a caller sees: staff (no buyer) the net, an
        agency its own sell price (rateplans.sell_rates). Computed once per agency and read."""
        row = self.rows[room_type_id]
        if buyer is None or not self.snapshot.plans:
            return row.rate
        rates = self._rates.get((room_type_id, buyer))
        if rates is None:
            rates = self._rates[room_type_id, buyer] = sell_rates(
                self.snapshot.plans, buyer, row, hotel_today(self.now, self.snapshot.time_zone))
        return rates

    def rate_on(self, room_type_id: int, night: date, buyer: Buyer | None) -> Money | None:
        return self.rates(room_type_id, buyer)[self.rows[room_type_id].index(night)]

    def restrictions(self, agency_id: int | None) -> dict[int, RestrictionRow]:
        """Per room type, the restrictions in force for `agency_id` (None: the ones binding every
        agency) on the calendar's nights, from the events already read."""
        return resolve_restrictions(self.snapshot.events, self.rows, self.start, self.end, agency_id)

    def reasons(self, restrictions: dict[int, RestrictionRow]) -> dict[int, tuple[tuple[UnavailableReason, ...], ...]]:
        """Per room type and night, why it cannot be sold or arrived on (the hotel's today)."""
        today = hotel_today(self.now, self.snapshot.time_zone)
        return {rt: unavailable_reasons(row, restrictions[rt], today) for rt, row in self.rows.items()}

    def covers(self, room_type_id: int, night: date) -> bool:
        return room_type_id in self.rows and self.start <= night < self.end

    def bookings(self, key: tuple[int, date]) -> list[models.Booking]:
        if self.snapshot.bookings is None:
            raise LookupError("this calendar was read with its bookings summed: load_calendar(booking_rows=True)")
        if self._bookings is None:
            index: dict[tuple[int, date], list[models.Booking]] = defaultdict(list)
            for row, line in zip(self.snapshot.bookings, self.snapshot.booking_lines, strict=True):
                if line.counts(self.now):
                    for night in nights(max(row.check_in, self.start), min(row.check_out, self.end)):
                        index[(row.room_type_id, night)].append(row)
            self._bookings = index
        return self._bookings.get(key, [])

    def block_slots(self, block: models.Hardblock, terms: HardblockTerms) -> list[HardblockSlot]:
        """The block's slots over the calendar's nights, from its own booking lines (indexed once:
        a hotel-year holds hundreds of blocks and hundreds of thousands of lines)."""
        first, last = max(block.start_date, self.start), min(block.end_date, self.end)
        if first >= last:
            return []
        if self._block_lines is None:
            self._block_lines = defaultdict(list)
            for line in self.snapshot.booking_lines:
                self._block_lines[line.hardblock_id].append(line)
        return compute_hardblock_slots(terms, self.snapshot.events, self._block_lines.get(block.id, []), first, last,
                                       self.now)

    def slots(self, key: tuple[int, date]) -> list[BlockSlot]:
        if self._slots is None:
            index: dict[tuple[int, date], list[BlockSlot]] = defaultdict(list)
            snapshot = self.snapshot
            for block, terms in zip(snapshot.hardblocks, snapshot.hardblock_terms):
                row = self.rows[block.room_type_id]
                for slot in self.block_slots(block, terms):
                    key = (block.room_type_id, slot.date)
                    index[key].append(BlockSlot(
                        slot, row.rate[row.index(slot.date)], block.agency_id,
                        None if snapshot.bookings is None
                        else tuple(b for b in self.bookings(key) if b.hardblock_id == block.id),
                    ))
            self._slots = index
        return self._slots.get(key, [])


async def load_calendar(sessions: Sessions, hotel_id: int, start: date, end: date,
                        room_type_ids: Sequence[int] | None, *, booking_rows: bool = False) -> LoadedInventory:
    """One consistent snapshot (REPEATABLE READ), so `version` matches the numbers exactly.
    `booking_rows`: for a caller that shows the cells' bookings (load_inventory)."""
    async with consistent_read(sessions) as session:
        snapshot = await load_inventory(session, hotel_id, start, end, room_type_ids, booking_rows=booking_rows)
    now = models.utcnow()
    return LoadedInventory(snapshot, snapshot.calendar(start, end, now), start, end, now)


def is_loaded(row: Any, attribute: str) -> bool:
    """Whether a row read with `attribute` deferred (load_inventory's bookings) has it at hand."""
    return attribute not in inspect(row).unloaded


async def inventory_version(sessions: Sessions, hotel_id: int) -> int:
    async with sessions() as session:
        return await current_version(session, hotel_id)


# --- hardblock grids -----------------------------------------------------------------------------


async def block_grids(session: AsyncSession, keys: Sequence[tuple[int, int, date, date]]) -> dict[Any, BlockGridData]:
    """Loader batch: (hotel id, block id, start, end) -> what that block's grid needs; one read for
    the whole batch, whatever the number of blocks."""
    blocks = await queries.rows_by_id(session, models.Hardblock, [key[1] for key in keys])
    data = await load_block_grids(session, list(blocks.values()), min(key[2] for key in keys),
                                  max(key[3] for key in keys))
    own = _per_block(data)
    return {key: own[key[1]] for key in keys if key[1] in blocks}


def _per_block(data: BlockGridData) -> dict[int, BlockGridData]:
    """Each block's share of a batch: its terms, amendments and bookings (the room types' contracts
    and rate changes shared), so one block's grid does not scan the other blocks' rows."""
    amendments: dict[int, list[Any]] = defaultdict(list)
    bookings: dict[int, list[Any]] = defaultdict(list)
    lines: dict[int, list[Any]] = defaultdict(list)
    for event in data.amendments:
        amendments[event.hardblock_id].append(event)
    for row, line in zip(data.bookings, data.booking_lines, strict=True):
        bookings[row.hardblock_id].append(row)
        lines[row.hardblock_id].append(line)
    return {
        block_id: BlockGridData(terms={block_id: terms}, amendments=amendments[block_id],
                                rate_events=data.rate_events, contracts=data.contracts,
                                bookings=bookings[block_id], booking_lines=lines[block_id])
        for block_id, terms in data.terms.items()
    }


def block_grid(
    data: BlockGridData,
    hardblock_id: int,
    start: date,
    end: date,
    now: datetime,
    bookings: Sequence[models.Booking],
    proposed: list[tuple[date, date, int]] | None = None,
) -> list[BlockSlot]:
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
        BlockSlot(slot, rate, terms.agency_id, tuple(by_night.get(slot.date, ())), sizes.get(slot.date))
        for slot, rate in zip(slots, rates)
    ]


def amendment_diff(data: BlockGridData, hardblock_id: int, own_rows: Sequence[models.AllotmentEvent],
                   now: datetime) -> list[SlotDiff]:
    """An amendment's own diff grid: the block's sizes on the nights it touched, just before it and
    with it (amendments recorded later left out). `data` covers those nights."""
    own = [dataclasses.replace(event_terms(row), voided=False) for row in own_rows]
    touched = sorted({night for e in own for night in nights(e.start, e.end)})
    start, end = touched[0], touched[-1] + timedelta(days=1)
    first = min(map(order_key, own))
    earlier: list[AllotmentEvent] = [e for e in data.amendments if order_key(e) < first]
    terms = data.terms[hardblock_id]
    before = compute_hardblock_slots(terms, earlier, data.booking_lines, start, end, now)
    after = compute_hardblock_slots(terms, [*earlier, *own], data.booking_lines, start, end, now)
    wanted = set(touched)
    return [
        SlotDiff(date=b.date, before=b.size, after=a.size, delta=a.size - b.size, booked=a.booked)
        for b, a in zip(before, after) if b.date in wanted
    ]


def amendment_nights(own_rows: Sequence[models.AllotmentEvent]) -> tuple[date, date] | None:
    """The range of nights an amendment's events touch, or None when it has none."""
    if not own_rows:
        return None
    return min(row.start_date for row in own_rows), max(row.end_date for row in own_rows)
