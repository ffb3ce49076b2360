from __future__ import annotations

from datetime import timedelta

import pytest

from domain import BookingStatus, HardblockSlot, InvalidInput, compute_hardblock_slots, release_at
from tests.domain.factories import NOW, amend, block, booking, d, hold


def slots(terms, events=(), bookings=(), start=None, end=None, now=NOW):
    return compute_hardblock_slots(
        terms, list(events), list(bookings), None if start is None else d(start), None if end is None else d(end), now
    )


def series(result, name):
    return [getattr(slot, name) for slot in result]


def test_a_slot_shows_size_booked_and_what_is_left():
    bookings = [
        booking(1, 0, 2, rooms=1, hardblock_id=1),
        hold(2, 1, 3, rooms=2, hardblock_id=1),
        hold(3, 0, 3, rooms=2, hardblock_id=1, expires_at=NOW),  # expired: counts nowhere
        booking(4, 0, 3, rooms=2, hardblock_id=1, status=BookingStatus.CANCELLED),
        booking(5, 0, 3, rooms=2, hardblock_id=2),  # another block
        booking(6, 0, 3, rooms=2),  # the pool
    ]
    result = slots(block(start=0, end=3, rooms=3, release_days=2), bookings=bookings)
    assert result[0] == HardblockSlot(
        hardblock_id=1, date=d(0), size=3, booked=1, available=2, released=0, release_at=release_at(d(0), 2)
    )
    assert series(result, "booked") == [1, 3, 2]
    assert series(result, "available") == [2, 0, 1]
    assert series(result, "released") == [0, 0, 0]


def test_a_released_night_returns_its_unsold_rooms():
    terms = block(start=0, end=3, rooms=3, release_days=2, released_nights=frozenset({d(2)}))
    now = release_at(d(0), 2)  # night 0 auto-released, night 1 not yet, night 2 by hand
    result = slots(terms, bookings=[booking(1, 0, 3, rooms=1, hardblock_id=1)], now=now)
    assert series(result, "released") == [2, 0, 2]
    assert series(result, "available") == [0, 2, 0]
    assert [slot.committed for slot in result] == [1, 3, 1]


def test_a_released_block_has_nothing_left_to_sell():
    result = slots(block(rooms=2, released_at=NOW), bookings=[booking(1, 0, 1, rooms=2, hardblock_id=1)])
    assert series(result, "released")[:2] == [0, 2]
    assert series(result, "available") == [0] * 5


def test_the_default_range_is_the_block_with_its_extensions():
    events = [amend(1, 1, 4, 6, 2), amend(2, 1, -2, -1, 1), amend(3, 1, 8, 9, 0), amend(4, 1, 9, 10, 3, voided=True)]
    result = slots(block(start=0, end=3, rooms=1), events)
    assert [slot.date for slot in result] == [d(i) for i in range(-2, 6)]
    assert series(result, "size") == [1, 0, 1, 1, 1, 0, 2, 2]


def test_the_default_range_includes_nights_booked_after_they_were_removed():
    result = slots(block(start=0, end=2, rooms=1), [amend(1, 1, 0, 3, 0)], [booking(1, 2, 3, hardblock_id=1)])
    assert [slot.date for slot in result] == [d(0), d(1), d(2)]
    assert series(result, "size") == [0, 0, 0]
    assert series(result, "booked") == [0, 0, 1]


def test_a_block_amended_to_nothing_keeps_its_original_range():
    result = slots(block(start=0, end=2, rooms=1), [amend(1, 1, -1, 3, 0)])
    assert [slot.date for slot in result] == [d(0), d(1)]
    assert series(result, "size") == [0, 0]


def test_an_explicit_range_may_reach_past_the_block():
    result = slots(block(start=0, end=2, rooms=2), start=-1, end=3)
    assert series(result, "size") == [0, 2, 2, 0]
    assert [slot.release_at for slot in result] == [release_at(d(i), 0) for i in range(-1, 3)]


def test_either_bound_can_default_on_its_own():
    terms = block(start=0, end=4, rooms=2)
    assert [slot.date for slot in slots(terms, start=2)] == [d(2), d(3)]
    assert [slot.date for slot in slots(terms, end=1)] == [d(0)]


def test_a_reversed_range_is_refused():
    with pytest.raises(InvalidInput):
        slots(block(), start=3, end=1)


def test_amendments_of_other_blocks_do_not_apply():
    result = slots(block(start=0, end=2, rooms=2), [amend(1, 2, 0, 2, 5)], start=0, end=2)
    assert series(result, "size") == [2, 2]


def test_slot_expiry_is_computed_not_swept():
    expiring = hold(1, 0, 1, rooms=2, hardblock_id=1, expires_at=NOW + timedelta(minutes=1))
    before = slots(block(rooms=2), bookings=[expiring], start=0, end=1)
    after = slots(block(rooms=2), bookings=[expiring], start=0, end=1, now=NOW + timedelta(minutes=1))
    assert (before[0].available, after[0].available) == (0, 2)


def test_a_window_on_the_extension_alone_sees_only_the_extension():
    bookings = [booking(1, 0, 1, hardblock_id=1), booking(2, 5, 6, rooms=2, hardblock_id=1)]
    result = slots(block(start=0, end=2, rooms=2), [amend(1, 1, 4, 7, 3)], bookings, start=5, end=7)
    assert series(result, "size") == [3, 3]
    assert series(result, "booked") == [2, 0]
