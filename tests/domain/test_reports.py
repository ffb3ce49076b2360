"""Report arithmetic over the calendar pipeline's rows and slots."""

import datetime as dt
from decimal import Decimal

from domain import HardblockSlot
from domain.reports import (
    Period,
    PickupRow,
    UtilisationRow,
    percent,
    period_end,
    period_start,
    periods,
    pickup,
    released_by_night,
    utilisation,
)
from tests.domain.factories import calendar, contract, d


def test_periods_cover_the_range_with_every_period_cut_to_it():
    start, end = dt.date(2027, 1, 30), dt.date(2027, 3, 2)
    months = periods(start, end, Period.MONTH)
    assert months == [(dt.date(2027, 1, 30), dt.date(2027, 2, 1)), (dt.date(2027, 2, 1), dt.date(2027, 3, 1)),
                      (dt.date(2027, 3, 1), dt.date(2027, 3, 2))]
    weeks = periods(start, dt.date(2027, 2, 8), Period.WEEK)  # 2027-01-30 is a Saturday
    assert weeks == [(start, dt.date(2027, 2, 1)), (dt.date(2027, 2, 1), dt.date(2027, 2, 8))]
    assert len(periods(start, end, Period.DAY)) == 31
    assert period_start(dt.date(2027, 2, 3), Period.WEEK) == dt.date(2027, 2, 1)
    assert period_end(dt.date(2027, 12, 1), Period.MONTH) == dt.date(2028, 1, 1)
    assert periods(end, start, Period.DAY) == []


def test_percent_rounds_to_two_places_and_has_no_value_without_a_whole():
    assert percent(1, 3) == Decimal("33.33") and percent(0, 0) is None and percent(2, 2) == Decimal("100.00")


def test_utilisation_adds_up_the_nights_of_each_period():
    rows = calendar([contract(start=0, end=10, allotment=4)], start=0, end=10)
    released = released_by_night([(1, HardblockSlot(9, d(2), 2, 0, 0, 2, dt.datetime(2027, 1, 1))),
                                  (1, HardblockSlot(9, d(3), 2, 2, 0, 0, dt.datetime(2027, 1, 1)))])
    assert released == {(1, d(2)): 2}
    found = utilisation(rows, released, d(0), d(10), Period.DAY)
    assert len(found) == 10 and all(isinstance(r, UtilisationRow) for r in found)
    assert [r.released for r in found[:4]] == [0, 0, 2, 0]
    whole = utilisation(rows, released, d(0), d(10), Period.MONTH)
    assert sum(r.allotment for r in whole) == 40 and sum(r.available for r in whole) == 40
    assert whole[0].utilisation_percent == Decimal("0.00")


def test_pickup_adds_up_a_blocks_slots():
    at = dt.datetime(2027, 1, 1)
    row = pickup(7, [HardblockSlot(7, d(0), 3, 2, 1, 0, at), HardblockSlot(7, d(1), 3, 1, 0, 2, at)])
    assert row == PickupRow(7, blocked=6, picked_up=3, released=2, remaining=1)
    assert row.pickup_percent == Decimal("50.00") and row.wash_percent == Decimal("33.33")
