"""Nights are hotel-local dates; ranges are half-open [start, end) like check-in/check-out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

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


# --- hotel time ---------------------------------------------------------------------------------
#
# A hotel's day d begins at the first instant whose local wall-clock time is on or after d's
# midnight. Usually that is local 00:00; a midnight skipped by a clock change (Havana's spring
# change goes 00:00 -> 01:00) begins the day at the change itself, the first instant after it;
# a midnight that happens twice (Havana's autumn change goes 01:00 -> 00:00) begins it at its
# first occurrence (fold=0). "Today" is the latest day that has begun, so for every zone
#     now >= local_midnight(d, tz)  exactly when  d <= hotel_today(now, tz).

DEFAULT_TIME_ZONE = "UTC"
# Names the tz database knows that are not a place: the server's own zone, and tzdata's "unset".
_NOT_A_PLACE = frozenset({"localtime", "Factory"})


@cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones()) - _NOT_A_PLACE


def check_time_zone(name: str) -> InvalidInput | None:
    if name == DEFAULT_TIME_ZONE or name in _known_zones():
        return None
    return InvalidInput("timeZone", "must be an IANA time zone name such as Europe/Paris")


@cache
def zone_info(name: str) -> tzinfo:
    """The tzinfo of an IANA name (UTC itself needs no tz database)."""
    if name == DEFAULT_TIME_ZONE:
        return UTC
    if problem := check_time_zone(name):
        raise problem
    return ZoneInfo(name)


def local_midnight(day: date, tz: str = DEFAULT_TIME_ZONE) -> datetime:
    """The UTC instant the hotel's `day` begins (see above)."""
    if tz == DEFAULT_TIME_ZONE:
        return midnight_utc(day)
    zone = zone_info(tz)
    wall = datetime.combine(day, time(0))
    try:
        # fold=0 reads a repeated wall time as its first occurrence, and a skipped one with the
        # offset before the change: an instant at or after the change.
        at = wall.replace(tzinfo=zone).astimezone(UTC)
    except OverflowError:  # year 1, east of Greenwich: the day began before datetime.min
        return datetime.min.replace(tzinfo=UTC)
    if at.astimezone(zone).replace(tzinfo=None) == wall:
        return at
    # Skipped. The change lies after the wall time read with the offset after it (fold=1) and no
    # later than `at`; changes fall on whole seconds, so bisect on seconds for the first instant
    # whose wall time reaches midnight (it is `at` itself unless midnight is inside the gap,
    # as in Toronto on 1919-03-31: 23:30 -> 00:30).
    lo = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    hi = int(at.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def hotel_today(now: datetime, tz: str = DEFAULT_TIME_ZONE) -> date:
    """The hotel's local date at `now`: the latest day that has begun (see above)."""
    if tz == DEFAULT_TIME_ZONE:
        return utc_today(now)
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    day = now.astimezone(zone_info(tz)).date()
    # A change that goes back across midnight (Goose Bay until 2011: 00:01 -> 23:01) shows the
    # previous date again for a while; the day has begun all the same.
    following = day + timedelta(days=1)
    return following if local_midnight(following, tz) <= now else day


def audit_due_dates(now: datetime, tz: str, close_hour: int, last_closed: date | None,
                    first_activity: date | None, max_days: int) -> list[date]:
    """The hotel's business dates a night audit should close now, oldest first: from the day after
    the last one closed (none yet: the first day anything happened), never more than `max_days`
    back, to yesterday once the hotel-local clock has passed `close_hour` (before it, the day
    before yesterday). A missed day is thus caught up after downtime."""
    today = hotel_today(now, tz)
    passed = now.astimezone(zone_info(tz)).hour >= close_hour
    latest = today - timedelta(days=1 if passed else 2)
    start = first_activity if last_closed is None else last_closed + timedelta(days=1)
    if start is None:
        return []
    start = max(start, today - timedelta(days=max_days))
    return list(nights(start, max(start, latest + timedelta(days=1))))
