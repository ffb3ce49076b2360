"""The pricing engine in-process: a quote of 20 items x 14 nights and an agent's calendar of
50 room types x 365 nights, under a rate plan of 200 rules.

    .venv/bin/python -m bench.pricing [--runs 25] [--warmup 3] [--events 1000] [--seed 20260501]
        [--http-only | --no-http] [--http-seconds 8] [--http-warmup 2] [--http-connections 1,16]
        [--http-repeats 2]

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

Then, over HTTP (skipped with --no-http; alone with --http-only, which updates only the
`quote_http` key of an existing pricing.json): `quote` against createBooking's pre-check. A
throwaway database (bench.common.scratch_database) with a hotel of 50 room types, each with a
contract of 30 rooms a night for 400 nights from bench.booking_support.START and a confirmed
booking of 18 rooms on every night (60 % occupancy: the yield rules see a busy hotel); the four
bench agencies are tier GOLD. `staysync serve --no-migrate --workers 1` on a loopback port; the
plan of `build_plan` (200 rules, dates from START) saved through the upsertRatePlan mutation as
an admin, for every agency. Requests: 8 stays drawn once, each 2 items (two room types) x 7
nights, check-ins within 300 nights of START, sent by agents (tokens of 4 agencies rotating):
- quote: 2 rooms per item; the whole breakdown asked (items, nights, sell, applied rules). It
  answers Quote;
- quote totals: the same quote asking only the totals (the quote's and each item's), so the
  cost of answering the breakdown shows apart from the read and the pricing;
- createBooking's pre-check: the same items with 31 rooms each (more than the allotment), a
  unique idempotency key per request: refused SoldOut by the committed read before the lock
  (read_hold_context + the same pricing + the shortfall check), nothing written (checked after
  the runs: no HELD booking, no idempotency key).
The client is wrk (bench/loadgen.py, bench/wrk/bodies.lua; installed from Debian when missing),
one thread, for each of --http-connections (1: latency without queueing; 16: throughput), the
cases in turn, their order reversed every other of --http-repeats repeats, --http-warmup seconds
untimed before each run; the best run of each is kept. Reported: requests/s (answers of the
expected kind), p50/p99 latency, CPU ms per request of the server and of PostgreSQL, and the
ratio quote / pre-check in cost, for each quote: pre-check requests/s / quote requests/s, quote
p50 (p99) / pre-check p50 (p99), and server CPU per request, of the best runs, and the median
over the repeats of each repeat's requests/s and server CPU ratios (runs back to back: less drift);
the load average before and after. The target is quote within ~1.2x of the pre-check: reported, not asserted.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from itertools import cycle
from typing import Any

from bench.common import (
    PROJECT_ROOT,
    RESULTS_DIR,
    admin_token,
    percentile,
    postgres_server_pid,
    running_server,
    scratch_database,
    summarize,
    table,
    target,
    targets_table,
    write_results,
)
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


# --- quote over HTTP vs createBooking's pre-check --------------------------------------------

HTTP_ROOM_TYPES = 50
HTTP_ALLOTMENT = 30
HTTP_TAKEN = 18  # confirmed on every night: 60 % occupancy
HTTP_NIGHTS_SEEDED = 400
HTTP_STAYS = 8
HTTP_ITEMS = 2
HTTP_NIGHTS = 7
HTTP_ROOMS = 2  # per item of a quote
PRECHECK_ROOMS = HTTP_ALLOTMENT + 1  # per item of the createBooking refused at its pre-check
HTTP_RATIO = 1.2  # quote within ~1.2x of the pre-check's cost: reported, not asserted

QUOTE_QUERY = """
query($input: QuoteInput!) { quote(input: $input) {
  __typename
  ... on Quote { total { amount currency }
    items { checkIn checkOut rooms total { amount currency }
            nights { date sell { amount currency } applied { rule amount { amount currency } } } } }
  ... on UserError { code message }
} }
"""
# The same quote asking only the totals: what the breakdown's answer costs, apart.
QUOTE_TOTALS_QUERY = """
query($input: QuoteInput!) { quote(input: $input) {
  __typename
  ... on Quote { total { amount currency } items { checkIn checkOut rooms total { amount currency } } }
  ... on UserError { code message }
} }
"""

UPSERT_PLAN = """
mutation($input: UpsertRatePlanInput!) { upsertRatePlan(input: $input) {
  __typename
  ... on RatePlan { id version rules { name } }
  ... on UserError { code message }
} }
"""

# The first __typename of a 200 body is the answer's (bench/wrk/lib.lua).
HTTP_CLASSIFY = [['"errors"%s*:', "GraphQL error"], ['"__typename"%s*:%s*"(%w+)"']]
EXPECTED = {"quote": "Quote", "quote totals": "Quote", "pre-check": "SoldOut"}


def plan_input(plan: RatePlan, hotel_id: int) -> dict[str, Any]:
    """The plan as upsertRatePlan's input: the stored form (rateplans.rules_json) with global ids."""
    from app.api.ids import to_global_id
    from app.services.rateplans import rules_json

    rules = rules_json(plan.rules)
    for rule in rules:
        when = rule["when"]
        if "roomTypeIds" in when:
            when["roomTypeIds"] = [to_global_id("RoomType", pk) for pk in when["roomTypeIds"]]
        if rule["percent"] is None:
            del rule["percent"]
        if rule["amount"] is None:
            del rule["amount"]
    return {"hotelId": to_global_id("Hotel", hotel_id), "code": "BENCH-200", "name": plan.name, "agencyIds": [],
            "active": True, "rules": rules}


def http_stays(rnd: random.Random, room_type_ids: list[int], start: date) -> list[list[tuple[int, date, date]]]:
    """HTTP_STAYS requests of HTTP_ITEMS items (distinct room types) x HTTP_NIGHTS nights."""
    out = []
    for _ in range(HTTP_STAYS):
        items = []
        for rt in rnd.sample(room_type_ids, HTTP_ITEMS):
            check_in = start + timedelta(days=rnd.randrange(300))
            items.append((rt, check_in, check_in + timedelta(days=HTTP_NIGHTS)))
        out.append(items)
    return out


def http_bodies(stays: list[list[tuple[int, date, date]]]) -> dict[str, list[str]]:
    """The JSON bodies of each case, as string.format patterns (bench/wrk/bodies.lua): the
    pre-check's %s takes the idempotency key."""
    from app.api.ids import to_global_id
    from bench.booking_support import CREATE

    def items(stay: list[tuple[int, date, date]], rooms: int) -> list[dict[str, Any]]:
        return [{"roomTypeId": to_global_id("RoomType", rt), "checkIn": a.isoformat(), "checkOut": b.isoformat(),
                 "rooms": rooms} for rt, a, b in stay]

    def dumps(body: dict[str, Any]) -> str:
        return json.dumps(body, separators=(",", ":")).replace("%", "%%")

    quote = [dumps({"query": QUOTE_QUERY, "variables": {"input": {"items": items(stay, HTTP_ROOMS)}}})
             for stay in stays]
    totals = [dumps({"query": QUOTE_TOTALS_QUERY, "variables": {"input": {"items": items(stay, HTTP_ROOMS)}}})
              for stay in stays]
    precheck = [dumps({"query": CREATE, "variables": {"input": {
        "idempotencyKey": "@KEY@", "guestName": "Bench Guest", "items": items(stay, PRECHECK_ROOMS)}}}
    ).replace("@KEY@", "%s") for stay in stays]
    return {"quote": quote, "quote totals": totals, "pre-check": precheck}


async def seed_quote_hotel(url: str) -> Any:
    """The hotel (bench.booking_support.seed_hotel) and the bench agencies at tier GOLD."""
    import asyncpg

    from bench.booking_support import AGENCIES, seed_hotel
    from db.engine import plain_url

    hotel = await seed_hotel(url, "QUOTE", HTTP_ROOM_TYPES, allotment=HTTP_ALLOTMENT, nights=HTTP_NIGHTS_SEEDED,
                             taken=HTTP_TAKEN)
    connection = await asyncpg.connect(plain_url(url))
    try:
        await connection.execute("UPDATE agency SET tier = $1 WHERE code = ANY($2::varchar[])", TIER, list(AGENCIES))
    finally:
        await connection.close()
    return hotel


async def written(url: str, hotel_id: int) -> dict[str, int]:
    """What the refused createBookings might have left: HELD bookings and idempotency keys."""
    import asyncpg

    from db.engine import plain_url

    connection = await asyncpg.connect(plain_url(url))
    try:
        return {
            "held_bookings": await connection.fetchval(
                "SELECT count(*) FROM booking WHERE hotel_id = $1 AND status = 'HELD'", hotel_id),
            "idempotency_keys": await connection.fetchval("SELECT count(*) FROM idempotency_key"),
        }
    finally:
        await connection.close()


def http_check(base: str, bodies: dict[str, list[str]], agent: str) -> dict[str, Any]:
    """One request of each case before timing: the quote is priced by the plan (rules applied),
    the pre-check answers SoldOut. Returns a sample of each."""
    import httpx

    out: dict[str, Any] = {}
    with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {agent}",
                                                          "Content-Type": "application/json"}) as client:
        for case, patterns in bodies.items():
            body = patterns[0] % "bench-check" if "%s" in patterns[0] else patterns[0].replace("%%", "%")
            response = client.post("/graphql", content=body)
            response.raise_for_status()
            payload = response.json()
            answer = payload.get("data") and next(iter(payload["data"].values()))
            if not answer or answer.get("__typename") != EXPECTED[case]:
                raise RuntimeError(f"{case}: expected {EXPECTED[case]}, got {json.dumps(payload)[:600]}")
            if case == "quote":
                applied = [len(n["applied"]) for item in answer["items"] for n in item["nights"]]
                if not any(applied):
                    raise RuntimeError("the quote applied no rule: the plan is not in force")
                out[case] = {"bytes": len(response.content), "nights": len(applied),
                             "applied_per_night": round(sum(applied) / len(applied), 2), "total": answer["total"]}
            elif case == "quote totals":
                out[case] = {"bytes": len(response.content), "total": answer["total"]}
            else:
                out[case] = {"bytes": len(response.content), "code": answer.get("code"),
                             "message": answer.get("message", "")[:200]}
    return out


def http_run(base: str, pid: int, postmaster: int | None, bodies: list[str], expected: str, tokens: list[str],
             connections: int, args: argparse.Namespace, name: str) -> dict[str, Any]:
    from bench.loadgen import cpu_per, run_wrk

    config = {"bodies": bodies, "tokens": tokens, "classify": HTTP_CLASSIFY}
    common = {"name": f"pricing.{name}", "connections": connections, "threads": 1}
    if args.http_warmup:
        run_wrk("bodies", [base], config, seconds=args.http_warmup, **common)
    run = run_wrk("bodies", [base], config, seconds=args.http_seconds,
                  cpu_roots={"server": pid, "postgres": postmaster}, **common)
    ok = run["outcomes"].get(expected, 0)
    return {
        "requests_per_s": round(ok / run["seconds"], 1),
        "responses": run["responses"],
        "errors": run["responses"] - ok,
        "outcomes": run["outcomes"],
        "latency_ms": run["latency_ms"],
        "seconds": run["seconds"],
        "connections": connections,
        "cpu_s": run["cpu_s"],
        "cpu_ms_per_request": cpu_per(run, run["responses"]),
        "samples": run["samples"],
    }


def quote_http(args: argparse.Namespace) -> dict[str, Any]:
    """quote vs createBooking's pre-check over HTTP (see the module's docstring)."""
    import os

    import httpx

    from bench.booking_support import START as HTTP_START, tokens
    from bench.loadgen import cpu_table, ensure_wrk

    ensure_wrk()
    levels = [int(c) for c in str(args.http_connections).split(",") if c.strip()]
    agents = tokens()
    rnd = random.Random(args.seed)
    load_before = os.getloadavg()
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {(case, c): [] for c in levels for case in EXPECTED}
    with scratch_database() as (url, source):
        postmaster = postgres_server_pid(url)
        hotel = asyncio_run(seed_quote_hotel(url))
        plan = build_plan(rnd, hotel.room_type_ids, HTTP_START)
        bodies = http_bodies(http_stays(rnd, hotel.room_type_ids, HTTP_START))
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        with running_server(url, RESULTS_DIR / "pricing.server.log") as (base, process):
            response = httpx.post(f"{base}/graphql", timeout=60, headers={"Authorization": f"Bearer {admin_token()}"},
                                  json={"query": UPSERT_PLAN, "variables": {"input": plan_input(plan, hotel.id)}})
            response.raise_for_status()
            saved = response.json()["data"]["upsertRatePlan"]
            if saved.get("__typename") != "RatePlan" or len(saved["rules"]) != len(plan.rules):
                raise RuntimeError(f"upsertRatePlan: {json.dumps(saved)[:600]}")
            checked = http_check(base, bodies, agents[0])
            print(f"\nquote over HTTP vs createBooking's pre-check: staysync serve --workers 1 on {base}; plan of "
                  f"{len(plan.rules)} rules saved by upsertRatePlan; {HTTP_STAYS} requests of {HTTP_ITEMS} items x "
                  f"{HTTP_NIGHTS} nights ({HTTP_ROOMS} rooms per item quoted, {PRECHECK_ROOMS} asked of createBooking: "
                  f"SoldOut); quote {checked['quote']['bytes']} bytes, "
                  f"{checked['quote']['applied_per_night']} rules applied per night; quote totals only "
                  f"{checked['quote totals']['bytes']} bytes; pre-check "
                  f"{checked['pre-check']['bytes']} bytes; wrk 1 thread, connections {levels}, "
                  f"{args.http_repeats} repeats; load average {' '.join(f'{x:.2f}' for x in load_before)}",
                  flush=True)
            for repeat in range(args.http_repeats):
                for connections in levels:
                    order = list(EXPECTED) if repeat % 2 == 0 else list(reversed(EXPECTED))
                    for case in order:
                        result = http_run(base, process.pid, postmaster, bodies[case], EXPECTED[case], agents,
                                          connections, args, f"{case.replace(' ', '_')}.c{connections}")
                        runs[(case, connections)].append(result)
                        cpu = result["cpu_ms_per_request"]
                        print(f"{case:12s} c={connections:<3d}: {result['requests_per_s']:8.1f} requests/s  "
                              f"p50 {result['latency_ms']['p50']} ms  p99 {result['latency_ms']['p99']} ms  "
                              f"outcomes {result['outcomes']}  CPU ms/request server {_ms(cpu['server'])} "
                              f"PostgreSQL {_ms(cpu['postgres'])}", flush=True)
                        if result["errors"]:
                            print(f"  samples {result['samples'][:2]}", flush=True)
        left = asyncio_run(written(url, hotel.id))
    load_after = os.getloadavg()
    if any(left.values()):
        raise RuntimeError(f"the refused createBookings wrote something: {left}")

    best = {f"{case} c{c}": max(values, key=lambda r: r["requests_per_s"]) for (case, c), values in runs.items()}
    ratios: dict[str, Any] = {}
    for c, variant in ((c, v) for c in levels for v in ("quote", "quote totals")):
        quote, pre = best[f"{variant} c{c}"], best[f"pre-check c{c}"]
        server_q, server_p = quote["cpu_ms_per_request"]["server"], pre["cpu_ms_per_request"]["server"]
        ratios[f"{variant} c{c}"] = {
            "requests_per_s": round(pre["requests_per_s"] / quote["requests_per_s"], 3) if quote["requests_per_s"]
            else None,
            "p50": round(quote["latency_ms"]["p50"] / pre["latency_ms"]["p50"], 3) if pre["latency_ms"]["p50"]
            else None,
            "p99": round(quote["latency_ms"]["p99"] / pre["latency_ms"]["p99"], 3) if pre["latency_ms"]["p99"]
            else None,
            "server_cpu_per_request": round(server_q / server_p, 3) if server_q and server_p else None,
            # Each repeat runs the cases back to back: their ratios within a repeat, median over the
            # repeats, drift less than in the best runs' (which may come from different repeats).
            "requests_per_s_paired_median": _paired(runs[(variant, c)], runs[("pre-check", c)],
                                                    lambda q, p: p["requests_per_s"] / q["requests_per_s"]),
            "server_cpu_per_request_paired_median": _paired(
                runs[(variant, c)], runs[("pre-check", c)],
                lambda q, p: q["cpu_ms_per_request"]["server"] / p["cpu_ms_per_request"]["server"]),
        }
    print(f"\nbest of {args.http_repeats} runs each (load average before {load_before[0]:.2f}, after "
          f"{load_after[0]:.2f}):")
    print(table(["case", "connections", "requests/s", "p50 ms", "p99 ms", "errors", "server CPU ms/req"], [
        [name.rsplit(" ", 1)[0], r["connections"], r["requests_per_s"], r["latency_ms"]["p50"],
         r["latency_ms"]["p99"], r["errors"], _ms(r["cpu_ms_per_request"]["server"])] for name, r in best.items()]))
    print()
    print(cpu_table([(name, r["cpu_ms_per_request"]) for name, r in best.items()], "request"))
    print()
    columns = [f"{v} c{c}" for v in ("quote", "quote totals") for c in levels]
    print(table(["quote / pre-check (cost)", *columns], [
        [label, *(("-" if ratios[col][key] is None else f"{ratios[col][key]:.2f}x") for col in columns)]
        for label, key in (("pre-check requests/s / quote requests/s (best runs)", "requests_per_s"),
                           ("quote p50 / pre-check p50", "p50"), ("quote p99 / pre-check p99", "p99"),
                           ("server CPU per request (best runs)", "server_cpu_per_request"),
                           ("requests/s, median of per-repeat ratios", "requests_per_s_paired_median"),
                           ("server CPU, median of per-repeat ratios", "server_cpu_per_request_paired_median"))]))
    print(f"(target: within ~{HTTP_RATIO}x; reported, not asserted)")
    return {
        "parameters": {"postgres": source, "room_types": HTTP_ROOM_TYPES, "allotment": HTTP_ALLOTMENT,
                       "taken": HTTP_TAKEN, "rules": len(plan.rules), "stays": HTTP_STAYS, "items": HTTP_ITEMS,
                       "nights": HTTP_NIGHTS, "quote_rooms": HTTP_ROOMS, "precheck_rooms": PRECHECK_ROOMS,
                       "tier": TIER, "start": HTTP_START, "seconds": args.http_seconds, "warmup": args.http_warmup,
                       "connections": levels, "repeats": args.http_repeats,
                       "client": f"wrk ({ensure_wrk()}), 1 thread, bench/wrk/bodies.lua",
                       "server": "staysync serve --no-migrate --workers 1",
                       "quote_query": QUOTE_QUERY, "quote_totals_query": QUOTE_TOTALS_QUERY, "plan": "build_plan, saved by upsertRatePlan"},
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "check": checked,
        "written_by_precheck": left,
        "best": best,
        "all_runs": {f"{case} c{c}": values for (case, c), values in runs.items()},
        "ratios": ratios,
        "target_ratio": HTTP_RATIO,
    }


def _paired(quotes: list[dict[str, Any]], prechecks: list[dict[str, Any]],
            ratio: Callable[[dict[str, Any], dict[str, Any]], float]) -> float | None:
    """The median over the repeats of `ratio(quote run, pre-check run)` of the same repeat."""
    values = []
    for q, p in zip(quotes, prechecks):
        try:
            values.append(ratio(q, p))
        except (TypeError, ZeroDivisionError):
            continue
    return round(percentile(values, 50), 3) if values else None


def asyncio_run(coroutine: Any) -> Any:
    import asyncio

    return asyncio.run(coroutine)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pricing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20260501)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--http-only", action="store_true",
                       help="only quote over HTTP vs createBooking's pre-check (updates the quote_http key of "
                            "an existing results file)")
    which.add_argument("--no-http", action="store_true", help="only the in-process cases")
    parser.add_argument("--http-seconds", type=int, default=8, help="measured seconds per HTTP run (default 8)")
    parser.add_argument("--http-warmup", type=int, default=2, help="warm-up seconds before each HTTP run (default 2)")
    parser.add_argument("--http-connections", default="1,16",
                        help="wrk connections, a run per value, comma-separated (default 1,16)")
    parser.add_argument("--http-repeats", type=int, default=2, help="alternating quote/pre-check repeats; best kept")
    args = parser.parse_args(argv)

    payload: dict[str, Any] = {}
    if not args.http_only:
        payload = in_process(args)
    elif (RESULTS_DIR / "pricing.json").exists():
        earlier = json.loads((RESULTS_DIR / "pricing.json").read_text())
        payload = {k: v for k, v in earlier.items() if k not in ("benchmark", "machine")}
    if not args.no_http:
        payload["quote_http"] = quote_http(args)
    path = write_results("pricing", payload)
    print(f"\nwrote {path.relative_to(PROJECT_ROOT)}")
    return 0


def in_process(args: argparse.Namespace) -> dict[str, Any]:
    """The in-process cases (see the module's docstring): printed, and their results."""
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
    return {
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
    }


if __name__ == "__main__":
    sys.exit(main())
