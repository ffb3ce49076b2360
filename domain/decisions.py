"""Availability decisions, taken on a fresh read made after the advisory lock."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from domain.bookings import BookingLine
from domain.budget import CalendarRow, HardblockSlot, compute_hardblock_slots
from domain.errors import InvalidInput, OutsideCalendar
from domain.events import AllotmentEvent, EventKind
from domain.hardblocks import HardblockTerms
from domain.nights import nights as nights_of


class RoomRequest(NamedTuple):
    """`rooms` rooms of a room type on [check_in, check_out), from the pool."""

    room_type_id: int
    check_in: dt.date
    check_out: dt.date
    rooms: int


class BlockRequest(NamedTuple):
    """`rooms` rooms on [check_in, check_out) from a hardblock."""

    hardblock_id: int
    check_in: dt.date
    check_out: dt.date
    rooms: int


@dataclass(frozen=True, slots=True)
class Shortfall:
    room_type_id: int
    date: dt.date
    requested: int
    available: int


@dataclass(frozen=True, slots=True)
class BlockShortfall:
    hardblock_id: int
    date: dt.date
    requested: int
    available: int


def _demand(requests: Iterable[tuple[int, dt.date, dt.date, int]]) -> list[tuple[int, int, int]]:
    """Rooms requested per (key, night ordinal), summed across items, sorted by (key, night)."""
    totals: dict[tuple[int, int], int] = {}
    for key, check_in, check_out, rooms in requests:
        for night in range(check_in.toordinal(), check_out.toordinal()):
            totals[key, night] = totals.get((key, night), 0) + rooms
    return [(key, night, rooms) for (key, night), rooms in sorted(totals.items())]


def pool_shortfalls(
    rows: Mapping[int, CalendarRow], requests: Iterable[tuple[int, dt.date, dt.date, int]]
) -> list[Shortfall]:
    """Every pool cell the requests would take more from than is available. All items of a group
    draw on the same cells, so they are summed per night: the group fits only if this is empty."""
    shortfalls = []
    for room_type_id, night, requested in _demand(requests):
        day = dt.date.fromordinal(night)
        row = rows.get(room_type_id)
        if row is None:
            raise OutsideCalendar(room_type_id, day)
        available = row.available[row.index(day)]
        if requested > available:
            shortfalls.append(Shortfall(room_type_id, day, requested, available))
    return shortfalls


def block_shortfalls(
    slots: Iterable[HardblockSlot], requests: Iterable[tuple[int, dt.date, dt.date, int]]
) -> list[BlockShortfall]:
    """Like `pool_shortfalls`, against the slots of the blocks the requests book from."""
    available = {(slot.hardblock_id, slot.date.toordinal()): slot.available for slot in slots}
    shortfalls = []
    for hardblock_id, night, requested in _demand(requests):
        have = available.get((hardblock_id, night))
        if have is None:
            raise OutsideCalendar(hardblock_id, dt.date.fromordinal(night))
        if requested > have:
            shortfalls.append(BlockShortfall(hardblock_id, dt.date.fromordinal(night), requested, have))
    return shortfalls


class SlotConflict(StrEnum):
    BLOCK_UNDERFLOW = "BLOCK_UNDERFLOW"  # the block would hold fewer rooms than are booked from it
    SOLD_OUT = "SOLD_OUT"  # growing the block needs more than the pool has available
    RELEASED = "RELEASED"  # growing a night past its release time: its unsold rooms are back in the pool


@dataclass(frozen=True, slots=True)
class SlotDiff:
    date: dt.date
    before: int
    after: int
    delta: int
    conflict: SlotConflict | None
    needed: int = 0  # rooms the change takes from the pool on this night
    booked: int = 0  # rooms booked from the block on this night


@dataclass(frozen=True, slots=True)
class AmendmentPreview:
    feasible: bool
    slots: tuple[SlotDiff, ...]

    def nights_with(self, conflict: SlotConflict) -> list[SlotDiff]:
        return [diff for diff in self.slots if diff.conflict is conflict]


def diff_slots(
    before: Iterable[HardblockSlot],
    after: Iterable[HardblockSlot],
    pool: CalendarRow,
    nights: Iterable[dt.date],
    now: dt.datetime,
) -> list[SlotDiff]:
    """The change of a block's sizes on `nights` (sorted, each once) and what blocks it.

    A night missing from a side has size 0 there. Shrinking below the booked rooms is an
    underflow; growing a night whose release time has passed is refused (it would release
    again at once); taking more from the pool (HardblockSlot.committed) than it has is a sell-out.
    """
    old = {slot.date: slot for slot in before}
    new = {slot.date: slot for slot in after}
    diffs = []
    for night in sorted(set(nights)):
        prev, cur = old.get(night), new.get(night)
        size_before = prev.size if prev else 0
        size_after = cur.size if cur else 0
        booked = cur.booked if cur else 0
        need = (cur.committed if cur else 0) - (prev.committed if prev else 0)
        conflict = None
        if size_after < size_before and size_after < booked:
            conflict = SlotConflict.BLOCK_UNDERFLOW
        elif size_after > size_before and now >= cur.release_at:  # type: ignore[union-attr]
            conflict = SlotConflict.RELEASED
        elif need > 0 and need > pool.available[pool.index(night)]:
            conflict = SlotConflict.SOLD_OUT
        diffs.append(
            SlotDiff(night, size_before, size_after, size_after - size_before, conflict, max(need, 0), booked)
        )
    return diffs


def proposed_amendments(
    block: HardblockTerms,
    changes: Sequence[tuple[dt.date, dt.date, int]],
    events: Sequence[AllotmentEvent],
    now: dt.datetime,
) -> list[AllotmentEvent]:
    """The BLOCK_AMENDMENT events `changes` ((start, end, rooms) each) would record at `now`,
    with ids after every existing one, in the order given (a later change wins on overlap)."""
    first_id = max((e.id for e in events), default=0) + 1
    return [
        AllotmentEvent(
            id=first_id + i,
            kind=EventKind.BLOCK_AMENDMENT,
            room_type_id=block.room_type_id,
            start=start,
            end=end,
            effective_at=now,
            quantity=rooms,
            hardblock_id=block.id,
        )
        for i, (start, end, rooms) in enumerate(changes)
    ]


def preview_change(
    before: tuple[HardblockTerms, Sequence[AllotmentEvent]],
    after: tuple[HardblockTerms, Sequence[AllotmentEvent]],
    bookings: Sequence[BookingLine],
    pool: CalendarRow,
    touched: Iterable[dt.date],
    now: dt.datetime,
) -> AmendmentPreview:
    """The diff grid between two states (terms, events) of one block on the nights `touched`.
    `pool` is the calendar row of the block's room type over those nights, with the block as is."""
    touched = sorted(set(touched))
    if not touched:
        return AmendmentPreview(True, ())
    start, end = touched[0], touched[-1] + dt.timedelta(days=1)
    old = compute_hardblock_slots(*before, bookings, start, end, now)
    new = compute_hardblock_slots(*after, bookings, start, end, now)
    diffs = diff_slots(old, new, pool, touched, now)
    return AmendmentPreview(all(d.conflict is None for d in diffs), tuple(diffs))


def preview_amendment(
    block: HardblockTerms,
    changes: Sequence[tuple[dt.date, dt.date, int]],
    events: Sequence[AllotmentEvent],
    bookings: Sequence[BookingLine],
    pool: CalendarRow,
    now: dt.datetime,
) -> AmendmentPreview:
    """The diff grid of an amendment on the nights it touches, written nowhere. An amendment
    sets the nights it names, released or not: a released night it touches is re-grown."""
    proposed = proposed_amendments(block, changes, events, now)
    touched = {day for e in proposed for day in nights_of(e.start, e.end)}
    regrown = dataclasses.replace(block, released_nights=block.released_nights - touched)
    return preview_change((block, events), (regrown, [*events, *proposed]), bookings, pool, touched, now)


def extension(slots: Sequence[HardblockSlot], nights: int, fallback_rooms: int) -> tuple[dt.date, dt.date, int]:
    """The change adding `nights` nights after a block's last night with rooms (`slots`: its whole
    span), at that night's size (`fallback_rooms`, after the span, when no night has rooms)."""
    if nights <= 0:
        raise InvalidInput("nights", "must be positive")
    sized = [slot for slot in slots if slot.size > 0]
    last = sized[-1] if sized else None
    start = (last or slots[-1]).date + dt.timedelta(days=1)
    return start, start + dt.timedelta(days=nights), last.size if last else fallback_rooms


def returned_rooms(
    block: HardblockTerms, slots: Sequence[HardblockSlot], rooms: int, now: dt.datetime
) -> list[tuple[dt.date, dt.date, int]]:
    """The changes that give `rooms` rooms of every night of `slots` back to the pool: each night
    shrinks by that much (runs of equal sizes become one change). Nights already released have
    nothing left to give back."""
    if rooms <= 0:
        raise InvalidInput("rooms", "must be positive")
    released = [slot.date.isoformat() for slot in slots if block.is_released(slot.date, now)]
    if released:
        raise InvalidInput("dates", f"already released, nothing to give back: {', '.join(released)}")
    small = [f"{slot.date.isoformat()} ({slot.size})" for slot in slots if slot.size < rooms]
    if small:
        raise InvalidInput("rooms", f"the block holds fewer than {rooms} rooms on {', '.join(small)}")
    changes: list[tuple[dt.date, dt.date, int]] = []
    for slot in slots:
        end = slot.date + dt.timedelta(days=1)
        if changes and changes[-1][1] == slot.date and changes[-1][2] == slot.size - rooms:
            changes[-1] = (changes[-1][0], end, changes[-1][2])
        else:
            changes.append((slot.date, end, slot.size - rooms))
    return changes
