from decimal import Decimal

import pytest

from domain import Money, check_contract
from tests.domain.factories import d, eur


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({}, None),
        ({"allotment": 0, "release_days": 0}, None),
        ({"end": d(0)}, "to"),
        ({"allotment": -1}, "allotment"),
        ({"allotment": 100_001}, "allotment"),
        ({"release_days": -1}, "releaseDays"),
        ({"release_days": 365}, None),
        ({"release_days": 366}, "releaseDays"),
        ({"rate": eur("-5")}, "rate.amount"),
        ({"rate": Money(Decimal(5), "usd")}, "rate.currency"),
    ],
)
def test_check_contract(changes, field):
    fields = dict(start=d(0), end=d(10), allotment=10, rate=eur(100), release_days=3) | changes
    problem = check_contract(**fields)
    assert (problem.field if problem else None) == field
