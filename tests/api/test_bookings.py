"""createBooking / confirmBooking / cancelBooking, the booking lists and the expiry sweeper, over HTTP
against real PostgreSQL. The concurrency tests are in test_booking_races.py."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text, update

from app.services.bookings import sweep_expired_holds
from app.api.ids import decode_id, to_global_id
from app.services.context import Services
from db import models
from db.inventory import room_type_lock_key
from tests.api.test_calendar import START, calendar, column, d, insert_hardblock, record, setup_hotel
from tests.api.test_catalog import CREATE_AGENCY, make_hotel
from tests.support import GraphQL, data

CREATE = """
mutation($input: CreateBookingInput!) { createBooking(input: $input) {
  __typename
  ... on BookingGroup { id reference status expiresAt guestName agency { code } total { amount currency }
                        saleOrder { number status }
                        bookings { id rooms checkIn checkOut status total { amount currency } roomType { code }
                                   hardblock { reference } } }
  ... on SoldOut { shortfalls { roomType { code } date requested available hardblock { reference } } }
  ... on UserError { message code }
  ... on InvalidInput { field }
} }
"""
CONFIRM = """
mutation($id: ID!) { confirmBooking(groupId: $id) {
  __typename
  ... on SaleOrder { id number status total { amount currency } confirmedAt agency { code }
                     group { id status saleOrder { number } bookings { status } } }
  ... on BookingExpired { expiredAt }
  ... on InvalidTransition { state: status }
  ... on UserError { message code }
} }
"""
CANCEL = """
mutation($id: ID!, $reason: String) { cancelBooking(groupId: $id, reason: $reason) {
  __typename
  ... on BookingGroup { id status saleOrder { number status cancelledAt } bookings { status } }
  ... on InvalidTransition { state: status }
  ... on UserError { message code }
  ... on InvalidInput { field }
} }
"""
GROUPS = """
query($status: BookingStatus, $first: Int, $after: String) {
  bookingGroups(status: $status, first: $first, after: $after) {
    edges { cursor node { id reference status agency { code } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
SALE_ORDERS = "{ saleOrders { edges { node { number status group { id } agency { code } } } } }"
AUDIT = """
query($id: ID) { auditLog(entityId: $id) { edges { node { action actorUid actorRole agencyCode before after } } } }
"""
NODE = "query($id: ID!) { node(id: $id) { id } }"


# --- helpers -------------------------------------------------------------------------------------


async def setup(gql, allotment=10, room_types=("STD", "SUP")):
    hotel, ids = await setup_hotel(gql, room_types=room_types, allotment=allotment)
    agencies = {}
    for code in ("SUNTRAVEL", "BLUEWAVE"):
        agencies[code] = data(await gql(CREATE_AGENCY, {"input": {"code": code, "name": code.title()}}))["createAgency"]["id"]
    return hotel, ids, agencies


def item(room_type_id, offset=0, nights=2, rooms=1, hardblock_id=None):
    return {"roomTypeId": room_type_id, "checkIn": d(offset), "checkOut": d(offset + nights), "rooms": rooms,
            "hardblockId": hardblock_id}


def booking_input(agency_id, *items, key=None, guest="Ada Lovelace"):
    return {"idempotencyKey": key or uuid.uuid4().hex, "agencyId": agency_id, "guestName": guest, "items": list(items)}


async def book(gql, agency_id, *items, key=None, role="admin", agency=None, guest="Ada Lovelace"):
    result = await gql(CREATE, {"input": booking_input(agency_id, *items, key=key, guest=guest)}, role=role, agency=agency)
    return data(result)["createBooking"]


async def confirm(gql, group_id, **caller):
    return data(await gql(CONFIRM, {"id": group_id}, **caller))["confirmBooking"]


async def cancel(gql, group_id, reason=None, **caller):
    return data(await gql(CANCEL, {"id": group_id, "reason": reason}, **caller))["cancelBooking"]


async def audit_actions(gql, entity_id):
    return [e["node"] for e in data(await gql(AUDIT, {"id": entity_id}))["auditLog"]["edges"]]


async def expire_now(sessions, group_id):
    """Time travel: the hold's expiry passes (nothing else changes, like in real time)."""
    pk = decode_id(group_id, "BookingGroup", "id")
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    async with sessions() as session, session.begin():
        await session.execute(update(models.BookingGroup).where(models.BookingGroup.id == pk).values(expires_at=past))
        await session.execute(update(models.Booking).where(models.Booking.group_id == pk).values(expires_at=past))


async def count(sessions, model, *where):
    async with sessions() as session:
        return (await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


def runtime_context(gql) -> Services:
    return gql.http._transport.app.state.runtime.services


# --- createBooking -------------------------------------------------------------------------------


async def test_a_hold_is_priced_audited_and_counts_as_held(gql):
    hotel, ids, agencies = await setup(gql)
    before = await calendar(gql, hotel["id"], end=START + timedelta(days=4))

    group = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], nights=3, rooms=2), item(ids["SUP"], rooms=1))

    assert group["__typename"] == "BookingGroup", group
    assert group["status"] == "HELD" and group["guestName"] == "Ada Lovelace"
    assert re.fullmatch(r"BG-[0-9A-F]{10}", group["reference"])
    assert group["agency"]["code"] == "SUNTRAVEL" and group["saleOrder"] is None
    expires = datetime.fromisoformat(group["expiresAt"]) - datetime.now(timezone.utc)
    assert timedelta(minutes=14) < expires <= timedelta(minutes=15)
    assert group["total"] == {"amount": f"{99.5 * 2 * 3 + 99.5 * 2:.2f}", "currency": "EUR"}
    assert [(b["roomType"]["code"], b["rooms"], b["status"], b["total"]["amount"]) for b in group["bookings"]] == [
        ("STD", 2, "HELD", "597.00"), ("SUP", 1, "HELD", "199.00")]

    after = await calendar(gql, hotel["id"], end=START + timedelta(days=4))
    assert after["version"] == before["version"] + 1
    assert column(after, "STD", "held") == [2, 2, 2, 0]
    assert column(after, "STD", "available") == [8, 8, 8, 10]
    assert column(after, "SUP", "held") == [1, 1, 0, 0]

    [entry] = await audit_actions(gql, group["id"])
    assert entry["action"] == "booking_group.created" and entry["actorUid"] == "dev-admin"
    assert entry["after"]["status"] == "HELD" and entry["after"]["agency"] == "SUNTRAVEL"
    assert entry["after"]["total"] == {"amount": "796.00", "currency": "EUR"}
    assert [i["rooms"] for i in entry["after"]["items"]] == [2, 1]


async def test_sold_out_lists_every_short_night_and_books_nothing(gql, sessions):
    hotel, ids, agencies = await setup(gql, allotment=3)
    first = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], nights=2, rooms=2))
    assert first["__typename"] == "BookingGroup"

    short = await book(gql, agencies["BLUEWAVE"], item(ids["SUP"], rooms=1), item(ids["STD"], offset=1, nights=2, rooms=2))
    assert short["__typename"] == "SoldOut" and short["code"] == "SOLD_OUT"
    assert short["shortfalls"] == [{"roomType": {"code": "STD"}, "date": d(1), "requested": 2, "available": 1,
                                    "hardblock": None}]

    # Items of one group on the same cells add up: 1 + 1 fits on night 2, 2 + 2 does not.
    split = await book(gql, agencies["BLUEWAVE"], item(ids["STD"], offset=2, rooms=2), item(ids["STD"], offset=2, rooms=2))
    assert split["__typename"] == "SoldOut"
    assert [(s["date"], s["requested"], s["available"]) for s in split["shortfalls"]] == [(d(2), 4, 3), (d(3), 4, 3)]

    assert await count(sessions, models.BookingGroup) == 1  # all or none: the SUP item was not held either
    cal = await calendar(gql, hotel["id"], end=START + timedelta(days=3))
    assert column(cal, "SUP", "held") == [0, 0, 0]


async def test_validation(gql):
    hotel, ids, agencies = await setup(gql)
    other, other_ids = await make_hotel(gql, code="OPO", room_types=("DBL",))
    sun = agencies["SUNTRAVEL"]
    today = date.today()
    cases = [
        (booking_input(sun), "items"),
        (booking_input(sun, *[item(ids["STD"])] * 21), "items"),
        (booking_input(sun, item(ids["STD"], rooms=0)), "items[0].rooms"),
        (booking_input(sun, item(ids["STD"]), item(ids["STD"], nights=0)), "items[1].checkOut"),
        (booking_input(sun, item(ids["STD"], nights=31)), "items[0].checkOut"),
        (booking_input(sun, {**item(ids["STD"]), "checkIn": (today - timedelta(days=1)).isoformat(),
                             "checkOut": (today + timedelta(days=1)).isoformat()}), "items[0].checkIn"),
        (booking_input(sun, item(to_global_id("RoomType", 99999))), "items[0].roomTypeId"),
        (booking_input(sun, item(hotel["id"])), "items[0].roomTypeId"),
        (booking_input(sun, item(ids["STD"]), item(other_ids["DBL"])), "items[1].roomTypeId"),
        (booking_input(sun, item(ids["STD"], offset=29, nights=2)), "items[0].checkIn"),  # past the contract
        (booking_input(sun, item(ids["STD"]), guest="  "), "guestName"),
        (booking_input(sun, item(ids["STD"]), key=" "), "idempotencyKey"),
        (booking_input(None, item(ids["STD"])), "agencyId"),
        (booking_input(to_global_id("Agency", 99999), item(ids["STD"])), "agencyId"),
        (booking_input(sun, item(ids["STD"], hardblock_id="nope")), "items[0].hardblockId"),
    ]
    for input, field in cases:
        result = data(await gql(CREATE, {"input": input}))["createBooking"]
        assert result["__typename"] == "InvalidInput", (field, result)
        assert (result["field"], result["code"]) == (field, "INVALID_INPUT"), (field, result)
    outside = data(await gql(CREATE, {"input": cases[9][0]}))["createBooking"]
    assert "a stay outside the contract" in outside["message"]

    # Agents book for their own agency only.
    mine = await book(gql, None, item(ids["STD"]), role="agent", agency="SUNTRAVEL")
    assert mine["__typename"] == "BookingGroup" and mine["agency"]["code"] == "SUNTRAVEL"
    same = await book(gql, sun, item(ids["STD"]), role="agent", agency="SUNTRAVEL")
    assert same["__typename"] == "BookingGroup"
    theirs = await book(gql, agencies["BLUEWAVE"], item(ids["STD"]), role="agent", agency="SUNTRAVEL")
    assert (theirs["__typename"], theirs["field"]) == ("InvalidInput", "agencyId")
    unknown = await book(gql, None, item(ids["STD"]), role="agent", agency="NOSUCH")
    assert (unknown["__typename"], unknown["field"]) == ("InvalidInput", "agencyId")

    anonymous = await gql(CREATE, {"input": booking_input(sun, item(ids["STD"]))}, role=None)
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_idempotent_retry_returns_the_first_group_and_a_changed_request_conflicts(gql, sessions):
    hotel, ids, agencies = await setup(gql)
    first = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], rooms=2), key="order-42")
    again = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], rooms=2), key="order-42")
    assert again["__typename"] == "BookingGroup" and again["id"] == first["id"]
    assert again["reference"] == first["reference"]

    changed = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], rooms=3), key="order-42")
    assert changed["__typename"] == "IdempotencyConflict" and changed["code"] == "IDEMPOTENCY_CONFLICT"
    other_guest = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], rooms=2), key="order-42", guest="Bob")
    assert other_guest["__typename"] == "IdempotencyConflict"

    # Keys are scoped to the agency: another agency may use the same key.
    blue = await book(gql, agencies["BLUEWAVE"], item(ids["STD"], rooms=2), key="order-42")
    assert blue["__typename"] == "BookingGroup" and blue["id"] != first["id"]
    # An agent retrying the request an operator made for its agency gets the same group.
    agent = await book(gql, None, item(ids["STD"], rooms=2), key="order-42", role="agent", agency="SUNTRAVEL")
    assert agent["id"] == first["id"]

    assert await count(sessions, models.BookingGroup) == 2
    cal = await calendar(gql, hotel["id"], end=START + timedelta(days=1))
    assert column(cal, "STD", "held") == [4]


async def test_booking_from_a_hardblock_uses_the_block_not_the_pool(gql, sessions):
    hotel, ids, agencies = await setup(gql)
    std = decode_id(ids["STD"], "RoomType", "id")
    sun = decode_id(agencies["SUNTRAVEL"], "Agency", "id")
    blue = decode_id(agencies["BLUEWAVE"], "Agency", "id")
    block = to_global_id("Hardblock", await insert_hardblock(sessions, hotel, std, sun, rooms=3, nights=3))
    blue_block = to_global_id("Hardblock", await insert_hardblock(sessions, hotel, std, blue, rooms=1, reference="HB-2"))

    held = await book(gql, None, item(ids["STD"], rooms=2, hardblock_id=block), role="agent", agency="SUNTRAVEL")
    assert held["__typename"] == "BookingGroup" and held["bookings"][0]["hardblock"]["reference"] == "HB-1"
    cal = await calendar(gql, hotel["id"], end=START + timedelta(days=3))
    assert column(cal, "STD", "hardblocked") == [4, 4, 4]
    assert column(cal, "STD", "held") == [0, 0, 0]  # the block's rooms left the pool already
    assert column(cal, "STD", "available") == [6, 6, 6]

    short = await book(gql, None, item(ids["STD"], offset=1, nights=3, rooms=2, hardblock_id=block),
                       role="agent", agency="SUNTRAVEL")
    assert short["__typename"] == "SoldOut"
    assert [(s["date"], s["requested"], s["available"], s["hardblock"]["reference"]) for s in short["shortfalls"]] == [
        (d(1), 2, 1, "HB-1"), (d(3), 2, 0, "HB-1")]  # night 2 has 3 left; night 3 is outside the block

    foreign = await book(gql, None, item(ids["STD"], hardblock_id=blue_block), role="agent", agency="SUNTRAVEL")
    assert (foreign["__typename"], foreign["field"]) == ("InvalidInput", "items[0].hardblockId")
    staff_foreign = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], hardblock_id=blue_block))
    assert staff_foreign["__typename"] == "InvalidInput"
    wrong_type = await book(gql, agencies["SUNTRAVEL"], item(ids["SUP"], hardblock_id=block))
    assert (wrong_type["__typename"], wrong_type["field"]) == ("InvalidInput", "items[0].hardblockId")


# --- confirmBooking / cancelBooking --------------------------------------------------------------


async def test_confirm_creates_the_sale_order_once(gql):
    hotel, ids, agencies = await setup(gql)
    group = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], rooms=2))
    version = (await calendar(gql, hotel["id"]))["version"]

    order = await confirm(gql, group["id"])
    assert order["__typename"] == "SaleOrder", order
    assert re.fullmatch(rf"SO-{datetime.now(timezone.utc).year}-\d{{6}}", order["number"])
    assert order["status"] == "CONFIRMED" and order["total"] == {"amount": "398.00", "currency": "EUR"}
    assert order["agency"]["code"] == "SUNTRAVEL"
    assert order["group"]["status"] == "CONFIRMED" and order["group"]["saleOrder"]["number"] == order["number"]
    assert [b["status"] for b in order["group"]["bookings"]] == ["CONFIRMED"]

    cal = await calendar(gql, hotel["id"], end=START + timedelta(days=3))
    assert cal["version"] == version + 1
    assert column(cal, "STD", "held") == [0, 0, 0]
    assert column(cal, "STD", "sold") == [2, 2, 0]
    assert column(cal, "STD", "available") == [8, 8, 10]

    again = await confirm(gql, group["id"])
    assert again["id"] == order["id"] and again["number"] == order["number"]
    assert (await calendar(gql, hotel["id"]))["version"] == version + 1  # nothing written

    second = await confirm(gql, (await book(gql, agencies["SUNTRAVEL"], item(ids["SUP"])))["id"])
    assert second["number"] != order["number"]

    assert [e["action"] for e in await audit_actions(gql, group["id"])] == [
        "booking_group.confirmed", "booking_group.created"]
    [created] = await audit_actions(gql, order["id"])
    assert created["action"] == "sale_order.created" and created["after"]["total"]["amount"] == "398.00"


async def test_cancel_releases_the_rooms_and_the_sale_order(gql):
    hotel, ids, agencies = await setup(gql)
    held = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], rooms=2))
    sold = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], rooms=3))
    order = await confirm(gql, sold["id"])

    cancelled = await cancel(gql, held["id"], "guest changed plans")
    assert cancelled["status"] == "CANCELLED" and cancelled["saleOrder"] is None
    assert cancelled["bookings"] == [{"status": "CANCELLED"}]
    cancelled_sold = await cancel(gql, sold["id"])
    assert cancelled_sold["status"] == "CANCELLED"
    assert cancelled_sold["saleOrder"]["number"] == order["number"]
    assert cancelled_sold["saleOrder"]["status"] == "CANCELLED" and cancelled_sold["saleOrder"]["cancelledAt"]

    cal = await calendar(gql, hotel["id"], end=START + timedelta(days=2))
    assert column(cal, "STD", "held") == column(cal, "STD", "sold") == [0, 0]
    assert column(cal, "STD", "available") == [10, 10]
    version = cal["version"]

    again = await cancel(gql, held["id"], "again")
    assert again["status"] == "CANCELLED"
    assert (await calendar(gql, hotel["id"]))["version"] == version  # idempotent: nothing written

    not_again = await confirm(gql, held["id"])
    assert (not_again["__typename"], not_again["state"]) == ("InvalidTransition", "CANCELLED")

    entries = await audit_actions(gql, held["id"])
    assert [e["action"] for e in entries] == ["booking_group.cancelled", "booking_group.created"]
    assert entries[0]["after"]["reason"] == "guest changed plans" and entries[0]["before"]["status"] == "HELD"
    [so_cancelled, _] = await audit_actions(gql, order["id"])
    assert so_cancelled["action"] == "sale_order.cancelled"

    too_long = await cancel(gql, sold["id"], "x" * 501)
    assert (too_long["__typename"], too_long["field"]) == ("InvalidInput", "reason")


async def test_an_expired_hold_stops_counting_at_once_and_cannot_be_confirmed(gql, sessions):
    hotel, ids, agencies = await setup(gql)
    group = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], rooms=4))
    await expire_now(sessions, group["id"])

    # No sweeper ran: the hold no longer counts, and reads as EXPIRED.
    cal = await calendar(gql, hotel["id"], end=START + timedelta(days=2))
    assert column(cal, "STD", "held") == [0, 0] and column(cal, "STD", "available") == [10, 10]
    expired = data(await gql(GROUPS, {"status": "EXPIRED"}))["bookingGroups"]["edges"]
    assert [e["node"]["id"] for e in expired] == [group["id"]] and expired[0]["node"]["status"] == "EXPIRED"
    assert data(await gql(GROUPS, {"status": "HELD"}))["bookingGroups"]["edges"] == []
    assert await count(sessions, models.BookingGroup, models.BookingGroup.status == "HELD") == 1

    result = await confirm(gql, group["id"])
    assert result["__typename"] == "BookingExpired" and result["code"] == "BOOKING_EXPIRED"
    assert datetime.fromisoformat(result["expiredAt"]) < datetime.now(timezone.utc)
    # The confirm recorded what time did.
    assert await count(sessions, models.BookingGroup, models.BookingGroup.status == "EXPIRED") == 1
    assert await count(sessions, models.Booking, models.Booking.status == "EXPIRED") == 1
    assert [e["action"] for e in await audit_actions(gql, group["id"])] == [
        "booking_group.expired", "booking_group.created"]
    assert await count(sessions, models.SaleOrder) == 0

    again = await confirm(gql, group["id"])
    assert again["__typename"] == "BookingExpired"
    no_cancel = await cancel(gql, group["id"])
    assert (no_cancel["__typename"], no_cancel["state"]) == ("InvalidTransition", "EXPIRED")


async def test_the_sale_order_keeps_the_price_of_the_hold(gql):
    hotel, ids, agencies = await setup(gql)
    group = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], rooms=1, nights=2))
    assert group["total"]["amount"] == "199.00"
    await record(gql, kind="RATE_CHANGE", roomTypeId=ids["STD"], **{"from": d(0), "to": d(5)},
                 rate={"amount": "150.00", "currency": "EUR"})

    order = await confirm(gql, group["id"])
    assert order["total"] == {"amount": "199.00", "currency": "EUR"}
    later = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], rooms=1, nights=2))
    assert later["total"]["amount"] == "300.00"  # new holds use the new rate


async def test_agents_only_see_and_touch_their_own_groups(gql):
    hotel, ids, agencies = await setup(gql)
    sun = await book(gql, None, item(ids["STD"]), role="agent", agency="SUNTRAVEL")
    blue = await book(gql, None, item(ids["STD"]), role="agent", agency="BLUEWAVE")
    sun_agent, blue_agent = {"role": "agent", "agency": "SUNTRAVEL"}, {"role": "agent", "agency": "BLUEWAVE"}

    assert (await confirm(gql, blue["id"], **sun_agent))["__typename"] == "NotFound"
    assert (await cancel(gql, blue["id"], **sun_agent))["__typename"] == "NotFound"
    assert (await confirm(gql, "not-an-id", **sun_agent))["__typename"] == "NotFound"
    assert (await confirm(gql, to_global_id("BookingGroup", 99999)))["__typename"] == "NotFound"
    order = await confirm(gql, sun["id"], **sun_agent)
    assert order["__typename"] == "SaleOrder"
    await confirm(gql, blue["id"], **blue_agent)

    def ids_of(result, name):
        return [e["node"]["agency"]["code"] for e in data(result)[name]["edges"]]

    assert ids_of(await gql(GROUPS, {}, **sun_agent), "bookingGroups") == ["SUNTRAVEL"]
    assert sorted(ids_of(await gql(GROUPS, {}), "bookingGroups")) == ["BLUEWAVE", "SUNTRAVEL"]
    assert ids_of(await gql(SALE_ORDERS, **sun_agent), "saleOrders") == ["SUNTRAVEL"]
    assert sorted(ids_of(await gql(SALE_ORDERS), "saleOrders")) == ["BLUEWAVE", "SUNTRAVEL"]
    assert data(await gql(GROUPS, {}, role="agent", agency="NOSUCH"))["bookingGroups"]["edges"] == []
    assert data(await gql(NODE, {"id": blue["id"]}, **sun_agent))["node"] is None
    assert data(await gql(NODE, {"id": sun["id"]}, **sun_agent))["node"] == {"id": sun["id"]}


async def test_booking_groups_paginate_newest_first_and_filter_by_status(gql):
    hotel, ids, agencies = await setup(gql)
    made = [await book(gql, agencies["SUNTRAVEL"], item(ids["STD"])) for _ in range(5)]
    await confirm(gql, made[0]["id"])
    await cancel(gql, made[1]["id"])

    page = data(await gql(GROUPS, {"first": 2}))["bookingGroups"]
    assert [e["node"]["id"] for e in page["edges"]] == [made[4]["id"], made[3]["id"]]
    assert page["pageInfo"]["hasNextPage"]
    rest = data(await gql(GROUPS, {"first": 10, "after": page["pageInfo"]["endCursor"]}))["bookingGroups"]
    assert [e["node"]["id"] for e in rest["edges"]] == [g["id"] for g in reversed(made[:3])]
    for status, expected in (("HELD", made[2:]), ("CONFIRMED", made[:1]), ("CANCELLED", made[1:2])):
        found = data(await gql(GROUPS, {"status": status}))["bookingGroups"]["edges"]
        assert sorted(e["node"]["id"] for e in found) == sorted(g["id"] for g in expected), status


# --- the expiry sweeper --------------------------------------------------------------------------


async def test_the_sweeper_records_lapsed_holds_once(gql, sessions):
    hotel, ids, agencies = await setup(gql)
    lapsed = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], rooms=2))
    live = await book(gql, agencies["SUNTRAVEL"], item(ids["SUP"], rooms=1))
    await expire_now(sessions, lapsed["id"])
    version = (await calendar(gql, hotel["id"]))["version"]
    context = runtime_context(gql)

    assert await sweep_expired_holds(context) == [decode_id(lapsed["id"], "BookingGroup", "id")]
    assert await sweep_expired_holds(context) == []

    assert await count(sessions, models.Booking, models.Booking.status == "EXPIRED") == 1
    assert await count(sessions, models.BookingGroup, models.BookingGroup.status == "HELD") == 1
    [entry, _] = await audit_actions(gql, lapsed["id"])
    assert (entry["action"], entry["actorUid"], entry["actorRole"]) == ("booking_group.expired", "system", "system")
    assert (entry["before"]["status"], entry["after"]["status"]) == ("HELD", "EXPIRED")
    assert (await calendar(gql, hotel["id"]))["version"] == version + 1
    assert (await confirm(gql, live["id"]))["__typename"] == "SaleOrder"
    assert (await confirm(gql, lapsed["id"]))["__typename"] == "BookingExpired"


async def test_the_sweeper_task_runs_until_cancelled(gql, sessions):
    from app.services.jobs import run_expiry_sweeper

    hotel, ids, agencies = await setup(gql)
    group = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"]))
    await expire_now(sessions, group["id"])
    task = asyncio.create_task(run_expiry_sweeper(runtime_context(gql), interval_s=0.01))
    try:
        for _ in range(300):
            if await count(sessions, models.BookingGroup, models.BookingGroup.status == "EXPIRED"):
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert await count(sessions, models.BookingGroup, models.BookingGroup.status == "EXPIRED") == 1


# --- short expiry and lock timeouts: an app with its own settings ---------------------------------


@pytest.fixture(scope="module")
async def quick_app(settings) -> AsyncIterator[Any]:
    from app.main import create_app

    application = create_app(settings.model_copy(update={"booking_expiry_minutes": 0.01, "lock_timeout_ms": 100}))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def quick(quick_app, db) -> AsyncIterator[GraphQL]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=quick_app), base_url="http://staysync.test") as http:
        yield GraphQL(http)


async def test_holds_lapse_after_the_configured_expiry(gql, quick):
    hotel, ids, agencies = await setup(gql)
    group = await book(quick, agencies["SUNTRAVEL"], item(ids["STD"], rooms=3))
    expires_at = datetime.fromisoformat(group["expiresAt"])
    assert expires_at - datetime.now(timezone.utc) <= timedelta(seconds=0.6)
    assert column(await calendar(gql, hotel["id"], end=START + timedelta(days=1)), "STD", "held") == [3]

    await asyncio.sleep(max(0.0, (expires_at - datetime.now(timezone.utc)).total_seconds()) + 0.05)
    assert column(await calendar(gql, hotel["id"], end=START + timedelta(days=1)), "STD", "held") == [0]
    result = await confirm(quick, group["id"])
    assert result["__typename"] == "BookingExpired"
    assert datetime.fromisoformat(result["expiredAt"]) == expires_at


async def test_a_busy_inventory_lock_is_a_retryable_lock_timeout(gql, quick, engine):
    hotel, ids, agencies = await setup(gql)
    group = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"]))
    std = decode_id(ids["STD"], "RoomType", "id")
    async with engine.connect() as holder:
        await holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": room_type_lock_key(std)})
        try:
            timed_out = await book(quick, agencies["SUNTRAVEL"], item(ids["STD"]))
            confirm_timed_out = await confirm(quick, group["id"])
            cancel_timed_out = await cancel(quick, group["id"])
            other_room_type = await book(quick, agencies["SUNTRAVEL"], item(ids["SUP"]))
        finally:
            await holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": room_type_lock_key(std)})
    assert timed_out["__typename"] == "LockTimeout" and timed_out["code"] == "LOCK_TIMEOUT"
    assert confirm_timed_out["__typename"] == cancel_timed_out["__typename"] == "LockTimeout"
    assert other_room_type["__typename"] == "BookingGroup"  # other room types proceed in parallel
    retried = await book(quick, agencies["SUNTRAVEL"], item(ids["STD"]))
    assert retried["__typename"] == "BookingGroup"


# --- one clock for every host ----------------------------------------------------------------------


async def test_holds_lapse_on_the_databases_clock_not_a_skewed_hosts(gql, sessions, monkeypatch):
    """Another app host whose clock runs 20 minutes fast must not see a live hold as lapsed: it
    would sell the hold's rooms again, refuse its confirmation, and sweep it."""
    hotel, ids, agencies = await setup(gql, allotment=1)
    held = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], rooms=1))
    real = models.utcnow
    monkeypatch.setattr(models, "utcnow", lambda: real() + timedelta(minutes=20))

    again = await book(gql, agencies["BLUEWAVE"], item(ids["STD"], rooms=1))
    assert again["__typename"] == "SoldOut"
    assert await sweep_expired_holds(runtime_context(gql)) == []
    confirmed = await confirm(gql, held["id"])
    assert confirmed["__typename"] == "SaleOrder"


async def test_a_write_waiting_too_long_for_the_hotels_version_row_is_a_lock_timeout(gql, sessions):
    """The room types' locks are free, but another write of the hotel holds its version row (it is
    committing): past lock_timeout the answer is the typed, retryable LockTimeout, and nothing changed."""
    hotel, ids, agencies = await setup(gql)
    await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], rooms=1))  # the version row exists
    hotel_pk = decode_id(hotel["id"], "Hotel", "id")
    before = await calendar(gql, hotel["id"])
    async with sessions() as blocker, blocker.begin():
        await blocker.execute(text("SELECT version FROM inventory_version WHERE hotel_id = :h FOR UPDATE"),
                              {"h": hotel_pk})
        answer = await book(gql, agencies["SUNTRAVEL"], item(ids["SUP"], rooms=1))
    assert answer["__typename"] == "LockTimeout" and "retry" in answer["message"]
    assert (await calendar(gql, hotel["id"]))["version"] == before["version"]


async def test_a_reference_drawn_twice_is_drawn_again(gql, monkeypatch):
    """References are random; a draw that is already taken costs a retry, not an error, and the
    failed draw leaves no trace (no version bumped for it)."""
    import secrets

    from tests.api.test_hardblocks import create_block

    hotel, ids, agencies = await setup(gql)
    draws = iter(["c0ffee0000", "c0ffee0000", "c0ffee0001", "beef0000", "beef0000", "beef0001"])
    monkeypatch.setattr(secrets, "token_hex", lambda n: next(draws)[: 2 * n])
    first = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], rooms=1))
    version = (await calendar(gql, hotel["id"]))["version"]
    second = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], rooms=1))
    assert (first["reference"], second["reference"]) == ("BG-C0FFEE0000", "BG-C0FFEE0001")
    assert (await calendar(gql, hotel["id"]))["version"] == version + 1
    trail = data(await gql("query($id: ID!) { node(id: $id) { ... on BookingGroup { auditTrail { action after } } } }",
                           {"id": second["id"]}))["node"]["auditTrail"]
    assert [e["after"]["reference"] for e in trail if e["action"] == "booking_group.created"] == [
        "BG-C0FFEE0001"], "the audit entry names the reference the group got"

    blocks = [await create_block(gql, agencies["SUNTRAVEL"], ids["SUP"], rooms=1) for _ in range(2)]
    assert [b["reference"] for b in blocks] == ["HB-BEEF0000", "HB-BEEF0001"]
