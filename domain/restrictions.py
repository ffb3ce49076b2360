"""Restrictions (the OTA vocabulary) per room type and night, and judging a stay against them.

RESTRICTION events carry a `RestrictionPatch`: the fields it sets, None for the ones it leaves as
they were. `domain.resolver.resolve_restrictions` paints them in total order, field by field,
into one `Restrictions` per night for one agency. A stay is judged on two nights: its arrival
(minStay, maxStay, closedToArrival, the advance window) and its departure day (closedToDeparture,
read from the night of that date, which is not a night of the stay).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from domain.errors import InvalidInput, OutsideCalendar
from domain.nights import EARLIEST_NIGHT, LATEST_NIGHT

# Longer stays than a year are no hotel's restriction; no arrival in the service's nights is
# further ahead than its whole span, so these maxima also mean "no limit".
MAX_STAY_RESTRICTION = 365
MAX_ADVANCE_RESTRICTION = (LATEST_NIGHT - EARLIEST_NIGHT).days


@dataclass(frozen=True, slots=True)
class Restrictions:
    """What is in force on one night for one agency (the API's `Restrictions`). None: no limit."""

    min_stay: int | None = None
    max_stay: int | None = None
    closed_to_arrival: bool = False
    closed_to_departure: bool = False
    min_advance_days: int | None = None
    max_advance_days: int | None = None


NO_RESTRICTIONS = Restrictions()


@dataclass(frozen=True, slots=True)
class RestrictionPatch:
    """The fields one RESTRICTION event sets; None leaves a field as earlier events set it. To lift
    a restriction, set it to its neutral value (minStay 1, closedTo... false, minAdvanceDays 0,
    maxStay / maxAdvanceDays their maxima) or void the event that set it."""

    min_stay: int | None = None
    max_stay: int | None = None
    closed_to_arrival: bool | None = None
    closed_to_departure: bool | None = None
    min_advance_days: int | None = None
    max_advance_days: int | None = None

    def values(self) -> tuple[int | bool | None, ...]:
        """In `Restrictions` field order."""
        return (
            self.min_stay,
            self.max_stay,
            self.closed_to_arrival,
            self.closed_to_departure,
            self.min_advance_days,
            self.max_advance_days,
        )


# The API's names of the fields, in field order.
FIELD_NAMES = ("minStay", "maxStay", "closedToArrival", "closedToDeparture", "minAdvanceDays", "maxAdvanceDays")


def _in_range(value: int | None, field: str, low: int, high: int) -> InvalidInput | None:
    if value is not None and not low <= value <= high:
        return InvalidInput(field, f"must be {low} to {high}")
    return None


def check_restriction(patch: RestrictionPatch | None) -> InvalidInput | None:
    """The first rule a RESTRICTION event's fields break, or None. Field names are the API's."""
    if patch is None or all(value is None for value in patch.values()):
        return InvalidInput("restrictions", f"set at least one of {', '.join(FIELD_NAMES)}")
    problem = (
        _in_range(patch.min_stay, "minStay", 1, MAX_STAY_RESTRICTION)
        or _in_range(patch.max_stay, "maxStay", 1, MAX_STAY_RESTRICTION)
        or _in_range(patch.min_advance_days, "minAdvanceDays", 0, MAX_ADVANCE_RESTRICTION)
        or _in_range(patch.max_advance_days, "maxAdvanceDays", 0, MAX_ADVANCE_RESTRICTION)
    )
    if problem:
        return problem
    if patch.min_stay is not None and patch.max_stay is not None and patch.min_stay > patch.max_stay:
        return InvalidInput("maxStay", "must not be less than minStay")
    if (
        patch.min_advance_days is not None
        and patch.max_advance_days is not None
        and patch.min_advance_days > patch.max_advance_days
    ):
        return InvalidInput("maxAdvanceDays", "must not be less than minAdvanceDays")
    return None


@dataclass(frozen=True, slots=True)
class RestrictionRow:
    """One room type's restrictions for one agency, one per night from `start`."""

    room_type_id: int
    start: date
    nights: tuple[Restrictions, ...]

    def on(self, night: date) -> Restrictions:
        i = (night - self.start).days
        if not 0 <= i < len(self.nights):
            raise OutsideCalendar(self.room_type_id, night)
        return self.nights[i]


class RestrictionRule(StrEnum):
    MIN_STAY = "MIN_STAY"
    MAX_STAY = "MAX_STAY"
    CLOSED_TO_ARRIVAL = "CLOSED_TO_ARRIVAL"
    CLOSED_TO_DEPARTURE = "CLOSED_TO_DEPARTURE"
    MIN_ADVANCE_DAYS = "MIN_ADVANCE_DAYS"
    MAX_ADVANCE_DAYS = "MAX_ADVANCE_DAYS"


@dataclass(frozen=True, slots=True)
class Violation:
    room_type_id: int
    date: date  # the arrival, or the departure for CLOSED_TO_DEPARTURE
    rule: RestrictionRule
    detail: str


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def _lead(days: int) -> str:
    if days > 0:
        return f"this one is {_count(days, 'day')} ahead"
    return "this one arrives today" if days == 0 else f"this one arrived {_count(-days, 'day')} ago"


def judge_stay(row: RestrictionRow, check_in: date, check_out: date, today: date) -> list[Violation]:
    """Every restriction the stay [check_in, check_out) breaks, in rule order. `row` must hold both
    check_in and check_out (resolve over [check_in, check_out + 1 day)); `today` is the hotel's."""
    arrival, departure = row.on(check_in), row.on(check_out)
    nights = (check_out - check_in).days
    lead = (check_in - today).days
    arriving = f"stays arriving {check_in.isoformat()}"
    out = []

    def violated(rule: RestrictionRule, detail: str, on: date = check_in) -> None:
        out.append(Violation(row.room_type_id, on, rule, detail))

    if arrival.min_stay is not None and nights < arrival.min_stay:
        violated(RestrictionRule.MIN_STAY,
                 f"{arriving} need at least {_count(arrival.min_stay, 'night')}; this one has {nights}")
    if arrival.max_stay is not None and nights > arrival.max_stay:
        violated(RestrictionRule.MAX_STAY,
                 f"{arriving} may last at most {_count(arrival.max_stay, 'night')}; this one has {nights}")
    if arrival.closed_to_arrival:
        violated(RestrictionRule.CLOSED_TO_ARRIVAL, f"no stay may arrive on {check_in.isoformat()}")
    if departure.closed_to_departure:
        violated(RestrictionRule.CLOSED_TO_DEPARTURE, f"no stay may depart on {check_out.isoformat()}", check_out)
    if arrival.min_advance_days is not None and lead < arrival.min_advance_days:
        violated(RestrictionRule.MIN_ADVANCE_DAYS,
                 f"{arriving} must be booked at least {_count(arrival.min_advance_days, 'day')} ahead; {_lead(lead)}")
    if arrival.max_advance_days is not None and lead > arrival.max_advance_days:
        violated(RestrictionRule.MAX_ADVANCE_DAYS,
                 f"{arriving} may be booked at most {_count(arrival.max_advance_days, 'day')} ahead; {_lead(lead)}")
    return out


def restriction_violations(
    rows: Mapping[int, RestrictionRow], requests: Iterable[tuple[int, date, date, int]], today: date
) -> list[Violation]:
    """Every violation of a group's items ((room type, check in, check out, rooms) each, as for
    `pool_shortfalls`), each once, in item order: the group is allowed only if this is empty."""
    out: dict[Violation, None] = {}
    for room_type_id, check_in, check_out, _rooms in requests:
        row = rows.get(room_type_id)
        if row is None:
            raise OutsideCalendar(room_type_id, check_in)
        out.update(dict.fromkeys(judge_stay(row, check_in, check_out, today)))
    return list(out)
