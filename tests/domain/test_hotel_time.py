"""Hotel time (DESIGN.md "Selling rules"): cut-offs at the hotel-local midnight, today the hotel's,
across clock changes. A day begins at the first instant whose local wall-clock time reaches its
midnight: a skipped midnight at the change, a repeated one at its first occurrence."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import (
    ContractTerms,
    HardblockTerms,
    InvalidInput,
    check_time_zone,
    compute_calendar,
    compute_hardblock_slots,
    hotel_today,
    local_midnight,
    midnight_utc,
    release_at,
    zone_info,
    utc_today,
)
from tests.domain.factories import eur
from tests.domain.reference import each_night, reference_calendar, reference_slot
from tests.domain.strategies import TIME_ZONES, Scenario, scenarios

ONE_DAY = timedelta(days=1)
TICK = timedelta(microseconds=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def first_instant_reaching_midnight(day: date, tz: str) -> datetime:
    """The definition read literally: minute by minute (these zones change clocks on whole
    minutes) from well before any offset could put the day's midnight."""
    zone, wall = ZoneInfo(tz), datetime.combine(day, time(0))
    at = datetime.combine(day, time(0), tzinfo=UTC) - timedelta(hours=16)
    while at.astimezone(zone).replace(tzinfo=None) < wall:
        at += timedelta(minutes=1)
    return at


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["UTC", "Europe/Paris", "Pacific/Auckland", "America/New_York", "Etc/GMT+5"])
def test_iana_names_are_time_zones(name):
    assert check_time_zone(name) is None
    assert datetime(2026, 1, 1, tzinfo=zone_info(name)).utcoffset() is not None


@pytest.mark.parametrize(
    "name", ["", "utc", "Europe", "Nowhere/Land", "/etc/passwd", "../etc/passwd", "localtime", "Factory", "+02:00"]
)
def test_anything_else_is_refused(name):
    problem = check_time_zone(name)
    assert (problem.field, problem.message) == ("timeZone", "must be an IANA time zone name such as Europe/Paris")
    with pytest.raises(InvalidInput):
        zone_info(name)


def test_utc_is_the_default_and_needs_no_tz_database():
    now = datetime(2026, 1, 1, 23, 30, tzinfo=UTC)
    assert zone_info("UTC") is UTC
    assert hotel_today(now) == utc_today(now) == date(2026, 1, 1)
    assert local_midnight(date(2026, 1, 1)) == midnight_utc(date(2026, 1, 1))


def test_a_naive_now_is_refused_in_every_zone():
    with pytest.raises(ValueError, match="timezone-aware"):
        hotel_today(datetime(2026, 1, 1, 12), "Pacific/Auckland")


# --- when a day begins ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "day", "begins"),
    [
        # New York springs forward at 02:00 and falls back at 02:00: midnight is plain either side
        ("America/New_York", date(2025, 3, 9), utc(2025, 3, 9, 5)),  # EST
        ("America/New_York", date(2025, 3, 10), utc(2025, 3, 10, 4)),  # EDT
        ("America/New_York", date(2025, 11, 2), utc(2025, 11, 2, 4)),  # EDT
        ("America/New_York", date(2025, 11, 3), utc(2025, 11, 3, 5)),  # EST
        # Auckland falls back at 03:00 (April) and springs forward at 02:00 (September)
        ("Pacific/Auckland", date(2025, 4, 6), utc(2025, 4, 5, 11)),  # NZDT
        ("Pacific/Auckland", date(2025, 4, 7), utc(2025, 4, 6, 12)),  # NZST
        ("Pacific/Auckland", date(2025, 9, 28), utc(2025, 9, 27, 12)),  # NZST
        ("Pacific/Auckland", date(2025, 9, 29), utc(2025, 9, 28, 11)),  # NZDT
        # Havana skips midnight (00:00 -> 01:00): the day begins at the change
        ("America/Havana", date(2025, 3, 9), utc(2025, 3, 9, 5)),
        # ... and repeats it (01:00 -> 00:00): the first occurrence, CDT, not the second at 05:00Z
        ("America/Havana", date(2025, 11, 2), utc(2025, 11, 2, 4)),
        # Toronto, 1919: 23:30 -> 00:30, midnight inside the gap: the change, not 00:00 EST
        ("America/Toronto", date(1919, 3, 31), utc(1919, 3, 31, 4, 30)),
        # Samoa skipped 2011-12-30 altogether: the day begins and ends at the same instant
        ("Pacific/Apia", date(2011, 12, 30), utc(2011, 12, 30, 10)),
        ("Pacific/Apia", date(2011, 12, 31), utc(2011, 12, 30, 10)),
        # Goose Bay fell back across midnight (00:01 ADT -> 23:01 AST): midnight's first occurrence
        ("America/Goose_Bay", date(2010, 11, 7), utc(2010, 11, 7, 3)),
    ],
)
def test_a_day_begins_at_its_local_midnight_or_the_first_instant_after_it(tz, day, begins):
    assert local_midnight(day, tz) == begins == first_instant_reaching_midnight(day, tz)
    assert hotel_today(begins, tz) >= day > hotel_today(begins - TICK, tz)


def test_a_day_that_begins_again_on_the_clock_has_begun_all_the_same():
    # 03:30Z: Goose Bay's clocks read 23:30 on the 6th a second time, but the 7th began at 03:00Z
    now = utc(2010, 11, 7, 3, 30)
    assert now.astimezone(ZoneInfo("America/Goose_Bay")).date() == date(2010, 11, 6)
    assert hotel_today(now, "America/Goose_Bay") == date(2010, 11, 7)


def test_the_first_representable_day_does_not_overflow():
    assert local_midnight(date(1, 1, 1), "Pacific/Auckland") == datetime.min.replace(tzinfo=UTC)
    assert release_at(date(1, 1, 3), 5, "Pacific/Auckland") == datetime.min.replace(tzinfo=UTC)


# Zones with clock changes of every kind, and the days around them.
CHANGES = [
    ("America/New_York", date(2025, 3, 9)),
    ("America/New_York", date(2025, 11, 2)),
    ("Pacific/Auckland", date(2025, 4, 6)),
    ("Pacific/Auckland", date(2025, 9, 28)),
    ("America/Havana", date(2025, 3, 9)),
    ("America/Havana", date(2025, 11, 2)),
    ("America/Santiago", date(2025, 4, 6)),  # 24:00 -> 23:00: the hour before midnight repeats
    ("America/Santiago", date(2025, 9, 7)),  # 00:00 -> 01:00
    ("Asia/Beirut", date(2025, 3, 30)),
    ("Australia/Lord_Howe", date(2025, 4, 6)),  # half-hour changes
    ("America/Goose_Bay", date(2010, 11, 7)),
    ("Pacific/Apia", date(2011, 12, 30)),
    ("America/Toronto", date(1919, 3, 31)),
]


@pytest.mark.parametrize(("tz", "day"), CHANGES)
def test_today_is_the_latest_day_begun_every_quarter_hour_around_a_change(tz, day):
    for night in each_night(day - ONE_DAY, day + 3 * ONE_DAY):
        assert local_midnight(night, tz) == first_instant_reaching_midnight(night, tz)
    now = local_midnight(day - ONE_DAY, tz)
    while now < local_midnight(day + 2 * ONE_DAY, tz):
        today = hotel_today(now, tz)
        assert local_midnight(today, tz) <= now < local_midnight(today + ONE_DAY, tz)
        now += timedelta(minutes=15)


ZONES = sorted(available_timezones() - {"localtime", "Factory"})


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ZONES), st.datetimes(datetime(2000, 1, 1), datetime(2040, 1, 1), timezones=st.just(UTC)))
def test_now_is_past_a_days_midnight_exactly_when_that_day_has_come(tz, now):
    today = hotel_today(now, tz)
    assert local_midnight(today, tz) <= now < local_midnight(today + ONE_DAY, tz)
    assert local_midnight(today - ONE_DAY, tz) <= local_midnight(today, tz)


# --- the pool --------------------------------------------------------------------------------------


def pool(tz: str, first: date, nights: int, release_days: int, now: datetime):
    terms = ContractTerms(1, 1, first, first + nights * ONE_DAY, 5, eur(100), release_days)
    return compute_calendar([terms], [], [], [], [1], first, first + nights * ONE_DAY, now, tz)[1]


def test_new_york_cut_offs_follow_the_spring_change():
    row = pool("America/New_York", date(2025, 3, 9), 4, 1, now=utc(2025, 3, 1))
    assert row.release_date == (date(2025, 3, 8), date(2025, 3, 9), date(2025, 3, 10), date(2025, 3, 11))
    assert row.release_at == (utc(2025, 3, 8, 5), utc(2025, 3, 9, 5), utc(2025, 3, 10, 4), utc(2025, 3, 11, 4))
    # at 04:59:59Z it is still the 8th in New York: the night of the 10th is on sale, then not
    assert pool("America/New_York", date(2025, 3, 9), 4, 1, utc(2025, 3, 9, 5) - TICK).available == (0, 5, 5, 5)
    assert pool("America/New_York", date(2025, 3, 9), 4, 1, utc(2025, 3, 9, 5)).available == (0, 0, 5, 5)
    assert pool("America/New_York", date(2025, 3, 9), 4, 1, utc(2025, 3, 10, 4)).available == (0, 0, 0, 5)
    # the same nights in UTC would have closed hours earlier
    assert pool("UTC", date(2025, 3, 9), 4, 1, utc(2025, 3, 9, 5) - TICK).available == (0, 0, 5, 5)


def test_auckland_cut_offs_follow_the_autumn_change():
    row = pool("Pacific/Auckland", date(2025, 4, 6), 3, 0, now=utc(2025, 3, 1))
    assert row.release_at == (utc(2025, 4, 5, 11), utc(2025, 4, 6, 12), utc(2025, 4, 7, 12))
    # Auckland is half a day ahead: on the evening of the 5th (UTC) the night of the 6th has gone
    assert pool("Pacific/Auckland", date(2025, 4, 6), 3, 0, utc(2025, 4, 5, 11) - TICK).available == (5, 5, 5)
    assert pool("Pacific/Auckland", date(2025, 4, 6), 3, 0, utc(2025, 4, 5, 11)).available == (0, 5, 5)
    assert pool("Pacific/Auckland", date(2025, 4, 6), 3, 0, utc(2025, 4, 6, 12) - TICK).available == (0, 5, 5)
    assert pool("Pacific/Auckland", date(2025, 4, 6), 3, 0, utc(2025, 4, 6, 12)).available == (0, 0, 5)


def test_a_skipped_midnight_cuts_off_at_the_change_and_a_repeated_one_at_its_first_occurrence():
    gap = pool("America/Havana", date(2025, 3, 10), 1, 1, now=utc(2025, 3, 1))
    assert gap.release_at == (utc(2025, 3, 9, 5),)
    assert pool("America/Havana", date(2025, 3, 10), 1, 1, utc(2025, 3, 9, 5) - TICK).available == (5,)
    assert pool("America/Havana", date(2025, 3, 10), 1, 1, utc(2025, 3, 9, 5)).available == (0,)

    fold = pool("America/Havana", date(2025, 11, 3), 1, 1, now=utc(2025, 11, 1))
    assert fold.release_at == (utc(2025, 11, 2, 4),)
    assert pool("America/Havana", date(2025, 11, 3), 1, 1, utc(2025, 11, 2, 4) - TICK).available == (5,)
    # the clocks read 00:30 again at 05:30Z: still past the cut-off
    assert pool("America/Havana", date(2025, 11, 3), 1, 1, utc(2025, 11, 2, 5, 30)).available == (0,)


# --- hardblocks ------------------------------------------------------------------------------------


def test_a_hardblock_releases_at_the_hotel_local_midnight():
    terms = HardblockTerms(1, 1, 1, date(2025, 9, 28), date(2025, 9, 30), 3, 1, time_zone="Pacific/Auckland")
    assert terms.release_at(date(2025, 9, 28)) == utc(2025, 9, 26, 12)
    assert terms.release_at(date(2025, 9, 30)) == utc(2025, 9, 28, 11)  # after the change: NZDT

    def released(now: datetime) -> list[int]:
        return [slot.released for slot in compute_hardblock_slots(terms, [], [], None, None, now)]

    assert released(utc(2025, 9, 27, 12) - TICK) == [3, 0]
    assert released(utc(2025, 9, 27, 12)) == [3, 3]
    slots = compute_hardblock_slots(terms, [], [], None, None, utc(2025, 9, 1))
    assert [slot.release_at for slot in slots] == [utc(2025, 9, 26, 12), utc(2025, 9, 27, 12)]
    for now in (utc(2025, 9, 27, 12) - TICK, utc(2025, 9, 27, 12)):
        slots = compute_hardblock_slots(terms, [], [], None, None, now)
        assert [terms.is_released(slot.date, now) for slot in slots] == [slot.released > 0 for slot in slots]


def test_a_calendar_refuses_hardblocks_of_another_time_zone():
    terms = HardblockTerms(1, 1, 1, date(2025, 9, 28), date(2025, 9, 30), 3, 1, time_zone="Pacific/Auckland")
    with pytest.raises(ValueError, match="hardblocks in Pacific/Auckland on a calendar in UTC"):
        compute_calendar([], [], [terms], [], [1], date(2025, 9, 28), date(2025, 9, 30), utc(2025, 9, 1))


# --- the pipeline against the reference, in several zones -------------------------------------------

SETTINGS = settings(max_examples=120, deadline=None)


@SETTINGS
@given(scenarios(time_zones=TIME_ZONES))
def test_the_calendar_in_a_time_zone_equals_the_reference(s: Scenario):
    assert {rt: list(row.cells()) for rt, row in s.calendar().items()} == reference_calendar(*s.inputs())
    for block in s.blocks:
        got = compute_hardblock_slots(block, s.events, s.bookings, s.start, s.end, s.now)
        assert got == [
            reference_slot(block, s.events, s.bookings, night, s.now) for night in each_night(s.start, s.end)
        ]

