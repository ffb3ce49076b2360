from __future__ import annotations

from datetime import date

from domain.budget import CalendarRow
from domain.errors import InvalidInput, NoRate
from domain.money import Money
from domain.nights import nights


def stay_price(row: CalendarRow, check_in: date, check_out: date, rooms: int) -> Money:
    """`rooms` rooms on every night of [check_in, check_out) at each night's resolved rate.

    Raises NoRate for a night without a rate, CurrencyMismatch when nights differ in currency.
    """
    total: Money | None = None
    for night in nights(check_in, check_out):
        rate = row.rate[row.index(night)]
        if rate is None:
            raise NoRate(row.room_type_id, night)
        total = rate.times(rooms) if total is None else total + rate.times(rooms)
    if total is None:
        raise InvalidInput("checkOut", "must be after checkIn")
    return total
