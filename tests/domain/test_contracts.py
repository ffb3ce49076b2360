from decimal import Decimal

import pytest

from domain import Money, check_contract
from tests.domain.factories import contract, d, eur


def test_a_contract_covers_its_nights_half_open_while_active():
    terms = contract(start=0, end=3)
    assert [terms.covers(d(i)) for i in (-1, 0, 2, 3)] == [False, True, True, False]
    assert not contract(start=0, end=3, active=False).covers(d(1))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({}, None),
        ({"allotment": 0, "release_days": 0}, None),
        ({"end": d(0)}, "to"),
        ({"allotment": -1}, "allotment"),
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
