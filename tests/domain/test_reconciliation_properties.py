"""Properties of reconciliation on random histories of one supplier contract: counts that
flicker, overrides, ranges that widen and narrow, every status, stale timestamps, unit drift."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import (
    AllotmentUnit,
    ContractAction,
    ContractLayer,
    ContractTerms,
    EventKind,
    LayerNight,
    Outcome,
    SupplierContract,
    check_event,
    resolve,
    supplier_nights,
)
from tests.domain.factories import T0, SupplierFeed, d
from tests.domain.reference import covers, each_night
from tests.domain.strategies import SUPPLIER_TRANSFORMS, operator_events, supplier_records

SETTINGS = settings(max_examples=80, deadline=None)
SKIPPED = (Outcome.REJECTED, Outcome.IGNORED)


def minutes(record: SupplierContract) -> int:
    return (record.updated_at - T0) // timedelta(minutes=1)


def new_feed(data, confirm_after: int | None = None) -> SupplierFeed:
    return SupplierFeed(
        confirm_after=confirm_after if confirm_after is not None else data.draw(st.integers(1, 3)),
        today=d(data.draw(st.integers(-1, 5))),
        transforms=SUPPLIER_TRANSFORMS,
    )


def read_history(data, feed: SupplierFeed, max_reads: int = 6) -> int:
    """Feeds a random history to `feed`; the latest updated_at it applied, in minutes."""
    last = 0
    for _ in range(data.draw(st.integers(0, max_reads))):
        record = data.draw(supplier_records(feed.layer, last))
        feed.read(record)
        last = max(last, minutes(record))
    return last


# --- a reading of the rules, one night at a time ---------------------------------------------


def action_of(record: SupplierContract) -> ContractAction | None:
    return SUPPLIER_TRANSFORMS.get(record.status)


def nights_in(record: SupplierContract) -> int:
    return (record.end - record.start).days


def is_skipped(record: SupplierContract, layer: ContractLayer | None) -> bool:
    """Rejected, ignored or stale: nothing of it may reach the layer."""
    action = action_of(record)
    return (
        action is None
        or action is ContractAction.IGNORE
        or record.allotment < 0
        or (record.unit is AllotmentUnit.ROOM_NIGHTS and record.allotment % nights_in(record) != 0)
        or (layer is not None and layer.last_updated_at is not None and record.updated_at < layer.last_updated_at)
    )


def per_night(record: SupplierContract, night: date) -> int:
    """The rooms the record literally asks for on `night` (0 outside its range)."""
    if not covers(record.start, record.end, night):
        return 0
    overrides = dict(record.nights)
    if night in overrides:
        return overrides[night]
    if record.unit is AllotmentUnit.ROOM_NIGHTS:
        return record.allotment // nights_in(record)
    return record.allotment


def suspected_drift(record: SupplierContract, before: dict[date, LayerNight]) -> bool:
    if record.unit is not AllotmentUnit.ROOMS or nights_in(record) < 2:
        return False
    overridden = dict(record.nights)
    counts = {
        before[night].rooms
        for night in each_night(record.start, record.end)
        if night in before and night not in overridden and before[night].rooms > 0
    }
    return len(counts) == 1 and record.allotment == nights_in(record) * counts.pop()


def reference_targets(record: SupplierContract, layer: ContractLayer | None, today: date) -> dict[date, LayerNight]:
    """What every night of the row holds once no increase is held (the record is not skipped)."""
    action = action_of(record)
    if layer is None:
        return {
            night: LayerNight(
                0 if action is ContractAction.CANCELLED else per_night(record, night),
                record.rate,
                action is ContractAction.STOP_SELL,
            )
            for night in each_night(record.start, record.end)
        }
    before = supplier_nights(layer)
    if action is ContractAction.CANCELLED:
        return {
            night: LayerNight(0 if night >= today else was.rooms, was.rate, was.closed) for night, was in before.items()
        }
    drift = suspected_drift(record, before)
    out = {}
    for night in each_night(min(layer.start, record.start), max(layer.end, record.end)):
        was = before.get(night)
        inside = covers(record.start, record.end, night)
        if drift and inside and night not in dict(record.nights):
            rooms = was.rooms if was else 0
        else:
            rooms = per_night(record, night)
        rate = record.rate if inside else (was.rate if was else layer.rate)
        out[night] = LayerNight(rooms, rate, action is ContractAction.STOP_SELL)
    return out


# --- 1. idempotence -----------------------------------------------------------------------------


@SETTINGS
@given(st.data())
def test_reconciling_twice_equals_reconciling_once(data):
    feed = new_feed(data, confirm_after=1)
    last = read_history(data, feed)
    record = data.draw(supplier_records(feed.layer, last))

    first = feed.read(record)
    once = feed.layer
    second = feed.read(record)

    assert not second.records_anything
    assert second.outcome is (first.outcome if first.outcome in SKIPPED else Outcome.UNCHANGED)
    assert feed.layer == once


@SETTINGS
@given(st.data())
def test_k_reads_of_the_same_record_reach_a_fixpoint(data):
    k = data.draw(st.integers(2, 4))
    feed = new_feed(data, confirm_after=k)
    last = read_history(data, feed)
    record = data.draw(supplier_records(feed.layer, last))
    skipped = is_skipped(record, feed.layer)

    first = feed.read(record)
    for _ in range(k - 1):
        feed.read(record)
    settled = feed.layer
    one_more = feed.read(record)

    assert not one_more.records_anything
    assert one_more.outcome is (first.outcome if first.outcome in SKIPPED else Outcome.UNCHANGED)
    assert feed.layer == settled
    if not skipped:
        assert one_more.held == ()


# --- 2. the layer is the target, except where an increase is held -----------------------------


@SETTINGS
@given(st.data())
def test_after_reconciling_the_layer_is_the_target_wherever_no_increase_is_held(data):
    feed = new_feed(data)
    last = 0
    for _ in range(data.draw(st.integers(1, 7))):
        record = data.draw(supplier_records(feed.layer, last))
        layer = feed.layer
        before = feed.nights()

        plan = feed.read(record)

        for event in plan.events:
            assert check_event(event.kind, event.start, event.end, event.quantity, event.rate) is None
        if is_skipped(record, layer):
            assert not plan.records_anything and feed.layer == layer
            continue
        last = max(last, minutes(record))
        targets = reference_targets(record, layer, feed.today)
        after = feed.nights()
        held = {h.night: h for h in plan.held}
        assert after.keys() == targets.keys()
        assert held.keys() <= targets.keys()
        for night, want in targets.items():
            got = after[night]
            assert (got.rate, got.closed) == (want.rate, want.closed)
            if night in held:
                assert held[night].rooms == want.rooms
                assert got.rooms == (before[night].rooms if night in before else 0) < want.rooms
            else:
                assert got.rooms == want.rooms


# --- 3. never more than the supplier allows -----------------------------------------------------


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_no_history_makes_the_layer_exceed_the_latest_applied_record(data):
    feed = new_feed(data)
    allowed: dict[date, int] = {}  # per night, what the latest applied record allows
    # per night, the target the latest applied reads agreed on and in how many reads in a row
    streak: dict[date, tuple[int | None, int]] = {}
    last = 0
    for _ in range(data.draw(st.integers(1, 8))):
        record = data.draw(supplier_records(feed.layer, last))
        layer = feed.layer
        before = feed.nights()

        plan = feed.read(record)
        after = feed.nights()

        if is_skipped(record, layer):
            continue
        last = max(last, minutes(record))
        cancelled = action_of(record) is ContractAction.CANCELLED
        drift = layer is not None and suspected_drift(record, before)
        for night in after:
            if cancelled:
                allowed[night] = 0 if night >= feed.today else allowed.get(night, 0)
                sighting = None  # nothing to confirm: a cancellation never raises a night
            else:
                allowed[night] = per_night(record, night)
                suspect = drift and night not in dict(record.nights)  # overrides are rooms, never suspect
                sighting = None if suspect else per_night(record, night)
            seen, reads = streak.get(night, (None, 0))
            streak[night] = (sighting, reads + 1 if sighting is not None and sighting == seen else 1)

        for night, now in after.items():
            assert 0 <= now.rooms <= allowed[night]
            was = before[night].rooms if night in before else 0
            if now.rooms > was and plan.outcome is not Outcome.CREATED:
                assert streak[night] == (now.rooms, streak[night][1])
                assert streak[night][1] >= feed.confirm_after


# --- 4. operators' events are never touched -----------------------------------------------------


@SETTINGS
@given(st.data())
def test_operator_events_survive_any_reconciliation(data):
    feed = new_feed(data)
    last = read_history(data, feed, max_reads=4)
    operators = data.draw(operator_events())
    record = data.draw(supplier_records(feed.layer, last))
    supplier_ids = {e.id for e in feed.layer.events} if feed.layer else set()

    plan = feed.read(record)

    assert set(plan.voids) <= supplier_ids
    layer = feed.layer
    if layer is None:
        return
    row = ContractTerms(layer.contract_id, 1, layer.start, layer.end, layer.allotment, layer.rate, layer.release_days)
    resolved = resolve([row], [*layer.events, *operators], [1], layer.start, layer.end)[1]
    for i, (night, supplier) in enumerate(feed.nights().items()):
        delta = sum(
            (e.quantity or 0) * (1 if e.kind is EventKind.INCREASE_ALLOTMENT else -1)
            for e in operators
            if e.kind is not EventKind.BLOCK_CONTRACT and covers(e.start, e.end, night)
        )
        closed = any(e.kind is EventKind.BLOCK_CONTRACT and covers(e.start, e.end, night) for e in operators)
        assert resolved.allotment[i] == max(0, supplier.rooms + delta)
        assert resolved.closed[i] == (supplier.closed or closed)
