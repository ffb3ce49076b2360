"""The pool budget per (room type, night) and the hardblock slots per (block, night).

Everything is recomputed from contracts, events, hardblocks and bookings as of `now`; nothing
is a stored counter, so an expired hold or a passed release time needs no job to take effect.
Cut-offs and "today" are the hotel's (its time zone: see `domain.nights`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate

from domain.bookings import BookingLine, BookingStatus
from domain.contracts import ContractTerms
from domain.errors import OutsideCalendar
from domain.events import AllotmentEvent, EventKind, order_key
from domain.hardblocks import HardblockTerms, release_at
from domain.money import Money
from domain.nights import DEFAULT_TIME_ZONE, hotel_today, local_midnight
from domain.resolver import clip, resolve, window


@dataclass(frozen=True, slots=True)
class PoolCell:
    room_type_id: int
    date: dt.date
    allotment: int
    hardblocked: int
    held: int
    sold: int
    available: int
    overcommitted: int
    closed: bool
    release_date: dt.date | None
    release_at: dt.datetime | None  # the hotel-local midnight of release_date, in UTC
    rate: Money | None


@dataclass(frozen=True, slots=True)
class CalendarRow:
    """One room type's cells as parallel series (the API serialises tens of thousands of cells)."""

    room_type_id: int
    start: dt.date
    dates: tuple[dt.date, ...]
    allotment: tuple[int, ...]
    hardblocked: tuple[int, ...]
    held: tuple[int, ...]
    sold: tuple[int, ...]
    available: tuple[int, ...]
    overcommitted: tuple[int, ...]
    closed: tuple[bool, ...]
    release_date: tuple[dt.date | None, ...]
    release_at: tuple[dt.datetime | None, ...]
    rate: tuple[Money | None, ...]

    def index(self, night: dt.date) -> int:
        i = (night - self.start).days
        if not 0 <= i < len(self.dates):
            raise OutsideCalendar(self.room_type_id, night)
        return i

    def cell(self, i: int) -> PoolCell:
        return PoolCell(
            room_type_id=self.room_type_id,
            date=self.dates[i],
            allotment=self.allotment[i],
            hardblocked=self.hardblocked[i],
            held=self.held[i],
            sold=self.sold[i],
            available=self.available[i],
            overcommitted=self.overcommitted[i],
            closed=self.closed[i],
            release_date=self.release_date[i],
            release_at=self.release_at[i],
            rate=self.rate[i],
        )

    def cells(self) -> Iterator[PoolCell]:
        return map(self.cell, range(len(self.dates)))


@dataclass(frozen=True, slots=True)
class HardblockSlot:
    hardblock_id: int
    date: dt.date
    size: int
    booked: int
    available: int
    released: int
    release_at: dt.datetime

    @property
    def committed(self) -> int:
        """What the slot takes from the pool: its size less what it released, and never less
        than what is booked from it (a block shrunk below its bookings still holds them)."""
        held_back = self.size - self.released
        return held_back if held_back > self.booked else self.booked


def _amendments_by_block(events: Iterable[AllotmentEvent]) -> dict[int, list[AllotmentEvent]]:
    by_block: dict[int, list[AllotmentEvent]] = {}
    for event in events:
        if event.kind is EventKind.BLOCK_AMENDMENT and not event.voided:
            by_block.setdefault(event.hardblock_id, []).append(event)  # type: ignore[arg-type]
    for amendments in by_block.values():
        amendments.sort(key=order_key)
    return by_block


def _hull(block: HardblockTerms, amendments: list[AllotmentEvent], bookings: list[BookingLine]) -> tuple[int, int]:
    """Ordinals spanning every night the block, its amendments or its bookings touch."""
    lo = min([block.start, *(e.start for e in amendments), *(b.check_in for b in bookings)])
    hi = max([block.end, *(e.end for e in amendments), *(b.check_out for b in bookings)])
    return lo.toordinal(), hi.toordinal()


def _sizes_and_booked(
    block: HardblockTerms,
    amendments: list[AllotmentEvent],
    bookings: list[BookingLine],
    origin: int,
    n: int,
) -> tuple[list[int], list[int]]:
    """Per night of the window: the block's size after its amendments (in total order, the last
    covering a night wins) and the rooms booked from it by counting bookings."""
    sizes = [0] * n
    a, b = clip(block.start, block.end, origin, n)
    if a < b:
        sizes[a:b] = [block.rooms] * (b - a)
    for event in amendments:
        a, b = clip(event.start, event.end, origin, n)
        if a < b:
            sizes[a:b] = [event.quantity] * (b - a)  # type: ignore[list-item]
    booked = [0] * (n + 1)
    for line in bookings:
        a, b = clip(line.check_in, line.check_out, origin, n)
        if a < b:
            booked[a] += line.rooms
            booked[b] -= line.rooms
    return sizes, list(accumulate(booked[:n]))


def _released(block: HardblockTerms, origin: int, n: int, today: int) -> list[bool]:
    """Per night of the window: whether its unsold rooms went back to the pool."""
    if block.released_at is not None:
        return [True] * n
    # Night o releases at the hotel-local midnight of o - release_days, i.e. once
    # o - release_days <= today (the hotel's: see domain.nights).
    k = min(n, max(0, today + block.release_days - origin + 1))
    flags = [True] * k + [False] * (n - k)
    for night in block.released_nights:
        i = night.toordinal() - origin
        if 0 <= i < n:
            flags[i] = True
    return flags


def _committed(sizes: list[int], booked: list[int], released: list[bool]) -> list[int]:
    # A released night keeps only what was booked; otherwise the whole size (or more, if booked
    # beyond it), matching HardblockSlot.committed.
    return [bk if rel else (s if s > bk else bk) for s, bk, rel in zip(sizes, booked, released)]


def compute_hardblock_slots(
    block: HardblockTerms,
    events: Iterable[AllotmentEvent],
    bookings: Iterable[BookingLine],
    start: dt.date | None,
    end: dt.date | None,
    now: dt.datetime,
) -> list[HardblockSlot]:
    """The block's slots on [start, end). A missing bound defaults to the block's own span:
    its original nights plus every night its amendments or bookings give it rooms on."""
    today = hotel_today(now, block.time_zone).toordinal()
    # This block's only: callers ask block by block about a snapshot holding every block's events.
    amendments = sorted((e for e in events if e.kind is EventKind.BLOCK_AMENDMENT and e.hardblock_id == block.id
                         and not e.voided), key=order_key)
    mine = [b for b in bookings if b.hardblock_id == block.id and b.counts(now)]
    if start is None or end is None:
        lo, hi = _hull(block, amendments, mine)
        sizes, booked = _sizes_and_booked(block, amendments, mine, lo, hi - lo)
        first, last = block.start.toordinal(), block.end.toordinal()
        used = [lo + i for i, (s, bk) in enumerate(zip(sizes, booked)) if s or bk]
        if used:
            first, last = min(first, used[0]), max(last, used[-1] + 1)
        if start is None:
            start = dt.date.fromordinal(first)
        if end is None:
            end = dt.date.fromordinal(last)
    n = window(start, end)
    origin = start.toordinal()
    sizes, booked = _sizes_and_booked(block, amendments, mine, origin, n)
    released = _released(block, origin, n, today)
    slots = []
    for i, (size, bk, rel) in enumerate(zip(sizes, booked, released)):
        night = dt.date.fromordinal(origin + i)
        free = size - bk if size > bk else 0
        slots.append(
            HardblockSlot(
                hardblock_id=block.id,
                date=night,
                size=size,
                booked=bk,
                available=0 if rel else free,
                released=free if rel else 0,
                release_at=release_at(night, block.release_days, block.time_zone),
            )
        )
    return slots


def compute_calendar(
    contracts: Iterable[ContractTerms],
    events: Sequence[AllotmentEvent],
    hardblocks: Iterable[HardblockTerms],
    bookings: Iterable[BookingLine],
    room_type_ids: Iterable[int],
    start: dt.date,
    end: dt.date,
    now: dt.datetime,
    time_zone: str = DEFAULT_TIME_ZONE,
) -> dict[int, CalendarRow]:
    """The pool budget of every (room type, night) in [start, end) as of `now`, for a hotel in
    `time_zone` (its hardblocks must say the same)."""
    n = window(start, end)
    origin = start.toordinal()
    today = hotel_today(now, time_zone).toordinal()
    resolved = resolve(contracts, events, room_type_ids, start, end)

    held = {rt: [0] * (n + 1) for rt in resolved}
    sold = {rt: [0] * (n + 1) for rt in resolved}
    # Rooms booked from a block nobody passed in still left the pool: count them as hardblocked.
    orphaned = {rt: [0] * (n + 1) for rt in resolved}
    blocks = {b.id: b for b in hardblocks}
    if strays := sorted({b.time_zone for b in blocks.values()} - {time_zone}):
        raise ValueError(f"hardblocks in {', '.join(strays)} on a calendar in {time_zone}")
    block_bookings: dict[int, list[BookingLine]] = {}
    for line in bookings:
        if not line.counts(now):
            continue
        if line.hardblock_id in blocks:
            block_bookings.setdefault(line.hardblock_id, []).append(line)
            continue
        if line.room_type_id not in resolved:
            continue
        if line.hardblock_id is not None:
            diff = orphaned[line.room_type_id]
        elif line.status is BookingStatus.CONFIRMED:
            diff = sold[line.room_type_id]
        else:
            diff = held[line.room_type_id]
        a, b = clip(line.check_in, line.check_out, origin, n)
        if a < b:
            diff[a] += line.rooms
            diff[b] -= line.rooms

    hardblocked = {rt: list(accumulate(diff[:n])) for rt, diff in orphaned.items()}
    amendments = _amendments_by_block(events)
    for block in blocks.values():
        row = hardblocked.get(block.room_type_id)
        if row is None:
            continue
        mine = block_bookings.get(block.id, [])
        its = amendments.get(block.id, [])
        lo, hi = _hull(block, its, mine)
        lo = max(lo, origin)
        hi = min(hi, origin + n)
        if lo >= hi:
            continue
        sizes, booked = _sizes_and_booked(block, its, mine, lo, hi - lo)
        committed = _committed(sizes, booked, _released(block, lo, hi - lo, today))
        a = lo - origin
        row[a : a + len(committed)] = [x + y for x, y in zip(row[a : a + len(committed)], committed)]

    fromordinal = dt.date.fromordinal
    dates = tuple(fromordinal(origin + i) for i in range(n))
    ordinals = range(origin, origin + n)
    # Cut-off dates and instants by ordinal: a few hundred distinct ones serve every row.
    cutoffs: dict[int, tuple[dt.date, dt.datetime]] = {}

    def cutoff(o: int) -> tuple[dt.date, dt.datetime]:
        known = cutoffs.get(o)
        if known is None:
            day = fromordinal(o)
            known = cutoffs[o] = (day, local_midnight(day, time_zone))
        return known

    rows = {}
    for rt, r in resolved.items():
        cuts = [None if rd is None else cutoff(o - rd) for rd, o in zip(r.release_days, ordinals)]
        hb = hardblocked[rt]
        hl = list(accumulate(held[rt][:n]))
        sd = list(accumulate(sold[rt][:n]))
        committed = [x + y + z for x, y, z in zip(hb, hl, sd)]
        rows[rt] = CalendarRow(
            room_type_id=rt,
            start=start,
            dates=dates,
            allotment=r.allotment,
            hardblocked=tuple(hb),
            held=tuple(hl),
            sold=tuple(sd),
            # Sellable: open, covered by a contract, and before the contract's release cut-off
            # (the hotel-local midnight of night - release_days).
            available=tuple(
                [
                    a - c if a > c and not cl and rd is not None and o - rd > today else 0
                    for a, c, cl, rd, o in zip(r.allotment, committed, r.closed, r.release_days, ordinals)
                ]
            ),
            overcommitted=tuple([c - a if c > a else 0 for a, c in zip(r.allotment, committed)]),
            closed=r.closed,
            release_date=tuple([None if cut is None else cut[0] for cut in cuts]),
            release_at=tuple([None if cut is None else cut[1] for cut in cuts]),
            rate=r.rate,
        )
    return rows
