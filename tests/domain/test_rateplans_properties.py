"""Properties of the pricing engine on random plans and stays, including equality with the
slow reference (tests/domain/reference_pricing.py)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import (
    CalendarRow,
    Money,
    NightFacts,
    PriceCondition,
    PriceOutOfRange,
    PricePer,
    PriceRule,
    RatePlan,
    StayFacts,
    compile_plan,
    minor_unit,
    night_sell_prices,
    price_item,
)
from tests.domain.factories import d
from tests.domain.reference_pricing import reference_price

SETTINGS = settings(max_examples=150, deadline=None)

CURRENCIES = ("EUR", "JPY", "KWD")
PERCENTS = tuple(map(Decimal, ("-100", "-50", "-33.3333", "-12.5", "-10", "-0.05", "0", "0.05", "7.5", "20",
                               "33.3333", "150", "1000")))
OCCUPANCY = (0, 10, 25, 33, 50, 67, 80, 90, 100)


def money(draw, currency: str, lo: int, hi: int) -> Money:
    return Money(Decimal(draw(st.integers(lo, hi))).scaleb(-minor_unit(currency)), currency)


def maybe(draw, strategy, odds: int = 5):
    """A value one time in `odds` (so that conditions of many parts still match now and then), else None."""
    return draw(strategy) if draw(st.integers(1, odds)) == odds else None


def bounds(draw, values):
    lo, hi = maybe(draw, values), maybe(draw, values)
    if lo is not None and hi is not None and hi < lo:
        lo, hi = hi, lo
    return lo, hi


@st.composite
def conditions(draw) -> PriceCondition:
    start = maybe(draw, st.integers(-2, 8))
    end = maybe(draw, st.integers(-1, 10))
    if start is not None and end is not None and end <= start:
        start, end = end - 1, start + 1
    min_nights, max_nights = bounds(draw, st.integers(1, 5))
    min_lead, max_lead = bounds(draw, st.integers(0, 10))
    min_occupancy, max_occupancy = bounds(draw, st.sampled_from(OCCUPANCY))
    return PriceCondition(
        room_type_ids=maybe(draw, st.frozensets(st.integers(1, 3), min_size=1)),
        start=None if start is None else d(start),
        end=None if end is None else d(end),
        weekdays=maybe(draw, st.frozensets(st.integers(1, 7), min_size=1)),
        min_nights=min_nights,
        max_nights=max_nights,
        min_lead_days=min_lead,
        max_lead_days=max_lead,
        min_rooms=maybe(draw, st.integers(1, 6)),
        min_occupancy_percent=min_occupancy,
        max_occupancy_percent=max_occupancy,
        agency_tiers=maybe(draw, st.frozensets(st.sampled_from(("A", "B")), min_size=1)),
    )


@st.composite
def rule_lists(draw, currency: str, most: int = 8) -> list[PriceRule]:
    names = draw(st.lists(st.text("abc", min_size=1, max_size=3), max_size=most, unique=True))
    rules = []
    for name in names:
        percent = amount = None
        if draw(st.booleans()):
            percent = draw(st.sampled_from(PERCENTS))
        else:
            amount = money(draw, currency, -8000, 8000)
        rules.append(PriceRule(name, draw(st.integers(0, 3)), draw(conditions()), percent, amount,
                               draw(st.sampled_from(PricePer))))
    return rules


@st.composite
def stays(draw, currency: str) -> tuple[StayFacts, list[NightFacts]]:
    start = draw(st.integers(-1, 5))
    nights = [
        NightFacts(d(start + i), money(draw, currency, 0, 50_000), draw(st.integers(0, 12)), draw(st.integers(0, 10)))
        for i in range(draw(st.integers(1, 5)))
    ]
    rooms = draw(st.integers(1, 3))
    group = maybe(draw, st.integers(rooms, rooms + 5), 2)
    return StayFacts(draw(st.integers(1, 3)), draw(st.integers(0, 10)), rooms, group,
                     draw(st.sampled_from((None, "A", "B")))), nights


@st.composite
def cases(draw, most: int = 8):
    currency = draw(st.sampled_from(CURRENCIES))
    rules = draw(rule_lists(currency, most))
    stay, nights = draw(stays(currency))
    return RatePlan(1, "P", "p", 1, frozenset(), True, tuple(rules)), stay, nights


def priced_or_error(plan, stay, nights):
    """The priced item, or ("too high", night) when a night's price is out of range."""
    try:
        return price_item(compile_plan(plan), stay, nights)
    except PriceOutOfRange as error:
        return ("too high", error.night)


@SETTINGS
@given(cases())
def test_the_compiled_engine_agrees_with_the_reference(case):
    plan, stay, nights = case
    got = priced_or_error(plan, stay, nights)
    try:
        expected = reference_price(plan, stay, nights)
    except PriceOutOfRange as error:
        assert got == ("too high", error.night)
        return
    assert [(n.date, n.net, n.sell) for n in got.nights] == [(n.date, n.net, n.sell) for n in expected]
    assert [[(a.rule, a.amount) for a in n.applied] for n in got.nights] == [n.applied for n in expected]
    assert got.total.amount == sum(n.sell.amount for n in expected) * stay.rooms


@SETTINGS
@given(cases())
def test_applied_amounts_add_up_exactly_to_sell_minus_net(case):
    item = priced_or_error(*case)
    if isinstance(item, tuple):
        return
    for night in item.nights:
        assert sum((a.amount.amount for a in night.applied), Decimal(0)) == night.sell.amount - night.net.amount
        assert night.sell.amount >= 0
        if night.applied:
            assert night.sell.amount == night.sell.amount.quantize(Decimal(1).scaleb(-minor_unit(night.sell.currency)))


@SETTINGS
@given(st.sampled_from(CURRENCIES).flatmap(stays))
def test_with_no_rules_sell_is_net(stay_and_nights):
    stay, nights = stay_and_nights
    empty = compile_plan(RatePlan(1, "P", "p", 1, rules=()))
    for plan in (None, empty):
        item = price_item(plan, stay, nights)
        assert [(n.sell, n.applied) for n in item.nights] == [(n.net, ()) for n in nights]


@SETTINGS
@given(cases(), st.randoms(use_true_random=False))
def test_the_order_rules_are_given_in_does_not_matter(case, rnd):
    plan, stay, nights = case
    shuffled = RatePlan(1, "P", "p", 1, rules=tuple(rnd.sample(plan.rules, len(plan.rules))))
    assert priced_or_error(shuffled, stay, nights) == priced_or_error(plan, stay, nights)


NEVER = (
    PriceCondition(room_type_ids=frozenset({99})),
    PriceCondition(agency_tiers=frozenset({"NOBODY"})),
    PriceCondition(start=d(40), end=d(50)),
    PriceCondition(min_nights=6),
    PriceCondition(min_rooms=100),
    PriceCondition(min_lead_days=11),
    PriceCondition(weekdays=frozenset({1}), start=d(4), end=d(6)),  # a Tuesday and a Wednesday: no Monday
)


@SETTINGS
@given(cases(), st.sampled_from(NEVER), st.integers(-2, 5), st.sampled_from(PricePer),
       st.sampled_from((Decimal("-100"), Decimal("1000"))))
def test_a_rule_that_never_matches_changes_nothing(case, never, priority, per, percent):
    plan, stay, nights = case
    with_it = RatePlan(1, "P", "p", 1, rules=(*plan.rules, PriceRule("never", priority, never, percent, None, per)))
    assert priced_or_error(with_it, stay, nights) == priced_or_error(plan, stay, nights)


@st.composite
def calendar_rows(draw, currency: str) -> CalendarRow:
    n = draw(st.integers(1, 12))
    start = d(draw(st.integers(-3, 3)))

    def series(values):
        return tuple(draw(values) for _ in range(n))

    nets = tuple(None if draw(st.integers(0, 5)) == 0 else money(draw, currency, 0, 30_000) for _ in range(n))
    zeros = (0,) * n
    return CalendarRow(
        room_type_id=draw(st.integers(1, 3)), start=start, dates=tuple(start + timedelta(days=i) for i in range(n)),
        allotment=series(st.integers(0, 8)), hardblocked=series(st.integers(0, 3)), held=series(st.integers(0, 3)),
        sold=series(st.integers(0, 3)), available=zeros, overcommitted=zeros, closed=(False,) * n,
        release_date=(None,) * n, release_at=(None,) * n, rate=nets,
    )


@SETTINGS
@given(st.sampled_from(CURRENCIES).flatmap(
    lambda c: st.tuples(rule_lists(c), st.lists(calendar_rows(c), min_size=1, max_size=3))),
    st.integers(-5, 5), st.sampled_from((None, "A", "B")))
def test_a_calendar_row_is_priced_as_one_night_stays(rules_and_rows, today_offset, tier):
    rules, rows = rules_and_rows
    compiled = compile_plan(RatePlan(1, "P", "p", 1, rules=tuple(rules)))
    today = d(today_offset)
    for _ in range(2):  # the second time from what the compiled plan remembers
        for row in rows:
            expected = []
            for i, night in enumerate(row.dates):
                if row.rate[i] is None:
                    expected.append(None)
                    continue
                stay = StayFacts(row.room_type_id, (night - today).days, agency_tier=tier)
                facts = [NightFacts(night, row.rate[i], row.hardblocked[i] + row.held[i] + row.sold[i],
                                    row.allotment[i])]
                try:
                    expected.append(reference_price(compiled.plan, stay, facts)[0].sell)
                except PriceOutOfRange:
                    expected.append(("too high", night))
            try:
                got = list(night_sell_prices(compiled, row, today, tier))
            except PriceOutOfRange as error:
                got = ("too high", error.night)
                expected = next(e for e in expected if isinstance(e, tuple))
            assert got == expected
