"""Reconciliation: one supplier record against what StaySync holds of that contract -> a plan.

The **supplier layer** of a contract is its row (base allotment, rate) plus the unvoided SUPPLIER
events of that contract. Operators' events are local adjustments on top: reconciliation never
sees them and never voids them, so they keep adding up in the resolver whatever the supplier
sends. `reconcile` only decides; the service records the plan in the contract's locked
transaction, and `apply_reconciliation` says what the layer becomes once it has.

Rules (DESIGN.md, "Reconciliation rules" and "Status transforms"), with the choices made here:
- Reductions apply at once; an increase waits until the same target for the night has been seen
  in `confirm_after` consecutive reads (a new contract has nothing to flicker from: at once).
- The row keeps its base allotment and rate once created; later differences are events.
  Its range only grows (to the hull of old and new), release days and terms follow the record.
- CANCELLED zeroes the row's nights from `today` on and touches nothing else: no rates, no
  range, no blocks (its nights are 0, so whether they are closed no longer matters).
- ROOM_NIGHTS totals are divided by all the record's nights, overridden ones included (the
  overrides are always in rooms and win).
- Suspected unit drift leaves the nights the plain count would set as they are (and forgets
  their held increases: a suspect read confirms nothing). The record's per-night overrides,
  always in rooms, apply as usual, and so do rates, release days, terms and the stop-sell state:
  they are in units of their own, and withholding a rate change would sell at the old price.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TypeVar, cast

from domain.contracts import MAX_RELEASE_DAYS, MAX_ROOMS
from domain.events import AllotmentEvent, EventKind, order_key
from domain.money import Money, check_money
from domain.nights import check_range
from domain.nights import nights as nights_of
from domain.resolver import clip
from domain.supply import AllotmentUnit, ContractAction, SupplierContract, SyncIssue, SyncIssueKind


@dataclass(frozen=True, slots=True)
class HeldIncrease:
    """An increase of `night` to `rooms`, seen in `reads` consecutive reads, not applied yet."""

    night: date
    rooms: int
    reads: int


@dataclass(frozen=True, slots=True)
class ContractLayer:
    """What StaySync holds of one supplier contract: its row, its unvoided SUPPLIER events (never
    an operator's), when the last applied record was updated, and the increases it is holding."""

    contract_id: int
    room_type_id: int
    start: date
    end: date
    allotment: int  # the row's base rooms per night
    rate: Money
    release_days: int
    terms: str
    events: tuple[AllotmentEvent, ...] = ()
    last_updated_at: datetime | None = None
    held: tuple[HeldIncrease, ...] = ()


@dataclass(frozen=True, slots=True)
class LayerNight:
    """The supplier layer on one night: what the supplier gives, before operators' adjustments."""

    rooms: int
    rate: Money
    closed: bool


class Outcome(StrEnum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    UNCHANGED = "UNCHANGED"  # also a stale record, or one whose increases are all still held
    IGNORED = "IGNORED"  # the status maps to IGNORE
    REJECTED = "REJECTED"  # unknown status, invalid record, uneven room-nights


@dataclass(frozen=True, slots=True)
class ContractRow:
    start: date
    end: date
    allotment: int
    rate: Money
    release_days: int
    terms: str


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    """An event to record with source SUPPLIER, for this contract and this run."""

    kind: EventKind
    start: date
    end: date
    quantity: int | None = None
    rate: Money | None = None


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """The plan for one record. `row` is set when the row is created or any of its values change;
    `held` and `last_updated_at` are the whole new state (as they were, when nothing applies)."""

    outcome: Outcome
    row: ContractRow | None = None
    events: tuple[PlannedEvent, ...] = ()
    voids: tuple[int, ...] = ()
    held: tuple[HeldIncrease, ...] = ()
    last_updated_at: datetime | None = None
    issues: tuple[SyncIssue, ...] = ()

    @property
    def records_anything(self) -> bool:
        return self.row is not None or bool(self.events) or bool(self.voids)


def supplier_nights(layer: ContractLayer) -> dict[date, LayerNight]:
    """The supplier layer per night of the row's range.

    Rooms are the raw sum (never clamped at 0 as the resolver does for the calendar): a negative
    supplier layer would be a bug here, and clamping would hide it."""
    n = (layer.end - layer.start).days
    origin = layer.start.toordinal()
    rooms = [0] * (n + 1)  # difference arrays, as in the resolver
    closed = [0] * (n + 1)
    rates = [layer.rate] * n
    rate_changes: list[AllotmentEvent] = []
    for event in layer.events:
        a, b = clip(event.start, event.end, origin, n)
        if event.voided or a >= b:
            continue
        if event.kind is EventKind.RATE_CHANGE:
            rate_changes.append(event)
        elif event.kind is EventKind.BLOCK_CONTRACT:
            closed[a] += 1
            closed[b] -= 1
        elif event.kind is EventKind.INCREASE_ALLOTMENT or event.kind is EventKind.REDUCE_ALLOTMENT:
            q = cast(int, event.quantity)  # validated on the way in: see check_event
            if event.kind is EventKind.REDUCE_ALLOTMENT:
                q = -q
            rooms[a] += q
            rooms[b] -= q
    for event in sorted(rate_changes, key=order_key):
        a, b = clip(event.start, event.end, origin, n)
        rates[a:b] = [cast(Money, event.rate)] * (b - a)
    out: dict[date, LayerNight] = {}
    total = layer.allotment
    stops = 0
    for i, night in enumerate(nights_of(layer.start, layer.end)):
        total += rooms[i]
        stops += closed[i]
        out[night] = LayerNight(total, rates[i], stops > 0)
    return out


def reconcile(
    record: SupplierContract,
    layer: ContractLayer | None,
    transforms: Mapping[str, ContractAction],
    confirm_after: int,
    today: date,
) -> Reconciliation:
    """The plan that brings `layer` (None: a contract StaySync does not have yet) to `record`.

    `transforms` is the supplier's status table already merged over DEFAULT_STATUS_TRANSFORMS;
    `today` is the hotel's date (CANCELLED zeroes nights from it on)."""
    if confirm_after < 1:
        raise ValueError("confirm_after must be at least 1")
    action = transforms.get(record.status)
    if action is None:
        return _skip(
            Outcome.REJECTED,
            layer,
            _issue(
                record,
                SyncIssueKind.UNKNOWN_STATUS,
                f"status {record.status!r} is not in the supplier's status transforms; "
                "add it there (as ACTIVE, STOP_SELL, CANCELLED or IGNORE) and sync again",
            ),
        )
    if action is ContractAction.IGNORE:
        return _skip(Outcome.IGNORED, layer)
    if problem := _record_problem(record):
        return _skip(Outcome.REJECTED, layer, _issue(record, SyncIssueKind.INVALID_RECORD, problem))
    per_night = _rooms_per_night(record)
    if isinstance(per_night, SyncIssue):
        return _skip(Outcome.REJECTED, layer, per_night)
    if layer is not None and layer.last_updated_at is not None and record.updated_at < layer.last_updated_at:
        return _skip(
            Outcome.UNCHANGED,
            layer,
            _issue(
                record,
                SyncIssueKind.STALE,
                f"updated_at {record.updated_at.isoformat()} is older than the record already applied "
                f"({layer.last_updated_at.isoformat()}); ignored",
            ),
        )
    if layer is None:
        return _plan_new(record, action, per_night)
    return _plan_update(record, layer, action, per_night, confirm_after, today)


def apply_reconciliation(
    layer: ContractLayer | None,
    plan: Reconciliation,
    *,
    event_ids: Sequence[int],
    effective_at: datetime,
    contract_id: int | None = None,
    room_type_id: int | None = None,
) -> ContractLayer | None:
    """What the layer becomes once `plan` is recorded: `event_ids` and `effective_at` are what the
    database assigns to `plan.events` (in order); `contract_id` and `room_type_id` are needed only
    when the plan creates the contract. None when there was no contract and still is none."""
    if len(event_ids) != len(plan.events):
        raise ValueError(f"{len(plan.events)} events planned, {len(event_ids)} ids given")
    row = plan.row
    if layer is None:
        if row is None:
            return None
        if contract_id is None or room_type_id is None:
            raise ValueError("a created contract needs its contract_id and room_type_id")
        layer = ContractLayer(
            contract_id, room_type_id, row.start, row.end, row.allotment, row.rate, row.release_days, row.terms
        )
    elif row is not None:
        layer = replace(
            layer,
            start=row.start,
            end=row.end,
            allotment=row.allotment,
            rate=row.rate,
            release_days=row.release_days,
            terms=row.terms,
        )
    voided = set(plan.voids)
    recorded = tuple(
        AllotmentEvent(
            id=id,
            kind=event.kind,
            room_type_id=layer.room_type_id,
            start=event.start,
            end=event.end,
            effective_at=effective_at,
            quantity=event.quantity,
            rate=event.rate,
        )
        for id, event in zip(event_ids, plan.events)
    )
    return replace(
        layer,
        events=tuple(e for e in layer.events if e.id not in voided) + recorded,
        last_updated_at=plan.last_updated_at,
        held=plan.held,
    )


# --- judging the record ------------------------------------------------------------------------


def _issue(record: SupplierContract, kind: SyncIssueKind, message: str) -> SyncIssue:
    return SyncIssue(record.external_id, kind, message)


def _skip(outcome: Outcome, layer: ContractLayer | None, *issues: SyncIssue) -> Reconciliation:
    """Nothing recorded, and the held increases and last update stay as they were."""
    if layer is None:
        return Reconciliation(outcome, issues=issues)
    return Reconciliation(outcome, held=layer.held, last_updated_at=layer.last_updated_at, issues=issues)


def _record_problem(record: SupplierContract) -> str | None:
    """The first of the domain's own limits the record breaks (the wall has checked its shape)."""
    if problem := check_range(record.start, record.end):
        return f"nights [{record.start}, {record.end}) rejected: {problem}"
    if record.allotment < 0:
        return f"allotment {record.allotment} is negative"
    seen: set[date] = set()
    for night, rooms in record.nights:
        if not record.start <= night < record.end:
            return f"nights: {night} is outside the contract's nights [{record.start}, {record.end})"
        if night in seen:
            return f"nights: {night} is given more than once"
        seen.add(night)
        if not 0 <= rooms <= MAX_ROOMS:
            return f"nights: {night} has allotment {rooms}, must be 0 to {MAX_ROOMS}"
    if problem := check_money(record.rate, "rate"):
        return f"rate rejected: {problem}"
    if not 0 <= record.release_days <= MAX_RELEASE_DAYS:
        return f"release_days {record.release_days} must be 0 to {MAX_RELEASE_DAYS}"
    return None


def _rooms_per_night(record: SupplierContract) -> int | SyncIssue:
    count = (record.end - record.start).days
    if record.unit is AllotmentUnit.ROOM_NIGHTS:
        rooms, rest = divmod(record.allotment, count)
        if rest:
            return _issue(
                record,
                SyncIssueKind.UNIT_DRIFT,
                f"allotment {record.allotment} ROOM_NIGHTS does not divide evenly over {count} nights; "
                "rejected (is it in rooms per night?)",
            )
    else:
        rooms = record.allotment
    if rooms > MAX_ROOMS:
        return _issue(record, SyncIssueKind.INVALID_RECORD, f"allotment {rooms} rooms per night is above {MAX_ROOMS}")
    return rooms


def _suspected_drift(record: SupplierContract, before: Mapping[date, LayerNight]) -> int | None:
    """The layer's uniform rooms per night when a plain ROOMS count equals exactly the record's
    nights times it (the same room-nights total sent in the wrong unit), else None.

    Only the record's nights the row covers with rooms, and that the record does not override,
    tell the per-night figure: nights at 0 were closed out, or newly covered and still waiting
    for a confirmation. Leaving them out also keeps the judgement the same from read to read,
    so a suspect record stays suspect instead of confirming its increase on a later read."""
    count = (record.end - record.start).days
    if record.unit is not AllotmentUnit.ROOMS or count < 2:
        return None
    overridden = {night for night, _ in record.nights}
    current = {
        before[night].rooms
        for night in nights_of(record.start, record.end)
        if night in before and night not in overridden and before[night].rooms > 0
    }
    if len(current) != 1:
        return None
    (rooms,) = current
    return rooms if record.allotment == count * rooms else None


# --- planning ----------------------------------------------------------------------------------


def _plan_new(record: SupplierContract, action: ContractAction, per_night: int) -> Reconciliation:
    """A new contract: the row's base is the record's rooms per night, overrides become events,
    and everything applies at once. A cancelled one is created empty, so that an older record of
    it arriving later is recognised as stale instead of creating it afresh."""
    base = 0 if action is ContractAction.CANCELLED else per_night
    overrides = dict(record.nights) if action is not ContractAction.CANCELLED else {}
    deltas = [overrides.get(night, base) - base for night in nights_of(record.start, record.end)]
    events = list(_allotment_events(record.start, deltas))
    if action is ContractAction.STOP_SELL:
        events.append(PlannedEvent(EventKind.BLOCK_CONTRACT, record.start, record.end))
    return Reconciliation(
        Outcome.CREATED,
        row=ContractRow(record.start, record.end, base, record.rate, record.release_days, record.terms),
        events=tuple(events),
        last_updated_at=record.updated_at,
    )


def _plan_update(
    record: SupplierContract,
    layer: ContractLayer,
    action: ContractAction,
    per_night: int,
    confirm_after: int,
    today: date,
) -> Reconciliation:
    before = supplier_nights(layer)
    cancelled = action is ContractAction.CANCELLED
    issues: list[SyncIssue] = []
    drift = None if cancelled else _suspected_drift(record, before)
    if drift is not None:
        issues.append(
            _issue(
                record,
                SyncIssueKind.UNIT_DRIFT,
                f"allotment {record.allotment} is exactly {(record.end - record.start).days} nights x the current "
                f"{drift} rooms per night: suspected room-nights sent as rooms, so that count is not applied "
                "(per-night overrides, rate, release days and terms are). Check the unit with the supplier",
            )
        )
    if cancelled:
        start, end = layer.start, layer.end
    else:
        start, end = min(layer.start, record.start), max(layer.end, record.end)
    overrides = dict(record.nights)
    held_before = {h.night: h for h in layer.held}

    deltas: list[int] = []
    rate_changes: list[Money | None] = []
    held: list[HeldIncrease] = []
    for night in nights_of(start, end):
        was = before.get(night)
        # Nights the row newly covers start from 0: their baseline is the base the row gives them.
        current, baseline, rate = (was.rooms, was.rooms, was.rate) if was else (0, layer.allotment, layer.rate)
        in_record = record.start <= night < record.end
        if cancelled:
            target = 0 if night >= today else current
        elif not in_record:
            target = 0
        elif drift is not None:
            target = overrides.get(night, current)  # overrides are always rooms: only the count is suspect
        else:
            target = overrides.get(night, per_night)
        applied = target
        if target > current:
            last = held_before.get(night)
            reads = last.reads + 1 if last is not None and last.rooms == target else 1
            if reads < confirm_after:
                held.append(HeldIncrease(night, target, reads))
                applied = current
        deltas.append(applied - baseline)
        new_rate = record.rate if in_record and not cancelled else rate
        rate_changes.append(new_rate if new_rate != rate else None)

    events = [*_allotment_events(start, deltas)]
    events += [PlannedEvent(EventKind.RATE_CHANGE, a, b, rate=r) for a, b, r in _runs(start, rate_changes)]
    voids: list[int] = []
    if not cancelled:
        blocks = [e for e in layer.events if e.kind is EventKind.BLOCK_CONTRACT and not e.voided]
        keep = None
        if action is ContractAction.STOP_SELL:
            keep = next((e for e in blocks if (e.start, e.end) == (start, end)), None)
            if keep is None:
                events.append(PlannedEvent(EventKind.BLOCK_CONTRACT, start, end))
        voids = [e.id for e in blocks if e is not keep]
    if held:
        issues.append(_held_issue(record, held, confirm_after))

    row = ContractRow(start, end, layer.allotment, layer.rate, record.release_days, record.terms)
    if row == ContractRow(layer.start, layer.end, layer.allotment, layer.rate, layer.release_days, layer.terms):
        row_change = None
    else:
        row_change = row
    changed = row_change is not None or events or voids
    return Reconciliation(
        Outcome.UPDATED if changed else Outcome.UNCHANGED,
        row=row_change,
        events=tuple(events),
        voids=tuple(voids),
        held=tuple(held),
        last_updated_at=record.updated_at,
        issues=tuple(issues),
    )


def _held_issue(record: SupplierContract, held: list[HeldIncrease], confirm_after: int) -> SyncIssue:
    parts = []
    for first, end, (rooms, reads) in _runs(held[0].night, _by_night(held)):
        last = end - timedelta(days=1)
        nights = f"{first}" if first == last else f"{first} to {last}"
        parts.append(f"{nights}: {rooms} rooms (read {reads})")
    return _issue(
        record,
        SyncIssueKind.HELD_INCREASE,
        f"increase held until seen in {confirm_after} consecutive reads: " + "; ".join(parts),
    )


def _by_night(held: list[HeldIncrease]) -> list[tuple[int, int] | None]:
    """(rooms, reads) for every night from the first held one to the last, None between."""
    out: list[tuple[int, int] | None] = [None] * ((held[-1].night - held[0].night).days + 1)
    for h in held:
        out[(h.night - held[0].night).days] = (h.rooms, h.reads)
    return out


def _allotment_events(start: date, deltas: Sequence[int]) -> Iterator[PlannedEvent]:
    for a, b, delta in _runs(start, [d or None for d in deltas]):
        if delta > 0:
            yield PlannedEvent(EventKind.INCREASE_ALLOTMENT, a, b, quantity=delta)
        else:
            yield PlannedEvent(EventKind.REDUCE_ALLOTMENT, a, b, quantity=-delta)


_T = TypeVar("_T")


def _runs(start: date, values: Sequence[_T | None]) -> Iterator[tuple[date, date, _T]]:
    """Consecutive nights from `start` with the same value, as [a, b) ranges; None makes no run."""
    first = 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[first]:
            value = values[first]
            if value is not None:
                yield start + timedelta(days=first), start + timedelta(days=i), value
            first = i
