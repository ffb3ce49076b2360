"""The per-cell rules of DESIGN.md "Domain semantics", one example each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from domain import BookingStatus, InvalidInput, OutsideCalendar, PoolCell, compute_calendar
from tests.domain.factories import (
    NOW,
    T0,
    amend,
    block,
    booking,
    calendar,
    cell,
    column,
    contract,
    d,
    eur,
    hold,
    increase,
    rate_change,
    reduce,
    stop_sell,
)

# given: a 3-night window, one contract of 10 rooms on nights 0-1 only
WINDOW = dict(start=0, end=3)


# --- contracts ---------------------------------------------------------------------------


def test_a_contract_gives_its_nights_allotment_rate_and_release_date():
    rows = calendar([contract(start=0, end=2, allotment=10, rate="100", release_days=3)], **WINDOW)

    assert cell(rows, 0) == PoolCell(
        room_type_id=1,
        date=d(0),
        allotment=10,
        hardblocked=0,
        held=0,
        sold=0,
        available=10,
        overcommitted=0,
        closed=False,
        release_date=d(-3),
        release_at=datetime(2026, 4, 28, tzinfo=UTC),  # midnight UTC of the release date
        rate=eur(100),
    )
    # half-open: night 2 is the contract's `to`, not one of its nights
    assert cell(rows, 2) == PoolCell(1, d(2), 0, 0, 0, 0, 0, 0, False, None, None, None)


@pytest.mark.parametrize("order", [1, -1])
def test_overlapping_contracts_add_allotments_and_the_highest_id_governs(order):
    contracts = [
        contract(id=7, start=0, end=2, allotment=4, rate="90", release_days=1),
        contract(id=3, start=1, end=3, allotment=6, rate="120", release_days=5),
    ][::order]
    rows = calendar(contracts, **WINDOW)

    assert column(rows, "allotment") == [4, 10, 6]
    assert column(rows, "rate") == [eur(90), eur(90), eur(120)]
    assert column(rows, "release_date") == [d(-1), d(0), d(-3)]


def test_an_inactive_contract_contributes_nothing_even_with_a_higher_id():
    rows = calendar(
        [contract(id=1, allotment=4, rate="90"), contract(id=2, allotment=6, rate="120", active=False)], **WINDOW
    )
    assert column(rows, "allotment") == [4, 4, 4]
    assert column(rows, "rate") == [eur(90)] * 3


def test_contracts_and_events_stay_with_their_room_type():
    rows = calendar([contract(rt=2, allotment=5)], [increase(1, 0, 3, 2, rt=2)], rts=(1, 2), **WINDOW)
    assert column(rows, "allotment", rt=1) == [0, 0, 0]
    assert column(rows, "allotment", rt=2) == [7, 7, 7]


# --- allotment events --------------------------------------------------------------------


def test_increases_and_reductions_add_up_per_night():
    events = [increase(1, 0, 2, 3), reduce(2, 1, 3, 5), increase(3, 1, 2, 1)]
    rows = calendar([contract(allotment=10)], events, **WINDOW)
    assert column(rows, "allotment") == [13, 9, 5]


@pytest.mark.parametrize(
    "effective",
    [(T0, T0 + timedelta(hours=1)), (T0 + timedelta(hours=1), T0)],
    ids=["reduce-first", "increase-first"],
)
def test_allotment_is_summed_before_it_is_clamped_so_order_never_matters(effective):
    reduce_at, increase_at = effective
    events = [reduce(1, 0, 1, 5, at=reduce_at), increase(2, 0, 1, 3, at=increase_at)]
    rows = calendar([contract(allotment=0)], events, **WINDOW)
    # 0 - 5 + 3 = -2, shown as 0 (not 3, which clamping after each event in order would give)
    assert cell(rows, 0).allotment == 0


def test_a_voided_event_is_ignored():
    rows = calendar(
        [contract(allotment=10)], [reduce(1, 0, 3, 4, voided=True), stop_sell(2, 0, 3, voided=True)], **WINDOW
    )
    assert column(rows, "allotment") == [10, 10, 10]
    assert column(rows, "closed") == [False, False, False]


def test_a_stop_sell_closes_nights_but_keeps_what_was_sold():
    rows = calendar([contract(allotment=10)], [stop_sell(1, 1, 2)], bookings=[booking(1, 0, 3, rooms=2)], **WINDOW)
    assert column(rows, "closed") == [False, True, False]
    assert column(rows, "available") == [8, 0, 8]
    assert column(rows, "sold") == [2, 2, 2]
    assert column(rows, "allotment") == [10, 10, 10]


def test_overlapping_stop_sells_close_the_union_of_their_nights():
    rows = calendar([contract()], [stop_sell(1, 0, 2), stop_sell(2, 1, 3)], start=0, end=4)
    assert column(rows, "closed") == [True, True, True, False]


def test_the_last_rate_change_in_total_order_wins():
    events = [
        rate_change(5, 0, 3, "110", at=T0 + timedelta(hours=2)),  # latest: wins where it applies
        rate_change(9, 1, 3, "130", at=T0 + timedelta(hours=1)),  # higher id, but earlier
        rate_change(2, 2, 3, "150", at=T0 + timedelta(hours=2)),  # same time as 5, lower id: loses
    ]
    rows = calendar([contract(rate="100")], events, start=0, end=4)
    assert column(rows, "rate") == [eur(110), eur(110), eur(110), eur(100)]


def test_a_rate_change_on_a_night_without_contract_still_prices_it():
    rows = calendar([], [rate_change(1, 0, 1, "80")], **WINDOW)
    assert cell(rows, 0).rate == eur(80)
    assert cell(rows, 0).available == 0  # but nothing covers it, so nothing is for sale


def test_a_hardblock_amendment_does_not_touch_the_allotment():
    rows = calendar([contract(allotment=10)], [amend(1, 99, 0, 3, 4)], **WINDOW)
    assert column(rows, "allotment") == [10, 10, 10]


def test_events_are_clipped_to_the_window():
    events = [increase(1, -10, 1, 2), reduce(2, 2, 30, 1), stop_sell(3, -5, -1), rate_change(4, 5, 9, "1")]
    rows = calendar([contract(start=-20, end=40, allotment=10)], events, **WINDOW)
    assert column(rows, "allotment") == [12, 10, 9]
    assert column(rows, "closed") == [False, False, False]
    assert column(rows, "rate") == [eur(100)] * 3


# --- bookings ----------------------------------------------------------------------------


def test_pool_bookings_fill_held_and_sold_on_their_nights_only():
    bookings = [
        booking(1, 0, 2, rooms=2),  # CONFIRMED
        hold(2, 1, 2, rooms=3),
        hold(3, 1, 2, rooms=1, expires_at=NOW),  # expired at this instant
        booking(4, 0, 3, rooms=5, status=BookingStatus.CANCELLED),
        booking(5, 0, 3, rooms=5, status=BookingStatus.EXPIRED),
        hold(6, 2, 3, rooms=1, expires_at=NOW + timedelta(microseconds=1)),
    ]
    rows = calendar([contract(allotment=10)], bookings=bookings, **WINDOW)
    assert column(rows, "sold") == [2, 2, 0]
    assert column(rows, "held") == [0, 3, 1]
    assert column(rows, "available") == [8, 5, 9]


def test_bookings_outside_the_window_or_room_types_are_ignored():
    bookings = [booking(1, -5, -1), booking(2, 3, 6), booking(3, 0, 3, rt=2), booking(4, 0, 3, rt=2, hardblock_id=8)]
    rows = calendar([contract()], bookings=bookings, **WINDOW)
    assert column(rows, "sold") == [0, 0, 0]
    assert column(rows, "hardblocked") == [0, 0, 0]


def test_a_reduction_below_commitments_is_shown_as_overcommitted_and_nothing_is_cancelled():
    rows = calendar(
        [contract(allotment=10)],
        [reduce(1, 0, 3, 7)],
        [block(rooms=2)],
        [booking(1, 0, 3, rooms=2), hold(2, 0, 1)],
        **WINDOW,
    )
    assert column(rows, "allotment") == [3, 3, 3]
    assert column(rows, "overcommitted") == [2, 1, 1]
    assert column(rows, "available") == [0, 0, 0]
    assert (column(rows, "hardblocked"), column(rows, "sold"), column(rows, "held")) == (
        [2, 2, 2],
        [2, 2, 2],
        [1, 0, 0],
    )


# --- hardblocks --------------------------------------------------------------------------


def test_an_active_block_takes_its_size_from_the_pool():
    rows = calendar([contract(allotment=10)], blocks=[block(start=1, end=2, rooms=4)], **WINDOW)
    assert column(rows, "hardblocked") == [0, 4, 0]
    assert column(rows, "available") == [10, 6, 10]


def test_amendments_resize_extend_and_remove_block_nights():
    events = [
        amend(1, 1, 1, 3, 5),  # resize night 1, extend to night 2
        amend(2, 1, 0, 1, 0),  # remove night 0
        amend(3, 1, 1, 2, 3, at=T0 - timedelta(days=1)),  # earlier in total order: overridden by 1
        amend(4, 1, 2, 3, 1, voided=True),
    ]
    rows = calendar([contract(allotment=10)], events, [block(start=0, end=2, rooms=2)], start=0, end=4)
    assert column(rows, "hardblocked") == [0, 5, 5, 0]


def test_a_released_block_keeps_only_what_was_booked_from_it():
    blocks = [block(start=0, end=3, rooms=4, released_at=NOW - timedelta(hours=1))]
    bookings = [booking(1, 0, 1, rooms=3, hardblock_id=1), hold(2, 1, 2, rooms=1, hardblock_id=1)]
    rows = calendar([contract(allotment=10)], blocks=blocks, bookings=bookings, **WINDOW)
    assert column(rows, "hardblocked") == [3, 1, 0]
    assert column(rows, "available") == [7, 9, 10]
    assert column(rows, "held") == [0, 0, 0]  # a booking from a block is not a pool hold


def test_nights_released_by_hand_return_their_unsold_rooms():
    blocks = [block(start=0, end=3, rooms=4, released_nights=frozenset({d(1), d(40)}))]
    rows = calendar([contract(allotment=10)], blocks=blocks, bookings=[booking(1, 0, 3, hardblock_id=1)], **WINDOW)
    assert column(rows, "hardblocked") == [4, 1, 4]


@pytest.mark.parametrize(
    ("now", "hardblocked"),
    [
        (datetime.combine(d(-3), datetime.min.time(), tzinfo=UTC) - timedelta(microseconds=1), [4, 4, 4]),
        (datetime.combine(d(-3), datetime.min.time(), tzinfo=UTC), [1, 4, 4]),  # night 0 released at midnight UTC
        (datetime.combine(d(-2), datetime.min.time(), tzinfo=UTC) + timedelta(hours=5), [1, 1, 4]),
        (datetime.combine(d(-1), datetime.min.time(), tzinfo=UTC) + timedelta(hours=1), [1, 1, 1]),
    ],
)
def test_unsold_block_rooms_return_release_days_before_each_night(now, hardblocked):
    blocks = [block(start=0, end=3, rooms=4, release_days=3)]
    rows = calendar(
        [contract(allotment=10, release_days=0)],
        blocks=blocks,
        bookings=[booking(1, 0, 3, hardblock_id=1)],
        now=now,
        **WINDOW,
    )
    assert column(rows, "hardblocked") == hardblocked


def test_a_block_booked_beyond_its_size_still_holds_its_bookings():
    # A voided extension leaves two rooms booked on a night the block no longer has.
    events = [amend(1, 1, 2, 3, 2, voided=True)]
    bookings = [booking(1, 2, 3, rooms=2, hardblock_id=1)]
    rows = calendar([contract(allotment=10)], events, [block(start=0, end=2, rooms=1)], bookings, **WINDOW)
    assert column(rows, "hardblocked") == [1, 1, 2]


def test_bookings_from_a_block_not_passed_in_still_leave_the_pool():
    rows = calendar([contract(allotment=10)], bookings=[booking(1, 0, 2, rooms=2, hardblock_id=42)], **WINDOW)
    assert column(rows, "hardblocked") == [2, 2, 0]
    assert column(rows, "sold") == [0, 0, 0]


def test_blocks_of_other_room_types_or_outside_the_window_are_ignored():
    blocks = [block(id=1, rt=2), block(id=2, start=5, end=8), block(id=3, start=-8, end=-2)]
    bookings = [
        booking(1, 0, 1, rt=2, hardblock_id=1),
        booking(2, 0, 1, hardblock_id=3, status=BookingStatus.CANCELLED),
    ]
    rows = calendar([contract()], blocks=blocks, bookings=bookings, **WINDOW)
    assert column(rows, "hardblocked") == [0, 0, 0]


# --- release cut-off ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "available"),
    [
        (datetime(2026, 4, 27, 23, 59, 59, tzinfo=UTC), [10, 10, 10]),
        (datetime(2026, 4, 28, 0, 0, tzinfo=UTC), [0, 10, 10]),  # midnight UTC of night 0's release date
        (datetime(2026, 4, 28, 1, 30, tzinfo=timezone(timedelta(hours=2))), [10, 10, 10]),  # 23:30 UTC the day before
        (datetime(2026, 4, 29, 12, 0, tzinfo=UTC), [0, 0, 10]),
    ],
)
def test_a_pool_night_stops_selling_at_midnight_utc_of_its_release_date(now, available):
    rows = calendar([contract(allotment=10, release_days=3)], now=now, **WINDOW)
    assert column(rows, "release_date") == [d(-3), d(-2), d(-1)]
    assert column(rows, "available") == available


def test_past_the_cut_off_commitments_still_show():
    rows = calendar([contract(allotment=3, release_days=40)], bookings=[booking(1, 0, 1, rooms=5)], **WINDOW)
    assert (cell(rows, 0).available, cell(rows, 0).sold, cell(rows, 0).overcommitted) == (0, 5, 2)


# --- the window and the row --------------------------------------------------------------


def test_rows_are_parallel_series_over_the_window():
    rows = calendar([contract(allotment=2)], rts=(1, 2), start=0, end=3)
    assert set(rows) == {1, 2}
    row = rows[1]
    assert (row.room_type_id, row.start, row.dates) == (1, d(0), (d(0), d(1), d(2)))
    assert list(row.cells()) == [row.cell(0), row.cell(1), row.cell(2)]
    assert row.index(d(2)) == 2
    for night in (d(-1), d(3)):
        with pytest.raises(OutsideCalendar) as raised:
            row.index(night)
        assert (raised.value.key, raised.value.night) == (1, night)


def test_an_empty_window_gives_empty_rows_and_a_reversed_one_is_refused():
    rows = calendar([contract()], start=2, end=2)
    assert rows[1].dates == () and list(rows[1].cells()) == []
    with pytest.raises(InvalidInput) as raised:
        calendar([contract()], start=2, end=1)
    assert raised.value.field == "to"


def test_now_must_be_timezone_aware():
    with pytest.raises(ValueError):
        compute_calendar([], [], [], [], [1], d(0), d(1), NOW.replace(tzinfo=None))


def test_a_block_extended_into_the_window_counts_there():
    blocks = [block(start=-5, end=-2, rooms=2)]
    bookings = [booking(1, -4, -3, hardblock_id=1)]
    rows = calendar([contract(start=-10, end=10)], [amend(1, 1, -3, 2, 1)], blocks, bookings, **WINDOW)
    assert column(rows, "hardblocked") == [1, 1, 0]
