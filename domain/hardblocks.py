"""Hardblocks: rooms reserved for one agency, resized per night by BLOCK_AMENDMENT events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from domain.contracts import MAX_RELEASE_DAYS
from domain.errors import InvalidInput
from domain.events import AllotmentEvent, EventKind
from domain.nights import DEFAULT_TIME_ZONE, check_range, local_midnight, nights


class HardblockStatus(StrEnum):
    ACTIVE = "ACTIVE"
    RELEASED = "RELEASED"


def release_at(night: date, release_days: int, tz: str = DEFAULT_TIME_ZONE) -> datetime:
    """When the hotel's (time zone `tz`) unsold rooms on `night` return to the pool on their own:
    the hotel-local midnight `release_days` days before it (never before the first representable
    day, whatever dates a caller asks about)."""
    return local_midnight(date.fromordinal(max(night.toordinal() - release_days, 1)), tz)


@dataclass(frozen=True, slots=True)
class HardblockTerms:
    """Baseline size `rooms` on [start, end); BLOCK_AMENDMENT events override it per night.

    `released_at` set: the whole block was released then. `released_nights`: nights released
    by hand and not re-grown since (see `effective_released_nights`). Every other night
    releases itself at `release_at(night, release_days, time_zone)`; `time_zone` is the hotel's.
    """

    id: int
    room_type_id: int
    agency_id: int
    start: date
    end: date
    rooms: int
    release_days: int
    released_at: datetime | None = None
    released_nights: frozenset[date] = frozenset()
    time_zone: str = DEFAULT_TIME_ZONE

    def release_at(self, night: date) -> datetime:
        return release_at(night, self.release_days, self.time_zone)

    def is_released(self, night: date, now: datetime) -> bool:
        return self.released_at is not None or night in self.released_nights or now >= self.release_at(night)


def effective_released_nights(
    hardblock_id: int, releases: Mapping[date, datetime], events: Iterable[AllotmentEvent]
) -> frozenset[date]:
    """The nights whose manual release still stands: released (at the time given) and not set
    again by a live amendment of the block effective after that. An amendment is how a released
    night is re-grown, and it checks the pool; voiding it brings the release back."""
    amended: dict[date, datetime] = {}
    for event in events:
        if event.kind is not EventKind.BLOCK_AMENDMENT or event.hardblock_id != hardblock_id or event.voided:
            continue
        for night in nights(event.start, event.end):
            if night in releases:
                amended[night] = max(event.effective_at, amended.get(night, event.effective_at))
    return frozenset(night for night, at in releases.items() if night not in amended or at > amended[night])


def check_hardblock(start: date, end: date, rooms: int, release_days: int) -> InvalidInput | None:
    if problem := check_range(start, end):
        return problem
    if rooms <= 0:
        return InvalidInput("rooms", "must be positive")
    if not 0 <= release_days <= MAX_RELEASE_DAYS:
        return InvalidInput("releaseDays", f"must be 0 to {MAX_RELEASE_DAYS}")
    return None
