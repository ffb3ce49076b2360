"""audit_due_dates: which business dates a hotel's night audit closes now."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from domain import audit_due_dates

DAY = date(2027, 3, 10)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@pytest.mark.parametrize(("now", "last", "first", "expected"), [
    # the close hour has passed: up to yesterday, from the day after the last audit
    (at(DAY, 2), DAY - timedelta(days=4), None, days(DAY - timedelta(days=3), DAY - timedelta(days=1))),
    # not yet: yesterday waits, the day before is due
    (at(DAY, 1, 59), DAY - timedelta(days=4), None, days(DAY - timedelta(days=3), DAY - timedelta(days=2))),
    # up to date
    (at(DAY, 3), DAY - timedelta(days=1), None, []),
    (at(DAY, 1), DAY - timedelta(days=2), DAY - timedelta(days=9), []),
    # never audited: from the first day with activity
    (at(DAY, 5), None, DAY - timedelta(days=2), days(DAY - timedelta(days=2), DAY - timedelta(days=1))),
    # nothing ever happened
    (at(DAY, 5), None, None, []),
    # activity only in the future
    (at(DAY, 5), None, DAY + timedelta(days=3), []),
    # capped: never more than max_days back
    (at(DAY, 5), None, DAY - timedelta(days=100), days(DAY - timedelta(days=7), DAY - timedelta(days=1))),
    (at(DAY, 5), DAY - timedelta(days=50), None, days(DAY - timedelta(days=7), DAY - timedelta(days=1))),
])
def test_due_dates(now, last, first, expected):
    assert audit_due_dates(now, "UTC", 2, last, first, 7) == expected


def test_the_hour_and_the_days_are_the_hotels():
    # 23:30 UTC on the 9th is 08:30 on the 10th in Tokyo: the 9th is over and past the hour there.
    now = at(DAY - timedelta(days=1), 23, 30)
    assert audit_due_dates(now, "Asia/Tokyo", 2, DAY - timedelta(days=2), None, 30) == [DAY - timedelta(days=1)]
    assert audit_due_dates(now, "UTC", 2, DAY - timedelta(days=2), None, 30) == []
