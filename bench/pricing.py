"""The pricing engine in-process: a quote of 20 items x 14 nights and an agent's calendar of
50 room types x 365 nights, under a rate plan of 200 rules.

    .venv/bin/python -m bench.pricing [--runs 25] [--warmup 3] [--events 1000] [--seed 20260501]

Inputs: bench.pipeline's calendar (contracts, hardblocks, bookings) with `--events` allotment
events (1,000 by default: compute_calendar then takes 12-15 ms, the size the targets speak of);
the plan of `build_plan` (see its docstring); a quote of 20 random items of 1-4 rooms, 14
nights each, one group (so group discounts see all its rooms), agency tier GOLD, today = the
pipeline's NOW.

Cases, each once per round in a shuffled order (gc.collect() before each), 3 warm-up rounds:
- calendar without a plan: compute_calendar alone, the comparator;
- calendar priced, warm: compute_calendar + night_sell_prices per row, with a compiled plan that
  priced this calendar before: the steady state when the service keeps one compiled plan per
  plan version. As a request loads its rows anew, each calendar case cycles through three loads
  of the same inputs whose rates are distinct Money / Decimal / str objects, so what the plan
  remembers is found by value, never by identity;
- calendar priced, cold: the same with the plan compiled anew, nothing remembered;
- quote: row_nights + price_item per item, plan compiled before, compiled per quote, no plan;
- pricing the 50 rows alone (warm on the same rows, warm on another load, cold, a plan without
  rules) and compile_plan alone.
Before timing, it checks that warm and cold prices are the same and that 300 random cells equal
the sell of a one-night price_item.

Targets (DESIGN.md, "Performance targets"): the quote <= 20 ms p50; priced / unpriced calendar
<= 1.3 (p50 over p50, same rounds), judged warm and cold. JSON: bench/results/pricing.json.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from itertools import cycle
from typing import Any

from bench.common import percentile, summarize, table, target, targets_table, write_results
from bench.pipeline import END, NOW, START, Inputs, build
from domain import (
    CalendarRow,
    CompiledPlan,
    Money,
    PriceCondition,
    PricePer,
    PriceRule,
    RatePlan,
    StayFacts,
    check_rate_plan,
    compile_plan,
    compute_calendar,
    night_sell_prices,
    price_item,
    row_nights,
)

RULES = 200
QUOTE_ITEMS = 20
QUOTE_NIGHTS = 14
QUOTE_TARGET_MS = 20.0
CALENDAR_RATIO = 1.3
TIER = "GOLD"
TODAY = NOW.date()


def eur(amount: int) -> Money:
    return Money(Decimal(amount), "EUR")


def build_plan(rnd: random.Random, room_type_ids: list[int], start: date, rules: int = RULES) -> RatePlan:
    """A plan as a revenue manager would write one, 200 rules: seasons per group of room types,
    named-date surcharges, weekend and weekday uplifts, length-of-stay and lead-time brackets,
    occupancy brackets (yield), agency-tier promotions, group discounts, then date-ranged
    promotions on a few room types up to the count. Brackets are exclusive (min/max), as tables
    of this kind are, so a night meets a handful of rules, not all of them."""
    groups = [frozenset(room_type_ids[i::8]) for i in range(8)]
    out: list[PriceRule] = []

    def day(offset: int) -> date:
        return start + timedelta(days=offset)

    def add(name: str, priority: int, when: PriceCondition, percent: int | None = None, amount: int | None = None,
            per: PricePer = PricePer.NIGHT) -> None:
        out.append(PriceRule(name, priority, when, None if percent is None else Decimal(percent),
                             None if amount is None else eur(amount), per))

    for s, (a, b) in enumerate(((0, 90), (90, 151), (151, 243), (243, 304), (304, 366))):
        for g, group in enumerate(groups):
            add(f"season {s} / group {g}", 10, PriceCondition(room_type_ids=group, start=day(a), end=day(b)),
                percent=rnd.choice((-20, -10, -5, 5, 10, 15, 25, 30)))
    for e in range(30):
        a = rnd.randrange(360)
        add(f"event {e}", 20, PriceCondition(start=day(a), end=day(a + rnd.randint(1, 4))),
            amount=rnd.choice((20, 35, 50, 80)))
    for g, group in enumerate(groups):
        add(f"weekend / group {g}", 30, PriceCondition(room_type_ids=group, weekdays=frozenset({5, 6})),
            percent=rnd.choice((5, 10, 15)))
    add("sunday dip", 30, PriceCondition(weekdays=frozenset({7})), percent=-5)
    add("midweek business", 30, PriceCondition(weekdays=frozenset({1, 2, 3}), start=day(30), end=day(200)), amount=10)
    for k, (lo, hi) in enumerate(((2, 3), (4, 6), (7, 13), (14, None))):
        for v in range(4):
            if v % 2:
                add(f"stay {lo}+ / {v}", 40, PriceCondition(min_nights=lo, max_nights=hi), amount=-10 * lo,
                    per=PricePer.STAY)
            else:
                add(f"stay {lo}+ / {v}", 40, PriceCondition(min_nights=lo, max_nights=hi, room_type_ids=groups[v]),
                    percent=-2 - 2 * k)
    for k, (lo, hi) in enumerate(((30, 59), (60, 89), (90, 179), (180, None))):
        add(f"early bird {lo}", 50, PriceCondition(min_lead_days=lo, max_lead_days=hi), percent=-3 - 2 * k)
    add("early bird stay", 50, PriceCondition(min_lead_days=60, min_nights=4), amount=-25, per=PricePer.STAY)
    for k, (lo, hi) in enumerate(((0, 2), (3, 6), (7, 13))):
        add(f"last minute {lo}", 50, PriceCondition(min_lead_days=lo, max_lead_days=hi, max_occupancy_percent=60),
            percent=-15 + 5 * k)
    add("last minute, nearly full", 50, PriceCondition(max_lead_days=6, min_occupancy_percent=85), percent=10)
    add("same day", 50, PriceCondition(max_lead_days=0), amount=15)
    for g in range(4):
        rooms = groups[g] | groups[g + 4]
        for lo, hi, percent in ((50, 69, 4), (70, 84, 8), (85, 94, 14), (95, None, 20)):
            add(f"yield {lo} / {g}", 60, PriceCondition(room_type_ids=rooms, min_occupancy_percent=lo,
                                                        max_occupancy_percent=hi), percent=percent)
        add(f"quiet / {g}", 60, PriceCondition(room_type_ids=rooms, max_occupancy_percent=25), percent=-5)
    for tier in ("GOLD", "SILVER", "BRONZE", "PLATINUM"):
        for v in range(5):
            a = rnd.randrange(300)
            add(f"tier {tier} {v}", 70, PriceCondition(agency_tiers=frozenset({tier}), start=day(a), end=day(a + 60)),
                percent=-2 - v)
    for least in (5, 10, 20, 50):
        for g in range(5):
            add(f"group of {least} / {g}", 80, PriceCondition(min_rooms=least, room_type_ids=groups[g]), percent=-1)
    i = 0
    while len(out) < rules:
        a = rnd.randrange(330)
        some = frozenset(rnd.sample(room_type_ids, rnd.randint(1, 5)))
        span = PriceCondition(start=day(a), end=day(a + rnd.randint(3, 30)))
        if i % 3 == 0:
            add(f"promotion {i}", rnd.randint(0, 100),
                PriceCondition(room_type_ids=some, start=span.start, end=span.end),
                amount=rnd.choice((-30, -15, 10, 20)))
        elif i % 3 == 1:
            add(f"promotion {i}", rnd.randint(0, 100),
                PriceCondition(room_type_ids=some, start=span.start, end=span.end, min_nights=2),
                amount=rnd.choice((-40, -20)), per=PricePer.STAY)
        else:
            add(f"promotion {i}", rnd.randint(0, 100),
                PriceCondition(start=span.start, end=span.end, weekdays=frozenset(rnd.sample(range(1, 8), 3))),
                percent=rnd.choice((-7, -4, 6, 8)))
        i += 1
    plan = RatePlan(1, "BENCH", "200 rules", 1, frozenset(), True, tuple(rnd.sample(out, len(out))))
    problem = check_rate_plan(plan.code, plan.name, plan.rules)
    assert problem is None, problem
    return plan


def quote_items(rnd: random.Random, room_type_ids: list[int]) -> list[tuple[int, date, int]]:
    return [(rnd.choice(room_type_ids), START + timedelta(days=rnd.randrange(365 - QUOTE_NIGHTS)), rnd.randint(1, 4))
            for _ in range(QUOTE_ITEMS)]


def reload(inputs: Inputs) -> Inputs:
    """The inputs as read again: every rate a new Money of a new Decimal and a new string."""

    def fresh(rate: Money | None) -> Money | None:
        return None if rate is None else Money(Decimal(str(rate.amount)), "".join(rate.currency))

    return Inputs(
        contracts=[replace(c, rate=fresh(c.rate)) for c in inputs.contracts],
        events=[replace(e, rate=fresh(e.rate)) for e in inputs.events],
        hardblocks=inputs.hardblocks, bookings=inputs.bookings, room_type_ids=inputs.room_type_ids,
    )


def checksum(values: Any) -> str:
    return hashlib.sha256(repr(values).encode()).hexdigest()[:16]


def interleaved(cases: dict[str, Callable[[], Any]], runs: int, warmup: int, rnd: random.Random
                ) -> dict[str, list[float]]:
    """Each case once per round, in a shuffled order, so drift on a shared machine hits all alike."""
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(runs):
        rnd.shuffle(names)
        for name in names:
            gc.collect()
            t0 = time.perf_counter_ns()
            cases[name]()
            samples[name].append((time.perf_counter_ns() - t0) / 1e6)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pricing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20260501)
    args = parser.parse_args(argv)

    inputs = build(args.seed, event_count=args.events)
    rnd = random.Random(args.seed)
    plan = build_plan(rnd, inputs.room_type_ids, START)
    compiled = compile_plan(plan)
    no_rules = compile_plan(RatePlan(2, "NONE", "no rules", 1))
    items = quote_items(rnd, inputs.room_type_ids)
    group_rooms = sum(rooms for _, _, rooms in items)

    def calendar_of(loaded: Inputs) -> dict[int, CalendarRow]:
        return compute_calendar(loaded.contracts, loaded.events, loaded.hardblocks, loaded.bookings,
                                loaded.room_type_ids, START, END, NOW)

    # Each request loads its rows anew: the timed calendars cycle through three loads.
    loads = [inputs, reload(inputs), reload(inputs)]
    turns: dict[str, Iterator[Inputs]] = {}

    def calendar(case: str) -> dict[int, CalendarRow]:
        return calendar_of(next(turns.setdefault(case, cycle(loads))))

    rows = calendar_of(inputs)
    reloaded = calendar_of(loads[1])

    def price_rows(plan: CompiledPlan | None, rows: dict[int, CalendarRow]) -> list[tuple[Money | None, ...]]:
        return [night_sell_prices(plan, row, TODAY, TIER) for row in rows.values()]

    def quote(plan: CompiledPlan | None) -> list[Any]:
        return [price_item(plan, StayFacts(rt, (check_in - TODAY).days, rooms, group_rooms, TIER),
                           row_nights(rows[rt], check_in, check_in + timedelta(days=QUOTE_NIGHTS)))
                for rt, check_in, rooms in items]

    # The same prices whatever was remembered, and the calendar's price of a night is the price
    # of a one-night quote.
    warm_prices = price_rows(compiled, rows)
    cold_prices = price_rows(compile_plan(plan), rows)
    assert warm_prices == price_rows(compiled, rows) == cold_prices == price_rows(compiled, reloaded)
    probe = random.Random(1)
    for _ in range(300):
        rt = probe.choice(inputs.room_type_ids)
        i = probe.randrange(len(rows[rt].dates))
        night = rows[rt].dates[i]
        item = price_item(compiled, StayFacts(rt, (night - TODAY).days, agency_tier=TIER),
                          row_nights(rows[rt], night, night + timedelta(days=1)))
        assert item.nights[0].sell == warm_prices[inputs.room_type_ids.index(rt)][i]
    quoted = quote(compiled)
    applied = [len(n.applied) for item in quoted for n in item.nights]
    priced_cells = sum(1 for row in warm_prices for p in row if p is not None)
    changed_cells = sum(1 for row, prices in zip(rows.values(), warm_prices) for r, p in zip(row.rate, prices)
                        if p is not None and p != r)

    samples = interleaved({
        "calendar without a plan": lambda: calendar("unpriced"),
        "calendar priced (plan compiled before, warm)": lambda: price_rows(compiled, calendar("warm")),
        "calendar priced (plan compiled per calendar, cold)": lambda: price_rows(compile_plan(plan),
                                                                                 calendar("cold")),
        "quote (plan compiled before)": lambda: quote(compiled),
        "quote (plan compiled per quote)": lambda: quote(compile_plan(plan)),
        "quote without a plan": lambda: quote(None),
        "pricing rows only, a plan without rules": lambda: price_rows(no_rules, rows),
        "pricing rows only, warm": lambda: price_rows(compiled, rows),
        "pricing rows only, warm, another load": lambda: price_rows(compiled, reloaded),
        "pricing rows only, cold": lambda: price_rows(compile_plan(plan), rows),
        "compile_plan": lambda: compile_plan(plan),
    }, args.runs, args.warmup, random.Random(args.seed))
    stats = {name: summarize(values) for name, values in samples.items()}

    def p50(name: str) -> float:
        return percentile(samples[name], 50)

    base = p50("calendar without a plan")
    warm_ratio = p50("calendar priced (plan compiled before, warm)") / base
    cold_ratio = p50("calendar priced (plan compiled per calendar, cold)") / base
    # On a shared machine the fastest runs are the least disturbed: their ratio, for reading.
    fastest = min(samples["calendar without a plan"])
    warm_fastest = min(samples["calendar priced (plan compiled before, warm)"]) / fastest
    cold_fastest = min(samples["calendar priced (plan compiled per calendar, cold)"]) / fastest
    targets = [
        target("quote 20 x 14 x 200 rules p50 (compiled before)", p50("quote (plan compiled before)"), QUOTE_TARGET_MS,
               " ms"),
        target("quote 20 x 14 x 200 rules p50 (compiled per quote)", p50("quote (plan compiled per quote)"),
               QUOTE_TARGET_MS, " ms"),
        target("priced / unpriced calendar, warm plan", warm_ratio, CALENDAR_RATIO, "x"),
        target("priced / unpriced calendar, cold plan", cold_ratio, CALENDAR_RATIO, "x"),
    ]
    nights = len(rows[inputs.room_type_ids[0]].dates)
    print(f"pricing: plan of {len(plan.rules)} rules; calendar {len(rows)} room types x {nights} "
          f"nights ({priced_cells} priced cells, {changed_cells} changed by the plan), {args.events} events; "
          f"quote {QUOTE_ITEMS} items x {QUOTE_NIGHTS} nights, {group_rooms} rooms, "
          f"{sum(applied) / len(applied):.1f} rules applied per night (max {max(applied)}); seed {args.seed}, "
          f"checksum {checksum(warm_prices)}")
    print(table(["case", "runs", "p50 ms", "p95 ms", "min ms", "max ms"],
                [[name, s["n"], s["p50_ms"], s["p95_ms"], s["min_ms"], s["max_ms"]] for name, s in stats.items()]))
    print(f"\npriced / unpriced calendar, fastest runs: warm {warm_fastest:.2f}x, cold {cold_fastest:.2f}x")
    print()
    print(targets_table(targets))
    path = write_results("pricing", {
        "parameters": {"seed": args.seed, "runs": args.runs, "warmup": args.warmup, "events": args.events,
                       "rules": len(plan.rules), "room_types": len(rows), "nights": nights,
                       "quote_items": QUOTE_ITEMS, "quote_nights": QUOTE_NIGHTS, "group_rooms": group_rooms,
                       "tier": TIER, "today": TODAY},
        "checksum": checksum(warm_prices),
        "priced_cells": priced_cells,
        "changed_cells": changed_cells,
        "applied_per_night": {"mean": sum(applied) / len(applied), "max": max(applied)},
        "cases": stats,
        "ratios": {"warm": warm_ratio, "cold": cold_ratio, "warm_fastest": warm_fastest,
                   "cold_fastest": cold_fastest},
        "targets": targets,
        "pass": all(t["pass"] for t in targets),
    })
    print(f"\nwrote {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
