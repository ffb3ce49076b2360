from __future__ import annotations

import dataclasses

import pytest

from domain import (
    AmendmentPreview,
    BlockRequest,
    BlockShortfall,
    EventKind,
    OutsideCalendar,
    RoomRequest,
    Shortfall,
    SlotConflict,
    SlotDiff,
    block_shortfalls,
    compute_hardblock_slots,
    InvalidInput,
    diff_slots,
    extension,
    pool_shortfalls,
    preview_amendment,
    preview_change,
    proposed_amendments,
    release_at,
    returned_rooms,
)
from tests.domain.factories import NOW, amend, block, booking, calendar, contract, d, increase, stop_sell


def rows_with(available_by_rt: dict[int, int], events=()):
    contracts = [contract(id=rt, rt=rt, start=0, end=5, allotment=n) for rt, n in available_by_rt.items()]
    return calendar(contracts, events, rts=tuple(available_by_rt), start=0, end=5)


# --- pool --------------------------------------------------------------------------------


def test_requests_that_fit_have_no_shortfall():
    rows = rows_with({1: 3, 2: 1})
    assert pool_shortfalls(rows, [RoomRequest(1, d(0), d(3), 3), RoomRequest(2, d(4), d(5), 1)]) == []


def test_items_of_one_group_are_summed_per_night_and_every_short_cell_is_listed_in_order():
    rows = rows_with({1: 3, 2: 2}, [stop_sell(1, 3, 4, rt=2)])
    requests = [
        (2, d(2), d(4), 1),
        (1, d(0), d(2), 2),
        (1, d(1), d(3), 2),  # overlaps the item above on night 1
    ]
    assert pool_shortfalls(rows, requests) == [
        Shortfall(room_type_id=1, date=d(1), requested=4, available=3),
        Shortfall(room_type_id=2, date=d(3), requested=1, available=0),
    ]


@pytest.mark.parametrize("request_", [RoomRequest(9, d(0), d(1), 1), RoomRequest(1, d(4), d(6), 1)])
def test_asking_about_cells_that_were_not_computed_is_a_bug_not_a_sell_out(request_):
    with pytest.raises(OutsideCalendar):
        pool_shortfalls(rows_with({1: 3}), [request_])


# --- hardblocks --------------------------------------------------------------------------


def block_slots():
    blocks = [
        block(id=1, start=0, end=3, rooms=2),
        block(id=2, start=0, end=3, rooms=1, released_nights=frozenset({d(2)})),
    ]
    bookings = [booking(1, 0, 1, rooms=1, hardblock_id=1)]
    return [slot for b in blocks for slot in compute_hardblock_slots(b, [], bookings, None, None, NOW)]


def test_block_requests_are_checked_against_each_block_separately():
    assert block_shortfalls(block_slots(), [BlockRequest(1, d(0), d(1), 1), BlockRequest(2, d(0), d(2), 1)]) == []


def test_block_requests_sum_per_night_and_a_released_night_has_nothing_left():
    requests = [BlockRequest(1, d(0), d(2), 1), BlockRequest(1, d(0), d(1), 1), BlockRequest(2, d(1), d(3), 1)]
    assert block_shortfalls(block_slots(), requests) == [
        BlockShortfall(hardblock_id=1, date=d(0), requested=2, available=1),
        BlockShortfall(hardblock_id=2, date=d(2), requested=1, available=0),
    ]


def test_a_block_request_beyond_the_computed_slots_is_a_bug():
    with pytest.raises(OutsideCalendar) as raised:
        block_shortfalls(block_slots(), [BlockRequest(1, d(2), d(4), 1)])
    assert (raised.value.key, raised.value.night) == (1, d(3))


# --- amendments --------------------------------------------------------------------------


def preview(changes, pool_allotment=4, bookings=(), events=(), terms=None):
    terms = terms or block(start=0, end=3, rooms=2)
    rows = calendar([contract(allotment=pool_allotment)], list(events), [terms], list(bookings), start=-2, end=6)
    return preview_amendment(terms, changes, list(events), list(bookings), rows[1], NOW)


def test_proposed_amendments_sort_after_every_recorded_event():
    events = [increase(7, 0, 1, 1), amend(3, 1, 0, 1, 1)]
    proposed = proposed_amendments(block(), [(d(0), d(2), 3), (d(1), d(2), 0)], events, NOW)
    assert [(e.id, e.kind, e.effective_at, e.quantity, e.hardblock_id, e.room_type_id) for e in proposed] == [
        (8, EventKind.BLOCK_AMENDMENT, NOW, 3, 1, 1),
        (9, EventKind.BLOCK_AMENDMENT, NOW, 0, 1, 1),
    ]


def test_growing_within_the_pool_and_extending_is_feasible():
    # the pool has 4 - 2 = 2 rooms left beside the block on nights 0-2, and 4 after
    result = preview([(d(1), d(3), 4), (d(3), d(4), 4)])
    assert result == AmendmentPreview(
        feasible=True,
        slots=(SlotDiff(d(1), 2, 4, 2, None, 2), SlotDiff(d(2), 2, 4, 2, None, 2), SlotDiff(d(3), 0, 4, 4, None, 4)),
    )


def test_growing_beyond_the_pool_is_a_sell_out_on_that_night_only():
    result = preview([(d(1), d(3), 3), (d(3), d(4), 5)])
    assert not result.feasible
    assert [x.conflict for x in result.slots] == [None, None, SlotConflict.SOLD_OUT]


def test_shrinking_below_what_is_booked_is_an_underflow():
    result = preview([(d(0), d(2), 1)], bookings=[booking(1, 1, 2, rooms=2, hardblock_id=1)])
    assert not result.feasible
    assert result.slots == (
        SlotDiff(d(0), 2, 1, -1, None),
        SlotDiff(d(1), 2, 1, -1, SlotConflict.BLOCK_UNDERFLOW, booked=2),
    )


def test_removing_unbooked_nights_and_the_last_change_winning_are_fine():
    result = preview([(d(0), d(3), 0), (d(2), d(3), 2)])
    assert result.feasible
    assert [(x.before, x.after) for x in result.slots] == [(2, 0), (2, 0), (2, 2)]


def test_an_amendment_regrows_a_released_night_only_from_the_pool():
    terms = block(start=0, end=3, rooms=2, released_nights=frozenset({d(1)}))
    # released: the block's 2 rooms went back, so the pool has all 4; 9 needs 9 of them
    assert preview([(d(1), d(2), 9)], terms=terms) == AmendmentPreview(
        False, (SlotDiff(d(1), 2, 9, 7, SlotConflict.SOLD_OUT, 9),))
    assert preview([(d(1), d(2), 3)], terms=terms) == AmendmentPreview(True, (SlotDiff(d(1), 2, 3, 1, None, 3),))


def test_growing_a_night_past_its_release_time_is_refused_but_shrinking_it_is_not():
    terms = block(start=0, end=3, rooms=2, release_days=3)
    late = release_at(d(1), 3)
    rows = calendar([contract(allotment=4)], [], [terms], [], start=-2, end=6, now=late)
    grow = preview_amendment(terms, [(d(0), d(2), 3)], [], [], rows[1], late)
    assert [(x.date, x.conflict, x.needed) for x in grow.slots] == [
        (d(0), SlotConflict.RELEASED, 0), (d(1), SlotConflict.RELEASED, 0)]
    shrink = preview_amendment(terms, [(d(1), d(3), 1)], [], [], rows[1], late)
    assert shrink.feasible and [x.delta for x in shrink.slots] == [-1, -1]
    assert shrink.nights_with(SlotConflict.RELEASED) == []


def test_no_changes_preview_nothing():
    assert preview([]) == AmendmentPreview(True, ())


def test_the_diff_of_reverting_an_amendment():
    extension = amend(5, 1, 3, 5, 2)
    terms = block(start=0, end=3, rooms=2)
    bookings = [booking(1, 4, 5, hardblock_id=1)]
    rows = calendar([contract(allotment=4)], [extension], [terms], bookings, start=-2, end=6)
    current = compute_hardblock_slots(terms, [extension], bookings, None, None, NOW)
    reverted = compute_hardblock_slots(terms, [dataclasses.replace(extension, voided=True)], bookings, None, None, NOW)
    assert diff_slots(current, reverted, rows[1], [d(4), d(3), d(4)], NOW) == [
        SlotDiff(d(3), 2, 0, -2, None),
        SlotDiff(d(4), 2, 0, -2, SlotConflict.BLOCK_UNDERFLOW, booked=1),
    ]


def test_a_night_missing_from_one_side_has_size_zero_there():
    # e.g. creating a block: nothing before, its slots after
    terms = block(start=0, end=2, rooms=3)
    rows = calendar([contract(allotment=3), contract(id=2, start=1, end=2, allotment=1)], start=0, end=3)
    new = compute_hardblock_slots(terms, [], [], None, None, NOW)
    assert diff_slots([], new, rows[1], [d(0), d(1)], NOW) == [
        SlotDiff(d(0), 0, 3, 3, None, 3), SlotDiff(d(1), 0, 3, 3, None, 3)]
    assert diff_slots(new, [], rows[1], [d(1), d(2)], NOW) == [
        SlotDiff(d(1), 3, 0, -3, None), SlotDiff(d(2), 0, 0, 0, None)]
    smaller = calendar([contract(allotment=2)], start=0, end=3)
    assert [x.conflict for x in diff_slots([], new, smaller[1], [d(0), d(1)], NOW)] == [SlotConflict.SOLD_OUT] * 2


def test_reverting_an_amendment_is_previewed_between_two_states():
    growth = amend(5, 1, 0, 2, 4)
    terms = block(start=0, end=3, rooms=2)
    rows = calendar([contract(allotment=4)], [growth], [terms], [], start=-2, end=6)
    voided = dataclasses.replace(growth, voided=True)
    result = preview_change((terms, [growth]), (terms, [voided]), [], rows[1], [d(1), d(0)], NOW)
    assert result == AmendmentPreview(True, (SlotDiff(d(0), 4, 2, -2, None), SlotDiff(d(1), 4, 2, -2, None)))
    assert preview_change((terms, []), (terms, []), [], rows[1], [], NOW) == AmendmentPreview(True, ())


# --- extending and giving rooms back -----------------------------------------------------


def test_an_extension_continues_at_the_size_of_the_last_night_with_rooms():
    terms = block(start=0, end=3, rooms=2)
    slots = compute_hardblock_slots(terms, [amend(5, 1, 1, 2, 4), amend(6, 1, 2, 3, 0)], [], None, None, NOW)
    assert extension(slots, 2, terms.rooms) == (d(2), d(4), 4)  # after the last night with rooms
    emptied = compute_hardblock_slots(terms, [amend(5, 1, 0, 3, 0)], [], None, None, NOW)
    assert extension(emptied, 1, terms.rooms) == (d(3), d(4), 2)
    with pytest.raises(InvalidInput) as raised:
        extension(slots, 0, 2)
    assert raised.value.field == "nights"


def test_giving_rooms_back_shrinks_each_night_in_runs_of_equal_size():
    terms = block(start=0, end=4, rooms=3)
    slots = compute_hardblock_slots(terms, [amend(5, 1, 2, 3, 5)], [], None, None, NOW)
    assert returned_rooms(terms, slots, 2, NOW) == [(d(0), d(2), 1), (d(2), d(3), 3), (d(3), d(4), 1)]


@pytest.mark.parametrize(
    ("terms", "rooms", "field", "fragment"),
    [
        (block(start=0, end=2, rooms=3), 0, "rooms", "must be positive"),
        (block(start=0, end=2, rooms=3), 4, "rooms", "fewer than 4 rooms on 2026-05-01 (3), 2026-05-02 (3)"),
        (block(start=0, end=2, rooms=3, released_nights=frozenset({d(1)})), 1, "dates", "2026-05-02"),
    ],
)
def test_giving_back_more_than_the_block_holds_or_a_released_night_is_refused(terms, rooms, field, fragment):
    slots = compute_hardblock_slots(terms, [], [], None, None, NOW)
    with pytest.raises(InvalidInput) as raised:
        returned_rooms(terms, slots, rooms, NOW)
    assert raised.value.field == field and fragment in raised.value.message
