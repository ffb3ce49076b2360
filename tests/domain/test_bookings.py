from datetime import timedelta

import pytest

from domain import (
    BookingExpired,
    BookingStatus,
    InvalidTransition,
    cancel_status,
    confirm_status,
    counts,
    effective_status,
)
from tests.domain.factories import NOW, hold

HELD, CONFIRMED, CANCELLED, EXPIRED = (
    BookingStatus.HELD,
    BookingStatus.CONFIRMED,
    BookingStatus.CANCELLED,
    BookingStatus.EXPIRED,
)
LATER = NOW + timedelta(minutes=15)
EARLIER = NOW - timedelta(seconds=1)


@pytest.mark.parametrize(
    ("status", "expires_at", "effective", "counting"),
    [
        (HELD, LATER, HELD, True),
        (HELD, NOW, EXPIRED, False),  # expired at the very instant of expiry
        (HELD, EARLIER, EXPIRED, False),
        (HELD, None, HELD, True),  # no expiry: never lapses by time
        (CONFIRMED, EARLIER, CONFIRMED, True),  # a confirmed booking keeps its old expiry harmlessly
        (CANCELLED, LATER, CANCELLED, False),
        (EXPIRED, LATER, EXPIRED, False),
    ],
)
def test_a_hold_lapses_by_time_alone(status, expires_at, effective, counting):
    assert effective_status(status, expires_at, NOW) is effective
    assert counts(status, expires_at, NOW) is counting


def test_a_booking_line_counts_like_its_status():
    assert hold(1, 0, 1, expires_at=LATER).counts(NOW)
    assert not hold(1, 0, 1, expires_at=NOW).counts(NOW)


@pytest.mark.parametrize(
    ("status", "expires_at", "outcome"),
    [
        (HELD, LATER, CONFIRMED),
        (CONFIRMED, EARLIER, CONFIRMED),  # idempotent
        (HELD, NOW, BookingExpired),
        (EXPIRED, EARLIER, BookingExpired),
        (CANCELLED, LATER, InvalidTransition),
    ],
)
def test_confirm(status, expires_at, outcome):
    if isinstance(outcome, BookingStatus):
        assert confirm_status(status, expires_at, NOW) is outcome
    else:
        with pytest.raises(outcome):
            confirm_status(status, expires_at, NOW)


def test_an_expired_confirmation_carries_the_expiry():
    with pytest.raises(BookingExpired) as raised:
        confirm_status(HELD, EARLIER, NOW)
    assert raised.value.expires_at == EARLIER
    with pytest.raises(BookingExpired, match="unknown time"):
        confirm_status(EXPIRED, None, NOW)


def test_confirming_a_cancelled_group_names_the_transition():
    with pytest.raises(InvalidTransition) as raised:
        confirm_status(CANCELLED, None, NOW)
    assert (raised.value.entity, raised.value.state, raised.value.action) == ("booking group", "CANCELLED", "confirm")


@pytest.mark.parametrize(
    ("status", "expires_at", "outcome"),
    [
        (HELD, LATER, CANCELLED),
        (CONFIRMED, None, CANCELLED),
        (CANCELLED, None, CANCELLED),  # idempotent
        (HELD, NOW, InvalidTransition),
        (EXPIRED, None, InvalidTransition),
    ],
)
def test_cancel(status, expires_at, outcome):
    if isinstance(outcome, BookingStatus):
        assert cancel_status(status, expires_at, NOW) is outcome
    else:
        with pytest.raises(outcome):
            cancel_status(status, expires_at, NOW)
