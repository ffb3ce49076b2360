from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from domain import check_range, midnight_utc, nights, utc_today


def test_nights_are_half_open():
    assert list(nights(date(2026, 2, 27), date(2026, 3, 2))) == [date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1)]
    assert list(nights(date(2026, 3, 2), date(2026, 3, 2))) == []


def test_a_range_needs_at_least_one_night():
    assert check_range(date(2026, 1, 1), date(2026, 1, 2)) is None
    problem = check_range(date(2026, 1, 2), date(2026, 1, 2))
    assert problem is not None and problem.field == "to"


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [(date(2000, 1, 1), date(2100, 1, 1), None), (date(1999, 12, 31), date(2000, 1, 2), "from"),
     (date(2099, 12, 31), date(2100, 1, 2), "to"), (date(1, 1, 1), date(9999, 12, 31), "from")],
)
def test_nights_stay_within_the_service_window(start, end, field):
    problem = check_range(start, end)
    assert (problem.field if problem else None) == field


def test_today_is_taken_in_utc():
    late_evening_in_new_york = datetime(2026, 1, 1, 22, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert utc_today(late_evening_in_new_york) == date(2026, 1, 2)
    assert midnight_utc(date(2026, 1, 2)) == datetime(2026, 1, 2, tzinfo=UTC)


def test_a_naive_now_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        utc_today(datetime(2026, 1, 1, 12))
