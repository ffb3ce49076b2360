"""Nights are hotel-local dates; ranges are half-open [start, end) like check-in/check-out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

from domain.errors import InvalidInput


def nights(start: date, end: date) -> Iterator[date]:
    for offset in range((end - start).days):
        yield start + timedelta(days=offset)


# The nights the service deals in: contracts, events and blocks outside them are input errors
# (they would only ever be typos, and far dates overflow date arithmetic).
EARLIEST_NIGHT = date(2000, 1, 1)
LATEST_NIGHT = date(2100, 1, 1)


def check_range(start: date, end: date) -> InvalidInput | None:
    if start >= end:
        return InvalidInput("to", "must be after from (ranges are half-open over nights)")
    if start < EARLIEST_NIGHT:
        return InvalidInput("from", f"must be on or after {EARLIEST_NIGHT.isoformat()}")
    if end > LATEST_NIGHT:
        return InvalidInput("to", f"must be on or before {LATEST_NIGHT.isoformat()}")
    return None


def midnight_utc(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def utc_today(now: datetime) -> date:
    """The UTC date of `now`: `now >= midnight_utc(d)` exactly when `d <= utc_today(now)`."""
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC).date()
