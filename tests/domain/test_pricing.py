from decimal import Decimal

import pytest

from domain import CurrencyMismatch, EventKind, InvalidInput, Money, NoRate, OutsideCalendar, stay_price
from tests.domain.factories import calendar, contract, d, eur, event, rate_change


def row(contracts, events=()):
    return calendar(contracts, events, start=0, end=5)[1]


def test_a_stay_costs_each_nights_rate_times_the_rooms():
    priced = row([contract(start=0, end=5, rate="100")], [rate_change(1, 1, 2, "120.50")])
    assert stay_price(priced, d(0), d(3), 2) == eur("641.00")


def test_a_night_without_a_rate_cannot_be_priced():
    with pytest.raises(NoRate) as raised:
        stay_price(row([contract(start=0, end=2)]), d(1), d(3), 1)
    assert (raised.value.room_type_id, raised.value.night) == (1, d(2))


def test_nights_in_different_currencies_cannot_be_added():
    usd = event(1, EventKind.RATE_CHANGE, 1, 2, rate=Money(Decimal(90), "USD"))
    with pytest.raises(CurrencyMismatch):
        stay_price(row([contract()], [usd]), d(0), d(2), 1)


def test_a_stay_outside_the_row_is_a_bug():
    with pytest.raises(OutsideCalendar):
        stay_price(row([contract()]), d(4), d(6), 1)


def test_an_empty_stay_is_invalid():
    with pytest.raises(InvalidInput) as raised:
        stay_price(row([contract()]), d(2), d(2), 1)
    assert raised.value.field == "checkOut"
