from datetime import UTC, datetime
from decimal import Decimal

import pytest

from domain import (
    EventKind,
    MAX_ADVANCE_RESTRICTION,
    InvalidInput,
    Money,
    RestrictionPatch,
    check_event,
    order_key,
)
from tests.domain.factories import d, eur, rate_change

INC, RED, STOP, AMEND, RATE, RESTRICT = (
    EventKind.INCREASE_ALLOTMENT,
    EventKind.REDUCE_ALLOTMENT,
    EventKind.BLOCK_CONTRACT,
    EventKind.BLOCK_AMENDMENT,
    EventKind.RATE_CHANGE,
    EventKind.RESTRICTION,
)
P = RestrictionPatch
ALL_FIELDS = "minStay, maxStay, closedToArrival, closedToDeparture, minAdvanceDays, maxAdvanceDays"

VALID = [
    dict(kind=INC, quantity=1),
    dict(kind=RED, quantity=5),
    dict(kind=STOP),
    dict(kind=AMEND, quantity=0, hardblock_id=7),  # 0 removes the nights from the block
    dict(kind=AMEND, quantity=4, hardblock_id=7),
    dict(kind=RATE, rate=eur("0")),
    dict(kind=RATE, rate=eur("149.90")),
    dict(kind=RESTRICT, restriction=P(min_stay=2)),
    dict(kind=RESTRICT, restriction=P(closed_to_arrival=False)),  # lifts an earlier closedToArrival
    dict(kind=RESTRICT, restriction=P(closed_to_departure=True), agency_ids=[3, 4]),
    dict(kind=RESTRICT, restriction=P(1, 365, True, True, 0, MAX_ADVANCE_RESTRICTION)),  # every field, at its bounds
    dict(kind=RESTRICT, restriction=P(min_stay=3, max_stay=3, min_advance_days=7, max_advance_days=7)),
]

INVALID = [
    (dict(kind=INC, quantity=1, end=0), "to", "must be after from (ranges are half-open over nights)"),
    (dict(kind=STOP, start=3, end=1), "to", "must be after from (ranges are half-open over nights)"),
    (dict(kind=INC), "quantity", "is required for INCREASE_ALLOTMENT"),
    (dict(kind=INC, quantity=0), "quantity", "must be positive"),
    (dict(kind=INC, quantity=100_001), "quantity", "must be at most 100000"),
    (dict(kind=RED), "quantity", "is required for REDUCE_ALLOTMENT"),
    (dict(kind=RED, quantity=-2), "quantity", "must be positive"),
    (dict(kind=AMEND, hardblock_id=7), "quantity", "is required for BLOCK_AMENDMENT"),
    (dict(kind=AMEND, quantity=-1, hardblock_id=7), "quantity", "must not be negative"),
    (dict(kind=AMEND, quantity=2), "hardblockId", "is required for BLOCK_AMENDMENT"),
    (dict(kind=RATE), "rate", "is required for RATE_CHANGE"),
    (dict(kind=RATE, rate=eur("-1")), "rate.amount", "must not be negative"),
    (
        dict(kind=RATE, rate=Money(Decimal("10"), "Eur")),
        "rate.currency",
        "must be a 3-letter uppercase ISO currency code",
    ),
    (
        dict(kind=RATE, rate=Money(Decimal("10"), "EURO")),
        "rate.currency",
        "must be a 3-letter uppercase ISO currency code",
    ),
    # A field another kind uses is refused rather than silently ignored.
    (dict(kind=STOP, quantity=3), "quantity", "is not used by BLOCK_CONTRACT"),
    (dict(kind=RATE, rate=eur(1), quantity=3), "quantity", "is not used by RATE_CHANGE"),
    (dict(kind=INC, quantity=1, hardblock_id=7), "hardblockId", "is not used by INCREASE_ALLOTMENT"),
    (dict(kind=INC, quantity=1, rate=eur(1)), "rate", "is not used by INCREASE_ALLOTMENT"),
    (dict(kind=AMEND, quantity=1, hardblock_id=7, rate=eur(1)), "rate", "is not used by BLOCK_AMENDMENT"),
    (dict(kind=STOP, restriction=P(min_stay=2)), "restrictions", "are not used by BLOCK_CONTRACT"),
    (dict(kind=RATE, rate=eur(1), restriction=P(min_stay=2)), "restrictions", "are not used by RATE_CHANGE"),
    (dict(kind=STOP, agency_ids=[3]), "agencyIds", "is not used by BLOCK_CONTRACT"),
    # restrictions
    (dict(kind=RESTRICT), "restrictions", f"set at least one of {ALL_FIELDS}"),
    (dict(kind=RESTRICT, restriction=P()), "restrictions", f"set at least one of {ALL_FIELDS}"),
    (dict(kind=RESTRICT, restriction=P(min_stay=0)), "minStay", "must be 1 to 365"),
    (dict(kind=RESTRICT, restriction=P(max_stay=366)), "maxStay", "must be 1 to 365"),
    (dict(kind=RESTRICT, restriction=P(min_stay=3, max_stay=2)), "maxStay", "must not be less than minStay"),
    (dict(kind=RESTRICT, restriction=P(min_advance_days=-1)), "minAdvanceDays", "must be 0 to 36525"),
    (dict(kind=RESTRICT, restriction=P(max_advance_days=36526)), "maxAdvanceDays", "must be 0 to 36525"),
    (
        dict(kind=RESTRICT, restriction=P(min_advance_days=8, max_advance_days=7)),
        "maxAdvanceDays",
        "must not be less than minAdvanceDays",
    ),
    (dict(kind=RESTRICT, restriction=P(min_stay=2), quantity=1), "quantity", "is not used by RESTRICTION"),
    (dict(kind=RESTRICT, restriction=P(min_stay=2), rate=eur(1)), "rate", "is not used by RESTRICTION"),
    (dict(kind=RESTRICT, restriction=P(min_stay=2), hardblock_id=7), "hardblockId", "is not used by RESTRICTION"),
    (
        dict(kind=RESTRICT, restriction=P(min_stay=2), end=0),
        "to",
        "must be after from (ranges are half-open over nights)",
    ),
]


def event_input(kind, start=0, end=2, **fields):
    return dict(kind=kind, start=d(start), end=d(end), **fields)


@pytest.mark.parametrize("fields", VALID)
def test_valid_event_inputs(fields):
    assert check_event(**event_input(**fields)) is None


@pytest.mark.parametrize(("fields", "field", "message"), INVALID)
def test_invalid_event_inputs_name_the_field(fields, field, message):
    problem = check_event(**event_input(**fields))
    assert (problem.field, problem.message) == (field, message)
    assert isinstance(problem, InvalidInput) and str(problem) == f"{field}: {message}"


def test_the_total_order_is_effective_time_then_id():
    noon = datetime(2026, 1, 1, 12, tzinfo=UTC)
    late_low_id = rate_change(1, 0, 1, 10, at=noon.replace(hour=13))
    tie_high_id = rate_change(9, 0, 1, 10, at=noon)
    tie_low_id = rate_change(5, 0, 1, 10, at=noon)
    assert sorted([late_low_id, tie_high_id, tie_low_id], key=order_key) == [tie_low_id, tie_high_id, late_low_id]


