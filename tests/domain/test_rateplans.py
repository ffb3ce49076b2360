"""The pricing engine by example: each condition, each adjustment, their order, rounding, plan
selection and validation. D0 (day 0) is Friday 2026-05-01."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import ROUND_UP, Decimal, localcontext

import pytest

import domain.rateplans as rateplans
from domain import (
    MAX_PRICE,
    MAX_RULES,
    AppliedRule,
    CalendarRow,
    CurrencyMismatch,
    InvalidInput,
    Money,
    NightFacts,
    NoRate,
    OutsideCalendar,
    PriceCondition,
    PricedNight,
    PriceOutOfRange,
    PricePer,
    PriceRule,
    RatePlan,
    RatePlanConflict,
    StayFacts,
    check_rate_plan,
    compile_plan,
    night_sell_prices,
    plan_conflict,
    price_item,
    row_nights,
    rule_order,
    select_plan,
)
from tests.domain.factories import D0, calendar, contract, d, hold, rate_change

STAY = PricePer.STAY


def money(amount: str | int, currency: str = "EUR") -> Money:
    return Money(Decimal(amount), currency)


def rule(name: str = "r", priority: int = 0, percent: str | None = None, amount: str | int | None = None,
         per: PricePer = PricePer.NIGHT, currency: str = "EUR", **when) -> PriceRule:
    return PriceRule(
        name, priority, PriceCondition(**when), None if percent is None else Decimal(percent),
        None if amount is None else money(amount, currency), per,
    )


def plan(*rules: PriceRule, code: str = "P", agencies: tuple[int, ...] = (), active: bool = True, hotel: int = 1,
         id: int = 1) -> RatePlan:
    return RatePlan(id, code, f"plan {code}", hotel, frozenset(agencies), active, rules)


def nights(*nets: str | int, start: int = 0, committed: int = 0, allotment: int = 10, currency: str = "EUR"
           ) -> list[NightFacts]:
    return [NightFacts(d(start + i), money(net, currency), committed, allotment) for i, net in enumerate(nets)]


def price(rules, stay_nights, room_type: int = 1, lead: int = 30, rooms: int = 1, group: int | None = None,
          tier: str | None = None):
    return price_item(compile_plan(plan(*rules)), StayFacts(room_type, lead, rooms, group, tier), stay_nights)


def sells(item) -> list[str]:
    return [str(night.sell.amount) for night in item.nights]


def applied(item, i: int = 0) -> list[tuple[str, str]]:
    return [(a.rule, str(a.amount.amount)) for a in item.nights[i].applied]


# --- adjustments and their order ------------------------------------------------------------


def test_without_a_plan_or_a_matching_rule_sell_is_net():
    stay = nights("100.00", "120.00")
    for item in (price_item(None, StayFacts(1, 30), stay), price([rule(percent="10", room_type_ids={2})], stay),
                 price([], stay)):
        assert sells(item) == ["100.00", "120.00"]
        assert all(night.applied == () and night.net == night.sell for night in item.nights)
        assert item.total == item.net_total == money("220.00")


def test_a_percent_scales_the_price_so_far_in_ascending_priority():
    item = price([rule("minus ten", 2, percent="-10"), rule("plus twenty", 1, percent="20")], nights("100.00"))
    assert sells(item) == ["108.00"]  # 100 x 1.2 x 0.9
    assert applied(item) == [("plus twenty", "20.00"), ("minus ten", "-12.00")]


def test_priority_decides_between_an_amount_and_a_percent():
    first_amount = [rule("add", 1, amount="10"), rule("double", 2, percent="100")]
    first_percent = [rule("add", 2, amount="10"), rule("double", 1, percent="100")]
    assert sells(price(first_amount, nights("50.00"))) == ["120.00"]
    assert sells(price(first_percent, nights("50.00"))) == ["110.00"]


def test_equal_priorities_apply_in_the_order_of_their_names():
    rules = [rule("b: add", 5, amount="10"), rule("a: double", 5, percent="100")]
    item = price(rules, nights("50.00"))
    assert applied(item) == [("a: double", "50.00"), ("b: add", "10.00")]
    assert [r.name for r in sorted(rules, key=rule_order)] == ["a: double", "b: add"]
    assert compile_plan(plan(*rules)).rules == tuple(sorted(rules, key=rule_order))


def test_an_amount_per_night_adds_to_every_night():
    item = price([rule("city tax", amount="3.50")], nights("100.00", "80.00"))
    assert sells(item) == ["103.50", "83.50"]
    assert [applied(item, i) for i in (0, 1)] == [[("city tax", "3.50")], [("city tax", "3.50")]]


def test_an_amount_per_stay_is_spread_with_the_remainder_on_the_first_night():
    item = price([rule("welcome", amount="100.00", per=STAY)], nights("50.00", "50.00", "50.00"))
    assert sells(item) == ["83.34", "83.33", "83.33"]
    assert sum(n.sell.amount - n.net.amount for n in item.nights) == Decimal("100.00")


def test_a_negative_amount_per_stay_leaves_its_remainder_on_the_first_night_too():
    item = price([rule("discount", amount="-100.00", per=STAY)], nights("50.00", "50.00", "50.00"))
    assert sells(item) == ["16.66", "16.67", "16.67"]


def test_an_amount_per_stay_in_yen_is_spread_in_whole_yen():
    item = price([rule("welcome", amount="1000", per=STAY, currency="JPY")], nights("9000", "9000", "9000",
                                                                                       currency="JPY"))
    assert sells(item) == ["9334", "9333", "9333"]


def test_a_stay_rule_is_judged_on_the_arrival_night_and_applies_to_every_night():
    # Arrival Friday D0: the STAY rule for Friday arrivals covers Saturday too; the NIGHT one does not.
    friday = frozenset({5})
    item = price([rule("arrive friday", percent="-10", per=STAY, weekdays=friday),
                  rule("friday night", amount="5", weekdays=friday)], nights("100.00", "100.00"))
    assert sells(item) == ["95.00", "90.00"]
    later = price([rule("arrive friday", percent="-10", per=STAY, weekdays=friday)], nights("100.00", start=1))
    assert sells(later) == ["100.00"]


def test_the_totals_are_for_all_the_rooms():
    item = price([rule(amount="10")], nights("100.00", "100.00"), rooms=3)
    assert (item.total, item.net_total) == (money("660.00"), money("600.00"))
    assert (item.check_in, item.check_out, item.rooms, item.room_type_id) == (d(0), d(2), 3, 1)


# --- rounding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("net", "percent", "currency", "sell"),
    [
        ("100.00", "0.125", "EUR", "100.12"),  # 100.125: the even cent
        ("100.00", "0.135", "EUR", "100.14"),  # 100.135: the even cent
        ("1000", "0.05", "JPY", "1000"),  # 1000.5 yen: the even yen
        ("1001", "0.05", "JPY", "1002"),  # 1001.5005 yen
        ("10.000", "0.005", "KWD", "10.000"),  # 10.0005 dinars: the even fils
        ("10.001", "0.005", "KWD", "10.002"),  # 10.0015005 dinars
    ],
)
def test_a_night_is_rounded_half_even_to_the_currencys_minor_unit(net, percent, currency, sell):
    item = price([rule(percent=percent)], nights(net, currency=currency))
    assert item.nights[0].sell == money(sell, currency)
    assert item.nights[0].sell.amount.as_tuple().exponent == -rateplans.minor_unit(currency)


def test_a_night_is_rounded_once_at_its_end_never_in_between():
    # 10.00 x 1.0005 x 1.0005 = 10.01000025. Rounding after each rule would give 10.00 twice.
    item = price([rule("a", percent="0.05"), rule("b", percent="0.05")], nights("10.00"))
    assert sells(item) == ["10.01"]
    # Each amount is what the rule changed in the price rounded to the cent: 10.005 rounds to 10.00.
    assert applied(item) == [("a", "0.00"), ("b", "0.01")]


def test_the_applied_amounts_add_up_to_sell_minus_net_when_rounding_bites():
    rules = [rule("a", 1, percent="33.3333"), rule("b", 2, percent="-12.5"), rule("c", 3, amount="0.07")]
    item = price(rules, nights("19.99", "0.01"))
    for night in item.nights:
        assert sum(a.amount.amount for a in night.applied) == night.sell.amount - night.net.amount


def test_a_price_never_goes_below_zero():
    item = price([rule("big discount", 1, amount="-80"), rule("cleaning", 2, amount="10"),
                  rule("halve", 3, percent="-50")], nights("50.00"))
    assert sells(item) == ["5.00"]
    assert applied(item) == [("big discount", "-50.00"), ("cleaning", "10.00"), ("halve", "-5.00")]
    free = price([rule("all off", percent="-100")], nights("50.00"))
    assert sells(free) == ["0.00"]


def test_a_price_beyond_the_limit_is_refused_with_its_night():
    with pytest.raises(PriceOutOfRange) as raised:
        price([rule(percent="1000")], nights("100.00", "100000000.00"))
    assert (raised.value.night, raised.value.limit) == (d(1), MAX_PRICE)


def test_an_amount_in_another_currency_than_the_night_is_refused():
    with pytest.raises(CurrencyMismatch) as raised:
        price([rule(amount="10", currency="USD")], nights("100.00"))
    assert (raised.value.expected, raised.value.got) == ("EUR", "USD")


def test_nights_in_different_currencies_cannot_make_one_item():
    with pytest.raises(CurrencyMismatch):
        price([rule(percent="10")], [*nights("100.00"), *nights("100.00", start=1, currency="USD")])


# --- conditions -----------------------------------------------------------------------------


def test_room_types():
    rules = [rule(percent="10", room_type_ids={2, 3})]
    assert sells(price(rules, nights("100.00"), room_type=2)) == ["110.00"]
    assert sells(price(rules, nights("100.00"), room_type=1)) == ["100.00"]


def test_a_date_range_is_half_open_and_judged_per_night():
    item = price([rule(percent="10", start=d(1), end=d(3))], nights("100.00", "100.00", "100.00", "100.00"))
    assert sells(item) == ["100.00", "110.00", "110.00", "100.00"]
    open_ended = price([rule("from", amount="1", start=d(2)), rule("to", amount="2", end=d(1))],
                       nights("100.00", "100.00", "100.00"))
    assert sells(open_ended) == ["102.00", "100.00", "101.00"]


def test_weekdays_are_iso():
    # D0 is a Friday (5): Friday, Saturday, Sunday (7), Monday (1).
    item = price([rule(percent="20", weekdays={5, 6}), rule("monday", amount="-5", weekdays={1})],
                 nights("100.00", "100.00", "100.00", "100.00"))
    assert sells(item) == ["120.00", "120.00", "100.00", "95.00"]


@pytest.mark.parametrize(("length", "sell"), [(2, "100.00"), (3, "90.00"), (5, "90.00"), (6, "100.00")])
def test_stay_length(length, sell):
    item = price([rule(percent="-10", min_nights=3, max_nights=5)], nights(*["100.00"] * length))
    assert set(sells(item)) == {sell}


@pytest.mark.parametrize(("lead", "sell"), [(13, "100.00"), (14, "90.00"), (30, "90.00"), (31, "100.00")])
def test_lead_days(lead, sell):
    rules = [rule(percent="-10", min_lead_days=14, max_lead_days=30)]
    assert sells(price(rules, nights("100.00"), lead=lead)) == [sell]


def test_min_rooms_counts_the_whole_group():
    rules = [rule(percent="-5", min_rooms=10)]
    assert sells(price(rules, nights("100.00"), rooms=2, group=10)) == ["95.00"]
    assert sells(price(rules, nights("100.00"), rooms=2, group=9)) == ["100.00"]
    assert sells(price(rules, nights("100.00"), rooms=10)) == ["95.00"]  # no group given: the item is the group


@pytest.mark.parametrize(
    ("committed", "allotment", "sells_"),
    [
        (0, 10, ["100.00", "90.00"]),
        (7, 10, ["100.00", "100.00"]),
        (8, 10, ["120.00", "100.00"]),  # 80 %
        (9, 10, ["120.00", "100.00"]),
        (15, 10, ["120.00", "100.00"]),  # overcommitted: 100 %
        (0, 0, ["120.00", "100.00"]),  # nothing to sell: full
        (1, 3, ["100.00", "100.00"]),  # 33.3 %, above at most 33
        (1, 4, ["100.00", "90.00"]),  # 25 %
    ],
)
def test_occupancy_of_the_night(committed, allotment, sells_):
    rules = [rule("yield", percent="20", min_occupancy_percent=80),
             rule("quiet", percent="-10", max_occupancy_percent=33)]
    a = price(rules[:1], nights("100.00", committed=committed, allotment=allotment))
    b = price(rules[1:], nights("100.00", committed=committed, allotment=allotment))
    assert sells(a) + sells(b) == sells_


def test_occupancy_bounds_of_0_and_100_hold_always():
    rules = [rule("a", amount="1", min_occupancy_percent=0, max_occupancy_percent=100)]
    for committed, allotment in ((0, 10), (10, 10), (20, 10), (0, 0)):
        assert sells(price(rules, nights("100.00", committed=committed, allotment=allotment))) == ["101.00"]


def test_occupancy_is_judged_per_night():
    stay = [NightFacts(d(0), money("100.00"), 9, 10), NightFacts(d(1), money("100.00"), 1, 10)]
    assert sells(price([rule(percent="20", min_occupancy_percent=90)], stay)) == ["120.00", "100.00"]
    assert sells(price([rule(percent="20", min_occupancy_percent=90, per=STAY)], stay)) == ["120.00", "120.00"]


def test_agency_tier():
    rules = [rule(percent="-10", agency_tiers={"GOLD", "PLATINUM"})]
    assert sells(price(rules, nights("100.00"), tier="GOLD")) == ["90.00"]
    assert sells(price(rules, nights("100.00"), tier="SILVER")) == ["100.00"]
    assert sells(price(rules, nights("100.00"))) == ["100.00"]


def test_every_part_of_a_condition_must_hold():
    r = rule(percent="-10", room_type_ids={1}, weekdays={6}, min_nights=2, min_lead_days=7, agency_tiers={"GOLD"})
    stay = nights("100.00", "100.00")
    assert sells(price([r], stay, lead=7, tier="GOLD")) == ["100.00", "90.00"]
    assert sells(price([r], stay, lead=6, tier="GOLD")) == ["100.00", "100.00"]
    assert sells(price([r], stay[:1], lead=7, tier="GOLD")) == ["100.00"]


# --- the nights of a calendar row, and calendars --------------------------------------------


def row(contracts=(contract(start=0, end=10, rate="100"),), events=(), bookings=(), start=0, end=10) -> CalendarRow:
    return calendar(contracts, events, (), bookings, start=start, end=end)[1]


def test_row_nights_are_the_engines_nights():
    r = row(bookings=[hold(1, 1, 3, rooms=4)])
    assert row_nights(r, d(0), d(2)) == (NightFacts(d(0), money("100"), 0, 10), NightFacts(d(1), money("100"), 4, 10))


@pytest.mark.parametrize(
    ("check_in", "check_out", "error"),
    [(2, 2, InvalidInput), (2, 1, InvalidInput), (8, 12, OutsideCalendar), (-1, 2, OutsideCalendar)],
)
def test_row_nights_refuses_what_the_row_cannot_price(check_in, check_out, error):
    with pytest.raises(error):
        row_nights(row(), d(check_in), d(check_out))


def test_row_nights_refuses_a_night_without_a_rate():
    with pytest.raises(NoRate) as raised:
        row_nights(row([contract(start=0, end=2)]), d(1), d(3))
    assert raised.value.night == d(2)


def test_an_item_needs_a_night():
    with pytest.raises(InvalidInput) as raised:
        price_item(None, StayFacts(1, 0), [])
    assert raised.value.field == "checkOut"


def one_night_sells(compiled, r: CalendarRow, today, tier=None) -> list[Money | None]:
    out = []
    for i, night in enumerate(r.dates):
        if r.rate[i] is None:
            out.append(None)
            continue
        item = price_item(compiled, StayFacts(r.room_type_id, (night - today).days, agency_tier=tier),
                          row_nights(r, night, night + timedelta(days=1)))
        out.append(item.nights[0].sell)
    return out


def test_a_calendar_shows_the_price_of_a_one_night_stay_for_one_room():
    r = row([contract(start=0, end=8, rate="100")], [rate_change(1, 3, 5, "150.55")],
            [hold(1, 0, 10, rooms=9)], start=0, end=10)
    compiled = compile_plan(plan(
        rule("weekend", 1, percent="15", weekdays={6, 7}),
        rule("full", 2, percent="10", min_occupancy_percent=90),
        rule("early", 3, amount="-5", min_lead_days=3, per=STAY),
        rule("tier", 4, percent="-3", agency_tiers={"GOLD"}),
        rule("long", 5, amount="-50", min_nights=2, per=STAY),
        rule("group", 6, percent="-50", min_rooms=2),
    ))
    today = d(-1)
    prices = night_sell_prices(compiled, r, today, "GOLD")
    assert list(prices) == one_night_sells(compiled, r, today, "GOLD")
    assert prices[8:] == (None, None)
    assert prices[0] == money("106.70")  # Friday, full (9 of 10), lead 1: 100 x 1.1 x 0.97
    assert prices[2] == money("117.86")  # Sunday, lead 3: (100 x 1.15 x 1.1 - 5) x 0.97 = 117.855
    assert night_sell_prices(compiled, r, today, "GOLD") == prices  # remembered, the same
    assert night_sell_prices(compiled, r, today) != prices


def test_a_calendar_without_a_plan_or_rules_shows_the_nets():
    r = row()
    assert night_sell_prices(None, r, d(0)) is r.rate
    assert night_sell_prices(compile_plan(plan()), r, d(0)) is r.rate
    assert night_sell_prices(compile_plan(plan(rule(percent="5", room_type_ids={7}))), r, d(0)) == r.rate


def test_a_calendar_prices_nights_without_allotment_as_full():
    r = replace(row(), allotment=(0,) * 5 + (10,) * 5)
    compiled = compile_plan(plan(rule(percent="10", min_occupancy_percent=100)))
    assert night_sell_prices(compiled, r, d(0)) == (money("110.00"),) * 5 + (money("100"),) * 5


def test_a_calendar_with_clamps_and_stay_amounts_agrees_with_the_one_night_price():
    r = row([contract(start=0, end=10, rate="30")])
    compiled = compile_plan(plan(
        rule("drop", 1, amount="-40", weekdays={5}),
        rule("up", 2, percent="50"),
        rule("stay", 3, amount="7.5", per=STAY),
    ))
    prices = night_sell_prices(compiled, r, d(0))
    assert list(prices) == one_night_sells(compiled, r, d(0))
    assert prices[0] == money("7.50")  # Friday: 30 - 40 -> 0, x 1.5, + 7.50


def test_a_calendar_refuses_a_price_beyond_the_limit_with_its_night():
    r = row([contract(start=0, end=10, rate="100")], [rate_change(1, 6, 7, "100000000")])
    compiled = compile_plan(plan(rule(percent="1000")))
    for _ in range(2):
        with pytest.raises(PriceOutOfRange) as raised:
            night_sell_prices(compiled, r, d(0))
        assert raised.value.night == d(6)


@pytest.mark.parametrize("currencies", [("USD",), ("EUR", "USD"), ("USD", "EUR"), ("USD", "USD")])
def test_a_calendar_refuses_an_amount_in_another_currency(currencies):
    rules = [rule(f"r{i}", i, amount="5", currency=c) for i, c in enumerate(currencies)]
    with pytest.raises(CurrencyMismatch) as raised:
        night_sell_prices(compile_plan(plan(*rules)), row(), d(0))
    assert (raised.value.expected, raised.value.got) == ("EUR", "USD")


def test_a_calendar_gives_the_same_prices_when_it_has_forgotten(monkeypatch):
    r = row([contract(start=0, end=10, rate="100")], [rate_change(1, 2, 4, "90")], [hold(1, 0, 5, rooms=5)])
    rules = [rule("a", 1, percent="10", weekdays={1, 2}), rule("b", 2, amount="-3", min_occupancy_percent=50),
             rule("c", 3, percent="-20", max_lead_days=2)]
    expected = night_sell_prices(compile_plan(plan(*rules)), r, d(0))
    monkeypatch.setattr(rateplans, "_MAX_PROGRAMS", 1)
    monkeypatch.setattr(rateplans, "_MAX_CALENDARS", 1)
    monkeypatch.setattr(rateplans, "_MAX_REMEMBERED", 1)
    compiled = compile_plan(plan(*rules))
    for today in (d(0), d(-1), d(0), d(0)):
        got = night_sell_prices(compiled, r, today)
        if today == d(0):
            assert got == expected
    assert len(compiled._calendars) == 1


# --- plan selection -------------------------------------------------------------------------


def test_an_agency_uses_the_plan_naming_it_else_the_plan_for_all_else_none():
    everyone = plan(code="ALL")
    named = plan(code="VIP", agencies=(7, 8))
    plans = [everyone, named]  # a hotel's active plans, by code
    assert select_plan(plans, 7) is named
    assert select_plan(plans, 9) is everyone
    assert select_plan([named], 9) is None
    assert select_plan([], 7) is None


def test_selection_is_deterministic_even_among_conflicting_plans():
    plans = [plan(code="A", agencies=(1,)), plan(code="B", agencies=(1,)), plan(code="C", agencies=(1,)),
             plan(code="Y"), plan(code="YY"), plan(code="Z")]
    assert select_plan(plans, 1).code == "A"
    assert select_plan(plans, 2).code == "Y"


def test_two_active_plans_may_not_name_the_same_agency():
    conflict = plan_conflict(plan(code="NEW", agencies=(3, 4, 5)),
                             [plan(code="B", agencies=(5, 4)), plan(code="A", agencies=(1,))])
    assert isinstance(conflict, RatePlanConflict) and isinstance(conflict, InvalidInput)
    assert (conflict.field, conflict.other_code, conflict.agency_ids) == ("agencyIds", "B", (4, 5))
    assert conflict.message == "agencies 4, 5 already use the active plan B"


def test_two_active_plans_may_not_both_be_for_all_agencies():
    conflict = plan_conflict(plan(code="NEW"), [plan(code="BASE"), plan(code="VIP", agencies=(1,))])
    assert (conflict.other_code, conflict.agency_ids) == ("BASE", ())
    assert conflict.message == "the active plan BASE is already for all agencies"


def test_what_does_not_conflict():
    assert plan_conflict(plan(code="NEW", active=False), [plan(code="BASE")]) is None
    assert plan_conflict(plan(code="NEW"), [plan(code="BASE", active=False)]) is None
    assert plan_conflict(plan(code="NEW"), [plan(code="BASE", hotel=2)]) is None
    assert plan_conflict(plan(code="BASE", agencies=(1,)), [plan(code="BASE")]) is None  # the plan it replaces
    assert plan_conflict(plan(code="NEW", agencies=(1,)), [plan(code="VIP", agencies=(2,)), plan(code="ALL")]) is None
    assert plan_conflict(plan(code="NEW"), [plan(code="VIP", agencies=(2,))]) is None


# --- validation -----------------------------------------------------------------------------


def when(**kw) -> PriceCondition:
    return PriceCondition(**kw)


@pytest.mark.parametrize(
    ("rules", "field", "message"),
    [
        ([rule("a", percent="-100"), rule("b", percent="1000"), rule("c", amount="-99.99"), rule("d", amount="0")],
         None, None),
        ([rule("", percent="1")], "rules[0].name", "must not be empty"),
        ([rule("a", percent="1"), rule("  ", percent="1")], "rules[1].name", "must not be empty"),
        ([rule("x" * 201, percent="1")], "rules[0].name", "must be at most 200 characters"),
        ([rule("a", percent="1"), rule("b", percent="1"), rule("a", amount="1")], "rules[2].name",
         "repeats the name of rules[0]"),
        ([rule("a", 1_000_001, percent="1")], "rules[0].priority", "must be -1000000 to 1000000"),
        ([rule("a")], "rules[0].percent", "is required when no amount is given (a rule adjusts by a percent or an amount)"),
        ([PriceRule("a", 0, percent=Decimal(1), amount=money(1))], "rules[0].amount",
         "must be left out when a percent is given (a rule adjusts by one or the other)"),
        ([rule("a", percent="-100.01")], "rules[0].percent", "must be -100 to 1000"),
        ([rule("a", percent="1000.5")], "rules[0].percent", "must be -100 to 1000"),
        ([rule("a", percent="NaN")], "rules[0].percent", "must be -100 to 1000"),
        ([rule("a", percent="12.34567")], "rules[0].percent", "must have at most 4 decimals"),
        ([rule("a", percent="12.3456")], None, None),
        ([rule("a", amount="1.001")], "rules[0].amount.amount", "must be in EUR's minor unit (0.01)"),
        ([rule("a", amount="1.5", currency="JPY")], "rules[0].amount.amount", "must be in JPY's minor unit (1)"),
        ([rule("a", amount="1.125", currency="KWD")], None, None),
        ([rule("a", amount="1.10")], None, None),
        ([rule("a", amount="Infinity")], "rules[0].amount.amount", "must be -1000000000 to 1000000000"),
        ([rule("a", amount="1000000000.01")], "rules[0].amount.amount", "must be -1000000000 to 1000000000"),
        ([rule("a", amount="1", currency="eur")], "rules[0].amount.currency",
         "must be a 3-letter uppercase ISO currency code"),
        ([rule("a", amount="1"), rule("b", percent="1"), rule("c", amount="1", currency="USD")],
         "rules[2].amount.currency", "must be EUR like rules[0].amount (one currency per plan)"),
        ([rule("a", percent="1", room_type_ids=frozenset())], "rules[0].when.roomTypes",
         "must not be empty (leave it out for every room type)"),
        ([rule("a", percent="1", start=d(3), end=d(3))], "rules[0].when.to",
         "must be after from (ranges are half-open over nights)"),
        ([rule("a", percent="1", start=D0.replace(year=1999))], "rules[0].when.from",
         "must be 2000-01-01 to 2100-01-01"),
        ([rule("a", percent="1", end=D0.replace(year=2101))], "rules[0].when.to", "must be 2000-01-01 to 2100-01-01"),
        ([rule("a", percent="1", weekdays=frozenset())], "rules[0].when.weekdays",
         "must be ISO weekdays, 1 (Monday) to 7 (Sunday), at least one"),
        ([rule("a", percent="1", weekdays={0, 1})], "rules[0].when.weekdays",
         "must be ISO weekdays, 1 (Monday) to 7 (Sunday), at least one"),
        ([rule("a", percent="1", weekdays={8})], "rules[0].when.weekdays",
         "must be ISO weekdays, 1 (Monday) to 7 (Sunday), at least one"),
        ([rule("a", percent="1", min_nights=0)], "rules[0].when.minNights", "must be 1 to 365"),
        ([rule("a", percent="1", max_nights=366)], "rules[0].when.maxNights", "must be 1 to 365"),
        ([rule("a", percent="1", min_nights=4, max_nights=3)], "rules[0].when.maxNights", "must be at least minNights"),
        ([rule("a", percent="1", min_nights=3, max_nights=3)], None, None),
        ([rule("a", percent="1", min_lead_days=-1)], "rules[0].when.minLeadDays", "must be 0 to 3660"),
        ([rule("a", percent="1", min_lead_days=10, max_lead_days=9)], "rules[0].when.maxLeadDays",
         "must be at least minLeadDays"),
        ([rule("a", percent="1", min_rooms=0)], "rules[0].when.minRooms", "must be 1 to 100000"),
        ([rule("a", percent="1", min_occupancy_percent=101)], "rules[0].when.minOccupancyPercent", "must be 0 to 100"),
        ([rule("a", percent="1", max_occupancy_percent=-1)], "rules[0].when.maxOccupancyPercent", "must be 0 to 100"),
        ([rule("a", percent="1", min_occupancy_percent=80, max_occupancy_percent=79)],
         "rules[0].when.maxOccupancyPercent", "must be at least minOccupancyPercent"),
        ([rule("a", percent="1", agency_tiers=frozenset())], "rules[0].when.agencyTiers",
         "must be tier codes of 1 to 32 of A-Z, 0-9, _ and -, at least one"),
        ([rule("a", percent="1", agency_tiers={"GOLD", "gold"})], "rules[0].when.agencyTiers",
         "must be tier codes of 1 to 32 of A-Z, 0-9, _ and -, at least one"),
        ([rule("a", percent="1", agency_tiers={"GOLD"}, room_type_ids={1}, weekdays={1, 7}, start=d(0), end=d(9),
               min_rooms=100_000, max_lead_days=3660)], None, None),
        ([rule(f"r{i}", percent="1") for i in range(MAX_RULES)], None, None),
        ([rule(f"r{i}", percent="1") for i in range(MAX_RULES + 1)], "rules", "must be at most 200"),
    ],
)
def test_check_rate_plan_names_the_offending_field(rules, field, message):
    problem = check_rate_plan("SUMMER", "Summer 2026", rules)
    assert (problem and problem.field, problem and problem.message) == (field, message)


@pytest.mark.parametrize(
    ("code", "name", "field", "message"),
    [
        ("S", "x", "code", "must be 2 to 32 of A-Z, 0-9, _ and -"),
        ("summer", "x", "code", "must be 2 to 32 of A-Z, 0-9, _ and -"),
        ("SUMMER", "", "name", "must not be empty"),
        ("SUMMER", "x" * 201, "name", "must be at most 200 characters"),
        ("SUMMER-26_B", "x" * 200, None, None),
    ],
)
def test_check_rate_plan_code_and_name(code, name, field, message):
    problem = check_rate_plan(code, name, [])
    assert (problem and problem.field, problem and problem.message) == (field, message)


def test_overlapping_priorities_with_conflicting_conditions_are_allowed():
    rules = [rule("a", 1, percent="10", weekdays={1}), rule("b", 1, percent="-10", weekdays={1}),
             rule("c", 1, amount="5", min_nights=2, max_nights=4), rule("d", 1, amount="-5", min_nights=3)]
    assert check_rate_plan("P1", "p", rules) is None


def test_a_priced_night_lists_what_applied():
    item = price([rule("x", amount="1")], nights("10.00"))
    assert item.nights[0] == PricedNight(d(0), money("10.00"), money("11.00"), (AppliedRule("x", money("1.00")),))


def test_prices_do_not_depend_on_the_callers_decimal_context():
    rules = [rule("a", 1, percent="33.3333"), rule("b", 2, percent="-12.5"), rule("c", 3, amount="0.07")]
    stay = nights("19.99", "1234567.89")
    expected = price(rules, stay)
    calendar_expected = night_sell_prices(compile_plan(plan(*rules)), row(), d(0))
    with localcontext() as ctx:
        ctx.prec, ctx.rounding = 3, ROUND_UP
        assert price(rules, stay) == expected
        assert night_sell_prices(compile_plan(plan(*rules)), row(), d(0)) == calendar_expected
        assert check_rate_plan("P1", "p", [*rules, rule("d", amount="123456.78")]) is None
        assert check_rate_plan("P1", "p", [rule("d", amount="123456.789")]).field == "rules[0].amount.amount"


def test_a_calendar_computed_again_from_fresh_rows_finds_the_prices_by_value():
    r = row([contract(start=0, end=10, rate="100")], [rate_change(1, 2, 4, "90.50")], [hold(1, 0, 5, rooms=5)])
    compiled = compile_plan(plan(rule("a", 1, percent="10", weekdays={6}),
                                 rule("b", 2, amount="3", min_occupancy_percent=50)))
    prices = night_sell_prices(compiled, r, d(0))
    window = (d(0).toordinal(), 10, d(0).toordinal(), None)
    remembered = len(compiled._calendars[window].sells)
    fresh = replace(r, rate=tuple(Money(Decimal(str(m.amount)), "".join(m.currency)) for m in r.rate))
    assert night_sell_prices(compiled, fresh, d(0)) == prices
    assert len(compiled._calendars[window].sells) == remembered
