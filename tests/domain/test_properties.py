"""Properties of the pipeline on random scenarios, including equality with the reference."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

from hypothesis import event, given, settings
from hypothesis import strategies as st

from domain import (
    AllotmentEvent,
    BookingLine,
    BookingStatus,
    EventKind,
    block_shortfalls,
    compute_hardblock_slots,
    pool_shortfalls,
    preview_amendment,
    proposed_amendments,
)
from tests.domain.factories import d
from tests.domain.reference import each_night, reference_block_span, reference_calendar, reference_slot
from tests.domain.strategies import INSTANTS, Scenario, scenarios

SETTINGS = settings(max_examples=150, deadline=None)


def cells(rows):
    return {rt: list(row.cells()) for rt, row in rows.items()}


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_calendar_equals_the_per_night_reference(s: Scenario):
    assert cells(s.calendar()) == reference_calendar(*s.inputs())


@SETTINGS
@given(scenarios(), st.data())
def test_hardblock_slots_equal_the_reference(s: Scenario, data):
    for block in s.blocks:
        got = compute_hardblock_slots(block, s.events, s.bookings, s.start, s.end, s.now)
        assert got == [
            reference_slot(block, s.events, s.bookings, night, s.now) for night in each_night(s.start, s.end)
        ]

        start, end = reference_block_span(block, s.events, s.bookings, s.now)
        default = compute_hardblock_slots(block, s.events, s.bookings, None, None, s.now)
        assert [slot.date for slot in default] == each_night(start, end)
        assert default == [
            reference_slot(block, s.events, s.bookings, night, s.now) for night in each_night(start, end)
        ]


@SETTINGS
@given(scenarios(), st.randoms(use_true_random=False))
def test_the_calendar_does_not_depend_on_the_order_of_its_inputs(s: Scenario, rnd):
    shuffled = {
        name: rnd.sample(getattr(s, name), len(getattr(s, name)))
        for name in ("contracts", "events", "blocks", "bookings")
    }
    assert s.calendar(**shuffled) == s.calendar()


@SETTINGS
@given(scenarios(), st.data())
def test_voiding_an_event_equals_never_recording_it(s: Scenario, data):
    if not s.events:
        return
    i = data.draw(st.integers(0, len(s.events) - 1))
    voided = [*s.events[:i], dataclasses.replace(s.events[i], voided=True), *s.events[i + 1 :]]
    absent = [*s.events[:i], *s.events[i + 1 :]]
    assert s.calendar(events=voided) == s.calendar(events=absent)
    for block in s.blocks:
        assert compute_hardblock_slots(block, voided, s.bookings, s.start, s.end, s.now) == compute_hardblock_slots(
            block, absent, s.bookings, s.start, s.end, s.now
        )


@SETTINGS
@given(scenarios())
def test_the_budget_reconciles(s: Scenario):
    today = s.now.date()
    for row in s.calendar().values():
        for c in row.cells():
            assert min(c.available, c.overcommitted, c.allotment, c.hardblocked, c.held, c.sold) >= 0
            sellable = not c.closed and c.release_date is not None and c.release_date > today
            if sellable:
                assert c.allotment + c.overcommitted == c.hardblocked + c.held + c.sold + c.available
            else:
                assert c.available == 0


@SETTINGS
@given(scenarios(), st.data())
def test_an_expired_hold_counts_nowhere(s: Scenario, data):
    block_ids = [None, *(b.id for b in s.blocks)]
    lapsed = BookingLine(
        id=999,
        group_id=999,
        agency_id=1,
        room_type_id=data.draw(st.sampled_from(s.room_type_ids)),
        check_in=s.start,
        check_out=s.end,
        rooms=data.draw(st.integers(1, 5)),
        status=BookingStatus.HELD,
        expires_at=s.now - timedelta(minutes=data.draw(st.integers(0, 60))),
        hardblock_id=data.draw(st.sampled_from(block_ids)),
    )
    assert s.calendar(bookings=[*s.bookings, lapsed]) == s.calendar()
    for block in s.blocks:
        with_lapsed = compute_hardblock_slots(block, s.events, [*s.bookings, lapsed], s.start, s.end, s.now)
        assert with_lapsed == compute_hardblock_slots(block, s.events, s.bookings, s.start, s.end, s.now)


@SETTINGS
@given(scenarios(), st.data())
def test_an_increase_and_an_equal_reduction_cancel_out(s: Scenario, data):
    quantity = data.draw(st.integers(1, 20))
    first = data.draw(st.integers(1000, 2000))
    nights = dict(
        start=s.start + timedelta(days=data.draw(st.integers(-2, 3))), end=s.end, room_type_id=1, quantity=quantity
    )
    pair = [
        AllotmentEvent(
            id=first, kind=EventKind.INCREASE_ALLOTMENT, effective_at=data.draw(st.sampled_from(INSTANTS)), **nights
        ),
        AllotmentEvent(
            id=first + 1, kind=EventKind.REDUCE_ALLOTMENT, effective_at=data.draw(st.sampled_from(INSTANTS)), **nights
        ),
    ]
    assert s.calendar(events=[*s.events, *pair]) == s.calendar()


@SETTINGS
@given(scenarios())
def test_bookings_never_exceed_what_the_pool_counts(s: Scenario):
    rows = s.calendar()
    for rt, row in rows.items():
        for i, night in enumerate(row.dates):
            from_blocks = sum(
                compute_hardblock_slots(b, s.events, s.bookings, night, night + timedelta(days=1), s.now)[0].booked
                for b in s.blocks
                if b.room_type_id == rt
            )
            assert from_blocks <= row.hardblocked[i]
            pool = [
                b
                for b in s.bookings
                if b.hardblock_id is None
                and b.room_type_id == rt
                and b.check_in <= night < b.check_out
                and b.counts(s.now)
            ]
            assert row.held[i] + row.sold[i] == sum(b.rooms for b in pool)


@SETTINGS
@given(scenarios(), st.data())
def test_a_sub_window_is_a_slice_of_the_whole(s: Scenario, data):
    n = (s.end - s.start).days
    a = data.draw(st.integers(0, n))
    b = data.draw(st.integers(a, n))
    whole = s.calendar()
    part = s.calendar(start=s.start + timedelta(days=a), end=s.start + timedelta(days=b))
    for rt in whole:
        assert list(part[rt].cells()) == list(whole[rt].cells())[a:b]


@st.composite
def requests(draw, open_cells: list[tuple[int, date, int]]):
    """1-3 items, each starting on a cell with rooms available (so that many fit, and some
    overflow when the items add up or run into the next night)."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        key, night, available = draw(st.sampled_from(open_cells))
        nights = draw(st.integers(1, 3))
        out.append((key, night, night + timedelta(days=nights), draw(st.integers(1, available + 1))))
    return out


def as_holds(s: Scenario, items, hardblock: bool = False) -> list[BookingLine]:
    return [
        BookingLine(
            id=900 + i,
            group_id=900,
            agency_id=1,
            room_type_id=s.blocks[key - 1].room_type_id if hardblock else key,
            check_in=check_in,
            check_out=check_out,
            rooms=rooms,
            status=BookingStatus.HELD,
            expires_at=s.now + timedelta(minutes=15),
            hardblock_id=key if hardblock else None,
        )
        for i, (key, check_in, check_out, rooms) in enumerate(items)
    ]


@SETTINGS
@given(scenarios(), st.data())
def test_a_pool_hold_that_fits_never_oversells(s: Scenario, data):
    wide = dataclasses.replace(s, start=d(-4), end=d(17), room_type_ids=[1, 2, 3])
    before = wide.calendar()
    open_cells = [
        (rt, c.date, c.available) for rt, row in before.items() for c in row.cells() if c.available and c.date < d(14)
    ]
    if not open_cells:
        return
    items = data.draw(requests(open_cells))
    shortfalls = pool_shortfalls(before, items)
    event(f"pool request fits: {not shortfalls}")

    demand: dict = {}
    for rt, check_in, check_out, rooms in items:
        for night in each_night(check_in, check_out):
            demand[rt, night] = demand.get((rt, night), 0) + rooms
    short = {(x.room_type_id, x.date): (x.requested, x.available) for x in shortfalls}
    assert [(x.room_type_id, x.date) for x in shortfalls] == sorted(short)
    for (rt, night), rooms in demand.items():
        available = before[rt].cell(before[rt].index(night)).available
        assert short.get((rt, night)) == ((rooms, available) if rooms > available else None)

    if not shortfalls:
        after = wide.calendar(bookings=[*wide.bookings, *as_holds(wide, items)])
        for (rt, night), rooms in demand.items():
            was, now = (r[rt].cell(r[rt].index(night)) for r in (before, after))
            assert now.overcommitted == was.overcommitted
            assert now.available == was.available - rooms


@SETTINGS
@given(scenarios(), st.data())
def test_a_block_hold_that_fits_leaves_the_pool_alone(s: Scenario, data):
    if not s.blocks:
        return
    slots = [slot for b in s.blocks for slot in compute_hardblock_slots(b, s.events, s.bookings, d(-4), d(17), s.now)]
    open_slots = [(x.hardblock_id, x.date, x.available) for x in slots if x.available and x.date < d(14)]
    if not open_slots:
        return
    items = data.draw(requests(open_slots))
    fits = not block_shortfalls(slots, items)
    event(f"block request fits: {fits}")
    if not fits:
        return
    bookings = [*s.bookings, *as_holds(s, items, hardblock=True)]
    wide = dataclasses.replace(s, start=d(-4), end=d(17), room_type_ids=[1, 2, 3])
    assert wide.calendar(bookings=bookings) == wide.calendar()

    demand: dict = {}
    for block_id, check_in, check_out, rooms in items:
        for night in each_night(check_in, check_out):
            demand[block_id, night] = demand.get((block_id, night), 0) + rooms
    was = {(slot.hardblock_id, slot.date): slot for slot in slots}
    for b in s.blocks:
        for slot in compute_hardblock_slots(b, s.events, bookings, d(-4), d(17), s.now):
            rooms = demand.get((b.id, slot.date))
            if rooms:
                assert slot.booked <= slot.size
                assert slot.available == was[b.id, slot.date].available - rooms


@SETTINGS
@given(scenarios(), st.data())
def test_a_feasible_amendment_neither_oversells_nor_underflows(s: Scenario, data):
    if not s.blocks:
        return
    block = data.draw(st.sampled_from(s.blocks))
    changes = []
    for _ in range(data.draw(st.integers(1, 2))):
        start = data.draw(st.integers(-3, 8))
        changes.append((d(start), d(start + data.draw(st.integers(1, 4))), data.draw(st.integers(0, 5))))
    wide = dataclasses.replace(s, start=d(-4), end=d(17), room_type_ids=[1, 2, 3])
    before = wide.calendar()
    preview = preview_amendment(block, changes, s.events, s.bookings, before[block.room_type_id], s.now)
    event(f"amendment feasible: {preview.feasible}, grows: {any(x.delta > 0 for x in preview.slots)}")
    if not preview.feasible:
        assert any(diff.conflict for diff in preview.slots)
        return
    events = [*s.events, *proposed_amendments(block, changes, s.events, s.now)]
    # the nights it sets are re-grown if they were released
    regrown = dataclasses.replace(block, released_nights=block.released_nights - {x.date for x in preview.slots})
    after = wide.calendar(events=events, blocks=[regrown if b is block else b for b in s.blocks])
    row_before, row_after = before[block.room_type_id], after[block.room_type_id]
    for diff in preview.slots:
        i = row_after.index(diff.date)
        assert row_after.overcommitted[i] <= row_before.overcommitted[i]
        slot = compute_hardblock_slots(regrown, events, s.bookings, diff.date, diff.date + timedelta(days=1), s.now)[0]
        assert slot.size == diff.after
        assert slot.booked <= slot.size or diff.delta >= 0
