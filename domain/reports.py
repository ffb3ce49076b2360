"""Reports over the calendar pipeline: utilisation per room type and period, and pickup per
hardblock. They take the pipeline's own rows and slots (one snapshot), so a report and a calendar
read of the same snapshot agree to the room; they only add up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from domain.budget import CalendarRow, HardblockSlot

ONE_DAY = dt.timedelta(days=1)


class Period(StrEnum):
    DAY = "DAY"
    WEEK = "WEEK"  # ISO weeks, Monday to Sunday
    MONTH = "MONTH"


def period_start(night: dt.date, period: Period) -> dt.date:
    if period is Period.DAY:
        return night
    if period is Period.WEEK:
        return night - dt.timedelta(days=night.weekday())
    return night.replace(day=1)


def period_end(start: dt.date, period: Period) -> dt.date:
    """The day after the period that begins at `start` (`period_start`'s)."""
    if period is Period.DAY:
        return start + ONE_DAY
    if period is Period.WEEK:
        return start + dt.timedelta(days=7)
    return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def periods(start: dt.date, end: dt.date, period: Period) -> list[tuple[dt.date, dt.date]]:
    """The periods touching the nights [start, end), each as [its start, its end) cut to the range:
    every one of them, so an empty period is a row of zeros, never a gap."""
    out = []
    first = start
    while first < end:
        last = min(period_end(period_start(first, period), period), end)
        out.append((first, last))
        first = last
    return out


def percent(part: int, whole: int) -> Decimal | None:
    """part / whole x 100 to two places; None when there is no whole to speak of."""
    if whole <= 0:
        return None
    return (Decimal(part * 100) / Decimal(whole)).quantize(Decimal("0.01"))


@dataclass(frozen=True, slots=True)
class UtilisationRow:
    room_type_id: int
    start: dt.date
    end: dt.date  # the day after its last night
    allotment: int  # room nights
    hardblocked: int
    held: int
    sold: int
    released: int  # room nights hardblocks gave back to the pool
    available: int
    overcommitted: int
    closed_nights: int

    @property
    def utilisation_percent(self) -> Decimal | None:
        """Sold over allotment."""
        return percent(self.sold, self.allotment)


def utilisation(rows: Mapping[int, CalendarRow], released: Mapping[tuple[int, dt.date], int], start: dt.date,
                end: dt.date, period: Period) -> list[UtilisationRow]:
    """Per room type (in `rows`' order) and period of [start, end), the calendar's numbers added
    up over the nights. `released`: rooms given back by blocks, per (room type, night)."""
    out = []
    for room_type_id, row in rows.items():
        for first, last in periods(start, end, period):
            a, b = row.index(first), row.index(last - ONE_DAY) + 1
            out.append(UtilisationRow(
                room_type_id=room_type_id, start=first, end=last,
                allotment=sum(row.allotment[a:b]), hardblocked=sum(row.hardblocked[a:b]), held=sum(row.held[a:b]),
                sold=sum(row.sold[a:b]),
                released=sum(released.get((room_type_id, night), 0) for night in row.dates[a:b]),
                available=sum(row.available[a:b]), overcommitted=sum(row.overcommitted[a:b]),
                closed_nights=sum(row.closed[a:b]),
            ))
    return out


def released_by_night(slots: Iterable[tuple[int, HardblockSlot]]) -> dict[tuple[int, dt.date], int]:
    """(room type, block slot) pairs as rooms released per (room type, night)."""
    out: dict[tuple[int, dt.date], int] = {}
    for room_type_id, slot in slots:
        if slot.released:
            key = (room_type_id, slot.date)
            out[key] = out.get(key, 0) + slot.released
    return out


@dataclass(frozen=True, slots=True)
class PickupRow:
    hardblock_id: int
    blocked: int  # room nights the block held over the range
    picked_up: int  # booked from it (held and confirmed)
    released: int  # given back to the pool unsold
    remaining: int  # still unsold and unreleased

    @property
    def pickup_percent(self) -> Decimal | None:
        return percent(self.picked_up, self.blocked)

    @property
    def wash_percent(self) -> Decimal | None:
        """Released unsold over blocked: what the block's agency did not sell."""
        return percent(self.released, self.blocked)


def pickup(hardblock_id: int, slots: Sequence[HardblockSlot]) -> PickupRow:
    """A block's slots over a range, added up."""
    return PickupRow(
        hardblock_id=hardblock_id, blocked=sum(s.size for s in slots), picked_up=sum(s.booked for s in slots),
        released=sum(s.released for s in slots), remaining=sum(s.available for s in slots),
    )
