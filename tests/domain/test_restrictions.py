"""Restrictions (DESIGN.md "Selling rules"): resolved field by field in total order, scoped to
agencies, judged on the arrival night and the departure day."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import (
    NO_RESTRICTIONS,
    OutsideCalendar,
    RestrictionPatch,
    RestrictionRow,
    RestrictionRule,
    Restrictions,
    Violation,
    judge_stay,
    resolve_restrictions,
    restriction_violations,
)
from domain.restrictions import FIELD_NAMES
from tests.domain.factories import (
    T0,
    d,
    rate_change,
    restrict,
    stop_sell,
)
from tests.domain.reference import (
    RESTRICTION_FIELDS,
    each_night,
    reference_judgement,
    reference_restrictions,
)
from tests.domain.strategies import AGENCIES, restriction_events

R = RestrictionRule
ONE_DAY = timedelta(days=1)


def resolved(events, start=0, end=6, agency=None, rts=(1,)):
    return resolve_restrictions(list(events), list(rts), d(start), d(end), agency)


def column(events, field, rt=1, **kw) -> list:
    return [getattr(r, field) for r in resolved(events, **kw)[rt].nights]


# --- resolution ------------------------------------------------------------------------------------


def test_the_last_event_in_total_order_wins_field_by_field():
    events = [
        restrict(1, 0, 4, min_stay=2, closed_to_arrival=True),
        restrict(2, 2, 6, min_stay=3),  # sets minStay only: closedToArrival stays as event 1 set it
        restrict(3, 1, 2, closed_to_arrival=False),  # lifts it on night 1
    ]
    assert column(events, "min_stay") == [2, 2, 3, 3, 3, 3]
    assert column(events, "closed_to_arrival") == [True, False, True, True, False, False]
    assert column(events, "max_stay") == [None] * 6


def test_the_total_order_is_effective_time_then_id():
    late_low_id = restrict(1, 0, 2, min_stay=5, at=T0 + timedelta(hours=2))
    tie_high_id = restrict(9, 0, 2, min_stay=4, at=T0 + timedelta(hours=1))
    tie_low_id = restrict(5, 0, 2, min_stay=3, at=T0 + timedelta(hours=1))
    assert column([late_low_id, tie_high_id, tie_low_id], "min_stay", end=2) == [5, 5]
    assert column([tie_high_id, tie_low_id], "min_stay", end=2) == [4, 4]


def test_an_event_binds_the_agencies_it_names_or_all_when_it_names_none():
    events = [
        restrict(1, 0, 3, min_stay=2),  # everyone
        restrict(2, 0, 3, agencies=(7,), min_stay=4),  # agency 7, later: wins for 7
        restrict(3, 1, 2, agencies=(7, 8), closed_to_arrival=True),
        restrict(4, 2, 3, min_stay=1),  # everyone, later still: wins for 7 too
    ]
    assert column(events, "min_stay", end=3, agency=7) == [4, 4, 1]
    assert column(events, "closed_to_arrival", end=3, agency=7) == [False, True, False]
    assert column(events, "min_stay", end=3, agency=8) == [2, 2, 1]
    assert column(events, "closed_to_arrival", end=3, agency=8) == [False, True, False]
    for nobody_named in (9, None):  # None: no particular agency (staff), the events naming none
        assert column(events, "min_stay", end=3, agency=nobody_named) == [2, 2, 1]
        assert column(events, "closed_to_arrival", end=3, agency=nobody_named) == [False] * 3


def test_only_live_restriction_events_of_the_room_type_count():
    events = [
        restrict(1, 0, 6, min_stay=2, voided=True),
        restrict(2, 0, 6, rt=2, max_stay=9),
        restrict(3, 8, 10, min_stay=4),  # outside the window
        restrict(4, -3, 1, max_advance_days=30),  # starts before it
        rate_change(5, 0, 6, 120),
        stop_sell(6, 0, 6),
    ]
    rows = resolved(events, rts=(1, 2, 3))
    assert rows[1].nights == (Restrictions(max_advance_days=30),) + (NO_RESTRICTIONS,) * 5
    assert rows[2].nights == (Restrictions(max_stay=9),) * 6
    assert rows[3] == RestrictionRow(3, d(0), (NO_RESTRICTIONS,) * 6)
    assert resolved(events, start=2, end=2)[1].nights == ()


def test_a_row_answers_for_its_nights_only():
    row = resolved([restrict(1, 0, 2, min_stay=2)], end=3)[1]
    assert row.on(d(1)) == Restrictions(min_stay=2)
    assert row.on(d(2)) is NO_RESTRICTIONS
    for outside in (d(-1), d(3)):
        with pytest.raises(OutsideCalendar):
            row.on(outside)


# --- judging a stay ------------------------------------------------------------------------------


def row_of(*nights: Restrictions, rt: int = 1) -> RestrictionRow:
    """Nights 0, 1, ... as given."""
    return RestrictionRow(rt, d(0), nights)


FREE = NO_RESTRICTIONS


@pytest.mark.parametrize(
    ("nights", "stay", "today", "expected"),
    [
        ((FREE,) * 4, (0, 3), -5, []),
        # minStay and maxStay: the arrival night's, whatever the later nights say
        ((Restrictions(min_stay=2), FREE), (0, 1), -5,
         [(0, R.MIN_STAY, "stays arriving 2026-05-01 need at least 2 nights; this one has 1")]),
        ((Restrictions(min_stay=2), FREE, FREE), (0, 2), -5, []),
        ((FREE, Restrictions(min_stay=5), FREE), (0, 2), -5, []),
        ((Restrictions(max_stay=1),) + (FREE,) * 3, (0, 3), -5,
         [(0, R.MAX_STAY, "stays arriving 2026-05-01 may last at most 1 night; this one has 3")]),
        ((Restrictions(max_stay=3), Restrictions(max_stay=1), FREE, FREE), (0, 3), -5, []),
        # closedToArrival: on the arrival night only
        ((Restrictions(closed_to_arrival=True), FREE), (0, 1), -5,
         [(0, R.CLOSED_TO_ARRIVAL, "no stay may arrive on 2026-05-01")]),
        ((FREE, Restrictions(closed_to_arrival=True), FREE), (0, 2), -5, []),
        # closedToDeparture: the night of the departure date, not a night of the stay
        ((FREE, FREE, Restrictions(closed_to_departure=True)), (0, 2), -5,
         [(2, R.CLOSED_TO_DEPARTURE, "no stay may depart on 2026-05-03")]),
        ((Restrictions(closed_to_departure=True), Restrictions(closed_to_departure=True), FREE), (0, 2), -5, []),
        # the advance window: arrival minus the hotel's today
        ((Restrictions(min_advance_days=3), FREE), (0, 1), -3, []),
        ((Restrictions(min_advance_days=3), FREE), (0, 1), -1,
         [(0, R.MIN_ADVANCE_DAYS, "stays arriving 2026-05-01 must be booked at least 3 days ahead; "
                                  "this one is 1 day ahead")]),
        ((Restrictions(min_advance_days=1), FREE), (0, 1), 0,
         [(0, R.MIN_ADVANCE_DAYS, "stays arriving 2026-05-01 must be booked at least 1 day ahead; "
                                  "this one arrives today")]),
        ((Restrictions(min_advance_days=0), FREE), (0, 1), 2,
         [(0, R.MIN_ADVANCE_DAYS, "stays arriving 2026-05-01 must be booked at least 0 days ahead; "
                                  "this one arrived 2 days ago")]),
        ((Restrictions(max_advance_days=5), FREE), (0, 1), -5, []),
        ((Restrictions(max_advance_days=5), FREE), (0, 1), -6,
         [(0, R.MAX_ADVANCE_DAYS, "stays arriving 2026-05-01 may be booked at most 5 days ahead; "
                                  "this one is 6 days ahead")]),
    ],
)
def test_a_stay_breaks_the_restrictions_of_its_arrival_and_departure(nights, stay, today, expected):
    got = judge_stay(row_of(*nights), d(stay[0]), d(stay[1]), d(today))
    assert got == [Violation(1, d(night), rule, detail) for night, rule, detail in expected]


def test_every_violation_is_listed_in_rule_order():
    arrival = Restrictions(5, 2, True, True, 10, 0)  # contradictory on purpose: nothing can arrive
    departure = Restrictions(closed_to_departure=True)
    got = judge_stay(row_of(arrival, FREE, FREE, FREE, departure, rt=4), d(0), d(4), d(-1))
    assert [(v.room_type_id, v.date, v.rule) for v in got] == [
        (4, d(0), R.MIN_STAY),
        (4, d(0), R.MAX_STAY),
        (4, d(0), R.CLOSED_TO_ARRIVAL),
        (4, d(4), R.CLOSED_TO_DEPARTURE),
        (4, d(0), R.MIN_ADVANCE_DAYS),
        (4, d(0), R.MAX_ADVANCE_DAYS),
    ]
    assert got[0].detail == "stays arriving 2026-05-01 need at least 5 nights; this one has 4"


def test_judging_needs_the_departure_night_too():
    with pytest.raises(OutsideCalendar) as caught:
        judge_stay(row_of(FREE, FREE), d(0), d(2), d(-1))
    assert caught.value.night == d(2)
    with pytest.raises(OutsideCalendar):
        judge_stay(row_of(FREE, FREE), d(-1), d(1), d(-1))


def test_a_group_lists_each_violation_once():
    rows = {
        1: row_of(Restrictions(min_stay=2), FREE, FREE),
        2: row_of(FREE, FREE, Restrictions(closed_to_departure=True), rt=2),
    }
    items = [(1, d(0), d(1), 1), (1, d(0), d(1), 2), (2, d(0), d(2), 1), (2, d(1), d(2), 1), (1, d(1), d(2), 1)]
    assert [(v.room_type_id, v.date, v.rule) for v in restriction_violations(rows, items, d(-1))] == [
        (1, d(0), R.MIN_STAY),
        (2, d(2), R.CLOSED_TO_DEPARTURE),
    ]
    assert restriction_violations(rows, [(1, d(1), d(2), 1)], d(-1)) == []
    with pytest.raises(OutsideCalendar):
        restriction_violations(rows, [(3, d(0), d(1), 1)], d(-1))


# --- properties ------------------------------------------------------------------------------------

SETTINGS = settings(max_examples=100, deadline=None)
AGENCY = st.sampled_from((None, *AGENCIES, 9))


@SETTINGS
@given(restriction_events(), AGENCY)
def test_resolution_equals_the_per_night_reference(events, agency):
    rows = resolve_restrictions(events, [1, 2, 3], d(-4), d(16), agency)
    for rt, row in rows.items():
        assert list(row.nights) == [
            reference_restrictions(events, rt, night, agency) for night in each_night(d(-4), d(16))
        ]


@SETTINGS
@given(restriction_events(), AGENCY, st.randoms(use_true_random=False))
def test_resolution_does_not_depend_on_the_order_of_the_events(events, agency, rnd):
    shuffled = rnd.sample(events, len(events))
    assert resolve_restrictions(shuffled, [1, 2], d(-4), d(16), agency) == resolve_restrictions(
        events, [2, 1], d(-4), d(16), agency
    )


@SETTINGS
@given(restriction_events(), AGENCY, st.data())
def test_voiding_a_restriction_equals_never_recording_it(events, agency, data):
    if not events:
        return
    i = data.draw(st.integers(0, len(events) - 1))
    voided = [*events[:i], dataclasses.replace(events[i], voided=True), *events[i + 1 :]]
    absent = [*events[:i], *events[i + 1 :]]
    assert resolve_restrictions(voided, [1, 2], d(-4), d(16), agency) == resolve_restrictions(
        absent, [1, 2], d(-4), d(16), agency
    )


@SETTINGS
@given(restriction_events(), restriction_events(max_size=4), st.sampled_from(AGENCIES), AGENCY)
def test_an_event_for_one_agency_never_affects_another(events, extra, a, b):
    if a == b:
        return
    # `extra` rewritten to bind agency `a` only, later in total order than everything else
    for_a = [
        dataclasses.replace(e, id=100 + e.id, agency_ids=frozenset({a}), effective_at=e.effective_at + ONE_DAY)
        for e in extra
    ]
    assert resolve_restrictions([*events, *for_a], [1, 2], d(-4), d(16), b) == resolve_restrictions(
        events, [1, 2], d(-4), d(16), b
    )


@st.composite
def stays(draw):
    check_in = d(draw(st.integers(-3, 12)))
    return check_in, check_in + ONE_DAY * draw(st.integers(1, 5)), d(draw(st.integers(-8, 14)))


@SETTINGS
@given(restriction_events(), AGENCY, stays())
def test_judge_stay_agrees_with_the_reference(events, agency, stay):
    check_in, check_out, today = stay
    rows = resolve_restrictions(events, [1], check_in, check_out + ONE_DAY, agency)
    got = judge_stay(rows[1], check_in, check_out, today)
    expected = reference_judgement(lambda night: reference_restrictions(events, 1, night, agency), *stay)
    assert [(v.date, v.rule.value) for v in got] == expected
    assert all(v.room_type_id == 1 and v.detail for v in got)


def test_a_patch_sets_the_fields_of_restrictions_named_as_in_the_api():
    names = tuple(f.name for f in dataclasses.fields(Restrictions))
    assert names == tuple(f.name for f in dataclasses.fields(RestrictionPatch)) == RESTRICTION_FIELDS
    camel = tuple(name.split("_")[0] + "".join(w.title() for w in name.split("_")[1:]) for name in names)
    assert camel == FIELD_NAMES
    patch = RestrictionPatch(*range(1, 7))
    assert patch.values() == tuple(getattr(patch, name) for name in names)
