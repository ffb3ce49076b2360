"""Selling prices: rate plans (upsertRatePlan, Hotel.ratePlans), quotes, and the priced nights a
booking freezes. Net prices are the wholesaler's buying prices: staff see them, agents never do."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from app.api.bookings import BookingItemInput, _item
from app.api.catalog import Agency, Hotel, RoomType, load_agency, load_hotel, load_room_type
from app.api.errors import InvalidInput, NotFound, RestrictionViolated, SoldOut
from app.api.ids import decode_id, decode_optional
from app.api.policies import CancellationRule, policy_of
from app.api.permissions import ADMIN, AUTHENTICATED, Info
from app.api.types import LoadedNode, Money, MoneyInput, money
from app.services import bookings, rateplans
from app.services.errors import InvalidInput as InvalidInputFailure
from domain import Money as DomainMoney
from domain import PriceCondition as DomainCondition
from domain import PricedItem, PricePer as DomainPricePer
from domain import PricedNight as DomainPricedNight
from domain import PriceRule as DomainRule
from domain import money_sum, rule_order

if TYPE_CHECKING:
    from db.models import RatePlan as RatePlanRow
else:
    RatePlanRow = Any

PricePer = strawberry.enum(DomainPricePer, name="PricePer", description=(
    "NIGHT: judged and applied on each night. STAY: judged on the arrival night and applied to every "
    "night; an amount per stay is spread evenly over the nights, the remainder on the first."))


async def _own_plan(info: Info, row: Any) -> bool:
    """Staff see every plan; an agent only the plan it buys under."""
    context = info.context
    if context.caller.is_staff:
        return True
    return any(p.id == row.id for p in await rateplans.hotel_rate_plans(context.services, row.hotel_id,
                                                                         await context.buyer()))


@strawberry.type(description="What must hold for a rule to apply; a null part always holds. Ranges of "
                 "dates are [from, to) over nights; bounds are inclusive.")
class PriceCondition:
    room_type_ids: strawberry.Private[list[int] | None]
    from_: date | None = strawberry.field(name="from")
    to: date | None
    weekdays: list[int] | None = strawberry.field(description="ISO weekdays: 1 = Monday ... 7 = Sunday.")
    min_nights: int | None
    max_nights: int | None
    min_lead_days: int | None = strawberry.field(description="Arrival minus the hotel's today, at least.")
    max_lead_days: int | None
    min_rooms: int | None = strawberry.field(description="Rooms of the whole booking (every item), at least.")
    min_occupancy_percent: int | None = strawberry.field(
        description="The night's committed rooms / allotment x 100 when the price is decided, at least.")
    max_occupancy_percent: int | None
    agency_tiers: list[str] | None = strawberry.field(description="The buying agency's tier is one of these.")

    @strawberry.field
    async def room_types(self, info: Info) -> list[RoomType] | None:
        if self.room_type_ids is None:
            return None
        return [await load_room_type(info, pk) for pk in self.room_type_ids]

    @staticmethod
    def of(w: DomainCondition) -> PriceCondition:
        return PriceCondition(
            room_type_ids=None if w.room_type_ids is None else sorted(w.room_type_ids), from_=w.start, to=w.end,
            weekdays=None if w.weekdays is None else sorted(w.weekdays), min_nights=w.min_nights,
            max_nights=w.max_nights, min_lead_days=w.min_lead_days, max_lead_days=w.max_lead_days,
            min_rooms=w.min_rooms, min_occupancy_percent=w.min_occupancy_percent,
            max_occupancy_percent=w.max_occupancy_percent,
            agency_tiers=None if w.agency_tiers is None else sorted(w.agency_tiers),
        )


@strawberry.type(description="A condition and an adjustment: a percent of the price so far, or an amount.")
class PriceRule:
    name: str
    priority: int = strawberry.field(description="Rules apply in ascending priority, ties by name.")
    when: PriceCondition
    percent: str | None = strawberry.field(description="E.g. \"-10\" for 10 % off the price so far.")
    amount: Money | None
    per: PricePer

    @staticmethod
    def of(rule: DomainRule) -> PriceRule:
        return PriceRule(name=rule.name, priority=rule.priority, when=PriceCondition.of(rule.when),
                         percent=None if rule.percent is None else str(rule.percent), amount=money(rule.amount),
                         per=rule.per)


@strawberry.type(description="A hotel's selling rules for the agencies it names (none: every agency).")
class RatePlan(LoadedNode, relay.Node):
    id: relay.NodeID[int]
    code: str
    name: str
    active: bool
    version: int = strawberry.field(description="Grows with every change; bookings record the version that "
                                    "priced them.")
    rules: list[PriceRule] = strawberry.field(description="In the order they apply.")
    row: strawberry.Private[RatePlanRow]

    loader = "rate_plan"
    visible = _own_plan

    @staticmethod
    def from_row(row: RatePlanRow) -> RatePlan:
        plan = rateplans.domain_plan(row)
        return RatePlan(id=row.id, code=row.code, name=row.name, active=row.active, version=row.version,
                        rules=[PriceRule.of(rule) for rule in sorted(plan.rules, key=rule_order)],
                        row=row)

    @strawberry.field
    async def hotel(self, info: Info) -> Hotel:
        return await load_hotel(info, self.row.hotel_id)

    @strawberry.field(description="Its own cancellation policy; null: none of its own, the hotel's applies "
                      "(setCancellationPolicy).")
    def cancellation_policy(self) -> list[CancellationRule] | None:
        return policy_of(self.row.cancellation_rules)

    @strawberry.field(description="The agencies it is for; empty: every agency without a plan of its own. "
                      "Agents see only their own agency here.")
    async def agencies(self, info: Info) -> list[Agency]:
        shown = await asyncio.gather(*(load_agency(info, pk) for pk in self.row.agency_ids))
        return [a for a in shown if await info.context.may_see(a.id)]


# --- priced nights and quotes ----------------------------------------------------------------


@strawberry.type(description="A rule that changed a night's price, and by how much (for one room).")
class AppliedRule:
    rule: str
    amount: Money


@strawberry.type(description="One room on one night: its price and why.")
class PricedNight:
    date: date
    net: Money | None = strawberry.field(description="The buying price. Staff only: null for agents.")
    sell: Money = strawberry.field(description="What the agency pays.")
    applied: list[AppliedRule] = strawberry.field(description="In the order they applied; they add up to "
                                                  "sell - net.")

    @staticmethod
    def of(night: DomainPricedNight, staff: bool) -> PricedNight:
        return PricedNight(date=night.date, net=money(night.net) if staff else None, sell=money(night.sell),
                           applied=[AppliedRule(rule=a.rule, amount=money(a.amount)) for a in night.applied])


@strawberry.type
class QuoteItem:
    check_in: date
    check_out: date
    rooms: int
    total: Money = strawberry.field(description="Sell, for all the rooms.")
    net_total: Money | None = strawberry.field(description="Staff only: null for agents.")
    nights: list[PricedNight] = strawberry.field(description="Per room.")
    room_type_id: strawberry.Private[int]

    @strawberry.field
    async def room_type(self, info: Info) -> RoomType:
        return await load_room_type(info, self.room_type_id)


@strawberry.type(description="What createBooking would hold and charge for these items now. A quote "
                 "reserves nothing: prices and availability may change before the booking.")
class Quote:
    total: Money
    items: list[QuoteItem]

    @staticmethod
    def of(items: tuple[PricedItem, ...], staff: bool) -> Quote:
        return Quote(total=money(money_sum((item.total for item in items), items[0].total.currency)), items=[
            QuoteItem(check_in=item.check_in, check_out=item.check_out, rooms=item.rooms, total=money(item.total),
                      net_total=money(item.net_total) if staff else None,
                      nights=[PricedNight.of(n, staff) for n in item.nights], room_type_id=item.room_type_id)
            for item in items])


@strawberry.input
class QuoteInput:
    agency_id: strawberry.ID | None = strawberry.field(
        default=None, description="Required for admins and operators; agents quote for their own agency.")
    items: list[BookingItemInput]


QuoteResult = Annotated[Quote | SoldOut | RestrictionViolated | InvalidInput, strawberry.union("QuoteResult")]


# --- upsertRatePlan --------------------------------------------------------------------------


@strawberry.input(description="Leave a part out (null) for it to always hold.")
class PriceConditionInput:
    room_type_ids: list[strawberry.ID] | None = None
    from_: date | None = strawberry.field(default=None, name="from")
    to: date | None = None
    weekdays: list[int] | None = None
    min_nights: int | None = None
    max_nights: int | None = None
    min_lead_days: int | None = None
    max_lead_days: int | None = None
    min_rooms: int | None = None
    min_occupancy_percent: int | None = None
    max_occupancy_percent: int | None = None
    agency_tiers: list[str] | None = None


@strawberry.input(description="Give `percent` or `amount`, not both.")
class PriceRuleInput:
    name: str
    priority: int = 0
    when: PriceConditionInput | None = None
    percent: str | None = strawberry.field(default=None, description="E.g. \"15\" or \"-10\".")
    amount: MoneyInput | None = None
    per: PricePer = DomainPricePer.NIGHT  # type: ignore[assignment]


@strawberry.input(description="Creates the hotel's plan with this code, or replaces it (rules and all).")
class UpsertRatePlanInput:
    hotel_id: strawberry.ID
    code: str
    name: str
    agency_ids: list[strawberry.ID] = strawberry.field(default_factory=list,
                                                       description="Empty: for every agency.")
    active: bool = True
    rules: list[PriceRuleInput] = strawberry.field(default_factory=list)


UpsertRatePlanResult = Annotated[RatePlan | InvalidInput | NotFound, strawberry.union("UpsertRatePlanResult")]


def _decimal(text: str, field: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InvalidInputFailure(field, f"{field} must be a decimal string such as \"-10\"") from None
    if not value.is_finite():
        raise InvalidInputFailure(field, f"{field} must be a finite decimal")
    return value


def _rule(i: int, rule: PriceRuleInput) -> DomainRule:
    at = f"rules[{i}]"
    w = rule.when or PriceConditionInput()
    condition = DomainCondition(
        room_type_ids=None if w.room_type_ids is None else frozenset(
            decode_id(pk, "RoomType", f"{at}.when.roomTypeIds") for pk in w.room_type_ids),
        start=w.from_, end=w.to, weekdays=None if w.weekdays is None else frozenset(w.weekdays),
        min_nights=w.min_nights, max_nights=w.max_nights, min_lead_days=w.min_lead_days,
        max_lead_days=w.max_lead_days, min_rooms=w.min_rooms, min_occupancy_percent=w.min_occupancy_percent,
        max_occupancy_percent=w.max_occupancy_percent,
        agency_tiers=None if w.agency_tiers is None else frozenset(t.strip().upper() for t in w.agency_tiers),
    )
    amount = None
    if rule.amount is not None:
        amount = DomainMoney(_decimal(rule.amount.amount, f"{at}.amount.amount"), rule.amount.currency.strip().upper())
    return DomainRule(name=rule.name.strip(), priority=rule.priority, when=condition,
                      percent=None if rule.percent is None else _decimal(rule.percent, f"{at}.percent"),
                      amount=amount, per=DomainPricePer(rule.per))


@strawberry.type
class PricingQuery:
    @strawberry.field(permission_classes=AUTHENTICATED, description=(
        "Price items as createBooking would now, with the full breakdown, and check them: availability "
        "(SoldOut) and restrictions (RestrictionViolated) alike. Nothing is held."))
    async def quote(self, info: Info, input: QuoteInput) -> QuoteResult:
        request = bookings.QuoteRequest(items=[_item(i, item) for i, item in enumerate(input.items)],
                                        agency_id=decode_optional(input.agency_id, "Agency", "agencyId"))
        items = await bookings.quote(info.context.services, info.context.caller, request)
        return Quote.of(items, info.context.caller.is_staff)


@strawberry.type
class PricingMutation:
    @strawberry.mutation(permission_classes=ADMIN, description=(
        "Create or replace a hotel's rate plan by (hotel, code). Validated: rules (values in range, a "
        "percent or an amount), room types of the hotel, existing agencies, and no two active plans of a "
        "hotel for the same agency (or both for all). Takes effect for every price decided after it commits."))
    async def upsert_rate_plan(self, info: Info, input: UpsertRatePlanInput) -> UpsertRatePlanResult:
        spec = rateplans.RatePlanSpec(
            hotel_id=decode_id(input.hotel_id, "Hotel", "hotelId"), code=input.code, name=input.name,
            agency_ids=[decode_id(pk, "Agency", "agencyIds") for pk in input.agency_ids], active=input.active,
            rules=[_rule(i, rule) for i, rule in enumerate(input.rules)],
        )
        return RatePlan.from_row(await rateplans.upsert_rate_plan(info.context.services, info.context.caller, spec))
