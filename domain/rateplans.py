"""Rate plans: the sell price an agency pays, computed from each night's net rate by rules.

A rule is a condition and an adjustment. On a night, the rules that match apply in ascending
priority, ties broken by name (names are unique in a plan, so the order rules are given in never
matters), starting from the night's net: a percent scales the price so far (+20 % then -10 % is
net x 1.2 x 0.9), an amount adds to it. The price is carried exactly, never rounded on the way,
and rounded half-even to the currency's minor unit once, at the end of the night.

- A NIGHT rule is judged on each night: its dates, weekdays and occupancy are those of the night.
  A STAY rule is judged once, on the arrival night, and then applies to every night of the stay:
  a STAY amount is spread over the nights (each gets amount / nights cut toward zero to the minor
  unit, the first night the remainder), a STAY percent scales every night.
- Stay length, lead days (arrival - the hotel's local today), rooms and agency tier are the
  stay's. Rooms are those of the whole group (every item of the booking or quote), so a group
  discount sees the group. The tier is a code the agency carries (e.g. GOLD); a condition may
  list tiers, and an agency without a tier matches only conditions that list none.
- Occupancy of a night is committed (hardblocked + held + sold) / allotment x 100 when the price
  is decided, capped at 100; a night without allotment counts as full.
- A price never goes below zero: a rule that would take it below takes it to zero.
- The amount shown for an applied rule is the change it made to the price rounded to the minor
  unit: round(price after it) - round(price before it), the net itself standing for the price
  before the first. The amounts of a night add up exactly to sell - net, and each is within a
  minor unit of the rule's exact effect. A night no rule matches sells at its net, as given.
- A price above MAX_PRICE per room and night is refused (PriceOutOfRange), and so is an amount
  rule in another currency than the night's net (CurrencyMismatch).

`compile_plan` indexes a plan once; `price_item` prices a stay with its breakdown (quotes and
bookings); `night_sell_prices` prices a calendar row as one-night stays (what an agent's calendar
shows), the same prices, fast.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_HALF_EVEN, Context, Decimal, localcontext
from enum import StrEnum
from functools import reduce
from itertools import groupby
from operator import or_
from typing import TypeVar

from domain.budget import CalendarRow
from domain.contracts import MAX_ROOMS
from domain.errors import CurrencyMismatch, InvalidInput, NoRate, PriceOutOfRange, RatePlanConflict
from domain.money import Money, is_currency_code, minor_unit, quantum
from domain.nights import EARLIEST_NIGHT, LATEST_NIGHT

MAX_RULES = 200
MAX_NAME = 200
MAX_PRIORITY = 1_000_000
PERCENT_RANGE = (Decimal(-100), Decimal(1000))
PERCENT_PLACES = 4
# An amount of a rule and the sell price of a room-night, each at most this (the database keeps
# amounts below 10^10): a plan that prices a night beyond it is refused (PriceOutOfRange).
MAX_AMOUNT = Decimal(10) ** 9
MAX_PRICE = MAX_AMOUNT
MAX_STAY_NIGHTS = 365
MAX_LEAD_DAYS = 3660
_CODE = re.compile(r"[A-Z0-9_-]{2,32}")
_TIER = re.compile(r"[A-Z0-9_-]{1,32}")
_WEEKDAYS = frozenset(range(1, 8))  # ISO

# Prices are carried exactly between rules: sums and products of finite decimals are finite,
# and this context never rounds them (whatever the context of the caller's thread). The only
# division, a STAY amount over the nights, is an integer division of minor units.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, rounding=ROUND_HALF_EVEN)
_ZERO = Decimal(0)
_ONE = Decimal(1)
_T = TypeVar("_T")


class PricePer(StrEnum):
    NIGHT = "NIGHT"
    STAY = "STAY"


@dataclass(frozen=True, slots=True)
class PriceCondition:
    """What must hold for a rule to apply; a part left None always holds. Dates are half-open
    [start, end) like every range of nights (the API's `from` and `to`); weekdays are ISO
    (1 = Monday ... 7 = Sunday); bounds are inclusive."""

    room_type_ids: frozenset[int] | None = None
    start: date | None = None
    end: date | None = None
    weekdays: frozenset[int] | None = None
    min_nights: int | None = None
    max_nights: int | None = None
    min_lead_days: int | None = None
    max_lead_days: int | None = None
    min_rooms: int | None = None
    min_occupancy_percent: int | None = None
    max_occupancy_percent: int | None = None
    agency_tiers: frozenset[str] | None = None


_ALWAYS = PriceCondition()


@dataclass(frozen=True, slots=True)
class PriceRule:
    """A condition and an adjustment: a percent of the price so far (`Decimal("-10")`) or an
    amount (`Money`), never both."""

    name: str
    priority: int
    when: PriceCondition = _ALWAYS
    percent: Decimal | None = None
    amount: Money | None = None
    per: PricePer = PricePer.NIGHT


@dataclass(frozen=True, slots=True)
class RatePlan:
    """A hotel's plan for the agencies it names, or for every agency when it names none."""

    id: int
    code: str
    name: str
    hotel_id: int
    agency_ids: frozenset[int] = frozenset()
    active: bool = True
    rules: tuple[PriceRule, ...] = ()


@dataclass(frozen=True, slots=True)
class StayFacts:
    """What a rule may ask of a stay. `group_rooms`: the rooms of every item of the group, this
    one's included (None: this item is the whole group)."""

    room_type_id: int
    lead_days: int
    rooms: int = 1
    group_rooms: int | None = None
    agency_tier: str | None = None


@dataclass(frozen=True, slots=True)
class NightFacts:
    """One night of a stay as the calendar has it when the price is decided."""

    date: date
    net: Money
    committed: int
    allotment: int


@dataclass(frozen=True, slots=True)
class AppliedRule:
    rule: str
    amount: Money


@dataclass(frozen=True, slots=True)
class PricedNight:
    """One room on one night. The applied amounts add up to sell - net."""

    date: date
    net: Money
    sell: Money
    applied: tuple[AppliedRule, ...]


@dataclass(frozen=True, slots=True)
class PricedItem:
    """`rooms` rooms of one room type on [check_in, check_out): each night is per room, the
    totals are for all the rooms."""

    room_type_id: int
    check_in: date
    check_out: date
    rooms: int
    nights: tuple[PricedNight, ...]
    total: Money
    net_total: Money


def rule_order(rule: PriceRule) -> tuple[int, str]:
    """The order rules apply in: ascending priority, then name."""
    return (rule.priority, rule.name)


# --- validation ----------------------------------------------------------------------------


def check_rate_plan(code: str, name: str, rules: Sequence[PriceRule]) -> InvalidInput | None:
    """The first problem of a plan's input, or None. Field names are the API's
    (`rules[2].percent`, `rules[0].when.maxNights`). Rules may share a priority, whatever their
    conditions: ties apply in the order of their names."""
    with localcontext(_EXACT):
        return _check_plan(code, name, rules)


def _check_plan(code: str, name: str, rules: Sequence[PriceRule]) -> InvalidInput | None:
    if not _CODE.fullmatch(code):
        return InvalidInput("code", "must be 2 to 32 of A-Z, 0-9, _ and -")
    if problem := _check_name(name, "name"):
        return problem
    if len(rules) > MAX_RULES:
        return InvalidInput("rules", f"must be at most {MAX_RULES}")
    names: dict[str, int] = {}
    first_amount: tuple[int, str] | None = None
    for i, rule in enumerate(rules):
        at = f"rules[{i}]"
        if problem := _check_rule(rule, at):
            return problem
        if rule.name in names:
            return InvalidInput(f"{at}.name", f"repeats the name of rules[{names[rule.name]}]")
        names[rule.name] = i
        if rule.amount is not None:
            if first_amount is None:
                first_amount = (i, rule.amount.currency)
            elif rule.amount.currency != first_amount[1]:
                return InvalidInput(
                    f"{at}.amount.currency",
                    f"must be {first_amount[1]} like rules[{first_amount[0]}].amount (one currency per plan)",
                )
    return None


def _check_name(name: str, field: str) -> InvalidInput | None:
    if not name.strip():
        return InvalidInput(field, "must not be empty")
    if len(name) > MAX_NAME:
        return InvalidInput(field, f"must be at most {MAX_NAME} characters")
    return None


def _check_rule(rule: PriceRule, at: str) -> InvalidInput | None:
    if problem := _check_name(rule.name, f"{at}.name"):
        return problem
    if not -MAX_PRIORITY <= rule.priority <= MAX_PRIORITY:
        return InvalidInput(f"{at}.priority", f"must be -{MAX_PRIORITY} to {MAX_PRIORITY}")
    if rule.percent is None and rule.amount is None:
        return InvalidInput(f"{at}.percent", "is required when no amount is given (a rule adjusts by a percent or an amount)")
    if rule.percent is not None and rule.amount is not None:
        return InvalidInput(f"{at}.amount", "must be left out when a percent is given (a rule adjusts by one or the other)")
    if rule.percent is not None:
        lo, hi = PERCENT_RANGE
        if not rule.percent.is_finite() or not lo <= rule.percent <= hi:
            return InvalidInput(f"{at}.percent", f"must be {lo} to {hi}")
        if rule.percent != rule.percent.quantize(Decimal(1).scaleb(-PERCENT_PLACES)):
            return InvalidInput(f"{at}.percent", f"must have at most {PERCENT_PLACES} decimals")
    else:
        amount = rule.amount
        assert amount is not None
        if not is_currency_code(amount.currency):
            return InvalidInput(f"{at}.amount.currency", "must be a 3-letter uppercase ISO currency code")
        if not amount.amount.is_finite() or not -MAX_AMOUNT <= amount.amount <= MAX_AMOUNT:
            return InvalidInput(f"{at}.amount.amount", f"must be -{MAX_AMOUNT} to {MAX_AMOUNT}")
        q = quantum(amount.currency)
        if amount.amount != amount.amount.quantize(q):
            return InvalidInput(f"{at}.amount.amount", f"must be in {amount.currency}'s minor unit ({q})")
    return _check_condition(rule.when, f"{at}.when")


def _check_condition(w: PriceCondition, at: str) -> InvalidInput | None:
    if w.room_type_ids is not None and not w.room_type_ids:
        return InvalidInput(f"{at}.roomTypes", "must not be empty (leave it out for every room type)")
    for value, field in ((w.start, "from"), (w.end, "to")):
        if value is not None and not EARLIEST_NIGHT <= value <= LATEST_NIGHT:
            return InvalidInput(f"{at}.{field}", f"must be {EARLIEST_NIGHT.isoformat()} to {LATEST_NIGHT.isoformat()}")
    if w.start is not None and w.end is not None and w.end <= w.start:
        return InvalidInput(f"{at}.to", "must be after from (ranges are half-open over nights)")
    if w.weekdays is not None and (not w.weekdays or not w.weekdays <= _WEEKDAYS):
        return InvalidInput(f"{at}.weekdays", "must be ISO weekdays, 1 (Monday) to 7 (Sunday), at least one")
    for lo, hi, name, low, high in (
        (w.min_nights, w.max_nights, "Nights", 1, MAX_STAY_NIGHTS),
        (w.min_lead_days, w.max_lead_days, "LeadDays", 0, MAX_LEAD_DAYS),
        (w.min_rooms, None, "Rooms", 1, MAX_ROOMS),
        (w.min_occupancy_percent, w.max_occupancy_percent, "OccupancyPercent", 0, 100),
    ):
        for value, field in ((lo, f"min{name}"), (hi, f"max{name}")):
            if value is not None and not low <= value <= high:
                return InvalidInput(f"{at}.{field}", f"must be {low} to {high}")
        if lo is not None and hi is not None and hi < lo:
            return InvalidInput(f"{at}.max{name}", f"must be at least min{name}")
    if w.agency_tiers is not None and (not w.agency_tiers or not all(map(_TIER.fullmatch, w.agency_tiers))):
        return InvalidInput(f"{at}.agencyTiers", "must be tier codes of 1 to 32 of A-Z, 0-9, _ and -, at least one")
    return None


# --- which plan ----------------------------------------------------------------------------


_Plan = TypeVar("_Plan")  # anything with `agency_ids` (a RatePlan, a stored row, a read's PlanRef)


def select_plan(plans: Sequence[_Plan], agency_id: int) -> _Plan | None:
    """The plan an agency buys a hotel's rooms under, among the hotel's active plans in code order
    (as the reads give them; db.rateplans.plan_columns makes the same choice in SQL): the first
    naming it, else the first for all agencies, else None (sell = net). Should two qualify (which
    `plan_conflict` keeps from being saved), the first by code wins."""
    named = next((p for p in plans if agency_id in p.agency_ids), None)
    return named if named is not None else next((p for p in plans if not p.agency_ids), None)


def plan_conflict(plan: RatePlan, others: Iterable[RatePlan]) -> RatePlanConflict | None:
    """Why `plan` may not be saved beside the hotel's other plans: two active plans of a hotel
    may not name the same agency, nor both be for all agencies. A plan of the same code is the
    one `plan` replaces and is ignored; so are inactive ones. The first conflict by code."""
    if not plan.active:
        return None
    for other in sorted(others, key=lambda p: p.code):
        if not other.active or other.hotel_id != plan.hotel_id or other.code == plan.code:
            continue
        if not plan.agency_ids and not other.agency_ids:
            return RatePlanConflict(other.code, ())
        if shared := plan.agency_ids & other.agency_ids:
            return RatePlanConflict(other.code, tuple(sorted(shared)))
    return None


# --- the engine ----------------------------------------------------------------------------


def _occupied(committed: int, allotment: int, lo: int | None, hi: int | None) -> bool:
    """committed / allotment x 100, capped at 100 (no allotment: 100), within [lo, hi], exactly.
    The compiled plan drops the bounds that bound nothing: `lo` is above 0, `hi` below 100."""
    if lo is not None and allotment and committed * 100 < lo * allotment:
        return False
    return hi is None or (allotment > 0 and committed * 100 <= hi * allotment)


# The affine form of a run of rules on a one-night stay: price -> a x price + b; `safe` when no
# price of zero or more can go below zero on the way (so no clamp changes the result); the
# currency of its amounts (None: no amount; "": several).
_Program = tuple[Decimal, Decimal, bool, str | None]
_IDENTITY: _Program = (_ONE, _ZERO, True, None)
# What a compiled plan remembers for calendars, at most: affine forms, calendar windows (a
# window, a day and a tier), and prices per window (a 50 x 365 calendar needs some 10,000).
# Past these it forgets and starts again: some tens of MB at worst per compiled plan.
_MAX_PROGRAMS = 50_000
_MAX_CALENDARS = 4
_MAX_REMEMBERED = 50_000


class CompiledPlan:
    """A plan ready to price: rules sorted once, each a bit of a mask, the conditions indexed
    (by room type, date segment and weekday), so a night costs the rules that can match it.

    Build it once per plan version (`compile_plan`) and share it across requests: it remembers
    the prices calendars asked of it (bounded, by value, so a calendar computed again from the
    database is priced from memory), which changes no answer.
    """

    __slots__ = (
        "plan", "rules", "_steps", "_stay_amounts", "_any_room_type", "_by_room_type", "_points", "_segments",
        "_weekdays", "_per_stay", "_nights", "_lead", "_lead_bits", "_rooms", "_tiers", "_occupancy",
        "_occupancy_bits", "_programs", "_calendars",
    )

    def __init__(self, plan: RatePlan) -> None:
        self.plan = plan
        self.rules = rules = tuple(sorted(plan.rules, key=rule_order))
        # Per rule: (name, factor of a percent, amount of a NIGHT amount, currency of an amount).
        steps: list[tuple[str, Decimal | None, Decimal | None, str | None]] = []
        self._stay_amounts: dict[int, Decimal] = {}
        any_room_type = per_stay = lead_bits = occupancy_bits = 0
        by_room_type: dict[int, int] = {}
        weekdays = [0] * 7
        self._nights: list[tuple[int, int | None, int | None]] = []
        self._lead: list[tuple[int, int | None, int | None]] = []
        self._rooms: list[tuple[int, int]] = []
        self._tiers: list[tuple[int, frozenset[str]]] = []
        self._occupancy: dict[int, tuple[int | None, int | None]] = {}  # by bit
        dated: list[tuple[int, int | None, int | None]] = []
        for i, rule in enumerate(rules):
            bit = 1 << i
            w = rule.when
            if rule.percent is not None:
                steps.append((rule.name, _EXACT.add(_ONE, rule.percent.scaleb(-2, _EXACT)), None, None))
            else:
                amount = rule.amount
                assert amount is not None
                if rule.per is PricePer.STAY:
                    self._stay_amounts[i] = amount.amount
                steps.append((rule.name, None, amount.amount if rule.per is PricePer.NIGHT else None, amount.currency))
            if rule.per is PricePer.STAY:
                per_stay |= bit
            if w.room_type_ids is None:
                any_room_type |= bit
            else:
                for rt in w.room_type_ids:
                    by_room_type[rt] = by_room_type.get(rt, 0) | bit
            # Indexed by ordinal % 7: date.fromordinal(1) is a Monday, so by ISO weekday % 7.
            for day in w.weekdays if w.weekdays is not None else _WEEKDAYS:
                weekdays[day % 7] |= bit
            if w.start is not None or w.end is not None:
                dated.append((bit, w.start and w.start.toordinal(), w.end and w.end.toordinal()))
            if w.min_nights is not None or w.max_nights is not None:
                self._nights.append((bit, w.min_nights, w.max_nights))
            if w.min_lead_days is not None or w.max_lead_days is not None:
                self._lead.append((bit, w.min_lead_days, w.max_lead_days))
                lead_bits |= bit
            if w.min_rooms is not None:
                self._rooms.append((bit, w.min_rooms))
            if w.agency_tiers is not None:
                self._tiers.append((bit, w.agency_tiers))
            lo = w.min_occupancy_percent or None  # at least 0 % always holds
            hi = w.max_occupancy_percent if w.max_occupancy_percent is not None and w.max_occupancy_percent < 100 \
                else None  # so does at most 100 %
            if lo is not None or hi is not None:
                self._occupancy[bit] = (lo, hi)
                occupancy_bits |= bit
        self._steps = tuple(steps)
        self._any_room_type = any_room_type
        self._by_room_type = by_room_type
        self._weekdays = tuple(weekdays)
        self._per_stay = per_stay
        self._lead_bits = lead_bits
        self._occupancy_bits = occupancy_bits
        # Date segments: between two consecutive bounds of the rules' ranges the same rules hold.
        # Segment k is [points[k-1], points[k]); a night's is bisect_right(points, its ordinal).
        points = sorted({o for _, s, e in dated for o in (s, e) if o is not None})
        flips = [0] * (len(points) + 2)
        for bit, s, e in dated:
            flips[0 if s is None else bisect_right(points, s)] ^= bit
            flips[len(points) + 1 if e is None else bisect_right(points, e)] ^= bit
        undated = ((1 << len(rules)) - 1) ^ sum(bit for bit, _, _ in dated)
        segments, inside = [], 0
        for flip in flips[:-1]:
            inside ^= flip
            segments.append(undated | inside)
        self._points = points
        self._segments = segments
        self._programs: dict[int, _Program] = {0: _IDENTITY}
        self._calendars: dict[tuple[int, int, int, str | None], _CalendarPricing] = {}

    # A mask has bit i set when rule i (in applying order) may apply.

    def _room_type_mask(self, room_type_id: int) -> int:
        return self._any_room_type | self._by_room_type.get(room_type_id, 0)

    def _date_mask(self, ordinal: int) -> int:
        return self._segments[bisect_right(self._points, ordinal)] & self._weekdays[ordinal % 7]

    def _stay_mask(self, mask: int, nights: int, group_rooms: int, tier: str | None) -> int:
        for bit, lo, hi in self._nights:
            if (lo is not None and nights < lo) or (hi is not None and nights > hi):
                mask &= ~bit
        for bit, least in self._rooms:
            if group_rooms < least:
                mask &= ~bit
        for bit, tiers in self._tiers:
            if tier not in tiers:
                mask &= ~bit
        return mask

    def _lead_mask(self, mask: int, lead_days: int) -> int:
        for bit, lo, hi in self._lead:
            if (lo is not None and lead_days < lo) or (hi is not None and lead_days > hi):
                mask &= ~bit
        return mask

    def _night_mask(self, mask: int, night: NightFacts) -> int:
        """Of `mask`, the rules whose night-level parts (dates, weekday, occupancy) hold on `night`."""
        mask &= self._date_mask(night.date.toordinal())
        asking = mask & self._occupancy_bits
        while asking:
            bit = asking & -asking
            asking ^= bit
            if not _occupied(night.committed, night.allotment, *self._occupancy[bit]):
                mask ^= bit
        return mask

    def _shares(self, mask: int, nights: int) -> dict[int, tuple[Decimal, Decimal]]:
        """Per STAY amount rule of `mask`: (the first night's share, every other night's)."""
        shares = {}
        for i, whole in self._stay_amounts.items():
            if mask >> i & 1:
                places = minor_unit(self._steps[i][3])  # type: ignore[arg-type]
                rest = (whole.scaleb(places) // nights).scaleb(-places)  # cut toward zero to the minor unit
                shares[i] = (whole - rest * (nights - 1), rest)
        return shares

    def _price_night(self, night: NightFacts, bits: int, later: bool, shares: dict[int, tuple[Decimal, Decimal]]
                     ) -> PricedNight:
        net = night.net
        currency = net.currency
        unit = quantum(currency)
        price = shown = net.amount
        applied = []
        steps = self._steps
        while bits:
            low = bits & -bits
            bits ^= low
            i = low.bit_length() - 1
            name, factor, amount, rule_currency = steps[i]
            if factor is not None:
                price = price * factor
            else:
                if rule_currency != currency:
                    raise CurrencyMismatch(currency, rule_currency)  # type: ignore[arg-type]
                price = price + (shares[i][later] if amount is None else amount)
            if price < 0:
                price = _ZERO
            rounded = price.quantize(unit, rounding=ROUND_HALF_EVEN)
            applied.append(AppliedRule(name, Money(rounded - shown, currency)))
            shown = rounded
        if shown > MAX_PRICE:
            raise PriceOutOfRange(night.date, MAX_PRICE)
        return PricedNight(night.date, net, Money(shown, currency), tuple(applied))

    # --- one-night stays, for calendars ---------------------------------------------------

    def _program(self, mask: int) -> _Program:
        """The affine form of `mask`'s rules on a one-night stay (memoised; runs sharing their
        later rules share the work)."""
        program = self._programs.get(mask)
        if program is None:
            if len(self._programs) > _MAX_PROGRAMS:
                self._programs = {0: _IDENTITY}
            low = mask & -mask
            a, b, safe, currency = self._program(mask ^ low)  # applied after the lowest rule
            i = low.bit_length() - 1
            _, factor, amount, rule_currency = self._steps[i]
            if factor is not None:
                program = (_EXACT.multiply(a, factor), b, safe and factor >= 0, currency)
            else:
                if amount is None:
                    amount = self._stay_amounts[i]  # all of it on the one night
                if currency is not None and currency != rule_currency:
                    rule_currency = ""
                program = (a, _EXACT.fma(a, amount, b), safe and amount >= 0, rule_currency)
            self._programs[mask] = program
        return program

    def _sell(self, net: Decimal, currency: str, bits: int) -> Money:
        """`_price_night(...).sell` of a one-night stay at `net` in `currency`. Raises _TooHigh
        where `_price_night` raises PriceOutOfRange."""
        if not bits:
            return Money(net, currency)
        a, b, safe, amounts_currency = self._programs.get(bits) or self._program(bits)
        if safe and amounts_currency in (None, currency):
            price = _EXACT.fma(net, a, b)
        else:  # a clamp at zero may change the result, or a currency is wrong: rule by rule
            price = net
            while bits:
                low = bits & -bits
                bits ^= low
                i = low.bit_length() - 1
                _, factor, amount, rule_currency = self._steps[i]
                if factor is not None:
                    price = _EXACT.multiply(price, factor)
                else:
                    if rule_currency != currency:
                        raise CurrencyMismatch(currency, rule_currency)  # type: ignore[arg-type]
                    price = _EXACT.add(price, self._stay_amounts[i] if amount is None else amount)
                if price < 0:
                    price = _ZERO
        sell = price.quantize(quantum(currency), rounding=ROUND_HALF_EVEN, context=_EXACT)
        if sell > MAX_PRICE:
            raise _TooHigh
        return Money(sell, currency)

    def _calendar(self, start: date, n: int, today: date, tier: str | None) -> _CalendarPricing:
        key = (start.toordinal(), n, today.toordinal(), tier)
        pricing = self._calendars.get(key)
        if pricing is None:
            if len(self._calendars) >= _MAX_CALENDARS:
                self._calendars.clear()
            pricing = self._calendars[key] = _CalendarPricing(self, *key)
        return pricing


def compile_plan(plan: RatePlan) -> CompiledPlan:
    return CompiledPlan(plan)


def price_item(plan: CompiledPlan | None, stay: StayFacts, nights: Sequence[NightFacts]) -> PricedItem:
    """`stay.rooms` rooms on the consecutive `nights`, priced by `plan` (None: sell = net).

    Raises InvalidInput for no nights, CurrencyMismatch when the nights (or an amount rule and a
    night) differ in currency, PriceOutOfRange for a night priced beyond MAX_PRICE.
    """
    if not nights:
        raise InvalidInput("checkOut", "must be after checkIn")
    with localcontext(_EXACT):
        return _price_item(plan, stay, nights)


def _price_item(plan: CompiledPlan | None, stay: StayFacts, nights: Sequence[NightFacts]) -> PricedItem:
    mask = 0
    if plan is not None:
        mask = plan._room_type_mask(stay.room_type_id)
        if mask:
            group = stay.group_rooms if stay.group_rooms is not None else stay.rooms
            mask = plan._lead_mask(plan._stay_mask(mask, len(nights), group, stay.agency_tier), stay.lead_days)
    if not mask:
        priced = tuple(PricedNight(night.date, night.net, night.net, ()) for night in nights)
    else:
        assert plan is not None
        per_stay = mask & plan._per_stay
        per_night = mask ^ per_stay
        if per_stay:  # judged once, on the arrival night
            per_stay = plan._night_mask(per_stay, nights[0])
        shares = plan._shares(per_stay, len(nights)) if per_stay else {}
        priced = tuple(
            plan._price_night(night, bits, j > 0, shares)
            if (bits := per_stay | (plan._night_mask(per_night, night) if per_night else 0))
            else PricedNight(night.date, night.net, night.net, ())
            for j, night in enumerate(nights)
        )
    sell = net = None
    for night in priced:
        sell = night.sell if sell is None else sell + night.sell
        net = night.net if net is None else net + night.net
    assert sell is not None and net is not None
    return PricedItem(
        room_type_id=stay.room_type_id,
        check_in=nights[0].date,
        check_out=nights[-1].date + timedelta(days=1),
        rooms=stay.rooms,
        nights=priced,
        total=sell.times(stay.rooms),
        net_total=net.times(stay.rooms),
    )


def price_stays(plan: CompiledPlan | None, rows: Mapping[int, CalendarRow],
                stays: Sequence[tuple[int, date, date, int]], today: date, agency_tier: str | None = None
                ) -> tuple[PricedItem, ...]:
    """The items of one group (a booking or a quote), each `(room type, check-in, check-out,
    rooms)`, priced on the calendar `rows` (whose committed rooms are the occupancy rules see) for
    an agency of tier `agency_tier`, on the hotel-local `today` (lead days count from it). Every
    item sees the rooms of the whole group.

    Raises as `row_nights` and `price_item` do.
    """
    group = sum(rooms for *_, rooms in stays)
    return tuple(
        price_item(plan, StayFacts(room_type_id, (check_in - today).days, rooms, group, agency_tier),
                   row_nights(rows[room_type_id], check_in, check_out))
        for room_type_id, check_in, check_out, rooms in stays
    )


def row_nights(row: CalendarRow, check_in: date, check_out: date) -> tuple[NightFacts, ...]:
    """The nights [check_in, check_out) of a calendar row as the engine takes them.

    Raises InvalidInput for an empty stay, OutsideCalendar for nights the row does not cover,
    NoRate for a night without a rate.
    """
    if check_out <= check_in:
        raise InvalidInput("checkOut", "must be after checkIn")
    a = row.index(check_in)
    b = row.index(check_out - timedelta(days=1)) + 1
    nights = []
    for i in range(a, b):
        rate = row.rate[i]
        if rate is None:
            raise NoRate(row.room_type_id, row.dates[i])
        nights.append(NightFacts(row.dates[i], rate, row.hardblocked[i] + row.held[i] + row.sold[i], row.allotment[i]))
    return tuple(nights)


# --- calendars -----------------------------------------------------------------------------


def night_sell_prices(plan: CompiledPlan | None, row: CalendarRow, today: date, agency_tier: str | None = None
                      ) -> tuple[Money | None, ...]:
    """Per night of the row, the sell price of one room for a one-night stay arriving that night
    (what an agent's calendar shows), booked on the hotel-local `today` by an agency of tier
    `agency_tier`; None where the night has no rate. Always `price_item`'s sell for that stay.

    Call it row by row: the calendar's window is indexed once for all its rows, and a price is
    computed once per distinct (net, rules that apply) and remembered by the compiled plan.
    Raises CurrencyMismatch and PriceOutOfRange as `price_item` does.
    """
    if plan is None or not plan.rules:
        return row.rate
    return plan._calendar(row.start, len(row.dates), today, agency_tier).prices(row)


class _CalendarPricing:
    """One calendar window of one plan, for one tier and day: per night the rules a one-night,
    one-room stay may meet there (all conditions but room type and occupancy), the same for
    every row; and the prices computed so far."""

    __slots__ = ("plan", "masks", "by_room_type", "mask_ids", "net_ids", "bounds", "keep", "sells")

    def __init__(self, plan: CompiledPlan, origin: int, n: int, today: int, tier: str | None) -> None:
        self.plan = plan
        base = plan._stay_mask((1 << len(plan.rules)) - 1, 1, 1, tier)
        masks = []
        for o in range(origin, origin + n):
            m = base & plan._date_mask(o)
            if m & plan._lead_bits:
                m = plan._lead_mask(m, o - today)
            masks.append(m)
        self.masks = masks
        self.by_room_type: dict[int, tuple[list[int], int]] = {}
        self.mask_ids: _Ids[int] = _Ids()
        self.net_ids: _Ids[tuple[Decimal, str]] = _Ids()
        # Occupancy as a float percent: the bounds are integers and allotments far below 2^40, so
        # comparing the float with them is exact. `min lo` holds from lo up, `max hi` fails from
        # the float after hi up: bisect_right into these bounds gives a state in which every
        # occupancy condition holds or fails alike, and keep[state] clears the failing ones.
        bounds = sorted({float(lo) for lo, _ in plan._occupancy.values() if lo is not None}
                        | {math.nextafter(hi, math.inf) for _, hi in plan._occupancy.values() if hi is not None})
        keep = []
        for state in range(len(bounds) + 1):
            pct = bounds[state - 1] if state else -1.0
            holding = sum(bit for bit, (lo, hi) in plan._occupancy.items()
                          if (lo is None or pct >= lo) and (hi is None or pct <= hi))
            keep.append(~plan._occupancy_bits | holding)
        self.bounds = bounds
        self.keep = keep
        self.sells = _Sells(self)

    def prices(self, row: CalendarRow) -> tuple[Money | None, ...]:
        masks, rules = self._room_type(row.room_type_id)
        if not rules:
            return row.rate
        sells = self.sells
        if len(sells) > _MAX_REMEMBERED:
            sells.clear()
        try:
            return tuple(map(sells.__getitem__, self._keys(row, masks, rules)))
        except _TooHigh:
            keys = self._keys(row, masks, rules)
            night = next(night for night, key in zip(row.dates, keys) if sells.too_high(key))
            raise PriceOutOfRange(night, MAX_PRICE) from None

    def _keys(self, row: CalendarRow, masks: list[int], rules: int) -> Iterable[tuple[int | None, ...]]:
        """Per night, what its price depends on: the net (as a small id of its value), the rules
        its date allows (as a mask id), and, when one of them asks for occupancy, the counts that
        make it. Small ints compare fast, also when a calendar computed from fresh rows meets the
        keys an earlier one left."""
        # A row's rates come in runs of one object (a contract's, an event's): look each run up once.
        nets: list[int | None] = []
        for _, run in groupby(row.rate, id):
            same = list(run)
            rate = same[0]
            nets += [None if rate is None else self.net_ids[(rate.amount, rate.currency)]] * len(same)
        if rules & self.plan._occupancy_bits:
            return zip(nets, masks, row.hardblocked, row.held, row.sold, row.allotment)
        return zip(nets, masks)

    def _room_type(self, room_type_id: int) -> tuple[list[int], int]:
        """The masks of a room type's nights (as mask ids), and every rule any of them may apply."""
        rtm = self.plan._room_type_mask(room_type_id)
        masks = self.by_room_type.get(rtm)
        if masks is None:
            masked = [m & rtm for m in self.masks]
            masks = self.by_room_type[rtm] = (list(map(self.mask_ids.__getitem__, masked)), reduce(or_, masked, 0))
        return masks


class _TooHigh(Exception):
    pass


class _Ids(dict[_T, int]):
    """A small int per value, in order of first sight; `values[i]` is the value of id i."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        super().__init__()
        self.values: list[_T] = []

    def __missing__(self, value: _T) -> int:
        i = self[value] = len(self.values)
        self.values.append(value)
        return i


class _Sells(dict):  # type: ignore[type-arg]
    """Sell prices by (net id, mask id[, hardblocked, held, sold, allotment])."""

    __slots__ = ("pricing",)

    def __init__(self, pricing: _CalendarPricing) -> None:
        super().__init__()
        self.pricing = pricing

    def __missing__(self, key: tuple) -> Money | None:  # type: ignore[type-arg]
        if key[0] is None:
            self[key] = None
            return None
        pricing = self.pricing
        net, currency = pricing.net_ids.values[key[0]]
        mask = pricing.mask_ids.values[key[1]]
        if len(key) > 2:
            committed, allotment = key[2] + key[3] + key[4], key[5]
            mask &= pricing.keep[bisect_right(pricing.bounds, committed * 100 / allotment if allotment else math.inf)]
        sell = self[key] = pricing.plan._sell(net, currency, mask)
        return sell

    def too_high(self, key: tuple) -> bool:  # type: ignore[type-arg]
        try:
            self[key]
        except _TooHigh:
            return True
        return False
