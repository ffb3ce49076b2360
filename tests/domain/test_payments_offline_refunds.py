"""Offline payments against what a sale owes."""

from decimal import Decimal

import pytest

from domain import check_offline_payment
from domain import Money as M


def eur(amount: str) -> M:
    return M(Decimal(amount), "EUR")


def problem_of(problem):
    return (problem and problem.field, problem and problem.message)


@pytest.mark.parametrize(("amount", "owed", "field", "message"), [
    (eur("100"), eur("100"), None, None),  # settles it exactly
    (eur("0.01"), eur("100"), None, None),
    (eur("100.01"), eur("100"), "amount.amount", "must be at most 100.00 EUR, what the sale still owes"),
    (eur("1"), eur("-20"), "amount.amount", "must be at most 0.00 EUR, what the sale still owes"),
    (eur("0"), eur("100"), "amount.amount", "must be positive"),
    (eur("-1"), eur("100"), "amount.amount", "must not be negative"),
    (eur("1.001"), eur("100"), "amount.amount", "must be in EUR's minor unit (0.01)"),
    (M(Decimal(5), "USD"), eur("100"), "amount.currency", "must be EUR, the sale's currency"),
])
def test_check_offline_payment(amount, owed, field, message):
    assert problem_of(check_offline_payment(amount, owed)) == (field, message)
