"""Why a night cannot be sold or arrived on (the API's `CalendarCell.reasons`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import OutsideCalendar, UnavailableReason, hotel_today, resolve_restrictions, unavailable_reasons
from tests.domain.factories import booking, calendar, contract, d, reduce, restrict, stop_sell
from tests.domain.reference import reference_reasons
from tests.domain.strategies import AGENCIES, TIME_ZONES, Scenario, scenarios

U = UnavailableReason
SETTINGS = settings(max_examples=100, deadline=None)
AGENCY = st.sampled_from((None, *AGENCIES, 9))


def resolved(events, start=0, end=6, agency=None, rts=(1,)):
    return resolve_restrictions(list(events), list(rts), d(start), d(end), agency)


def test_each_reason_a_night_cannot_be_sold_or_arrived_on():
    now = datetime(2026, 5, 3, 12, tzinfo=UTC)  # today is night 2
    rows = calendar(
        contracts=[contract(start=0, end=9, allotment=2, release_days=1)],
        events=[reduce(1, 6, 7, 2), stop_sell(2, 7, 8)],
        bookings=[booking(1, 5, 6, rooms=2)],
        end=10,
        now=now,
    )
    restrictions = resolved(
        [
            restrict(3, 4, 5, min_advance_days=2),  # night 4 is 2 days ahead: fine
            restrict(4, 7, 8, closed_to_arrival=True),
            restrict(5, 8, 9, max_advance_days=5),  # night 8 is 6 days ahead
            restrict(6, 4, 5, agencies=(7,), closed_to_arrival=True),
        ],
        end=10,
    )
    assert unavailable_reasons(rows[1], restrictions[1], d(2)) == (
        (U.RELEASED, U.PAST),
        (U.RELEASED, U.PAST),
        (U.RELEASED,),  # today, cut off yesterday
        (U.RELEASED,),  # cut off at the start of today
        (),
        (U.SOLD_OUT,),  # booked out
        (U.SOLD_OUT,),  # reduced to nothing
        (U.CLOSED, U.CLOSED_TO_ARRIVAL),
        (U.ADVANCE_WINDOW,),
        (U.NO_CONTRACT,),
    )
    for_agency_7 = resolved([restrict(6, 4, 5, agencies=(7,), closed_to_arrival=True)], end=10, agency=7)
    assert unavailable_reasons(rows[1], for_agency_7[1], d(2))[4] == (U.CLOSED_TO_ARRIVAL,)


def test_reasons_need_the_restrictions_of_every_night():
    rows = calendar(contracts=[contract()], end=3)
    for start, end in ((0, 2), (1, 3)):
        with pytest.raises(OutsideCalendar):
            unavailable_reasons(rows[1], resolved([], start=start, end=end)[1], d(-30))
    # a wider row serves, and an empty window needs nothing
    wider = resolved([restrict(1, 2, 3, closed_to_arrival=True)], start=-2, end=5)[1]
    assert unavailable_reasons(rows[1], wider, d(-30)) == ((), (), (UnavailableReason.CLOSED_TO_ARRIVAL,))
    empty = calendar(contracts=[contract()], start=2, end=2)
    assert unavailable_reasons(empty[1], resolved([], end=0)[1], d(-30)) == ()


@SETTINGS
@given(scenarios(time_zones=TIME_ZONES), AGENCY)
def test_reasons_equal_the_reference_and_the_pools_are_none_exactly_when_rooms_are_available(
    s: Scenario, agency
):
    today = hotel_today(s.now, s.time_zone)
    rows = s.calendar()
    restrictions = resolve_restrictions(s.events, s.room_type_ids, s.start, s.end, agency)
    pool_reasons = {U.SOLD_OUT, U.CLOSED, U.RELEASED, U.NO_CONTRACT, U.PAST}
    for rt, row in rows.items():
        reasons = unavailable_reasons(row, restrictions[rt], today)
        for cell, got in zip(row.cells(), reasons, strict=True):
            assert [r.value for r in got] == reference_reasons(cell, restrictions[rt].on(cell.date), today)
            assert (not pool_reasons.intersection(got)) == (cell.available > 0)
