"""Reconciliation by example: one supplier contract read after read (DESIGN.md, "Supply side")."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from decimal import Decimal

import pytest

from domain import (
    DEFAULT_STATUS_TRANSFORMS,
    AllotmentUnit,
    ContractAction,
    ContractLayer,
    ContractRow,
    EventKind,
    HeldIncrease,
    LayerNight,
    Money,
    Outcome,
    PlannedEvent,
    Reconciliation,
    SyncIssueKind,
    apply_reconciliation,
    reconcile,
    supplier_nights,
)
from tests.domain.factories import (
    D0,
    T0,
    SupplierFeed,
    amend,
    d,
    eur,
    increase,
    rate_change,
    reduce,
    stop_sell,
    supplier_record,
)

INC, RED, STOP, RATE = (
    EventKind.INCREASE_ALLOTMENT,
    EventKind.REDUCE_ALLOTMENT,
    EventKind.BLOCK_CONTRACT,
    EventKind.RATE_CHANGE,
)
ROOM_NIGHTS = AllotmentUnit.ROOM_NIGHTS


def planned(kind: EventKind, start: int, end: int, quantity: int | None = None, rate: str | None = None):
    return PlannedEvent(kind, d(start), d(end), quantity, eur(rate) if rate is not None else None)


def kinds(plan: Reconciliation) -> list[SyncIssueKind]:
    return [issue.kind for issue in plan.issues]


def feed_with(confirm_after: int = 1, today: date = D0, **record) -> SupplierFeed:
    """A feed whose contract already exists (created from `record`)."""
    feed = SupplierFeed(confirm_after=confirm_after, today=today)
    assert feed.read(supplier_record(**record)).outcome is Outcome.CREATED
    return feed


# --- a new contract ----------------------------------------------------------------------------


def test_a_new_contract_is_created_with_its_rooms_per_night_and_its_overrides_as_events():
    # given a record whose overrides put one night above its rooms per night and two below
    record = supplier_record(
        start=0, end=6, allotment=10, rate="120", release_days=2, terms="BB", nights={1: 12, 3: 8, 4: 8}
    )

    # when
    plan = reconcile(record, None, DEFAULT_STATUS_TRANSFORMS, confirm_after=3, today=D0)

    # then: everything applies at once (there is nothing to flicker from), nights coalesced
    assert plan.outcome is Outcome.CREATED
    assert plan.row == ContractRow(d(0), d(6), 10, eur("120"), 2, "BB")
    assert plan.events == (planned(INC, 1, 2, 2), planned(RED, 3, 5, 2))
    assert (plan.voids, plan.held, plan.issues) == ((), (), ())
    assert plan.last_updated_at == record.updated_at
    assert plan.records_anything


def test_a_new_stopped_contract_is_created_closed():
    feed = SupplierFeed()
    plan = feed.read(supplier_record(start=0, end=3, status="STOP_SALE"))
    assert plan.events == (planned(STOP, 0, 3),)
    assert feed.nights() == {d(i): LayerNight(10, eur("100"), True) for i in range(3)}


def test_a_new_cancelled_contract_is_created_empty_so_that_older_records_of_it_are_stale():
    feed = SupplierFeed(today=d(2))
    plan = feed.read(supplier_record(start=0, end=5, allotment=10, status="CXL", at=10, nights={1: 3}))
    assert plan.outcome is Outcome.CREATED
    assert plan.row == ContractRow(d(0), d(5), 0, eur("100"), 3, "")
    assert plan.events == ()
    assert feed.rooms() == [0] * 5

    late = feed.read(supplier_record(start=0, end=5, allotment=10, at=5))
    assert (late.outcome, kinds(late)) == (Outcome.UNCHANGED, [SyncIssueKind.STALE])
    assert feed.rooms() == [0] * 5


def test_the_same_record_again_records_nothing():
    feed = feed_with(nights={2: 4})
    again = feed.read(supplier_record(nights={2: 4}))
    assert again == Reconciliation(Outcome.UNCHANGED, last_updated_at=T0)
    assert not again.records_anything


# --- increases wait for confirmation, reductions do not ----------------------------------------


def test_a_flicker_costs_one_reduction_then_one_increase_on_the_confirming_read():
    feed = feed_with(confirm_after=2, allotment=10)

    down = feed.read(supplier_record(allotment=9, at=1))
    assert (down.outcome, down.events) == (Outcome.UPDATED, (planned(RED, 0, 5, 1),))
    assert feed.rooms() == [9] * 5

    seen_once = feed.read(supplier_record(allotment=10, at=2))
    assert (seen_once.outcome, seen_once.events) == (Outcome.UNCHANGED, ())
    assert seen_once.held == tuple(HeldIncrease(d(i), 10, 1) for i in range(5))
    assert seen_once.issues[0].kind is SyncIssueKind.HELD_INCREASE
    assert seen_once.issues[0].external_id == "MHG-C-1"
    assert seen_once.issues[0].message == (
        "increase held until seen in 2 consecutive reads: 2026-05-01 to 2026-05-05: 10 rooms (read 1)"
    )
    assert feed.rooms() == [9] * 5

    confirmed = feed.read(supplier_record(allotment=10, at=3))
    assert (confirmed.outcome, confirmed.events, confirmed.held) == (Outcome.UPDATED, (planned(INC, 0, 5, 1),), ())
    assert feed.rooms() == [10] * 5

    assert feed.read(supplier_record(allotment=10, at=4)) == Reconciliation(
        Outcome.UNCHANGED, last_updated_at=T0 + timedelta(minutes=4)
    )


def test_a_target_that_changes_starts_counting_again():
    feed = feed_with(confirm_after=2, allotment=10)
    assert feed.read(supplier_record(allotment=11)).held == tuple(HeldIncrease(d(i), 11, 1) for i in range(5))
    assert feed.read(supplier_record(allotment=12)).held == tuple(HeldIncrease(d(i), 12, 1) for i in range(5))
    assert feed.read(supplier_record(allotment=12)).events == (planned(INC, 0, 5, 2),)


def test_a_target_back_at_the_layer_drops_the_held_increase():
    feed = feed_with(confirm_after=2, allotment=10)
    assert feed.read(supplier_record(allotment=11)).held
    back = feed.read(supplier_record(allotment=10))
    assert back == Reconciliation(Outcome.UNCHANGED, last_updated_at=T0)
    # and the count starts from one again
    assert feed.read(supplier_record(allotment=11)).held[0].reads == 1


def test_held_nights_are_named_in_one_issue_per_record():
    feed = feed_with(confirm_after=3, start=0, end=5, allotment=10)
    plan = feed.read(supplier_record(allotment=10, nights={0: 12, 1: 12, 3: 14}))
    assert plan.held == (HeldIncrease(d(0), 12, 1), HeldIncrease(d(1), 12, 1), HeldIncrease(d(3), 14, 1))
    assert [issue.message for issue in plan.issues] == [
        "increase held until seen in 3 consecutive reads: 2026-05-01 to 2026-05-02: 12 rooms (read 1); "
        "2026-05-04: 14 rooms (read 1)"
    ]
    # a reduction in the same record applies at once, beside the held increases
    mixed = feed.read(supplier_record(allotment=10, nights={0: 12, 1: 12, 3: 14, 4: 7}))
    assert mixed.events == (planned(RED, 4, 5, 3),)
    assert [h.reads for h in mixed.held] == [2, 2, 2]


# --- statuses ----------------------------------------------------------------------------------


def test_stop_sell_closes_the_contract_once_and_active_reopens_it():
    feed = feed_with(start=0, end=4)

    stopped = feed.read(supplier_record(start=0, end=4, status="STOP"))
    assert (stopped.outcome, stopped.events) == (Outcome.UPDATED, (planned(STOP, 0, 4),))
    assert all(night.closed for night in feed.nights().values())
    block_id = feed.layer.events[-1].id

    assert feed.read(supplier_record(start=0, end=4, status="STOP")).outcome is Outcome.UNCHANGED

    reopened = feed.read(supplier_record(start=0, end=4, status="CONFIRMED"))
    assert (reopened.outcome, reopened.events, reopened.voids) == (Outcome.UPDATED, (), (block_id,))
    assert not any(night.closed for night in feed.nights().values())


def test_stop_sell_over_a_wider_range_replaces_the_block():
    feed = feed_with(start=0, end=4)
    feed.read(supplier_record(start=0, end=4, status="STOP"))
    old_block = feed.layer.events[-1].id

    plan = feed.read(supplier_record(start=0, end=6, status="STOP"))
    assert plan.events == (planned(STOP, 0, 6),)
    assert plan.voids == (old_block,)
    assert all(night.closed for night in feed.nights().values())


def test_stop_sell_keeps_the_block_that_covers_the_contract_and_voids_strays():
    layer = ContractLayer(
        1, 1, d(0), d(4), 10, eur(100), 3, "", events=(stop_sell(7, 0, 4), stop_sell(8, 1, 2)), last_updated_at=T0
    )
    plan = reconcile(supplier_record(start=0, end=4, status="STOP"), layer, DEFAULT_STATUS_TRANSFORMS, 1, D0)
    assert (plan.events, plan.voids) == ((), (8,))


def test_cancelled_zeroes_the_nights_from_today_and_leaves_the_earlier_ones_alone():
    feed = feed_with(today=d(3), start=0, end=6, allotment=10, rate="100")
    feed.read(supplier_record(start=0, end=6, status="STOP"))

    # a cancellation with another range, rate and rooms changes neither range, rates nor block
    plan = feed.read(supplier_record(start=1, end=8, allotment=4, rate="90", status="CANCELLED", terms="cxl"))
    assert plan.outcome is Outcome.UPDATED
    assert plan.events == (planned(RED, 3, 6, 10),)
    assert plan.voids == ()
    assert plan.row == ContractRow(d(0), d(6), 10, eur("100"), 3, "cxl")
    assert feed.rooms() == [10, 10, 10, 0, 0, 0]
    assert all(night.rate == eur(100) and night.closed for night in feed.nights().values())

    assert feed.read(supplier_record(start=1, end=8, status="CANCELLED", terms="cxl")).outcome is Outcome.UNCHANGED


def test_a_status_the_supplier_never_mapped_is_rejected_and_changes_nothing():
    feed = feed_with(confirm_after=2)
    held = feed.read(supplier_record(allotment=12, at=1)).held
    plan = feed.read(supplier_record(allotment=0, status="ON_REQUEST", at=2))
    assert plan.outcome is Outcome.REJECTED
    assert [(i.kind, i.external_id) for i in plan.issues] == [(SyncIssueKind.UNKNOWN_STATUS, "MHG-C-1")]
    assert "'ON_REQUEST'" in plan.issues[0].message
    assert (plan.events, plan.voids, plan.row, plan.held) == ((), (), None, held)
    assert plan.last_updated_at == T0 + timedelta(minutes=1)

    new = reconcile(supplier_record(status="ON_REQUEST"), None, DEFAULT_STATUS_TRANSFORMS, 1, D0)
    assert (new.outcome, kinds(new)) == (Outcome.REJECTED, [SyncIssueKind.UNKNOWN_STATUS])


def test_a_status_mapped_to_ignore_is_skipped_without_an_issue():
    transforms = {**DEFAULT_STATUS_TRANSFORMS, "TENTATIVE": ContractAction.IGNORE}
    assert reconcile(supplier_record(status="TENTATIVE"), None, transforms, 1, D0) == Reconciliation(Outcome.IGNORED)
    feed = feed_with()
    feed.transforms = transforms
    before = feed.layer
    assert feed.read(supplier_record(allotment=0, status="TENTATIVE", at=9)).outcome is Outcome.IGNORED
    assert feed.layer == before


# --- units -------------------------------------------------------------------------------------


def test_room_nights_are_divided_over_the_nights():
    feed = SupplierFeed()
    plan = feed.read(supplier_record(start=0, end=5, allotment=50, unit=ROOM_NIGHTS, nights={2: 3}))
    assert plan.row is not None and plan.row.allotment == 10
    assert feed.rooms() == [10, 10, 3, 10, 10]


def test_room_nights_that_do_not_divide_evenly_are_rejected_as_unit_drift():
    feed = feed_with(allotment=10)
    before = feed.layer
    plan = feed.read(supplier_record(start=0, end=5, allotment=51, unit=ROOM_NIGHTS, at=1))
    assert (plan.outcome, kinds(plan)) == (Outcome.REJECTED, [SyncIssueKind.UNIT_DRIFT])
    assert plan.issues[0].message == (
        "allotment 51 ROOM_NIGHTS does not divide evenly over 5 nights; rejected (is it in rooms per night?)"
    )
    assert feed.layer == before


def test_rooms_that_equal_nights_times_the_current_count_are_suspected_drift_and_not_applied():
    feed = feed_with(confirm_after=1, start=0, end=5, allotment=10, rate="100")

    plan = feed.read(supplier_record(start=0, end=5, allotment=50, rate="110", at=1))

    # the rate still applies; the rooms stay
    assert (plan.outcome, kinds(plan)) == (Outcome.UPDATED, [SyncIssueKind.UNIT_DRIFT])
    assert plan.events == (planned(RATE, 0, 5, rate="110"),)
    assert plan.issues[0].message.startswith("allotment 50 is exactly 5 nights x the current 10 rooms per night")
    assert feed.rooms() == [10] * 5

    again = feed.read(supplier_record(start=0, end=5, allotment=50, rate="110", at=2))
    assert (again.outcome, kinds(again), again.events) == (Outcome.UNCHANGED, [SyncIssueKind.UNIT_DRIFT], ())


def test_suspected_drift_confirms_no_held_increase_and_still_narrows():
    feed = feed_with(confirm_after=2, start=0, end=5, allotment=10)
    assert feed.read(supplier_record(start=0, end=5, allotment=11)).held

    # 40 = 4 nights x 10: the record also leaves night 0, which drops to 0 at once
    plan = feed.read(supplier_record(start=1, end=5, allotment=40))
    assert kinds(plan) == [SyncIssueKind.UNIT_DRIFT]
    assert (plan.events, plan.held) == ((planned(RED, 0, 1, 10),), ())


def test_suspected_drift_compares_the_nights_the_record_does_not_override():
    feed = feed_with(start=0, end=4, allotment=10, nights={0: 3})
    plan = feed.read(supplier_record(start=0, end=4, allotment=40, nights={0: 3}))
    assert kinds(plan) == [SyncIssueKind.UNIT_DRIFT]


def test_under_suspected_drift_the_overrides_still_apply():
    # 8 = 2 nights x 4: the plain count is suspect, the override of night 0 is not
    feed = feed_with(confirm_after=2, start=0, end=2, allotment=4)
    plan = feed.read(supplier_record(start=0, end=2, allotment=8, nights={0: 0}))
    assert kinds(plan) == [SyncIssueKind.UNIT_DRIFT]
    assert plan.events == (planned(RED, 0, 1, 4),)
    assert feed.rooms() == [0, 4]


def test_a_suspect_record_that_widens_the_row_stays_suspect_on_later_reads():
    # nights 2-3 join the row at 0 on the first read; they must not make the second read look sane
    feed = feed_with(confirm_after=2, start=0, end=2, allotment=5)
    for _ in range(3):
        plan = feed.read(supplier_record(start=0, end=4, allotment=20))
        assert kinds(plan) == [SyncIssueKind.UNIT_DRIFT]
    assert feed.rooms() == [5, 5, 0, 0]


@pytest.mark.parametrize(
    ("layer_record", "record"),
    [
        # one night: the count is the same in either unit
        (dict(start=0, end=1, allotment=10), dict(start=0, end=1, allotment=10)),
        # room-nights are never "the wrong unit" for rooms
        (dict(start=0, end=2, allotment=10), dict(start=0, end=2, allotment=40, unit=ROOM_NIGHTS)),
        # the layer is not uniform over the record's nights
        (dict(start=0, end=2, allotment=10, nights={1: 4}), dict(start=0, end=2, allotment=20)),
        # nothing to multiply
        (dict(start=0, end=2, allotment=0), dict(start=0, end=2, allotment=0)),
        # every night overridden: the plain count is not used
        (dict(start=0, end=2, allotment=10), dict(start=0, end=2, allotment=20, nights={0: 10, 1: 10})),
        # the row does not cover the record's nights yet
        (dict(start=0, end=2, allotment=10), dict(start=4, end=6, allotment=20)),
        # a cancellation does not use the count
        (dict(start=0, end=2, allotment=10), dict(start=0, end=2, allotment=20, status="CXL")),
    ],
)
def test_no_drift_is_suspected(layer_record, record):
    feed = feed_with(confirm_after=2, **layer_record)
    assert SyncIssueKind.UNIT_DRIFT not in kinds(feed.read(supplier_record(**record)))


# --- time --------------------------------------------------------------------------------------


def test_a_record_older_than_the_last_applied_one_is_stale():
    feed = feed_with(allotment=10, at=10)
    before = feed.layer
    plan = feed.read(supplier_record(allotment=3, at=9))
    assert (plan.outcome, kinds(plan), plan.events) == (Outcome.UNCHANGED, [SyncIssueKind.STALE], ())
    assert plan.issues[0].message == (
        "updated_at 2026-01-01T00:09:00+00:00 is older than the record already applied "
        "(2026-01-01T00:10:00+00:00); ignored"
    )
    assert feed.layer == before


def test_a_record_as_old_as_the_last_applied_one_is_a_re_read():
    feed = feed_with(allotment=10, at=10)
    plan = feed.read(supplier_record(allotment=3, at=10))
    assert (plan.outcome, plan.issues) == (Outcome.UPDATED, ())
    assert feed.rooms() == [3] * 5


def test_a_layer_never_updated_is_never_stale():
    layer = dataclasses.replace(feed_with().layer, last_updated_at=None)
    plan = reconcile(supplier_record(allotment=9, at=-100), layer, DEFAULT_STATUS_TRANSFORMS, 1, D0)
    assert plan.outcome is Outcome.UPDATED


def test_a_newer_record_with_the_same_content_only_moves_the_last_update():
    feed = feed_with(at=0)
    plan = feed.read(supplier_record(at=30))
    assert plan == Reconciliation(Outcome.UNCHANGED, last_updated_at=T0 + timedelta(minutes=30))
    assert feed.layer.last_updated_at == T0 + timedelta(minutes=30)


# --- range, rate, row --------------------------------------------------------------------------


def test_widening_covers_the_new_nights_from_zero_and_holds_their_increase():
    feed = feed_with(confirm_after=2, start=0, end=5, allotment=10)

    plan = feed.read(supplier_record(start=0, end=8, allotment=10))

    # the row now gives its base of 10 to nights 5-7 too: a reduction keeps them at 0 meanwhile
    assert plan.row == ContractRow(d(0), d(8), 10, eur(100), 3, "")
    assert plan.events == (planned(RED, 5, 8, 10),)
    assert plan.held == tuple(HeldIncrease(d(i), 10, 1) for i in range(5, 8))
    assert feed.rooms() == [10] * 5 + [0] * 3

    confirmed = feed.read(supplier_record(start=0, end=8, allotment=10))
    assert (confirmed.row, confirmed.events) == (None, (planned(INC, 5, 8, 10),))
    assert feed.rooms() == [10] * 8


def test_widening_with_increases_at_once_records_only_the_difference_from_the_base():
    feed = feed_with(start=2, end=5, allotment=10, rate="100")
    plan = feed.read(supplier_record(start=0, end=7, allotment=10, rate="100", nights={0: 12, 6: 4}))
    assert plan.events == (planned(INC, 0, 1, 2), planned(RED, 6, 7, 6))
    assert feed.rooms() == [12, 10, 10, 10, 10, 10, 4]


def test_narrowing_drops_the_nights_that_left_to_zero_and_keeps_the_row():
    feed = feed_with(start=0, end=5, allotment=10)
    plan = feed.read(supplier_record(start=2, end=4, allotment=10))
    assert (plan.row, plan.events) == (None, (planned(RED, 0, 2, 10), planned(RED, 4, 5, 10)))
    assert feed.rooms() == [0, 0, 10, 10, 0]
    assert feed.read(supplier_record(start=2, end=4, allotment=10)).outcome is Outcome.UNCHANGED


def test_a_disjoint_range_spans_the_gap_at_zero():
    feed = feed_with(start=0, end=3, allotment=10)
    plan = feed.read(supplier_record(start=5, end=7, allotment=10))
    assert plan.row == ContractRow(d(0), d(7), 10, eur(100), 3, "")
    assert plan.events == (planned(RED, 0, 5, 10),)
    assert feed.rooms() == [0, 0, 0, 0, 0, 10, 10]


def test_rate_changes_cover_only_the_nights_whose_rate_differs():
    feed = feed_with(start=0, end=6, rate="100")
    feed.layer = dataclasses.replace(feed.layer, events=(rate_change(50, 2, 4, "120"),))
    plan = feed.read(supplier_record(start=0, end=6, rate="120.00"))
    assert plan.events == (planned(RATE, 0, 2, rate="120"), planned(RATE, 4, 6, rate="120"))
    assert [night.rate for night in feed.nights().values()] == [eur(120)] * 6
    assert feed.read(supplier_record(start=0, end=6, rate="120")).outcome is Outcome.UNCHANGED


def test_release_days_and_terms_update_the_row():
    feed = feed_with(release_days=3, terms="BB")
    plan = feed.read(supplier_record(release_days=5, terms="HB, no refunds"))
    assert (plan.outcome, plan.events) == (Outcome.UPDATED, ())
    assert plan.row == ContractRow(d(0), d(5), 10, eur(100), 5, "HB, no refunds")
    assert (feed.layer.release_days, feed.layer.terms) == (5, "HB, no refunds")


# --- invalid records ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(start=3, end=3), "nights [2026-05-04, 2026-05-04) rejected: to: must be after from"),
        (dict(start=-10_000, end=1), "nights [1998-12-14, 2026-05-02) rejected: from: must be on or after 2000-01-01"),
        (dict(start=0, end=30_000), "nights [2026-05-01, 2108-06-20) rejected: to: must be on or before 2100-01-01"),
        (dict(allotment=-1), "allotment -1 is negative"),
        (dict(allotment=100_001), "allotment 100001 rooms per night is above 100000"),
        (dict(allotment=500_010, unit=ROOM_NIGHTS), "allotment 100002 rooms per night is above 100000"),
        (dict(nights={5: 3}), "nights: 2026-05-06 is outside the contract's nights [2026-05-01, 2026-05-06)"),
        (dict(nights={-1: 3}), "nights: 2026-04-30 is outside the contract's nights [2026-05-01, 2026-05-06)"),
        (dict(nights={1: -2}), "nights: 2026-05-02 has allotment -2, must be 0 to 100000"),
        (dict(nights={1: 100_001}), "nights: 2026-05-02 has allotment 100001, must be 0 to 100000"),
        (dict(rate="-1"), "rate rejected: rate.amount: must not be negative"),
        (dict(release_days=-1), "release_days -1 must be 0 to 365"),
        (dict(release_days=366), "release_days 366 must be 0 to 365"),
    ],
)
def test_records_outside_the_domain_limits_are_rejected(fields, message):
    feed = feed_with(confirm_after=2)
    feed.read(supplier_record(allotment=11))
    before = feed.layer
    plan = feed.read(supplier_record(at=5, **fields))
    assert (plan.outcome, kinds(plan)) == (Outcome.REJECTED, [SyncIssueKind.INVALID_RECORD])
    assert plan.issues[0].message.startswith(message)
    assert feed.layer == before


def test_a_night_overridden_twice_and_a_bad_currency_are_rejected():
    twice = dataclasses.replace(supplier_record(), nights=((d(1), 3), (d(1), 4)))
    plan = reconcile(twice, None, DEFAULT_STATUS_TRANSFORMS, 1, D0)
    assert plan.issues[0].message == "nights: 2026-05-02 is given more than once"
    bad = dataclasses.replace(supplier_record(), rate=Money(Decimal(100), "eur"))
    plan = reconcile(bad, None, DEFAULT_STATUS_TRANSFORMS, 1, D0)
    assert plan.issues[0].message.startswith("rate rejected: rate.currency")


def test_confirm_after_is_at_least_one():
    with pytest.raises(ValueError, match="at least 1"):
        reconcile(supplier_record(), None, DEFAULT_STATUS_TRANSFORMS, 0, D0)


# --- the layer and applying a plan -------------------------------------------------------------


def test_the_supplier_layer_sums_its_events_and_takes_the_last_rate():
    layer = ContractLayer(
        1,
        1,
        d(0),
        d(4),
        5,
        eur(100),
        0,
        "",
        events=(
            increase(1, 0, 2, 3),
            reduce(2, 1, 4, 7),  # raw sums, never clamped: night 2 is -2
            rate_change(4, 0, 4, "130"),
            rate_change(3, 1, 2, "110", at=T0 + timedelta(days=1)),  # later by effective time
            stop_sell(5, 3, 9),
            increase(6, 0, 4, 50, voided=True),
            increase(7, 8, 9, 50),  # outside the row
            amend(8, 1, 0, 4, 3),  # sizes a hardblock, never part of the supplier layer
        ),
    )
    assert supplier_nights(layer) == {
        d(0): LayerNight(8, eur(130), False),
        d(1): LayerNight(1, eur(110), False),
        d(2): LayerNight(-2, eur(130), False),
        d(3): LayerNight(-2, eur(130), True),
    }


def test_applying_a_plan_records_its_events_with_the_ids_given_and_drops_the_voided():
    feed = feed_with(start=0, end=4)
    feed.read(supplier_record(start=0, end=4, status="STOP"))
    block = feed.layer.events[-1]
    plan = feed.plan(supplier_record(start=0, end=4, allotment=8, rate="90", at=3))
    layer = apply_reconciliation(feed.layer, plan, event_ids=[41, 42], effective_at=T0)
    assert [e.id for e in layer.events] == [41, 42]
    assert block.id in plan.voids
    assert layer.events[0] == reduce(41, 0, 4, 2, at=T0)
    assert layer.last_updated_at == T0 + timedelta(minutes=3)


def test_applying_needs_an_id_per_event_and_the_ids_of_a_new_contract():
    plan = reconcile(supplier_record(nights={0: 3}), None, DEFAULT_STATUS_TRANSFORMS, 1, D0)
    with pytest.raises(ValueError, match="1 events planned, 0 ids given"):
        apply_reconciliation(None, plan, event_ids=[], effective_at=T0)
    with pytest.raises(ValueError, match="contract_id and room_type_id"):
        apply_reconciliation(None, plan, event_ids=[1], effective_at=T0)
    rejected = reconcile(supplier_record(status="??"), None, DEFAULT_STATUS_TRANSFORMS, 1, D0)
    assert apply_reconciliation(None, rejected, event_ids=[], effective_at=T0) is None
