"""Contracts + allotment events -> the resolved state of every (room type, night).

Nights are indexed by their offset from the window's first night. Quantities that add up
(allotment, increases, reductions, stop-sells) go through difference arrays, so each contract
or event costs O(1) however long it is; only the set-semantics events (RATE_CHANGE and, field by
field, RESTRICTION here; BLOCK_AMENDMENT in `domain.budget`) are sorted by the total key and
painted in that order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from itertools import accumulate
from operator import attrgetter
from typing import cast

from domain.contracts import ContractTerms
from domain.errors import InvalidInput
from domain.events import AllotmentEvent, EventKind, order_key
from domain.money import Money
from domain.restrictions import NO_RESTRICTIONS, RestrictionPatch, RestrictionRow, Restrictions


@dataclass(frozen=True, slots=True)
class ResolvedRow:
    """One room type's contracts and events, one entry per night from `start`."""

    room_type_id: int
    start: date
    allotment: tuple[int, ...]
    closed: tuple[bool, ...]
    rate: tuple[Money | None, ...]
    # Of the governing (highest-id active) contract; None where no contract covers the night.
    release_days: tuple[int | None, ...]


def window(start: date, end: date) -> int:
    """The number of nights in [start, end); an empty window is fine, a reversed one is not."""
    if end < start:
        raise InvalidInput("to", "must not be before from")
    return (end - start).days


def clip(start: date, end: date, origin: int, n: int) -> tuple[int, int]:
    """[start, end) as offsets into a window of `n` nights from ordinal `origin`; empty when a >= b."""
    a = start.toordinal() - origin
    b = end.toordinal() - origin
    return (a if a > 0 else 0), (b if b < n else n)


class _Acc:
    __slots__ = ("allotment", "closed", "rate", "release_days")

    def __init__(self, n: int) -> None:
        self.allotment = [0] * (n + 1)  # difference array
        self.closed = [0] * (n + 1)  # difference array of stop-sells
        self.rate: list[Money | None] = [None] * n
        self.release_days: list[int | None] = [None] * n


def resolve(
    contracts: Iterable[ContractTerms],
    events: Iterable[AllotmentEvent],
    room_type_ids: Iterable[int],
    start: date,
    end: date,
) -> dict[int, ResolvedRow]:
    n = window(start, end)
    origin = start.toordinal()
    accs = {rt: _Acc(n) for rt in room_type_ids}

    # Ascending id, so the highest id paints rate and release days last and governs.
    for contract in sorted(contracts, key=attrgetter("id")):
        acc = accs.get(contract.room_type_id)
        if acc is None or not contract.active:
            continue
        a, b = clip(contract.start, contract.end, origin, n)
        if a >= b:
            continue
        acc.allotment[a] += contract.allotment
        acc.allotment[b] -= contract.allotment
        acc.rate[a:b] = [contract.rate] * (b - a)
        acc.release_days[a:b] = [contract.release_days] * (b - a)

    rate_changes: list[AllotmentEvent] = []
    for event in events:
        acc = accs.get(event.room_type_id)
        if acc is None or event.voided:
            continue
        kind = event.kind
        if kind is EventKind.RATE_CHANGE:
            rate_changes.append(event)
            continue
        if kind is EventKind.BLOCK_AMENDMENT or kind is EventKind.RESTRICTION:
            continue  # sizes a hardblock (domain.budget), or restricts stays (resolve_restrictions)
        a, b = clip(event.start, event.end, origin, n)
        if a >= b:
            continue
        if kind is EventKind.BLOCK_CONTRACT:
            acc.closed[a] += 1
            acc.closed[b] -= 1
        else:
            q = cast(int, event.quantity)  # validated on the way in: see check_event
            if kind is EventKind.REDUCE_ALLOTMENT:
                q = -q
            acc.allotment[a] += q
            acc.allotment[b] -= q

    rate_changes.sort(key=order_key)
    for event in rate_changes:
        a, b = clip(event.start, event.end, origin, n)
        if a < b:
            accs[event.room_type_id].rate[a:b] = [event.rate] * (b - a)

    return {
        rt: ResolvedRow(
            room_type_id=rt,
            start=start,
            allotment=tuple([x if x > 0 else 0 for x in accumulate(acc.allotment[:n])]),
            closed=tuple([x > 0 for x in accumulate(acc.closed[:n])]),
            rate=tuple(acc.rate),
            release_days=tuple(acc.release_days),
        )
        for rt, acc in accs.items()
    }


def resolve_restrictions(
    events: Iterable[AllotmentEvent],
    room_type_ids: Iterable[int],
    start: date,
    end: date,
    agency_id: int | None = None,
) -> dict[int, RestrictionRow]:
    """The restrictions in force on every (room type, night) in [start, end) for one agency: of the
    live RESTRICTION events binding it (those naming it, and those naming none), the last in total
    order that sets a field wins that field. `agency_id` None: the events naming none only."""
    n = window(start, end)
    origin = start.toordinal()
    painted: dict[int, list[list[int | bool | None]] | None] = dict.fromkeys(room_type_ids)
    binding = [
        event
        for event in events
        if event.kind is EventKind.RESTRICTION
        and not event.voided
        and event.room_type_id in painted
        and (not event.agency_ids or agency_id in event.agency_ids)
    ]
    binding.sort(key=order_key)
    for event in binding:
        a, b = clip(event.start, event.end, origin, n)
        if a >= b:
            continue
        columns = painted[event.room_type_id]
        if columns is None:
            columns = painted[event.room_type_id] = [[None] * n for _ in range(6)]
        patch = cast(RestrictionPatch, event.restriction)  # validated on the way in: see check_event
        for column, value in zip(columns, patch.values()):
            if value is not None:
                column[a:b] = [value] * (b - a)

    # Restrictions repeat over whole seasons: one object per distinct combination.
    shared: dict[tuple, Restrictions] = {(None,) * 6: NO_RESTRICTIONS}

    def restrictions(values: tuple) -> Restrictions:
        found = shared.get(values)
        if found is None:
            min_stay, max_stay, cta, ctd, min_advance, max_advance = values
            found = shared[values] = Restrictions(min_stay, max_stay, bool(cta), bool(ctd), min_advance, max_advance)
        return found

    return {
        rt: RestrictionRow(
            room_type_id=rt,
            start=start,
            nights=(NO_RESTRICTIONS,) * n if columns is None else tuple(map(restrictions, zip(*columns))),
        )
        for rt, columns in painted.items()
    }
