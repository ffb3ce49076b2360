"""Rate plans: saving them (admin), reading them, and the compiled copy every worker prices with.

A plan's rules are stored as the JSON below and compiled once per (plan, version) per worker:
saving a plan compiles it in the worker that saved it, and any other worker compiles it on the
first read that finds the new version. A read never parses a plan it has compiled already.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Text, cast, select

from app.lru import LRU
from app.services.changes import write
from app.services.context import Caller, Services
from app.services.errors import InvalidInput, NotFound
from app.services.inventory import problem_text
from db import audit, models
from db.inventory import lock_rate_plans
from db.rateplans import PlanRef
from domain import (
    AppliedRule,
    CalendarRow,
    CurrencyMismatch,
    PriceOutOfRange,
    night_sell_prices,
    price_stays,
    CompiledPlan,
    Money,
    PriceCondition,
    PricedNight,
    PricePer,
    PriceRule,
    RatePlan,
    check_rate_plan,
    compile_plan,
    plan_conflict,
    select_plan,
    utc_today,
)

# Compiled plans per worker, by (plan id, version, rules as stored): the rules are part of the key
# so that an entry can never be stale, even where ids and versions repeat (a database restored or
# truncated under a running worker); unused entries are forgotten.
_COMPILED: LRU[tuple[int, int, str], CompiledPlan] = LRU(256)
# How far ahead a plan change is announced to calendar subscribers (sell prices change there).
ANNOUNCED_NIGHTS = 2 * 366


@dataclass(frozen=True, slots=True)
class RatePlanSpec:
    hotel_id: int
    code: str
    name: str
    agency_ids: list[int]
    active: bool
    rules: list[PriceRule]


# --- the stored form -----------------------------------------------------------------------


def _condition_json(w: PriceCondition) -> dict[str, Any]:
    fields = {
        "roomTypeIds": None if w.room_type_ids is None else sorted(w.room_type_ids),
        "from": w.start and w.start.isoformat(), "to": w.end and w.end.isoformat(),
        "weekdays": None if w.weekdays is None else sorted(w.weekdays),
        "minNights": w.min_nights, "maxNights": w.max_nights, "minLeadDays": w.min_lead_days,
        "maxLeadDays": w.max_lead_days, "minRooms": w.min_rooms, "minOccupancyPercent": w.min_occupancy_percent,
        "maxOccupancyPercent": w.max_occupancy_percent,
        "agencyTiers": None if w.agency_tiers is None else sorted(w.agency_tiers),
    }
    return {key: value for key, value in fields.items() if value is not None}


def rules_json(rules: Iterable[PriceRule]) -> list[dict[str, Any]]:
    return [
        {"name": rule.name, "priority": rule.priority, "per": rule.per.value, "when": _condition_json(rule.when),
         "percent": None if rule.percent is None else str(rule.percent),
         "amount": None if rule.amount is None else {"amount": str(rule.amount.amount),
                                                     "currency": rule.amount.currency}}
        for rule in rules
    ]


def _condition(data: dict[str, Any]) -> PriceCondition:
    def day(key: str) -> date | None:
        return None if data.get(key) is None else date.fromisoformat(data[key])

    def ints(key: str) -> frozenset[int] | None:
        return None if data.get(key) is None else frozenset(data[key])

    return PriceCondition(
        room_type_ids=ints("roomTypeIds"), start=day("from"), end=day("to"), weekdays=ints("weekdays"),
        min_nights=data.get("minNights"), max_nights=data.get("maxNights"), min_lead_days=data.get("minLeadDays"),
        max_lead_days=data.get("maxLeadDays"), min_rooms=data.get("minRooms"),
        min_occupancy_percent=data.get("minOccupancyPercent"), max_occupancy_percent=data.get("maxOccupancyPercent"),
        agency_tiers=None if data.get("agencyTiers") is None else frozenset(data["agencyTiers"]),
    )


def rules_of(data: Sequence[dict[str, Any]]) -> tuple[PriceRule, ...]:
    return tuple(
        PriceRule(
            name=rule["name"], priority=rule["priority"], when=_condition(rule.get("when") or {}),
            percent=None if rule.get("percent") is None else Decimal(rule["percent"]),
            amount=None if rule.get("amount") is None else Money(Decimal(rule["amount"]["amount"]),
                                                                 rule["amount"]["currency"]),
            per=PricePer(rule.get("per", "NIGHT")),
        )
        for rule in data
    )


def domain_plan(row: models.RatePlan) -> RatePlan:
    assert row.id is not None
    return RatePlan(id=row.id, code=row.code, name=row.name, hotel_id=row.hotel_id,
                    agency_ids=frozenset(row.agency_ids), active=row.active, rules=rules_of(row.rules))


def compiled(ref: PlanRef | None) -> CompiledPlan | None:
    """The compiled plan a read found (None: no plan, sell = net), compiled at most once per
    version in this worker."""
    if ref is None:
        return None
    key = (ref.id, ref.version, ref.rules)
    plan = _COMPILED.get(key)
    if plan is None:
        plan = compile_plan(RatePlan(id=ref.id, code="", name="", hotel_id=0,
                                     rules=rules_of(orjson.loads(ref.rules))))
        _COMPILED.put(key, plan)
    return plan


def nights_json(nights: Iterable[PricedNight]) -> list[dict[str, Any]]:
    """A priced stay's nights as Booking.nights stores them (amounts as exact decimal strings)."""
    return [
        {"date": night.date.isoformat(), "currency": night.sell.currency, "net": str(night.net.amount),
         "sell": str(night.sell.amount),
         "applied": [{"rule": rule.rule, "amount": str(rule.amount.amount)} for rule in night.applied]}
        for night in nights
    ]


def nights_of(data: Iterable[dict[str, Any]]) -> list[PricedNight]:
    """Booking.nights as stored, back as PricedNight."""
    nights = []
    for night in data:
        currency = night["currency"]
        nights.append(PricedNight(
            date.fromisoformat(night["date"]), Money(Decimal(night["net"]), currency),
            Money(Decimal(night["sell"]), currency),
            tuple(AppliedRule(rule["rule"], Money(Decimal(rule["amount"]), currency)) for rule in night["applied"])))
    return nights


@dataclass(frozen=True, slots=True)
class Buyer:
    """An agency as pricing sees it: which plan it buys under (by id) and its tier."""

    agency_id: int
    tier: str | None


def sell_rates(plans: tuple[PlanRef, ...], buyer: Buyer, row: CalendarRow, today: date) -> tuple[Money | None, ...]:
    """Per night of a calendar row, `buyer`'s sell price of one room on a one-night stay arriving
    that night (what its calendar shows), under the plan it buys under among the hotel's active
    `plans`. A night its plan cannot price (an amount rule in another currency than the night's
    net, a price beyond the limit) shows no rate: booking it says why."""
    plan = compiled(select_plan(plans, buyer.agency_id))
    try:
        return night_sell_prices(plan, row, today, buyer.tier)
    except (CurrencyMismatch, PriceOutOfRange):
        pass
    rates: list[Money | None] = []
    for night, rate in zip(row.dates, row.rate):
        try:
            rates.append(None if rate is None else price_stays(
                plan, {row.room_type_id: row}, [(row.room_type_id, night, night + timedelta(days=1), 1)], today,
                buyer.tier)[0].total)
        except (CurrencyMismatch, PriceOutOfRange):
            rates.append(None)
    return tuple(rates)


# --- saving ----------------------------------------------------------------------------------


def _snapshot(row: models.RatePlan) -> dict[str, Any]:
    return {"code": row.code, "name": row.name, "agency_ids": sorted(row.agency_ids), "active": row.active,
            "rules": row.rules, "version": row.version}


async def upsert_rate_plan(services: Services, caller: Caller, spec: RatePlanSpec) -> models.RatePlan:
    """Create or replace the hotel's plan with this code. Validated before anything is written:
    the rules (domain.check_rate_plan), that their room types are the hotel's, that the agencies
    exist, and that no other active plan of the hotel names the same agencies (or is also for
    all of them). Saving a plan serialises with the hotel's other plan saves, never with
    bookings: a booking prices with the version committed when its locked read starts."""
    plan_code = spec.code.strip().upper()
    name = spec.name.strip()
    if problem := check_rate_plan(plan_code, name, spec.rules):
        raise problem_text(problem)
    agency_ids = sorted(set(spec.agency_ids))
    async with write(services) as unit:
        session = unit.session
        hotel = await session.get(models.Hotel, spec.hotel_id)
        if hotel is None:
            raise NotFound("no hotel with that id", "hotelId")
        await lock_rate_plans(session, hotel.id, services.settings.lock_timeout_ms)
        room_types = set((await session.execute(
            select(models.RoomType.id).where(models.RoomType.hotel_id == hotel.id))).scalars())
        for i, rule in enumerate(spec.rules):
            if rule.when.room_type_ids is not None and (foreign := rule.when.room_type_ids - room_types):
                raise InvalidInput(f"rules[{i}].when.roomTypeIds",
                                   f"rules[{i}].when.roomTypeIds: {len(foreign)} room type(s) not of hotel {hotel.code}")
        if agency_ids:
            known = set((await session.execute(
                select(models.Agency.id).where(models.Agency.id.in_(agency_ids)))).scalars())
            if missing := [a for a in agency_ids if a not in known]:
                raise InvalidInput("agencyIds", f"agencyIds: no agency with id {missing[0]}")
        plans = list((await session.execute(
            select(models.RatePlan).where(models.RatePlan.hotel_id == hotel.id))).scalars())
        row = next((p for p in plans if p.code == plan_code), None)
        candidate = RatePlan(id=row.id if row else 0, code=plan_code, name=name, hotel_id=hotel.id,
                             agency_ids=frozenset(agency_ids), active=spec.active, rules=tuple(spec.rules))
        if conflict := plan_conflict(candidate, (domain_plan(p) for p in plans)):
            raise InvalidInput(conflict.field, f"{conflict.field}: {conflict.message}")
        stored = rules_json(spec.rules)
        before = None if row is None else _snapshot(row)
        if row is None:
            row = models.RatePlan(hotel_id=hotel.id, code=plan_code, name=name, agency_ids=agency_ids,
                                  active=spec.active, rules=stored, version=1)
            session.add(row)
        elif (row.name, sorted(row.agency_ids), row.active, row.rules) == (name, agency_ids, spec.active, stored):
            return row  # a retry, or nothing changed: no new version
        else:
            row.name, row.agency_ids, row.active, row.rules = name, agency_ids, spec.active, stored
            row.version += 1
            row.updated_at = models.utcnow()
        await session.flush()
        audit.record(session, caller.actor, "rate_plan.created" if before is None else "rate_plan.updated",
                     "RatePlan", row.id, before=before, after=_snapshot(row))
        # Agents' calendars show sell prices: tell their subscribers to read again.
        today = utc_today(models.utcnow())
        unit.touch(hotel.id, room_types, today - timedelta(days=1), today + timedelta(days=ANNOUNCED_NIGHTS))
        # Warm this worker's cache, so the next quote is ready: keyed by the rules as the database
        # renders them, which is what reads find.
        stored_text = (await session.execute(
            select(cast(models.RatePlan.rules, Text)).where(models.RatePlan.id == row.id))).scalar_one()
    assert row.id is not None
    _COMPILED.put((row.id, row.version, stored_text), compile_plan(domain_plan(row)))
    return row


# --- reading ---------------------------------------------------------------------------------


async def hotel_rate_plans(services: Services, hotel_id: int, buyer: Buyer | None) -> list[models.RatePlan]:
    """Staff (no `buyer`): every plan of the hotel, by code. An agency: only the plan it buys under,
    if any (a plan names agencies; another agency's is not theirs to see); an unregistered one, none."""
    async with services.sessions() as session:
        plans = list((await session.execute(
            select(models.RatePlan).where(models.RatePlan.hotel_id == hotel_id).order_by(models.RatePlan.code)
        )).scalars())
    if buyer is None:
        return plans
    if buyer.agency_id < 0:
        return []
    chosen = select_plan([p for p in plans if p.active], buyer.agency_id)  # by code, as read
    return [] if chosen is None else [chosen]

