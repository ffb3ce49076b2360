"""A slow, literal reading of the pricing rules (DESIGN.md, "Pricing"; domain/rateplans.py's
docstring), in exact fractions: every rule, every night, no index, no cache."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from domain import (
    CurrencyMismatch,
    MAX_PRICE,
    Money,
    NightFacts,
    PriceOutOfRange,
    PricePer,
    PriceRule,
    RatePlan,
    StayFacts,
    minor_unit,
)


@dataclass(frozen=True)
class RefNight:
    date: object
    net: Money
    sell: Money
    applied: list[tuple[str, Money]]


def _within(value, lo, hi) -> bool:
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def stay_holds(rule: PriceRule, stay: StayFacts, nights: int) -> bool:
    w = rule.when
    group = stay.group_rooms if stay.group_rooms is not None else stay.rooms
    return (
        (w.room_type_ids is None or stay.room_type_id in w.room_type_ids)
        and _within(nights, w.min_nights, w.max_nights)
        and _within(stay.lead_days, w.min_lead_days, w.max_lead_days)
        and (w.min_rooms is None or group >= w.min_rooms)
        and (w.agency_tiers is None or stay.agency_tier in w.agency_tiers)
    )


def occupancy(night: NightFacts) -> Fraction:
    if night.allotment == 0:
        return Fraction(100)
    return min(Fraction(100), Fraction(night.committed * 100, night.allotment))


def night_holds(rule: PriceRule, night: NightFacts) -> bool:
    w = rule.when
    return (
        (w.start is None or night.date >= w.start)
        and (w.end is None or night.date < w.end)
        and (w.weekdays is None or night.date.isoweekday() in w.weekdays)
        and _within(occupancy(night), w.min_occupancy_percent, w.max_occupancy_percent)
    )


def _round(value: Fraction, places: int) -> Fraction:
    return Fraction(round(value * 10**places), 10**places)  # round() of a Fraction is half-even


def _decimal(value: Fraction) -> Decimal:
    """A fraction with a finite decimal expansion, exactly."""
    places = 0
    while 10**places % value.denominator:
        places += 1
    return Decimal(value.numerator * 10**places // value.denominator).scaleb(-places)


def reference_price(plan: RatePlan | None, stay: StayFacts, nights: Sequence[NightFacts]) -> list[RefNight]:
    rules = sorted(plan.rules, key=lambda r: (r.priority, r.name)) if plan else []
    n = len(nights)
    out = []
    for j, night in enumerate(nights):
        currency = night.net.currency
        places = minor_unit(currency)
        matching = [
            rule for rule in rules
            if stay_holds(rule, stay, n) and night_holds(rule, nights[0] if rule.per is PricePer.STAY else night)
        ]
        if not matching:
            out.append(RefNight(night.date, night.net, night.net, []))
            continue
        price = Fraction(night.net.amount)
        shown = price
        applied = []
        for rule in matching:
            if rule.percent is not None:
                price = price * (1 + Fraction(rule.percent) / 100)
            else:
                if rule.amount.currency != currency:
                    raise CurrencyMismatch(currency, rule.amount.currency)
                whole = Fraction(rule.amount.amount)
                if rule.per is PricePer.STAY:
                    minor = whole * 10**places
                    share = Fraction(int(minor / n), 10**places)  # int() cuts toward zero
                    whole = whole - share * (n - 1) if j == 0 else share
                price = price + whole
            price = max(price, Fraction(0))
            rounded = _round(price, places)
            applied.append((rule.name, Money(_decimal(rounded - shown), currency)))
            shown = rounded
        if shown > MAX_PRICE:
            raise PriceOutOfRange(night.date, MAX_PRICE)
        out.append(RefNight(night.date, night.net, Money(_decimal(shown), currency), applied))
    return out


