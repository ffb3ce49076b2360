"""Selling rules through the API: upsertRatePlan, quote, prices frozen on bookings, what agents
see (sell, never net), and pricing under a concurrent rule change.

The contracts of `setup` sell at a net of 99.50 EUR a night from START (60 days ahead, a weekday
that moves with today: the tests name nights by offset and compute weekdays from them).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest

from app.api.ids import decode_id, to_global_id
from tests.api.test_bookings import CONFIRM, book, booking_input, item, setup
from tests.api.test_calendar import START, d
from tests.api.test_restrictions import restrict
from tests.support import data

NET = Decimal("99.50")

UPSERT = """
mutation($input: UpsertRatePlanInput!) { upsertRatePlan(input: $input) {
  __typename
  ... on RatePlan { id code name active version hotel { code } agencies { code }
    rules { name priority percent amount { amount currency } per
            when { roomTypes { code } from to weekdays minNights maxNights minLeadDays maxLeadDays minRooms
                   minOccupancyPercent maxOccupancyPercent agencyTiers } } }
  ... on UserError { message code }
  ... on InvalidInput { field }
} }
"""

QUOTE = """
query($input: QuoteInput!) { quote(input: $input) {
  __typename
  ... on Quote { total { amount currency }
    items { roomType { code } checkIn checkOut rooms total { amount } netTotal { amount }
            nights { date net { amount } sell { amount currency } applied { rule amount { amount } } } } }
  ... on SoldOut { shortfalls { date requested available } }
  ... on RestrictionViolated { violations { date rule } }
  ... on UserError { message code }
  ... on InvalidInput { field }
} }
"""

BOOKING_NIGHTS = """
query($id: ID!) { node(id: $id) { ... on BookingGroup { total { amount }
  bookings { total { amount } nights { date net { amount } sell { amount } applied { rule amount { amount } } } }
} } }
"""


def rule(name, priority=0, percent=None, amount=None, per="NIGHT", **when):
    value = {"name": name, "priority": priority, "per": per, "when": when or None}
    if percent is not None:
        value["percent"] = percent
    if amount is not None:
        value["amount"] = {"amount": amount, "currency": "EUR"}
    return value


async def upsert(gql, hotel, *rules, code="STD-PLAN", agency_ids=(), active=True, role="admin", **caller):
    result = await gql(UPSERT, {"input": {"hotelId": hotel["id"], "code": code, "name": f"Plan {code}",
                                          "agencyIds": list(agency_ids), "active": active, "rules": list(rules)}},
                       role=role, **caller)
    return data(result)["upsertRatePlan"]


async def quote(gql, agency_id, *items, role="admin", agency=None):
    result = await gql(QUOTE, {"input": {"agencyId": agency_id, "items": list(items)}}, role=role, agency=agency)
    return data(result)["quote"]


def sells(quoted, index=0):
    assert quoted["__typename"] == "Quote", quoted
    return [n["sell"]["amount"] for n in quoted["items"][index]["nights"]]


def applied(quoted, night=0, index=0):
    return [(a["rule"], a["amount"]["amount"]) for a in quoted["items"][index]["nights"][night]["applied"]]


def weekday(offset: int) -> int:
    return (START + timedelta(days=offset)).isoweekday()


async def test_a_hotel_without_a_plan_sells_at_net(gql):
    hotel, ids, agencies = await setup(gql)
    quoted = await quote(gql, agencies["SUNTRAVEL"], item(ids["STD"], 0, nights=2, rooms=3))
    assert sells(quoted) == ["99.50", "99.50"]
    assert quoted["total"] == {"amount": "597.00", "currency": "EUR"}
    assert quoted["items"][0]["netTotal"] == {"amount": "597.00"}
    assert applied(quoted) == []


async def test_upsert_rate_plan_creates_versions_and_audits(gql):
    hotel, ids, _ = await setup(gql)
    created = await upsert(gql, hotel, rule("Margin", 10, percent="20"),
                           rule("Suite", 5, amount="15.00", roomTypeIds=[ids["SUP"]], weekdays=[5, 6]))
    assert created["__typename"] == "RatePlan" and created["version"] == 1 and created["code"] == "STD-PLAN"
    assert [r["name"] for r in created["rules"]] == ["Suite", "Margin"]  # in the order they apply
    assert created["rules"][0]["when"]["roomTypes"] == [{"code": "SUP"}]
    assert created["rules"][0]["when"]["weekdays"] == [5, 6]
    assert created["rules"][0]["amount"] == {"amount": "15.00", "currency": "EUR"}
    again = await upsert(gql, hotel, rule("Margin", 10, percent="20"),
                         rule("Suite", 5, amount="15.00", roomTypeIds=[ids["SUP"]], weekdays=[5, 6]))
    assert again["version"] == 1 and again["id"] == created["id"]  # a retry changes nothing
    changed = await upsert(gql, hotel, rule("Margin", 10, percent="25"))
    assert changed["version"] == 2 and [r["name"] for r in changed["rules"]] == ["Margin"]
    query = "query($id: ID) { auditLog(entityId: $id) { edges { node { action before after } } } }"
    entries = [e["node"] for e in data(await gql(query, {"id": created["id"]}))["auditLog"]["edges"]]
    assert [e["action"] for e in entries] == ["rate_plan.updated", "rate_plan.created"]
    assert entries[0]["before"]["rules"][0]["percent"] == "20" and entries[0]["after"]["rules"][0]["percent"] == "25"


@pytest.mark.parametrize(("bad_rule", "field"), [
    (rule("Absurd", percent="5000"), "rules[0].percent"),
    (rule("Both", percent="5", amount="1.00"), "rules[0].amount"),
    (rule("Neither"), "rules[0].percent"),
    (rule("Cents", amount="1.001"), "rules[0].amount.amount"),
    (rule("Days", percent="5", weekdays=[0]), "rules[0].when.weekdays"),
    (rule("Backwards", percent="5", minNights=5, maxNights=2), "rules[0].when.maxNights"),
    (rule("Occupancy", percent="5", minOccupancyPercent=120), "rules[0].when.minOccupancyPercent"),
    (rule("Dates", percent="5", **{"from": "2027-02-01", "to": "2027-01-01"}), "rules[0].when.to"),
    (rule("", percent="5"), "rules[0].name"),
    (rule("Number", percent="ten"), "rules[0].percent"),
])
async def test_upsert_rate_plan_refuses_absurd_rules_and_writes_nothing(gql, bad_rule, field):
    hotel, ids, _ = await setup(gql)
    refused = await upsert(gql, hotel, rule("Fine", percent="10"), bad_rule)
    assert refused["__typename"] == "InvalidInput", refused
    assert refused["field"] == field.replace("rules[0]", "rules[1]"), refused
    plans = data(await gql("query($id: ID!) { node(id: $id) { ... on Hotel { ratePlans { code } } } }",
                           {"id": hotel["id"]}))["node"]["ratePlans"]
    assert plans == []


async def test_upsert_rate_plan_checks_room_types_agencies_and_conflicts(gql, sessions):
    hotel, ids, agencies = await setup(gql)
    from tests.api.test_catalog import make_hotel
    _, other_ids = await make_hotel(gql, code="OPO", room_types=("XXL",))
    foreign = await upsert(gql, hotel, rule("Foreign", percent="5", roomTypeIds=[other_ids["XXL"]]))
    assert foreign["__typename"] == "InvalidInput" and foreign["field"] == "rules[0].when.roomTypeIds"
    nobody = await upsert(gql, hotel, rule("A", percent="5"), agency_ids=[to_global_id("Agency", 999999)])
    assert nobody["__typename"] == "InvalidInput" and nobody["field"] == "agencyIds"
    assert (await upsert(gql, hotel, rule("A", percent="5"), code="ALL-1"))["__typename"] == "RatePlan"
    second = await upsert(gql, hotel, rule("B", percent="5"), code="ALL-2")
    assert second["__typename"] == "InvalidInput" and "ALL-1" in second["message"]
    assert (await upsert(gql, hotel, rule("B", percent="5"), code="ALL-2", active=False))["__typename"] == "RatePlan"
    sun = agencies["SUNTRAVEL"]
    assert (await upsert(gql, hotel, rule("S", percent="5"), code="SUN-1", agency_ids=[sun]))["__typename"] == "RatePlan"
    clash = await upsert(gql, hotel, rule("S", percent="5"), code="SUN-2", agency_ids=[sun, agencies["BLUEWAVE"]])
    assert clash["__typename"] == "InvalidInput" and clash["field"] == "agencyIds" and "SUN-1" in clash["message"]
    missing = data(await gql(UPSERT, {"input": {"hotelId": to_global_id("Hotel", 999999), "code": "X1", "name": "X",
                                                "rules": []}}))["upsertRatePlan"]
    assert missing["__typename"] == "NotFound"
    forbidden = await gql(UPSERT, {"input": {"hotelId": hotel["id"], "code": "X1", "name": "X", "rules": []}},
                          role="operator")
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_each_rule_kind_in_priority_order(gql, sessions):
    """Percent (+20 then -10 compounds), amounts per night and per stay, date ranges and weekdays,
    stay length, lead days, group size and agency tier, each where it holds only."""
    hotel, ids, agencies = await setup(gql)
    create = """mutation($input: CreateAgencyInput!) { createAgency(input: $input) { ... on Agency { id tier } } }"""
    gold = data(await gql(create, {"input": {"code": "GOLDIE", "name": "Goldie", "tier": "gold"}}))["createAgency"]
    assert gold["tier"] == "GOLD"
    await upsert(
        gql, hotel,
        rule("Margin", 10, percent="20"),
        rule("Long stay", 20, percent="-10", minNights=3),
        rule("Event", 30, amount="40.00", **{"from": d(1), "to": d(2)}),
        rule("Weekday of d(2)", 40, amount="5.00", weekdays=[weekday(2)]),
        rule("Transfer", 50, amount="10.00", per="STAY"),
        rule("Far ahead", 60, percent="1", minLeadDays=50),
        rule("Last minute", 61, percent="-50", maxLeadDays=3),
        rule("Group", 70, amount="-2.00", minRooms=3),
        rule("Gold", 80, percent="-5", agencyTiers=["GOLD"]),
    )
    sun = agencies["SUNTRAVEL"]
    quoted = await quote(gql, sun, item(ids["STD"], 0, nights=3))
    # 99.50 x 1.2 x 0.9 = 107.46, the STAY transfer split 3.34 + 3.33 + 3.33, then +1 %
    night0 = (Decimal("107.46") + Decimal("3.34")) * Decimal("1.01")
    assert applied(quoted, 0) == [("Margin", "19.90"), ("Long stay", "-11.94"), ("Transfer", "3.34"),
                                  ("Far ahead", "1.11")]
    assert sells(quoted)[0] == str(night0.quantize(Decimal("0.01")))
    assert [a[0] for a in applied(quoted, 1)] == ["Margin", "Long stay", "Event", "Transfer", "Far ahead"]
    assert [a[0] for a in applied(quoted, 2)][:3] == ["Margin", "Long stay", "Weekday of d(2)"]
    total = sum(Decimal(s) for s in sells(quoted))
    assert quoted["total"]["amount"] == str(total)
    # two nights: no long stay; three rooms over two items: the group rule; GOLD: 5 % off at the end
    grouped = await quote(gql, gold["id"],
                          item(ids["STD"], 0, nights=2, rooms=2), item(ids["SUP"], 0, nights=2, rooms=1))
    assert [a[0] for a in applied(grouped, 0, 1)] == ["Margin", "Transfer", "Far ahead", "Group", "Gold"]
    assert grouped["items"][0]["total"]["amount"] == str(sum(Decimal(s) for s in sells(grouped, 0)) * 2)


async def test_an_occupancy_rule_reads_the_committed_rooms_of_the_decision(gql):
    hotel, ids, agencies = await setup(gql)  # allotment 10
    await upsert(gql, hotel, rule("Yield", 1, percent="30", minOccupancyPercent=50))
    sun = agencies["SUNTRAVEL"]
    assert sells(await quote(gql, sun, item(ids["STD"], 0, nights=1))) == ["99.50"]
    held = await book(gql, agencies["BLUEWAVE"], item(ids["STD"], 0, nights=1, rooms=5))
    assert held["__typename"] == "BookingGroup"
    assert sells(await quote(gql, sun, item(ids["STD"], 0, nights=1))) == ["129.35"]
    group = await book(gql, sun, item(ids["STD"], 0, nights=1))
    nights = data(await gql(BOOKING_NIGHTS, {"id": group["id"]}))["node"]["bookings"][0]["nights"]
    assert nights[0]["sell"] == {"amount": "129.35"} and nights[0]["applied"][0]["rule"] == "Yield"


async def test_rounding_is_half_even_once_per_night(gql):
    hotel, ids, agencies = await setup(gql)
    sun = agencies["SUNTRAVEL"]

    async def one_night():
        return await quote(gql, sun, item(ids["STD"], 0, nights=1))

    await upsert(gql, hotel, rule("Tiny", 1, percent="-0.25"))  # 99.50 x 0.9975 = 99.25125
    assert sells(await one_night()) == ["99.25"]
    # 99.50 x 1.00005 = 99.504975 (99.50 if rounded here), x 2 = 199.00995: 199.01, never 199.00
    await upsert(gql, hotel, rule("Up", 1, percent="0.005"), rule("Double", 2, percent="100"))
    quoted = await one_night()
    assert sells(quoted) == ["199.01"]
    assert applied(quoted) == [("Up", "0.00"), ("Double", "99.51")]  # they add up to sell - net
    # an exact half cent goes to the even cent: 49.815 -> 49.82, 49.805 -> 49.80
    await upsert(gql, hotel, rule("Fee", 1, amount="0.13"), rule("Half", 2, percent="-50"))
    assert sells(await one_night()) == ["49.82"]
    await upsert(gql, hotel, rule("Fee", 1, amount="0.11"), rule("Half", 2, percent="-50"))
    assert sells(await one_night()) == ["49.80"]


async def test_agents_see_sell_never_net_and_only_their_own_plan(gql, sessions):
    hotel, ids, agencies = await setup(gql)
    everyone = await upsert(gql, hotel, rule("Margin", 1, percent="20"), code="ALL")
    sun_plan = await upsert(gql, hotel, rule("Partner", 1, percent="10"), code="SUN",
                            agency_ids=[agencies["SUNTRAVEL"]])
    mine = await quote(gql, None, item(ids["STD"], 0, nights=1), role="agent", agency="SUNTRAVEL")
    assert sells(mine) == ["109.45"]
    assert mine["items"][0]["nights"][0]["net"] is None and mine["items"][0]["netTotal"] is None
    theirs = await quote(gql, None, item(ids["STD"], 0, nights=1), role="agent", agency="BLUEWAVE")
    assert sells(theirs) == ["119.40"]
    staff = await quote(gql, agencies["SUNTRAVEL"], item(ids["STD"], 0, nights=1))
    assert staff["items"][0]["nights"][0]["net"] == {"amount": "99.50"}
    plans = "query($id: ID!) { node(id: $id) { ... on Hotel { ratePlans { code agencies { code } } } } }"
    seen = data(await gql(plans, {"id": hotel["id"]}, role="agent", agency="SUNTRAVEL"))["node"]["ratePlans"]
    assert seen == [{"code": "SUN", "agencies": [{"code": "SUNTRAVEL"}]}]
    assert data(await gql(plans, {"id": hotel["id"]}, role="agent", agency="BLUEWAVE"))["node"]["ratePlans"] == [
        {"code": "ALL", "agencies": []}]
    assert len(data(await gql(plans, {"id": hotel["id"]}))["node"]["ratePlans"]) == 2
    node = "query($id: ID!) { node(id: $id) { ... on RatePlan { code } } }"
    assert data(await gql(node, {"id": sun_plan["id"]}, role="agent", agency="BLUEWAVE"))["node"] is None
    assert data(await gql(node, {"id": everyone["id"]}, role="agent", agency="SUNTRAVEL"))["node"] is None
    # the calendar: the caller's own sell price for one room; staff see net
    cal = """query($id: ID!, $from: Date!, $to: Date!) { node(id: $id) { ... on Hotel {
      calendar(from: $from, to: $to) { rows { roomType { code } cells { rate { amount } }
        series { rate currency } } } } } }"""
    variables = {"id": hotel["id"], "from": d(0), "to": d(2)}

    def std(result):
        return next(r for r in data(result)["node"]["calendar"]["rows"] if r["roomType"]["code"] == "STD")

    row = std(await gql(cal, variables, role="agent", agency="SUNTRAVEL"))
    assert [c["rate"]["amount"] for c in row["cells"]] == ["109.45", "109.45"]
    assert row["series"] == {"rate": ["109.45", "109.45"], "currency": "EUR"}
    assert std(await gql(cal, variables, role="agent", agency="BLUEWAVE"))["series"]["rate"] == ["119.40", "119.40"]
    assert std(await gql(cal, variables))["series"]["rate"] == ["99.50", "99.50"]
    # contracts stay staff-only
    contracts = await gql("{ contracts { edges { node { rate { amount } } } } }", role="agent", agency="SUNTRAVEL")
    assert contracts["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_hardblock_slots_show_the_agents_sell_price(gql):
    from tests.api.test_hardblocks import CREATE_BLOCK
    hotel, ids, agencies = await setup(gql)
    await upsert(gql, hotel, rule("Margin", 1, percent="20"))
    block = data(await gql(CREATE_BLOCK, {"input": {
        "agencyId": agencies["SUNTRAVEL"], "roomTypeId": ids["STD"], "from": d(0), "to": d(2), "rooms": 2,
        "releaseDays": 7}}))["createHardblock"]
    grid = """query($id: ID!) { node(id: $id) { ... on Hardblock { grid { rate { amount } }
      gridSeries { rate } } } }"""
    agent = data(await gql(grid, {"id": block["id"]}, role="agent", agency="SUNTRAVEL"))["node"]
    assert [s["rate"]["amount"] for s in agent["grid"]] == ["119.40", "119.40"]
    assert agent["gridSeries"]["rate"] == ["119.40", "119.40"]
    staff = data(await gql(grid, {"id": block["id"]}))["node"]
    assert staff["gridSeries"]["rate"] == ["99.50", "99.50"]


async def test_a_booking_freezes_its_prices_through_rule_changes_and_its_sale_order(gql):
    hotel, ids, agencies = await setup(gql)
    await upsert(gql, hotel, rule("Margin", 1, percent="20"))
    sun = agencies["SUNTRAVEL"]
    quoted = await quote(gql, sun, item(ids["STD"], 0, nights=2, rooms=2))
    group = await book(gql, sun, item(ids["STD"], 0, nights=2, rooms=2))
    before = data(await gql(BOOKING_NIGHTS, {"id": group["id"]}))["node"]
    assert before["total"]["amount"] == quoted["total"]["amount"] == "477.60"
    assert [n["sell"]["amount"] for n in before["bookings"][0]["nights"]] == sells(quoted)
    await upsert(gql, hotel, rule("Margin", 1, percent="50"))  # a later rule change
    order = data(await gql(CONFIRM, {"id": group["id"]}))["confirmBooking"]
    after = data(await gql(BOOKING_NIGHTS, {"id": group["id"]}))["node"]
    assert after == before
    orders = data(await gql("{ saleOrders { edges { node { total { amount } } } } }"))["saleOrders"]["edges"]
    assert order["__typename"] == "SaleOrder" and orders[0]["node"]["total"]["amount"] == "477.60"
    assert sells(await quote(gql, sun, item(ids["STD"], 0, nights=2))) == ["149.25", "149.25"]
    # the agent sees its booking's sell prices, not their net
    mine = data(await gql(BOOKING_NIGHTS, {"id": group["id"]}, role="agent", agency="SUNTRAVEL"))["node"]
    assert mine["bookings"][0]["nights"][0]["net"] is None
    assert mine["bookings"][0]["nights"][0]["sell"] == {"amount": "119.40"}
    # the audit log keeps both
    query = "query($id: ID) { auditLog(entityId: $id) { edges { node { action after } } } }"
    created = [e["node"] for e in data(await gql(query, {"id": group["id"]}))["auditLog"]["edges"]
               if e["node"]["action"] == "booking_group.created"][0]
    assert created["after"]["total"]["amount"] == "477.60" and created["after"]["net_total"]["amount"] == "398.00"
    assert created["after"]["items"][0]["nights"][0]["net"] == "99.50"


async def test_a_quote_checks_availability_and_restrictions_like_create_booking(gql):
    hotel, ids, agencies = await setup(gql, allotment=2)
    sun = agencies["SUNTRAVEL"]
    sold_out = await quote(gql, sun, item(ids["STD"], 0, nights=1, rooms=3))
    assert sold_out["__typename"] == "SoldOut" and sold_out["shortfalls"][0]["available"] == 2
    await restrict(gql, ids["STD"], 1, 2, minStay=3)
    violated = await quote(gql, sun, item(ids["STD"], 1, nights=1))
    assert violated["__typename"] == "RestrictionViolated" and violated["violations"][0]["rule"] == "MIN_STAY"
    outside = await quote(gql, sun, item(ids["STD"], 40, nights=1))
    assert outside["__typename"] == "InvalidInput" and "no rate" in outside["message"]
    staff_without_agency = await quote(gql, None, item(ids["STD"], 0, nights=1))
    assert staff_without_agency["__typename"] == "InvalidInput" and staff_without_agency["field"] == "agencyId"
    ok = await quote(gql, sun, item(ids["STD"], 1, nights=3, rooms=2))
    booked = await book(gql, sun, item(ids["STD"], 1, nights=3, rooms=2))
    assert ok["__typename"] == "Quote" and booked["__typename"] == "BookingGroup"


async def test_a_three_decimal_currency_keeps_its_minor_unit(gql):
    from tests.api.test_calendar import UPSERT_CONTRACT
    from tests.api.test_catalog import contract_input
    hotel, ids, agencies = await setup(gql)
    data(await gql(UPSERT_CONTRACT, {"input": contract_input(
        hotel["id"], ids["SUP"], externalId="C-SUP", allotment=10, rate={"amount": "33.75", "currency": "KWD"},
        **{"from": START.isoformat(), "to": (START + timedelta(days=30)).isoformat()})}))
    await upsert(gql, hotel, rule("Margin", 1, percent="12.5", roomTypeIds=[ids["SUP"]]))
    quoted = await quote(gql, agencies["SUNTRAVEL"], item(ids["SUP"], 0, nights=1))
    assert sells(quoted) == ["37.969"]  # 33.75 x 1.125 = 37.96875 -> 37.969 (half-even, 3 places)
    group = await book(gql, agencies["SUNTRAVEL"], item(ids["SUP"], 0, nights=1, rooms=3))
    node = data(await gql(BOOKING_NIGHTS, {"id": group["id"]}))["node"]
    assert node["total"] == {"amount": "113.907"}


async def test_a_booking_that_starts_after_a_rule_change_commits_is_priced_with_it(gql, sessions):
    """Bookings race a rule change: each is priced by exactly one version of the plan (the one it
    records), and every booking sent after the change returned is priced with it."""
    from db import models
    from sqlalchemy import select
    hotel, ids, agencies = await setup(gql, allotment=200)
    plan = await upsert(gql, hotel, rule("Margin", 1, percent="10"))
    sun = agencies["SUNTRAVEL"]
    price = {1: "109.45", 2: "119.40"}

    async def booking(n: int):
        return await book(gql, sun, item(ids["STD"], n % 5, nights=1))

    racing = [asyncio.ensure_future(booking(n)) for n in range(20)]
    await asyncio.sleep(0)
    changed = await upsert(gql, hotel, rule("Margin", 1, percent="20"))
    assert changed["version"] == 2
    after = [await booking(n) for n in range(5)]
    groups = await asyncio.gather(*racing)
    assert all(g["__typename"] == "BookingGroup" for g in [*groups, *after])
    async with sessions() as session:
        rows = {b.group_id: b for b in (await session.execute(select(models.Booking))).scalars()}
    plan_pk = decode_id(plan["id"], "RatePlan", "id")
    for group in [*groups, *after]:
        row = rows[decode_id(group["id"], "BookingGroup", "id")]
        assert row.rate_plan_id == plan_pk
        assert row.nights[0]["sell"] == price[row.rate_plan_version], (row.rate_plan_version, row.nights)
    assert {rows[decode_id(g["id"], "BookingGroup", "id")].rate_plan_version for g in after} == {2}


async def test_update_agency_changes_the_tier_prices_use(gql):
    hotel, ids, agencies = await setup(gql)
    await upsert(gql, hotel, rule("Gold", 1, percent="-10", agencyTiers=["GOLD"]))
    sun = agencies["SUNTRAVEL"]
    assert sells(await quote(gql, sun, item(ids["STD"], 0, nights=1))) == ["99.50"]
    update = """mutation($input: UpdateAgencyInput!) { updateAgency(input: $input) {
      __typename ... on Agency { tier } ... on InvalidInput { field } } }"""
    assert data(await gql(update, {"input": {"id": sun, "tier": "gold"}}))["updateAgency"]["tier"] == "GOLD"
    assert sells(await quote(gql, sun, item(ids["STD"], 0, nights=1))) == ["89.55"]
    bad = data(await gql(update, {"input": {"id": sun, "tier": "not a tier"}}))["updateAgency"]
    assert bad == {"__typename": "InvalidInput", "field": "tier"}
    assert data(await gql(update, {"input": {"id": sun, "tier": ""}}))["updateAgency"]["tier"] is None


async def test_a_quote_is_one_statement_and_a_saved_plan_is_compiled_once(gql, monkeypatch):
    """No SQL per night or per rule: the quote reads once (room types, inventory, the agency's plan
    and tier in one statement), then computes. The worker that saved the plan compiled it then; a
    second version is compiled on the first read that finds it, once."""
    from app.services import rateplans
    from tests.api.test_hot_path import _written
    hotel, ids, agencies = await setup(gql)
    runtime = gql.http._transport.app.state.runtime
    rules = [rule(f"Rule {n}", n, percent="1", weekdays=[1 + n % 7]) for n in range(200)]
    await upsert(gql, hotel, *rules)
    compiled = []
    compile_plan = rateplans.compile_plan
    monkeypatch.setattr(rateplans, "compile_plan", lambda plan: compiled.append(plan) or compile_plan(plan))
    request = {"input": {"agencyId": agencies["SUNTRAVEL"], "items": [item(ids["STD"], 0, nights=14, rooms=2),
                                                                     item(ids["SUP"], 1, nights=14)]}}
    lean = "query($input: QuoteInput!) { quote(input: $input) { __typename ... on Quote { total { amount } } } }"
    await gql(lean, request)  # warm-up: asyncpg prepares the statement on this connection
    answer, raw, orm = await _written(gql, lean, request, runtime)
    assert answer["quote"]["__typename"] == "Quote"
    assert len(raw) == 1 and orm == [], (raw, orm)
    assert "FROM rate_plan" in raw[0] and "FROM contract" in raw[0]
    assert compiled == []  # warmed when it was saved
    # Another worker's save (not this one's cache): the next read compiles it, once.
    async with runtime.sessions() as session, session.begin():
        from sqlalchemy import text
        await session.execute(text("UPDATE rate_plan SET rules = rules - 0, version = version + 1"))
    await gql(QUOTE, request)
    await gql(QUOTE, request)
    assert len(compiled) == 1


async def test_create_booking_still_takes_five_round_trips_with_a_plan(gql):
    from tests.api.test_hot_path import _written
    lean = "mutation($input: CreateBookingInput!) { createBooking(input: $input) { __typename } }"
    hotel, ids, agencies = await setup(gql)
    runtime = gql.http._transport.app.state.runtime
    await upsert(gql, hotel, rule("Margin", 1, percent="20"))
    await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], 5))  # warm-up
    answer, raw, orm = await _written(gql, lean, {"input": booking_input(agencies["SUNTRAVEL"], item(ids["STD"]))},
                                      runtime)
    assert answer["createBooking"]["__typename"] == "BookingGroup"
    assert len(raw) == 5 and orm == [], (raw, orm)
    assert "FROM rate_plan" in raw[0] and "FROM rate_plan" in raw[2]  # before the lock, and after it


async def test_saving_a_plan_tells_calendar_readers_and_inactive_plans_price_nothing(gql):
    from tests.api.test_calendar import calendar
    hotel, ids, agencies = await setup(gql)
    before = (await calendar(gql, hotel["id"]))["version"]
    await upsert(gql, hotel, rule("Margin", 1, percent="20"))
    assert (await calendar(gql, hotel["id"]))["version"] == before + 1  # agents' prices changed: re-read
    assert sells(await quote(gql, agencies["SUNTRAVEL"], item(ids["STD"], 0, nights=1))) == ["119.40"]
    await upsert(gql, hotel, rule("Margin", 1, percent="20"), active=False)
    assert sells(await quote(gql, agencies["SUNTRAVEL"], item(ids["STD"], 0, nights=1))) == ["99.50"]


async def test_update_agency_refuses_an_unknown_id(gql):
    update = """mutation($input: UpdateAgencyInput!) { updateAgency(input: $input) {
      __typename ... on InvalidInput { field } } }"""
    result = data(await gql(update, {"input": {"id": to_global_id("Agency", 999999), "tier": "GOLD"}}))
    assert result["updateAgency"] == {"__typename": "InvalidInput", "field": "id"}


async def test_a_calendar_cells_bookings_show_their_frozen_nights(gql):
    hotel, ids, agencies = await setup(gql)
    await upsert(gql, hotel, rule("Margin", 1, percent="20"))
    await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], 0, nights=1))
    query = """query($id: ID!, $from: Date!, $to: Date!) { node(id: $id) { ... on Hotel {
      calendar(from: $from, to: $to) { rows { cells { bookings { nights { sell { amount } } } } } } } } }"""
    rows = data(await gql(query, {"id": hotel["id"], "from": d(0), "to": d(1)}))["node"]["calendar"]["rows"]
    nights = [n["sell"]["amount"] for r in rows for c in r["cells"] for b in c["bookings"] for n in b["nights"]]
    assert nights == ["119.40"]
