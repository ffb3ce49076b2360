from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from domain.errors import CurrencyMismatch, InvalidInput

_CURRENCY = re.compile(r"[A-Z]{3}")

# ISO 4217 minor units of the currencies whose minor unit is not the cent; every other code has 2.
MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
                     "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}


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


def minor_unit(currency: str) -> int:
    """Decimal places of the currency's minor unit (ISO 4217): JPY 0, EUR 2, KWD 3."""
    return MINOR_UNITS.get(currency, 2)


_QUANTA: dict[str, Decimal] = {}


def quantum(currency: str) -> Decimal:
    """The currency's minor unit as an exponent for `Decimal.quantize`: 1, 0.01, 0.001."""
    q = _QUANTA.get(currency)
    if q is None:
        q = _QUANTA[currency] = Decimal(1).scaleb(-minor_unit(currency))
    return q


def round_money(value: Money) -> Money:
    """`value` rounded half-even (banker's rounding) to its currency's minor unit."""
    return Money(value.amount.quantize(quantum(value.currency), rounding=ROUND_HALF_EVEN), value.currency)


def format_amount(amount: Decimal, currency: str) -> str:
    """`amount` as text with the currency's minor unit places ("120.00" EUR, "12000" JPY, "12.375"
    KWD), or more when it has more (an amount is shown, never rounded)."""
    places = minor_unit(currency)
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places and amount != amount.quantize(quantum(currency)):
        places = -exponent
    return f"{amount:.{places}f}"


def check_money(value: Money, field: str) -> InvalidInput | None:
    """A price the API may store: a finite, non-negative amount in a 3-letter uppercase currency."""
    if not is_currency_code(value.currency):
        return InvalidInput(f"{field}.currency", "must be a 3-letter uppercase ISO currency code")
    if not value.amount.is_finite():
        return InvalidInput(f"{field}.amount", "must be a finite decimal")
    if value.amount < 0:
        return InvalidInput(f"{field}.amount", "must not be negative")
    return None
