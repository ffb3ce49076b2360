from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from domain.errors import CurrencyMismatch, InvalidInput

_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    def times(self, factor: int) -> Money:
        return Money(self.amount * factor, self.currency)

    def __add__(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise CurrencyMismatch(self.currency, other.currency)
        return Money(self.amount + other.amount, self.currency)


def zero(currency: str) -> Money:
    return Money(Decimal(0), currency)


def money_sum(items: Iterable[Money], currency: str) -> Money:
    """Sum of `items`, all in `currency` (zero when empty)."""
    total = zero(currency)
    for item in items:
        total = total + item
    return total


def is_currency_code(code: str) -> bool:
    return _CURRENCY.fullmatch(code) is not None


def check_money(value: Money, field: str) -> InvalidInput | None:
    """A price the API may store: a finite, non-negative amount in a 3-letter uppercase currency."""
    if not is_currency_code(value.currency):
        return InvalidInput(f"{field}.currency", "must be a 3-letter uppercase ISO currency code")
    if not value.amount.is_finite():
        return InvalidInput(f"{field}.amount", "must be a finite decimal")
    if value.amount < 0:
        return InvalidInput(f"{field}.amount", "must not be negative")
    return None
