"""The append-only allotment event log applied on top of contracts."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from domain.contracts import MAX_ROOMS
from domain.errors import InvalidInput
from domain.money import Money, check_money
from domain.nights import check_range
from domain.restrictions import RestrictionPatch, check_restriction


class EventKind(StrEnum):
    INCREASE_ALLOTMENT = "INCREASE_ALLOTMENT"
    REDUCE_ALLOTMENT = "REDUCE_ALLOTMENT"
    BLOCK_CONTRACT = "BLOCK_CONTRACT"
    BLOCK_AMENDMENT = "BLOCK_AMENDMENT"
    RATE_CHANGE = "RATE_CHANGE"
    RESTRICTION = "RESTRICTION"  # sets restrictions field by field: see domain.restrictions


@dataclass(frozen=True, slots=True)
class AllotmentEvent:
    id: int
    kind: EventKind
    room_type_id: int
    start: date
    end: date
    effective_at: datetime
    quantity: int | None = None
    rate: Money | None = None
    hardblock_id: int | None = None
    voided: bool = False
    restriction: RestrictionPatch | None = None
    agency_ids: frozenset[int] = frozenset()  # RESTRICTION only: the agencies it binds, empty for all


def order_key(event: AllotmentEvent) -> tuple[datetime, int]:
    """The total order of the log: effective time, then id. Later in this order wins."""
    return (event.effective_at, event.id)


# Which optional fields each kind takes, and the smallest quantity it accepts.
_QUANTITY_MIN: dict[EventKind, int] = {
    EventKind.INCREASE_ALLOTMENT: 1,
    EventKind.REDUCE_ALLOTMENT: 1,
    EventKind.BLOCK_AMENDMENT: 0,  # 0 removes the nights from the block
}


def check_event(
    kind: EventKind,
    start: date,
    end: date,
    quantity: int | None = None,
    rate: Money | None = None,
    hardblock_id: int | None = None,
    restriction: RestrictionPatch | None = None,
    agency_ids: Collection[int] = (),
) -> InvalidInput | None:
    """The first rule the event input breaks, or None. Field names are the API's."""
    if problem := check_range(start, end):
        return problem
    minimum = _QUANTITY_MIN.get(kind)
    if minimum is None:
        if quantity is not None:
            return InvalidInput("quantity", f"is not used by {kind.value}")
    elif quantity is None:
        return InvalidInput("quantity", f"is required for {kind.value}")
    elif quantity < minimum:
        return InvalidInput("quantity", "must be positive" if minimum else "must not be negative")
    elif quantity > MAX_ROOMS:
        return InvalidInput("quantity", f"must be at most {MAX_ROOMS}")
    if kind is EventKind.BLOCK_AMENDMENT:
        if hardblock_id is None:
            return InvalidInput("hardblockId", "is required for BLOCK_AMENDMENT")
    elif hardblock_id is not None:
        return InvalidInput("hardblockId", f"is not used by {kind.value}")
    if kind is EventKind.RATE_CHANGE:
        if rate is None:
            return InvalidInput("rate", "is required for RATE_CHANGE")
        if problem := check_money(rate, "rate"):
            return problem
    elif rate is not None:
        return InvalidInput("rate", f"is not used by {kind.value}")
    if kind is EventKind.RESTRICTION:
        return check_restriction(restriction)
    if restriction is not None:
        return InvalidInput("restrictions", f"are not used by {kind.value}")
    if agency_ids:
        return InvalidInput("agencyIds", f"is not used by {kind.value}")
    return None
