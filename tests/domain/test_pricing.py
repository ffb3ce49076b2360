"""price_stays: the items of one booking or quote priced on calendar rows (the engine's rules are
tested in test_rateplans)."""

from decimal import Decimal

import pytest

from domain import (
    CurrencyMismatch,
    EventKind,
    InvalidInput,
    Money,
    NoRate,
    OutsideCalendar,
    PriceCondition,
    PriceRule,
    RatePlan,
    compile_plan,
    price_stays,
)
from tests.domain.factories import calendar, contract, d, eur, event, rate_change


def rows(contracts, events=()):
    return calendar(contracts, events, start=0, end=5)


def group_plan() -> object:
    """-10 % for groups of 3 rooms or more, +5 booked 2 or more days ahead, GOLD pays 1 less."""
    return compile_plan(RatePlan(1, "P", "Plan", 1, rules=(
        PriceRule("group", 1, PriceCondition(min_rooms=3), percent=Decimal(-10)),
        PriceRule("early", 2, PriceCondition(min_lead_days=2), amount=eur("5")),
        PriceRule("gold", 3, PriceCondition(agency_tiers=frozenset({"GOLD"})), amount=eur("-1")),
    )))


def test_without_a_plan_a_stay_costs_each_nights_rate_times_the_rooms():
    priced = price_stays(None, rows([contract(start=0, end=5, rate="100")], [rate_change(1, 1, 2, "120.50")]),
                         [(1, d(0), d(3), 2)], d(0))
    assert priced[0].total == priced[0].net_total == eur("641.00")
    assert [n.sell for n in priced[0].nights] == [eur("100"), eur("120.50"), eur("100")]


def test_every_item_sees_the_rooms_of_the_whole_group_and_the_lead_days_from_today():
    calendar_rows = rows([contract(start=0, end=5, rate="100")])
    alone = price_stays(group_plan(), calendar_rows, [(1, d(2), d(3), 2)], d(1))
    assert alone[0].nights[0].sell == eur("100")  # two rooms, one day ahead: no rule
    grouped = price_stays(group_plan(), calendar_rows, [(1, d(2), d(3), 2), (1, d(3), d(4), 1)], d(0), "GOLD")
    assert [item.nights[0].sell for item in grouped] == [eur("94.00"), eur("94.00")]  # 90 + 5 - 1
    assert [a.rule for a in grouped[0].nights[0].applied] == ["group", "early", "gold"]


def test_a_night_without_a_rate_cannot_be_priced():
    with pytest.raises(NoRate) as raised:
        price_stays(None, rows([contract(start=0, end=2)]), [(1, d(1), d(3), 1)], d(0))
    assert (raised.value.room_type_id, raised.value.night) == (1, d(2))


def test_nights_in_different_currencies_cannot_be_added():
    usd = event(1, EventKind.RATE_CHANGE, 1, 2, rate=Money(Decimal(90), "USD"))
    with pytest.raises(CurrencyMismatch):
        price_stays(None, rows([contract()], [usd]), [(1, d(0), d(2), 1)], d(0))


def test_a_stay_outside_the_row_is_a_bug():
    with pytest.raises(OutsideCalendar):
        price_stays(None, rows([contract()]), [(1, d(4), d(6), 1)], d(0))


def test_an_empty_stay_is_invalid():
    with pytest.raises(InvalidInput) as raised:
        price_stays(None, rows([contract()]), [(1, d(2), d(2), 1)], d(0))
    assert raised.value.field == "checkOut"
