"""What the supplier sends, once it is through the wall: typed records in StaySync's units.

The feed's own JSON shapes are parsed and validated in `app.services.supply` (pydantic); what
comes out of there is these records, with half-open night ranges ([start, end), the supplier's
inclusive `end_date` already converted) and money as `Money`. Reconciliation
(`domain.reconciliation`) turns them into allotment events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from domain.money import Money


class AllotmentUnit(StrEnum):
    ROOMS = "ROOMS"  # rooms on every night of the contract
    ROOM_NIGHTS = "ROOM_NIGHTS"  # a total over the contract's nights


class ContractAction(StrEnum):
    """What StaySync does with a record, by the supplier's status (see the status transforms)."""

    ACTIVE = "ACTIVE"  # sell
    STOP_SELL = "STOP_SELL"  # close the contract's nights (BLOCK_CONTRACT), reopen when ACTIVE again
    CANCELLED = "CANCELLED"  # allotment 0 from today on
    IGNORE = "IGNORE"  # skip the record


# The supplier's status words StaySync understands without being told. A supplier's own table
# adds to or overrides these; a status in neither is rejected, never guessed.
DEFAULT_STATUS_TRANSFORMS: dict[str, ContractAction] = {
    "CONFIRMED": ContractAction.ACTIVE,
    "OK": ContractAction.ACTIVE,
    "ACTIVE": ContractAction.ACTIVE,
    "STOP": ContractAction.STOP_SELL,
    "STOP_SALE": ContractAction.STOP_SELL,
    "CXL": ContractAction.CANCELLED,
    "CANCELLED": ContractAction.CANCELLED,
}


class SyncIssueKind(StrEnum):
    INVALID_RECORD = "INVALID_RECORD"
    UNKNOWN_STATUS = "UNKNOWN_STATUS"
    UNKNOWN_HOTEL = "UNKNOWN_HOTEL"
    UNIT_DRIFT = "UNIT_DRIFT"
    HELD_INCREASE = "HELD_INCREASE"
    STALE = "STALE"
    OVERCOMMITTED = "OVERCOMMITTED"
    FETCH_FAILED = "FETCH_FAILED"


@dataclass(frozen=True, slots=True)
class SyncIssue:
    """Something a run could not take as it came. `external_id` names the supplier's record."""

    external_id: str | None
    kind: SyncIssueKind
    message: str


@dataclass(frozen=True, slots=True)
class SupplierRoomType:
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class SupplierHotel:
    code: str
    name: str
    room_types: tuple[SupplierRoomType, ...]


@dataclass(frozen=True, slots=True)
class SupplierContract:
    """One contract record of the feed, validated at the wall but not yet judged by the rules
    (its status is still the supplier's word; its allotment still in the supplier's unit)."""

    external_id: str
    hotel_code: str
    room_type_code: str
    start: date  # the first night
    end: date  # the day after the last night (half-open)
    allotment: int
    unit: AllotmentUnit
    rate: Money
    release_days: int
    status: str
    terms: str
    updated_at: datetime  # timezone-aware
    # Single nights whose rooms differ from `allotment` (always in rooms, never room-nights),
    # sorted by night, each inside [start, end).
    nights: tuple[tuple[date, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one read of a source produced: the records that passed the wall, and an issue
    for each one that did not."""

    hotels: tuple[SupplierHotel, ...]
    contracts: tuple[SupplierContract, ...]
    issues: tuple[SyncIssue, ...] = ()
