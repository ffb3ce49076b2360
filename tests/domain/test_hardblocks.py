from datetime import UTC, date, datetime, timedelta

import pytest

from domain import check_hardblock, effective_released_nights, release_at
from tests.domain.factories import NOW, amend, block, d, increase


def test_a_night_releases_at_midnight_utc_release_days_before_it():
    assert release_at(d(10), 3) == datetime.combine(d(7), datetime.min.time(), tzinfo=UTC)
    assert block(release_days=3).release_at(d(10)) == release_at(d(10), 3)
    # asked about the first nights there are, it stops at the first day rather than overflow
    assert release_at(date(1, 1, 2), 5) == datetime(1, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("terms", "now", "released"),
    [
        (block(release_days=3), release_at(d(2), 3) - timedelta(microseconds=1), False),
        (block(release_days=3), release_at(d(2), 3), True),
        (block(release_days=3, released_nights=frozenset({d(2)})), NOW, True),
        (block(release_days=3, released_nights=frozenset({d(1)})), NOW, False),
        (block(release_days=3, released_at=NOW), NOW, True),
    ],
)
def test_when_a_night_is_released(terms, now, released):
    assert terms.is_released(d(2), now) is released


@pytest.mark.parametrize(
    ("start", "end", "rooms", "release_days", "field"),
    [(0, 3, 1, 0, None), (3, 3, 1, 0, "to"), (0, 3, 0, 0, "rooms"), (0, 3, 2, -1, "releaseDays"),
     (0, 3, 2, 365, None), (0, 3, 2, 366, "releaseDays")],
)
def test_check_hardblock(start, end, rooms, release_days, field):
    problem = check_hardblock(d(start), d(end), rooms, release_days)
    assert (problem.field if problem else None) == field


def test_a_manual_release_stands_until_a_later_live_amendment_of_the_block_sets_the_night():
    released = {d(1): NOW, d(2): NOW, d(3): NOW}
    events = [
        amend(1, 1, 0, 2, 3, at=NOW + timedelta(hours=1)),  # re-grows night 1 after its release
        amend(2, 1, 1, 2, 0, at=NOW - timedelta(hours=1)),  # before the release: the release stands
        amend(3, 1, 2, 3, 4, at=NOW + timedelta(hours=2), voided=True),  # voided: ignored
        amend(4, 2, 3, 4, 4, at=NOW + timedelta(hours=2)),  # another block
        increase(5, 3, 4, 1, at=NOW + timedelta(hours=2)),  # not an amendment
    ]
    assert effective_released_nights(1, released, events) == {d(2), d(3)}
    assert effective_released_nights(1, released, events[1:]) == {d(1), d(2), d(3)}
