"""Contracts + allotment events -> the resolved state of every (room type, night).

Nights are indexed by their offset from the window's first night. Quantities that add up
(allotment, increases, reductions, stop-sells) go through difference arrays, so each contract
or event costs O(1) however long it is; only the set-semantics events (RATE_CHANGE here,
BLOCK_AMENDMENT in `domain.budget`) are sorted by the total key and painted in that order.
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
        if kind is EventKind.BLOCK_AMENDMENT:
            continue  # sizes a hardblock, not the allotment: see domain.budget
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
