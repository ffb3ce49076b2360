"""Reports through the API and as CSV: utilisation agrees with the calendar to the room on random
data, revenue counts frozen sell prices by stay night, pickup adds up each block's slots, and
agents see only their own agency's rows, sell only."""

from __future__ import annotations

import csv
import io
import random
from datetime import date, timedelta

import pytest

from tests.api.test_bookings import book, cancel, confirm, item, setup
from tests.api.test_calendar import START, d
from tests.api.test_hardblocks import CREATE_BLOCK
from tests.api.test_pricing import rule, upsert
from tests.support import data, token

UTILISATION = """query($hotel: ID!, $from: Date!, $to: Date!, $by: Period!) {
  utilisationReport(hotelId: $hotel, from: $from, to: $to, groupBy: $by) {
    roomType { code } from to allotment hardblocked held sold released available overcommitted closedNights
    utilisationPercent } }"""
CALENDAR = """query($id: ID!, $from: Date!, $to: Date!) { node(id: $id) { ... on Hotel { calendar(from: $from, to: $to) {
  rows { roomType { code } cells { date allotment hardblocked held sold available overcommitted closed } } } } } }"""
REVENUE = """query($from: Date!, $to: Date!, $by: RevenueKey!, $hotel: ID) {
  revenueReport(from: $from, to: $to, groupBy: $by, hotelId: $hotel) {
    key label bookings roomNights revenue { amount currency } cost { amount } margin { amount }
    cancellations cancelledRoomNights averageDailyRate { amount } } }"""
PICKUP = """query($from: Date!, $to: Date!, $hotel: ID, $agency: ID) {
  pickupReport(from: $from, to: $to, hotelId: $hotel, agencyId: $agency) {
    block { reference } agency { code } roomType { code } roomNightsBlocked roomNightsPickedUp
    roomNightsReleased roomNightsRemaining pickupPercent washPercent } }"""


async def block(gql, agency_id, room_type_id, start, nights, rooms):
    result = data(await gql(CREATE_BLOCK, {"input": {
        "agencyId": agency_id, "roomTypeId": room_type_id, "from": d(start), "to": d(start + nights), "rooms": rooms,
        "releaseDays": 7}}))["createHardblock"]
    assert result["__typename"] == "Hardblock", result
    return result


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_utilisation_agrees_with_the_calendar_on_random_data(gql, seed):
    rnd = random.Random(seed)
    hotel, ids, agencies = await setup(gql, allotment=12)
    codes = list(ids)
    for _ in range(rnd.randrange(2, 5)):
        await block(gql, agencies[rnd.choice(list(agencies))], ids[rnd.choice(codes)], rnd.randrange(0, 20),
                    rnd.randrange(1, 6), rnd.randrange(1, 3))
    for _ in range(rnd.randrange(6, 14)):
        group = await book(gql, agencies[rnd.choice(list(agencies))],
                           item(ids[rnd.choice(codes)], rnd.randrange(0, 25), nights=rnd.randrange(1, 5),
                                rooms=rnd.randrange(1, 3)))
        if group["__typename"] == "BookingGroup" and rnd.random() < 0.6:
            await confirm(gql, group["id"])
            if rnd.random() < 0.2:
                await cancel(gql, group["id"])
    start, end = START, START + timedelta(days=30)
    calendar = data(await gql(CALENDAR, {"id": hotel["id"], "from": start.isoformat(), "to": end.isoformat()}))
    cells = {(r["roomType"]["code"], c["date"]): c for r in calendar["node"]["calendar"]["rows"] for c in r["cells"]}
    for period in ("DAY", "WEEK", "MONTH"):
        rows = data(await gql(UTILISATION, {"hotel": hotel["id"], "from": start.isoformat(), "to": end.isoformat(),
                                             "by": period}))["utilisationReport"]
        assert {r["roomType"]["code"] for r in rows} == set(codes)
        assert sum((date.fromisoformat(r["to"]) - date.fromisoformat(r["from"])).days for r in rows) == 30 * len(codes)
        for row in rows:
            nights = [cells[(row["roomType"]["code"], (date.fromisoformat(row["from"]) + timedelta(days=i)).isoformat())]
                      for i in range((date.fromisoformat(row["to"]) - date.fromisoformat(row["from"])).days)]
            for field in ("allotment", "hardblocked", "held", "sold", "available", "overcommitted"):
                assert row[field] == sum(c[field] for c in nights), (period, row, field)
            assert row["closedNights"] == sum(c["closed"] for c in nights)
            if row["allotment"]:
                assert row["utilisationPercent"] == pytest.approx(round(row["sold"] * 100 / row["allotment"], 2))


async def test_utilisation_is_staff_only_and_checks_its_range(gql):
    hotel, ids, agencies = await setup(gql)
    variables = {"hotel": hotel["id"], "from": d(0), "to": d(5), "by": "DAY"}
    refused = await gql(UTILISATION, variables, role="agent", agency="SUNTRAVEL")
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    backwards = await gql(UTILISATION, {**variables, "from": d(5), "to": d(0)})
    assert backwards["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def revenue(gql, by, start=0, end=30, role="admin", agency=None, hotel=None):
    result = await gql(REVENUE, {"from": d(start), "to": d(end), "by": by, "hotel": hotel}, role=role, agency=agency)
    return data(result)["revenueReport"]


async def test_revenue_counts_frozen_sell_prices_by_stay_night(gql):
    hotel, ids, agencies = await setup(gql)
    await upsert(gql, hotel, rule("Margin", 1, percent="20"))
    sun, blue = agencies["SUNTRAVEL"], agencies["BLUEWAVE"]
    # SUNTRAVEL: 2 rooms x 3 nights confirmed (119.40 a night each), then a held one (not a sale)
    confirmed = await book(gql, sun, item(ids["STD"], 0, nights=3, rooms=2))
    await confirm(gql, confirmed["id"])
    await book(gql, sun, item(ids["STD"], 5, nights=2))
    # BLUEWAVE: confirmed then cancelled
    gone = await book(gql, blue, item(ids["SUP"], 1, nights=2))
    await confirm(gql, gone["id"])
    await cancel(gql, gone["id"])
    await upsert(gql, hotel, rule("Margin", 1, percent="50"))  # later prices change nothing sold
    rows = {r["key"]: r for r in await revenue(gql, "AGENCY")}
    assert set(rows) == {"SUNTRAVEL", "BLUEWAVE"}
    sun_row = rows["SUNTRAVEL"]
    assert (sun_row["bookings"], sun_row["roomNights"], sun_row["revenue"]) == (1, 6, {"amount": "716.40",
                                                                                       "currency": "EUR"})
    assert sun_row["cost"] == {"amount": "597.00"} and sun_row["margin"] == {"amount": "119.40"}
    assert sun_row["averageDailyRate"] == {"amount": "119.40"}
    blue_row = rows["BLUEWAVE"]
    assert (blue_row["bookings"], blue_row["roomNights"], blue_row["revenue"]["amount"]) == (0, 0, "0.00")
    assert (blue_row["cancellations"], blue_row["cancelledRoomNights"]) == (1, 2)
    # a range cutting the stay counts only its nights
    cut = {r["key"]: r for r in await revenue(gql, "AGENCY", start=1, end=2)}["SUNTRAVEL"]
    assert (cut["roomNights"], cut["revenue"]["amount"]) == (2, "238.80")
    by_room_type = {r["key"]: r["roomNights"] for r in await revenue(gql, "ROOM_TYPE")}
    assert by_room_type == {"LIS/STD": 6, "LIS/SUP": 0}
    assert [r["key"] for r in await revenue(gql, "HOTEL")] == ["LIS"]


async def test_revenue_by_month_splits_a_stay_across_months_exactly(gql):
    hotel, ids, agencies = await setup(gql)
    month_end = (START.replace(day=28) + timedelta(days=4)).replace(day=1)  # the first of the next month
    offset = (month_end - START).days
    if offset < 2:  # keep the stay inside the contracts
        offset += 30
        month_end = (month_end.replace(day=28) + timedelta(days=4)).replace(day=1)
    await upsert(gql, hotel, rule("Month end", 1, amount="10.00", **{"from": (month_end - timedelta(days=1)).isoformat(),
                                                                       "to": month_end.isoformat()}))
    group = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], offset - 2, nights=4))
    await confirm(gql, group["id"])
    rows = await revenue(gql, "MONTH", start=0, end=offset + 10)
    by_month = {r["key"]: r for r in rows}
    before, after = (month_end - timedelta(days=1)).strftime("%Y-%m"), month_end.strftime("%Y-%m")
    assert (by_month[before]["roomNights"], by_month[before]["revenue"]["amount"]) == (2, "209.00")  # 99.50 + 109.50
    assert (by_month[after]["roomNights"], by_month[after]["revenue"]["amount"]) == (2, "199.00")
    months, month = [], START.replace(day=1)  # every month the range touches, in order, zeros too
    while month < START + timedelta(days=offset + 10):
        months.append(month.strftime("%Y-%m"))
        month = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    assert [r["key"] for r in rows] == months


async def test_agents_see_their_own_revenue_sell_only(gql):
    hotel, ids, agencies = await setup(gql)
    for agency in ("SUNTRAVEL", "BLUEWAVE"):
        group = await book(gql, agencies[agency], item(ids["STD"], 0))
        await confirm(gql, group["id"])
    mine = await revenue(gql, "AGENCY", role="agent", agency="SUNTRAVEL")
    assert [r["key"] for r in mine] == ["SUNTRAVEL"] and mine[0]["cost"] is None and mine[0]["margin"] is None
    by_hotel = await revenue(gql, "HOTEL", role="agent", agency="SUNTRAVEL")
    assert by_hotel[0]["roomNights"] == 2  # their own nights only
    bad = await gql(REVENUE, {"from": d(0), "to": d(10), "by": "AGENCY", "hotel": None}, role="agent",
                    agency="NOBODY")
    assert data(bad)["revenueReport"] == []


async def test_pickup_adds_up_each_blocks_slots(gql):
    hotel, ids, agencies = await setup(gql)
    sun = agencies["SUNTRAVEL"]
    created = await block(gql, sun, ids["STD"], 0, 4, 3)  # 12 room nights
    await block(gql, agencies["BLUEWAVE"], ids["SUP"], 2, 2, 1)
    group = await book(gql, sun, item(ids["STD"], 0, nights=2, rooms=2, hardblock_id=created["id"]))
    assert group["__typename"] == "BookingGroup"
    release = "mutation($id: ID!, $dates: [Date!]!) { releaseHardblockNights(id: $id, dates: $dates) { __typename } }"
    data(await gql(release, {"id": created["id"], "dates": [d(3)]}))
    rows = data(await gql(PICKUP, {"from": d(0), "to": d(10)}))["pickupReport"]
    mine = next(r for r in rows if r["block"]["reference"] == created["reference"])
    assert (mine["roomNightsBlocked"], mine["roomNightsPickedUp"], mine["roomNightsReleased"],
            mine["roomNightsRemaining"]) == (12, 4, 3, 5)
    assert mine["pickupPercent"] == pytest.approx(33.33) and mine["washPercent"] == 25.0
    assert mine["agency"] == {"code": "SUNTRAVEL"} and mine["roomType"] == {"code": "STD"}
    theirs = data(await gql(PICKUP, {"from": d(0), "to": d(10)}, role="agent", agency="BLUEWAVE"))["pickupReport"]
    assert [r["agency"]["code"] for r in theirs] == ["BLUEWAVE"]
    cut = data(await gql(PICKUP, {"from": d(1), "to": d(2), "agency": sun}))["pickupReport"]
    assert [(r["roomNightsBlocked"], r["roomNightsPickedUp"]) for r in cut] == [(3, 2)]


def parse(body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body)))


async def test_csv_exports_match_graphql_and_refuse_bad_requests(gql, client):
    hotel, ids, agencies = await setup(gql)
    group = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], 0, nights=2), guest='Müller, "Hans"')
    await confirm(gql, group["id"])
    admin = {"Authorization": f"Bearer {token('admin')}"}

    async def get(name, role_headers=admin, **params):
        return await client.get(f"/reports/{name}.csv", params=params, headers=role_headers)

    response = await get("revenue", **{"from": d(0), "to": d(5), "groupBy": "AGENCY"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv; charset=utf-8")
    table = parse(response.text)
    assert table[0][:6] == ["key", "label", "currency", "bookings", "room_nights", "revenue"]
    assert [row[:6] for row in table[1:]] == [["BLUEWAVE", "Bluewave", "EUR", "0", "0", "0.00"],
                                              ["SUNTRAVEL", "Suntravel", "EUR", "1", "2", "199.00"]]
    lines = parse((await get("bookings", **{"from": d(0), "to": d(5)})).text)
    assert lines[1][lines[0].index("guest_name")] == 'Müller, "Hans"' and "net_amount" in lines[0]
    agent = {"Authorization": f"Bearer {token('agent', 'SUNTRAVEL')}"}
    mine = parse((await get("bookings", agent, **{"from": d(0), "to": d(5)})).text)
    assert "net_amount" not in mine[0] and len(mine) == 2
    utilisation = parse((await get("utilisation", hotelId=hotel["id"], groupBy="WEEK", **{"from": d(0), "to": d(14)})).text)
    assert utilisation[0][0] == "room_type" and len(utilisation) > 2
    pickup = await get("pickup", **{"from": d(0), "to": d(5)})
    assert pickup.status_code == 200 and parse(pickup.text)[0][0] == "hardblock"
    assert (await get("utilisation", agent, hotelId=hotel["id"], groupBy="DAY", **{"from": d(0), "to": d(2)})
            ).status_code == 403
    missing = await get("revenue", **{"from": d(0), "groupBy": "AGENCY"})
    assert missing.status_code == 400 and "to is required" in missing.text
    assert (await get("revenue", **{"from": d(0), "to": d(5), "groupBy": "WEEKDAY"})).status_code == 400
    assert (await get("revenue", **{"from": "yesterday", "to": d(5), "groupBy": "AGENCY"})).status_code == 400
    assert (await get("revenue", {}, **{"from": d(0), "to": d(5), "groupBy": "AGENCY"})).status_code == 401
    assert (await get("revenue", {"Authorization": "Bearer nonsense"}, **{"from": d(0), "to": d(5),
                                                                          "groupBy": "AGENCY"})).status_code == 401
    far = await get("revenue", **{"from": "9999-06-01", "to": "9999-12-31", "groupBy": "MONTH"})
    assert far.status_code == 400 and "must be on or before" in far.text  # not a crash past the last night
    assert (await get("secrets", **{"from": d(0), "to": d(5)})).status_code == 404
    assert (await get("utilisation", hotelId="not-an-id", groupBy="DAY", **{"from": d(0), "to": d(5)})).status_code == 400


async def test_a_csv_that_fails_mid_stream_says_so_at_its_end(gql, client, monkeypatch):
    """Rows already sent cannot be taken back: the body then ends with an error line, never as if
    it were complete."""
    from db import reports as report_sql

    def failing(staff: bool) -> str:  # rows stream out, then the 100,000th divides by zero
        return ("SELECT g AS n, 1 / (g - 100000) AS x FROM generate_series(1, 200000) AS g "
                "WHERE $1::date IS NOT NULL AND $2::date IS NOT NULL AND ($3::integer IS NULL OR true) "
                "AND ($4::text IS NULL OR true)")

    monkeypatch.setattr(report_sql, "booking_lines_copy", failing)
    response = await client.get("/reports/bookings.csv", params={"from": d(0), "to": d(5)},
                                headers={"Authorization": f"Bearer {token('admin')}"})
    assert response.status_code == 200
    lines = response.text.splitlines()
    assert lines[0] == "n,x" and len(lines) > 1000
    assert lines[-1].startswith("# error: the export failed") and "incomplete" in lines[-1]
