"""Hardblocks over HTTP against real PostgreSQL: create, amend, give back, revert, release (whole,
nights, bulk), extend, preview, grid and overlay, auto-release, scoping and audit. Races are in
test_hardblock_races.py."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from app.services.hardblocks import record_releases
from app.api.ids import decode_id, to_global_id
from db import models
from db.inventory import room_type_lock_key
from tests.api.test_bookings import audit_actions, book, item, quick, quick_app, setup  # noqa: F401  (fixtures)
from tests.api.test_calendar import START, calendar, column, d
from tests.support import captured_statements, data

BLOCK_FIELDS = """
  id reference status from to rooms releaseDays releasedAt agency { code } roomType { code }
  grid { date size booked available released releaseAt rate { amount currency } proposedSize
         bookings { id rooms } }
"""
SOLD_OUT = "... on SoldOut { shortfalls { roomType { code } date requested available hardblock { reference } } }"
UNDERFLOW = "... on BlockUnderflow { nights slots { date before after booked conflict } }"
TRANSITION = "... on InvalidTransition { state: status }"


def result(*members: str) -> str:
    return "\n".join(["__typename", f"... on Hardblock {{ {BLOCK_FIELDS} }}", *members,
                      "... on InvalidInput { field }", "... on UserError { message code }"])


CREATE_BLOCK = f"""mutation($input: CreateHardblockInput!) {{ createHardblock(input: $input) {{
  {result(SOLD_OUT)} }} }}"""
AMENDED = result(SOLD_OUT, UNDERFLOW, TRANSITION)
RELEASED = result(TRANSITION)
AMEND = f"mutation($input: HardblockAmendmentInput!) {{ amendHardblock(input: $input) {{ {AMENDED} }} }}"
RETURN = f"mutation($input: ReturnHardblockRoomsInput!) {{ returnHardblockRooms(input: $input) {{ {AMENDED} }} }}"
REVERT = f"mutation($id: ID!) {{ revertHardblockAmendment(amendmentId: $id) {{ {AMENDED} }} }}"
RELEASE = f"mutation($id: ID!) {{ releaseHardblock(id: $id) {{ {RELEASED} }} }}"
RELEASE_NIGHTS = f"""mutation($id: ID!, $dates: [Date!]!) {{ releaseHardblockNights(id: $id, dates: $dates) {{
  {RELEASED} }} }}"""
BULK_RELEASE = f"mutation($ids: [ID!]!) {{ bulkReleaseHardblocks(ids: $ids) {{ {RELEASED} }} }}"
BULK_EXTEND = f"mutation($ids: [ID!]!, $n: Int!) {{ bulkExtendHardblocks(ids: $ids, nights: $n) {{ {AMENDED} }} }}"
PREVIEW = """
mutation($input: HardblockAmendmentInput!) { previewHardblockAmendment(input: $input) {
  feasible slots { date before after delta conflict booked poolNeeded poolAvailable }
  error { __typename message code }
} }
"""
AMENDMENTS = """
query($id: ID!) { node(id: $id) { ... on Hardblock { amendments {
  id reason authorUid revertedAt changes { from to rooms } slots { date before after delta }
} } } }
"""
GRID = """
query($id: ID!, $from: Date, $to: Date, $overlay: HardblockAmendmentInput) { node(id: $id) { ... on Hardblock {
  grid(from: $from, to: $to, overlay: $overlay) { date size booked available released proposedSize }
} } }
"""
TRAIL = "query($id: ID!) { node(id: $id) { ... on Hardblock { auditTrail { action actorRole after } } } }"
LIST = "query($status: HardblockStatus) { hardblocks(status: $status) { edges { node { reference status } } } }"


def block_input(agency_id, room_type_id, start=0, nights=3, rooms=2, release_days=0):
    return {"agencyId": agency_id, "roomTypeId": room_type_id, "from": d(start), "to": d(start + nights),
            "rooms": rooms, "releaseDays": release_days}


async def create_block(gql, agency_id, room_type_id, role="admin", agency=None, **kw):
    result = await gql(CREATE_BLOCK, {"input": block_input(agency_id, room_type_id, **kw)}, role=role, agency=agency)
    return data(result)["createHardblock"]


async def amend(gql, block_id, *changes, reason=None, **caller):
    changes_ = [{"from": d(a), "to": d(b), "rooms": rooms} for a, b, rooms in changes]
    result = await gql(AMEND, {"input": {"hardblockId": block_id, "reason": reason, "changes": changes_}}, **caller)
    return data(result)["amendHardblock"]


async def mutate(gql, document, name, **variables):
    return data(await gql(document, variables))[name]


def sizes(block):
    return [slot["size"] for slot in block["grid"]]


async def blocked(gql, hotel, code="STD", start=START, days=6):
    return column(await calendar(gql, hotel["id"], start, start + timedelta(days=days)), code, "hardblocked")


async def amendments(gql, block_id):
    return data(await gql(AMENDMENTS, {"id": block_id}))["node"]["amendments"]


# --- create ------------------------------------------------------------------------------------


async def test_a_block_takes_its_rooms_from_the_pool_and_shows_its_slots(gql):
    hotel, ids, agencies = await setup(gql, allotment=5)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=3, release_days=2)
    assert block["__typename"] == "Hardblock"
    assert (block["status"], block["from"], block["to"], block["rooms"], block["agency"]["code"]) == (
        "ACTIVE", d(0), d(3), 3, "SUNTRAVEL")
    assert block["reference"].startswith("HB-")
    first = block["grid"][0]
    assert first["releaseAt"].startswith((START - timedelta(days=2)).isoformat() + "T00:00:00")
    assert {k: v for k, v in first.items() if k != "releaseAt"} == {
        "date": d(0), "size": 3, "booked": 0, "available": 3, "released": 0,
        "rate": {"amount": "99.50", "currency": "EUR"}, "proposedSize": None, "bookings": []}
    cal = await calendar(gql, hotel["id"], START, START + timedelta(days=4))
    assert column(cal, "STD", "hardblocked") == [3, 3, 3, 0]
    assert column(cal, "STD", "available") == [2, 2, 2, 5]
    assert [e["action"] for e in await audit_actions(gql, block["id"])] == ["hardblock.created"]


async def test_a_block_needs_the_pool_on_every_night(gql):
    hotel, ids, agencies = await setup(gql, allotment=5)
    await book(gql, agencies["BLUEWAVE"], item(ids["STD"], offset=1, nights=1, rooms=4))
    result = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=2)
    assert result["__typename"] == "SoldOut"
    assert result["shortfalls"] == [{"roomType": {"code": "STD"}, "date": d(1), "requested": 2, "available": 1,
                                     "hardblock": None}]  # asked of the pool: the block does not exist
    assert await blocked(gql, hotel) == [0] * 6


async def test_bad_block_input_is_refused_with_the_field_named(gql):
    hotel, ids, agencies = await setup(gql)
    cases = [
        (block_input(agencies["SUNTRAVEL"], ids["STD"], rooms=0), "rooms"),
        (block_input(agencies["SUNTRAVEL"], ids["STD"], nights=0), "to"),
        (block_input(agencies["SUNTRAVEL"], ids["STD"], release_days=-1), "releaseDays"),
        (block_input(agencies["SUNTRAVEL"], ids["STD"], start=-90), "from"),
        (block_input(agencies["SUNTRAVEL"], ids["STD"], nights=400), "to"),
        (block_input(None, ids["STD"]), "agencyId"),
        (block_input(agencies["SUNTRAVEL"], hotel["id"]), "roomTypeId"),
        # its nights' release time has passed (releaseDays 70 > 60 days ahead)
        (block_input(agencies["SUNTRAVEL"], ids["STD"], release_days=70), "releaseDays"),
    ]
    for input, field in cases:
        result = data(await gql(CREATE_BLOCK, {"input": input}))["createHardblock"]
        assert (result["__typename"], result["field"]) == ("InvalidInput", field), (input, result)
    assert data(await gql(LIST))["hardblocks"]["edges"] == []


async def test_only_staff_create_blocks_and_they_name_the_agency(gql):
    hotel, ids, agencies = await setup(gql)
    for agency_id in (None, agencies["SUNTRAVEL"]):  # not even for its own agency
        refused = await gql(CREATE_BLOCK, {"input": block_input(agency_id, ids["STD"])}, role="agent",
                            agency="SUNTRAVEL")
        assert refused["data"] is None and refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    unnamed = await create_block(gql, None, ids["STD"], role="operator")
    assert (unnamed["__typename"], unnamed["field"]) == ("InvalidInput", "agencyId")
    assert await blocked(gql, hotel) == [0] * 6


# --- amend ---------------------------------------------------------------------------------------


async def test_amending_grows_shrinks_extends_and_removes_nights(gql):
    hotel, ids, agencies = await setup(gql, allotment=5)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=2)
    amended = await amend(gql, block["id"], (0, 1, 4), (1, 2, 1), (2, 3, 0), (3, 5, 2), reason="season peak")
    assert amended["__typename"] == "Hardblock"
    assert (amended["from"], amended["to"]) == (d(0), d(5))
    assert sizes(amended) == [4, 1, 0, 2, 2]
    assert await blocked(gql, hotel) == [4, 1, 0, 2, 2, 0]
    [recorded] = await amendments(gql, block["id"])
    assert recorded["reason"] == "season peak" and recorded["authorUid"]
    assert recorded["changes"][0] == {"from": d(0), "to": d(1), "rooms": 4}
    assert [(s["date"], s["before"], s["after"]) for s in recorded["slots"]] == [
        (d(0), 2, 4), (d(1), 2, 1), (d(2), 2, 0), (d(3), 0, 2), (d(4), 0, 2)]
    actions = [e["action"] for e in await audit_actions(gql, block["id"])]
    assert actions == ["hardblock.amended", "hardblock.created"]  # newest first
    trail = data(await gql(TRAIL, {"id": block["id"]}, role="agent", agency="SUNTRAVEL"))["node"]["auditTrail"]
    assert [(e["action"], e["after"]["reason"] if "reason" in e["after"] else None) for e in trail] == [
        ("hardblock.created", None), ("hardblock.amended", "season peak")]


async def test_growing_needs_the_pool_and_shrinking_stops_at_the_bookings(gql):
    hotel, ids, agencies = await setup(gql, allotment=5)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=2)
    await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], offset=1, nights=1, rooms=2, hardblock_id=block["id"]))
    sold_out = await amend(gql, block["id"], (0, 2, 6))
    assert sold_out["__typename"] == "SoldOut"
    assert [(s["date"], s["requested"], s["available"]) for s in sold_out["shortfalls"]] == [
        (d(0), 4, 3), (d(1), 4, 3)]
    under = await amend(gql, block["id"], (0, 3, 1))
    assert under["__typename"] == "BlockUnderflow"
    assert under["nights"] == [d(1)]
    assert under["slots"] == [{"date": d(1), "before": 2, "after": 1, "booked": 2, "conflict": "BLOCK_UNDERFLOW"}]
    assert await amendments(gql, block["id"]) == []
    assert await blocked(gql, hotel, days=3) == [2, 2, 2]


async def test_bad_amendments_are_refused(gql):
    hotel, ids, agencies = await setup(gql)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"])
    for changes, field in [([], "changes"), ([(2, 2, 1)], "changes[0].to"), ([(0, 1, -1)], "changes[0].rooms"),
                           ([(0, 1, 1), (0, 400, 1)], "changes")]:
        result = await amend(gql, block["id"], *changes)
        assert (result["__typename"], result["field"]) == ("InvalidInput", field)
    missing = await amend(gql, "SGFyZGJsb2NrOjk5OTk=", (0, 1, 1))
    assert missing["__typename"] == "NotFound"


async def test_giving_rooms_back_shrinks_each_night_but_not_below_bookings(gql):
    hotel, ids, agencies = await setup(gql, allotment=6)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=4)
    await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], offset=2, nights=1, rooms=3, hardblock_id=block["id"]))
    back = data(await gql(RETURN, {"input": {"hardblockId": block["id"], "from": d(0), "to": d(2), "rooms": 3}}))
    assert sizes(back["returnHardblockRooms"]) == [1, 1, 4]
    under = data(await gql(RETURN, {"input": {"hardblockId": block["id"], "from": d(2), "to": d(3), "rooms": 2}}))
    assert under["returnHardblockRooms"]["nights"] == [d(2)]
    too_many = data(await gql(RETURN, {"input": {"hardblockId": block["id"], "from": d(0), "to": d(1), "rooms": 2}}))
    assert too_many["returnHardblockRooms"]["field"] == "rooms"
    assert await blocked(gql, hotel, days=3) == [1, 1, 4]


# --- revert --------------------------------------------------------------------------------------


async def test_reverting_an_amendment_voids_it_if_the_block_can_go_back(gql):
    hotel, ids, agencies = await setup(gql, allotment=5)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=2)
    await amend(gql, block["id"], (0, 3, 4))
    await amend(gql, block["id"], (0, 1, 1))
    grown, shrunk = await amendments(gql, block["id"])
    # the shrink gave a room back to the pool; someone takes it and the last one on night 0
    await book(gql, agencies["BLUEWAVE"], item(ids["STD"], offset=0, nights=1, rooms=4))
    blocked_revert = await mutate(gql, REVERT, "revertHardblockAmendment", id=shrunk["id"])
    assert blocked_revert["__typename"] == "SoldOut"
    assert [(s["date"], s["requested"], s["available"]) for s in blocked_revert["shortfalls"]] == [(d(0), 3, 0)]
    reverted = await mutate(gql, REVERT, "revertHardblockAmendment", id=grown["id"])
    assert sizes(reverted) == [1, 2, 2]
    again = await mutate(gql, REVERT, "revertHardblockAmendment", id=grown["id"])
    assert (again["__typename"], again["state"]) == ("InvalidTransition", "REVERTED")
    listed = await amendments(gql, block["id"])
    assert listed[0]["revertedAt"] and listed[1]["revertedAt"] is None
    # an amendment's own diff grid stays what it was
    assert [(s["before"], s["after"]) for s in listed[0]["slots"]] == [(2, 4)] * 3


async def test_reverting_a_shrink_below_new_bookings_is_an_underflow(gql):
    hotel, ids, agencies = await setup(gql, allotment=5)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=2)
    await amend(gql, block["id"], (0, 1, 4))
    [grown] = await amendments(gql, block["id"])
    await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], offset=0, nights=1, rooms=3, hardblock_id=block["id"]))
    result = await mutate(gql, REVERT, "revertHardblockAmendment", id=grown["id"])
    assert (result["__typename"], result["nights"]) == ("BlockUnderflow", [d(0)])


# --- release -------------------------------------------------------------------------------------


async def test_releasing_returns_unsold_rooms_and_keeps_the_bookings(gql):
    hotel, ids, agencies = await setup(gql, allotment=5)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=3)
    group = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], offset=0, nights=1, rooms=1, hardblock_id=block["id"]))
    released = await mutate(gql, RELEASE, "releaseHardblock", id=block["id"])
    assert (released["status"], bool(released["releasedAt"])) == ("RELEASED", True)
    assert [(s["size"], s["booked"], s["available"], s["released"]) for s in released["grid"]] == [
        (3, 1, 0, 2), (3, 0, 0, 3), (3, 0, 0, 3)]
    assert await blocked(gql, hotel, days=3) == [1, 0, 0]
    assert group["status"] == "HELD"
    again = await mutate(gql, RELEASE, "releaseHardblock", id=block["id"])
    assert (again["__typename"], again["state"]) == ("InvalidTransition", "RELEASED")
    more = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], offset=1, nights=1, hardblock_id=block["id"]))
    assert more["__typename"] == "SoldOut"
    late = await amend(gql, block["id"], (0, 1, 5))
    assert late["__typename"] == "InvalidTransition"
    statuses = data(await gql(LIST, {"status": "RELEASED"}))["hardblocks"]["edges"]
    assert [e["node"]["status"] for e in statuses] == ["RELEASED"]


async def test_a_released_night_regrows_only_through_an_amendment_that_checks_the_pool(gql):
    hotel, ids, agencies = await setup(gql, allotment=5)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=3)
    released = await mutate(gql, RELEASE_NIGHTS, "releaseHardblockNights", id=block["id"], dates=[d(1), d(1)])
    assert [(s["size"], s["available"], s["released"]) for s in released["grid"]] == [(3, 3, 0), (3, 0, 3), (3, 3, 0)]
    assert await blocked(gql, hotel, days=3) == [3, 0, 3]
    nothing = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], offset=1, nights=1, hardblock_id=block["id"]))
    assert nothing["__typename"] == "SoldOut"
    await book(gql, agencies["BLUEWAVE"], item(ids["STD"], offset=1, nights=1, rooms=4))  # 1 left in the pool
    assert (await amend(gql, block["id"], (1, 2, 2)))["__typename"] == "SoldOut"
    regrown = await amend(gql, block["id"], (1, 2, 1))
    assert [(s["size"], s["available"]) for s in regrown["grid"]][1] == (1, 1)
    assert await blocked(gql, hotel, days=3) == [3, 1, 3]
    outside = await mutate(gql, RELEASE_NIGHTS, "releaseHardblockNights", id=block["id"], dates=[d(7)])
    assert (outside["__typename"], outside["field"]) == ("InvalidInput", "dates")
    # reverting the re-growth brings the release back
    [regrowth] = await amendments(gql, block["id"])
    reverted = await mutate(gql, REVERT, "revertHardblockAmendment", id=regrowth["id"])
    assert [(s["size"], s["available"], s["released"]) for s in reverted["grid"]][1] == (3, 0, 3)


async def test_bulk_release_gives_one_result_per_block(gql):
    hotel, ids, agencies = await setup(gql)
    a = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"])
    b = await create_block(gql, agencies["BLUEWAVE"], ids["SUP"])
    await mutate(gql, RELEASE, "releaseHardblock", id=b["id"])
    results = await mutate(gql, BULK_RELEASE, "bulkReleaseHardblocks", ids=[a["id"], b["id"], "nonsense"])
    assert [r["__typename"] for r in results] == ["Hardblock", "InvalidTransition", "NotFound"]
    assert results[0]["status"] == "RELEASED"
    assert await blocked(gql, hotel, days=3) == [0, 0, 0]


async def test_bulk_extend_grows_each_block_all_or_nothing(gql):
    hotel, ids, agencies = await setup(gql, allotment=5)
    a = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=2)
    b = await create_block(gql, agencies["BLUEWAVE"], ids["STD"], rooms=2, start=1)
    await amend(gql, a["id"], (2, 3, 3))
    await book(gql, agencies["BLUEWAVE"], item(ids["STD"], offset=4, nights=1, rooms=1))
    # a: nights 3-4 at 3 rooms; b: nights 4-5 at 2 rooms, but night 4 then has only 5 - 3 - 1 = 1 left
    results = await mutate(gql, BULK_EXTEND, "bulkExtendHardblocks", ids=[a["id"], b["id"]], n=2)
    assert [r["__typename"] for r in results] == ["Hardblock", "SoldOut"]
    assert (results[0]["to"], sizes(results[0])) == (d(5), [2, 2, 3, 3, 3])
    assert [(s["date"], s["available"]) for s in results[1]["shortfalls"]] == [(d(4), 1)]
    assert await blocked(gql, hotel, days=6) == [2, 4, 5, 5, 3, 0]
    bad = await mutate(gql, BULK_EXTEND, "bulkExtendHardblocks", ids=[a["id"], b["id"]], n=0)
    assert [(r["__typename"], r["field"]) for r in bad] == [("InvalidInput", "nights")] * 2


# --- preview, grid and overlay -------------------------------------------------------------------


async def test_a_preview_shows_the_diff_grid_and_writes_nothing(gql):
    hotel, ids, agencies = await setup(gql, allotment=5)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=2)
    await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], offset=2, nights=1, rooms=2, hardblock_id=block["id"]))
    version = (await calendar(gql, hotel["id"]))["version"]
    changes = [{"from": d(0), "to": d(1), "rooms": 4}, {"from": d(1), "to": d(2), "rooms": 9},
               {"from": d(2), "to": d(3), "rooms": 1}]
    preview = data(await gql(PREVIEW, {"input": {"hardblockId": block["id"], "changes": changes}}))
    preview = preview["previewHardblockAmendment"]
    assert preview["feasible"] is False and preview["error"] is None
    assert preview["slots"] == [
        {"date": d(0), "before": 2, "after": 4, "delta": 2, "conflict": None, "booked": 0, "poolNeeded": 2,
         "poolAvailable": 3},
        {"date": d(1), "before": 2, "after": 9, "delta": 7, "conflict": "SOLD_OUT", "booked": 0, "poolNeeded": 7,
         "poolAvailable": 3},
        {"date": d(2), "before": 2, "after": 1, "delta": -1, "conflict": "BLOCK_UNDERFLOW", "booked": 2,
         "poolNeeded": 0, "poolAvailable": 3},
    ]
    assert (await calendar(gql, hotel["id"]))["version"] == version
    assert await amendments(gql, block["id"]) == []
    missing = data(await gql(PREVIEW, {"input": {"hardblockId": "SGFyZGJsb2NrOjk5OTk=", "changes": changes}}))
    assert missing["previewHardblockAmendment"]["error"]["code"] == "NOT_FOUND"


async def test_the_grid_covers_any_range_and_the_overlay_only_the_cells_it_touches(gql):
    hotel, ids, agencies = await setup(gql, allotment=5)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=2, nights=4)
    overlay = {"hardblockId": block["id"], "changes": [{"from": d(1), "to": d(2), "rooms": 5},
                                                       {"from": d(5), "to": d(6), "rooms": 1}]}
    grid = data(await gql(GRID, {"id": block["id"], "from": d(-1), "to": d(6), "overlay": overlay}))["node"]["grid"]
    assert [(s["date"], s["size"], s["proposedSize"]) for s in grid] == [
        (d(-1), 0, None), (d(0), 2, None), (d(1), 2, 5), (d(2), 2, None), (d(3), 2, None), (d(4), 0, None),
        (d(5), 0, 1)]
    other = {"hardblockId": "SGFyZGJsb2NrOjk5OTk=", "changes": overlay["changes"]}
    plain = data(await gql(GRID, {"id": block["id"], "overlay": other}))["node"]["grid"]
    assert [s["proposedSize"] for s in plain] == [None] * 4
    assert data(await gql(GRID, {"id": block["id"], "from": d(3), "to": d(3)}))["node"]["grid"] == []


SERIES = """
query($id: ID!, $overlay: HardblockAmendmentInput) { node(id: $id) { ... on Hardblock {
  grid(overlay: $overlay) { date size booked available released releaseAt rate { amount currency } proposedSize }
  gridSeries(overlay: $overlay) { dates size booked available released releaseAt rate currency proposedSize }
} } }
"""


async def test_the_series_shape_carries_the_same_numbers_as_the_slots(gql):
    hotel, ids, agencies = await setup(gql, allotment=5)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=3)
    await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], offset=1, nights=1, rooms=2, hardblock_id=block["id"]))
    await mutate(gql, RELEASE_NIGHTS, "releaseHardblockNights", id=block["id"], dates=[d(2)])
    overlay = {"hardblockId": block["id"], "changes": [{"from": d(0), "to": d(1), "rooms": 4}]}
    node = data(await gql(SERIES, {"id": block["id"], "overlay": overlay}))["node"]
    slots, series = node["grid"], node["gridSeries"]
    assert series["dates"] == [s["date"] for s in slots] == [d(0), d(1), d(2)]
    for field in ("size", "booked", "available", "released", "releaseAt", "proposedSize"):
        assert series[field] == [s[field] for s in slots], field
    assert series["rate"] == [s["rate"]["amount"] for s in slots] and series["currency"] == "EUR"
    assert (series["booked"], series["released"], series["proposedSize"]) == ([0, 2, 0], [0, 0, 3], [4, None, None])


async def test_grid_statements_do_not_grow_with_blocks_or_nights(gql, app):
    hotel, ids, agencies = await setup(gql, allotment=50)
    first = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=1, nights=1)
    await amend(gql, first["id"], (0, 1, 2))
    await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], offset=0, nights=1, hardblock_id=first["id"]))
    small = await grid_statements(gql, app)
    for n in range(7):
        block = await create_block(gql, agencies[("SUNTRAVEL", "BLUEWAVE")[n % 2]], ids[("STD", "SUP")[n % 2]],
                                   rooms=2, nights=25)
        await amend(gql, block["id"], (n, n + 3, 3))
        await book(gql, agencies[("SUNTRAVEL", "BLUEWAVE")[n % 2]],
                   item(ids[("STD", "SUP")[n % 2]], offset=n, nights=2, hardblock_id=block["id"]))
    big = await grid_statements(gql, app)
    # the list; the blocks' amendments; the grid batch (blocks, events, contracts, releases,
    # bookings); the bookings' groups
    assert small == big == 8, (small, big)


DEEP_GRID = """{ hardblocks(first: 50) { edges { node { reference amendments { id }
  grid { date size booked available released releaseAt rate { amount } bookings { rooms group { reference } } }
  gridSeries { dates size available } } } } }"""


async def grid_statements(gql, app):
    with captured_statements(app.state.runtime.engine) as statements:
        data(await gql(DEEP_GRID))
    return len(statements)


# --- auto-release --------------------------------------------------------------------------------


async def test_nights_release_themselves_at_release_time_and_the_job_writes_it_down(gql, app, sessions):
    hotel, ids, agencies = await setup(gql, allotment=5)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=3, release_days=0)
    # Time travel: move the block to start yesterday with a 2-day cut-off, so its first 3
    # nights (yesterday, today, tomorrow) are past their release time.
    today = datetime.now(UTC).date()
    pk = decode_id(block["id"], "Hardblock", "id")
    async with sessions() as session, session.begin():
        row = await session.get(models.Hardblock, pk)
        row.start_date, row.end_date, row.release_days = today - timedelta(days=1), today + timedelta(days=4), 2
        row.base_start_date, row.base_end_date = row.start_date, row.end_date
    grid = data(await gql(GRID, {"id": block["id"]}))["node"]["grid"]
    # night n releases at midnight UTC of n - 2: yesterday's to the day after tomorrow's have
    assert [(s["available"], s["released"]) for s in grid] == [(0, 3)] * 4 + [(3, 0)]
    services = app.state.runtime.services
    assert await record_releases(services) == 4
    assert await record_releases(services) == 0
    entry = (await audit_actions(gql, block["id"]))[0]  # newest first
    assert entry["action"] == "hardblock.nights_released" and entry["actorRole"] == "system"
    assert entry["after"]["cause"] == "AUTO"
    assert entry["after"]["nights"] == [(today + timedelta(days=k)).isoformat() for k in (-1, 0, 1, 2)]
    async with sessions() as session:
        causes = (await session.execute(select(models.HardblockNightRelease.cause))).scalars().all()
    assert causes == ["AUTO"] * 4


async def test_a_regrown_manual_release_is_recorded_again_when_the_night_releases_itself(gql, app, sessions):
    hotel, ids, agencies = await setup(gql, allotment=5)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=2, nights=3)
    data(await gql(RELEASE_NIGHTS, {"id": block["id"], "dates": [d(1)]}))
    assert sizes(await amend(gql, block["id"], (1, 2, 2))) == [2, 2, 2]  # the released night grown back
    pk = decode_id(block["id"], "Hardblock", "id")
    async with sessions() as session, session.begin():  # time travel: every night past its release time
        (await session.get(models.Hardblock, pk)).release_days = 100
    services = app.state.runtime.services
    assert await record_releases(services) == 3
    assert await record_releases(services) == 0
    entry = (await audit_actions(gql, block["id"]))[0]
    assert entry["after"]["cause"] == "AUTO" and entry["after"]["nights"] == [d(0), d(1), d(2)]
    async with sessions() as session:
        causes = (await session.execute(select(models.HardblockNightRelease.cause))).scalars().all()
    assert causes == ["AUTO"] * 3


async def test_a_manual_release_of_one_night_leaves_the_blocks_other_nights_to_the_job(gql, app, sessions):
    hotel, ids, agencies = await setup(gql, allotment=5)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=2, nights=3)
    data(await gql(RELEASE_NIGHTS, {"id": block["id"], "dates": [d(1)]}))
    async with sessions() as session, session.begin():  # time travel: every night past its release time
        (await session.get(models.Hardblock, decode_id(block["id"], "Hardblock", "id"))).release_days = 100
    services = app.state.runtime.services
    assert await record_releases(services) == 2
    assert await record_releases(services) == 0
    entry = (await audit_actions(gql, block["id"]))[0]
    assert entry["after"]["cause"] == "AUTO" and entry["after"]["nights"] == [d(0), d(2)]
    async with sessions() as session:
        causes = (await session.execute(select(models.HardblockNightRelease.night, models.HardblockNightRelease.cause)
                                        .order_by(models.HardblockNightRelease.night))).all()
    assert [cause for _, cause in causes] == ["AUTO", "MANUAL", "AUTO"]


# --- scope ---------------------------------------------------------------------------------------


async def test_agents_see_and_touch_only_their_agencys_blocks(gql):
    hotel, ids, agencies = await setup(gql)
    theirs = await create_block(gql, agencies["BLUEWAVE"], ids["STD"])
    mine = await create_block(gql, agencies["SUNTRAVEL"], ids["SUP"])
    agent = {"role": "agent", "agency": "SUNTRAVEL"}
    listed = data(await gql(LIST, **agent))["hardblocks"]["edges"]
    assert [e["node"]["reference"] for e in listed] == [mine["reference"]]
    assert data(await gql("query($id: ID!) { node(id: $id) { id } }", {"id": theirs["id"]}, **agent))["node"] is None
    for document, name, variables in [
        (RELEASE, "releaseHardblock", {"id": theirs["id"]}),
        (RELEASE_NIGHTS, "releaseHardblockNights", {"id": theirs["id"], "dates": [d(0)]}),
        (AMEND, "amendHardblock", {"input": {"hardblockId": theirs["id"], "changes": [
            {"from": d(0), "to": d(1), "rooms": 1}]}}),
    ]:
        assert data(await gql(document, variables, **agent))[name]["__typename"] == "NotFound"
    bulk = data(await gql(BULK_RELEASE, {"ids": [theirs["id"], mine["id"]]}, **agent))["bulkReleaseHardblocks"]
    assert [r["__typename"] for r in bulk] == ["NotFound", "Hardblock"]
    foreign = await book(gql, None, item(ids["STD"], hardblock_id=theirs["id"]), role="agent", agency="SUNTRAVEL")
    assert (foreign["__typename"], foreign["field"]) == ("InvalidInput", "items[0].hardblockId")


# --- edges ---------------------------------------------------------------------------------------


VOID = "mutation($id: ID!) { voidAllotmentEvent(id: $id) { __typename ... on InvalidTransition { status message } } }"


async def test_an_amendment_is_reverted_whole_never_by_voiding_one_of_its_events(gql, sessions):
    hotel, ids, agencies = await setup(gql, allotment=5)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=4, nights=1)
    await amend(gql, block["id"], (0, 1, 1))
    async with sessions() as session:
        event_id = (await session.execute(select(models.AllotmentEvent.id))).scalar_one()
    refused = data(await gql(VOID, {"id": to_global_id("AllotmentEvent", event_id)}))["voidAllotmentEvent"]
    assert (refused["__typename"], refused["status"]) == ("InvalidTransition", "BLOCK_AMENDMENT")
    assert await blocked(gql, hotel, days=1) == [1]


async def test_reverting_an_extension_shrinks_the_span_and_the_next_extension_leaves_no_gap(gql):
    hotel, ids, agencies = await setup(gql, allotment=5)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=2)
    [extended] = await mutate(gql, BULK_EXTEND, "bulkExtendHardblocks", ids=[block["id"]], n=2)
    assert (extended["to"], sizes(extended)) == (d(5), [2] * 5)
    [extension] = await amendments(gql, block["id"])
    reverted = await mutate(gql, REVERT, "revertHardblockAmendment", id=extension["id"])
    assert (reverted["from"], reverted["to"], sizes(reverted)) == (d(0), d(3), [2, 2, 2])
    await amend(gql, block["id"], (2, 3, 0))  # the last night removed: the span keeps the base nights
    [again] = await mutate(gql, BULK_EXTEND, "bulkExtendHardblocks", ids=[block["id"]], n=1)
    assert (again["to"], sizes(again)) == (d(3), [2, 2, 2])  # continues after the last night with rooms
    assert await blocked(gql, hotel, days=4) == [2, 2, 2, 0]


async def test_out_of_range_input_is_refused_not_crashed_on(gql):
    hotel, ids, agencies = await setup(gql)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=2, release_days=2)
    far = await amend(gql, block["id"], (400, 401, 1))
    assert (far["__typename"], far["field"]) == ("InvalidInput", "changes")
    past = await amend(gql, block["id"], (-100, -99, 0))
    assert (past["__typename"], past["field"]) == ("InvalidInput", "changes[0].from")
    huge = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], release_days=1_000_000)
    assert (huge["__typename"], huge["field"]) == ("InvalidInput", "releaseDays")
    ancient = data(await gql(GRID, {"id": block["id"], "from": "0001-01-01", "to": "0001-01-03"}))["node"]["grid"]
    assert [s["size"] for s in ancient] == [0, 0]
    too_big = to_global_id("Hardblock", 99999999999999999999)
    assert data(await gql(RELEASE, {"id": too_big}))["releaseHardblock"]["__typename"] == "NotFound"
    assert data(await gql("query($id: ID!) { node(id: $id) { id } }", {"id": too_big}))["node"] is None
    twice = await mutate(gql, BULK_RELEASE, "bulkReleaseHardblocks", ids=[block["id"], block["id"]])
    assert [(r["__typename"], r.get("field")) for r in twice] == [("Hardblock", None), ("InvalidInput", "ids")]


async def test_lists_filtered_by_an_unknown_id_are_empty_not_errors(gql):
    hotel, ids, agencies = await setup(gql)
    await create_block(gql, agencies["SUNTRAVEL"], ids["STD"])
    for hotel_id, count in ((hotel["id"], 1), (ids["STD"], 0), ("nonsense", 0)):
        blocks = data(await gql("query($h: ID) { hardblocks(hotelId: $h) { edges { node { id } } } }",
                                {"h": hotel_id}))["hardblocks"]["edges"]
        contracts = data(await gql("query($h: ID) { contracts(hotelId: $h) { edges { node { id } } } }",
                                   {"h": hotel_id}))["contracts"]["edges"]
        assert (len(blocks), len(contracts)) == (count, 2 * count)


# --- the write path on asyncpg: references, keys and locks ---------------------------------------


async def outbox_rows(sessions):
    async with sessions() as session:
        return (await session.execute(select(func.count()).select_from(models.OutboxMessage))).scalar_one()


async def test_a_reference_drawn_twice_is_drawn_again_and_the_failed_draw_leaves_no_trace(gql, sessions, monkeypatch):
    import secrets

    hotel, ids, agencies = await setup(gql)
    draws = iter(["beef0000", "beef0000", "beef0001"])
    monkeypatch.setattr(secrets, "token_hex", lambda n: next(draws)[: 2 * n])
    first = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=1)
    version, rows = (await calendar(gql, hotel["id"]))["version"], await outbox_rows(sessions)

    second = await create_block(gql, agencies["SUNTRAVEL"], ids["SUP"], rooms=1)

    assert (first["reference"], second["reference"]) == ("HB-BEEF0000", "HB-BEEF0001")
    assert (await calendar(gql, hotel["id"]))["version"] == version + 1  # one bump, one outbox row
    assert await outbox_rows(sessions) == rows + 1
    [created] = await audit_actions(gql, second["id"])
    assert created["action"] == "hardblock.created" and created["after"]["reference"] == "HB-BEEF0001"


KEYED_BULK_RELEASE = ("mutation($ids: [ID!]!, $key: String) { bulkReleaseHardblocks(ids: $ids, idempotencyKey: $key) "
                      f"{{ {RELEASED} }} }}")


@pytest.mark.parametrize("write", ["createHardblock", "amendHardblock", "bulkReleaseHardblocks"])
async def test_concurrent_retries_with_one_key_write_once(gql, engine, sessions, write):
    """Both retries read the key unused before the lock; the one that gets the lock second finds
    it claimed in its read under the lock, and answers the first's result."""
    hotel, ids, agencies = await setup(gql, allotment=10)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=2)
    version = (await calendar(gql, hotel["id"]))["version"]
    document, variables = {
        "createHardblock": (CREATE_BLOCK, {"input": {**block_input(agencies["BLUEWAVE"], ids["STD"]),
                                                     "idempotencyKey": "together"}}),
        "amendHardblock": (AMEND, {"input": {"hardblockId": block["id"], "idempotencyKey": "together",
                                             "changes": [{"from": d(0), "to": d(1), "rooms": 5}]}}),
        "bulkReleaseHardblocks": (KEYED_BULK_RELEASE, {"ids": [block["id"]], "key": "together"}),
    }[write]
    std = decode_id(ids["STD"], "RoomType", "id")
    async with engine.connect() as holder:
        await holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": room_type_lock_key(std)})
        try:
            retries = [asyncio.create_task(gql(document, variables)) for _ in range(2)]
            await asyncio.sleep(0.3)  # both have read the key and wait for the lock
        finally:
            await holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": room_type_lock_key(std)})
        first, second = [data(await retry)[write] for retry in retries]
    assert first == second and "Hardblock" in str(first), first
    assert (await calendar(gql, hotel["id"]))["version"] == version + 1  # written once
    async with sessions() as session:
        keys = (await session.execute(select(func.count()).select_from(models.IdempotencyKey))).scalar_one()
    assert keys == 1


async def test_a_key_claimed_meanwhile_rolls_the_write_back_and_answers_the_first_result(gql, sessions, monkeypatch):
    """A request whose reads missed the key (its first request committed in between, on another
    room type's lock, say) finds it taken when its write claims it: everything that write did is
    rolled back, and the answer is the first request's block."""
    from app.services import hardblocks as service

    hotel, ids, agencies = await setup(gql, allotment=10)
    request = {**block_input(agencies["SUNTRAVEL"], ids["STD"], rooms=2), "idempotencyKey": "raced"}
    first = data(await gql(CREATE_BLOCK, {"input": request}))["createHardblock"]
    version, rows = (await calendar(gql, hotel["id"]))["version"], await outbox_rows(sessions)
    read_context, read_pool = service.read_write_context, service.read_pool_state
    missed = []

    async def context_missing_the_key(*args, **kwargs):
        context = await read_context(*args, **kwargs)
        if not missed:  # the first read only: the replay reads it again
            missed.append(context.earlier)
            context = dataclasses.replace(context, earlier=None)
        return context

    async def pool_missing_the_key(*args, **kwargs):
        return dataclasses.replace(await read_pool(*args, **kwargs), earlier=None)

    monkeypatch.setattr(service, "read_write_context", context_missing_the_key)
    monkeypatch.setattr(service, "read_pool_state", pool_missing_the_key)
    again = data(await gql(CREATE_BLOCK, {"input": request}))["createHardblock"]

    assert missed and missed[0] is not None  # the key was there to miss
    assert (again["id"], again["reference"]) == (first["id"], first["reference"])
    assert data(await gql(LIST))["hardblocks"]["edges"] == [{"node": {"reference": first["reference"],
                                                                        "status": "ACTIVE"}}]
    assert (await calendar(gql, hotel["id"]))["version"] == version and await outbox_rows(sessions) == rows
    assert await blocked(gql, hotel, days=3) == [2, 2, 2]


async def test_a_busy_room_type_lock_is_a_retryable_lock_timeout_for_block_writes(gql, quick, engine):
    hotel, ids, agencies = await setup(gql, allotment=10)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=2)
    version = (await calendar(gql, hotel["id"]))["version"]
    std = decode_id(ids["STD"], "RoomType", "id")
    async with engine.connect() as holder:
        await holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": room_type_lock_key(std)})
        try:
            created = data(await quick(CREATE_BLOCK, {"input": block_input(agencies["BLUEWAVE"], ids["STD"])}))
            amended = await amend(quick, block["id"], (0, 1, 3))
            released = data(await quick(BULK_RELEASE, {"ids": [block["id"], block["id"]]}))
            other_room_type = await create_block(quick, agencies["BLUEWAVE"], ids["SUP"])
        finally:
            await holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": room_type_lock_key(std)})
    assert created["createHardblock"]["__typename"] == amended["__typename"] == "LockTimeout"
    assert [r["__typename"] for r in released["bulkReleaseHardblocks"]] == ["LockTimeout"] * 2
    assert other_room_type["__typename"] == "Hardblock"  # other room types proceed in parallel
    assert (await calendar(gql, hotel["id"]))["version"] == version + 1  # that block only
    assert await amendments(gql, block["id"]) == []
    assert sizes(await amend(quick, block["id"], (0, 1, 3))) == [3, 2, 2]  # a retry goes through


async def test_a_block_write_waiting_too_long_for_the_hotels_version_row_is_a_lock_timeout(gql, quick, sessions):
    hotel, ids, agencies = await setup(gql, allotment=10)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=2)
    before = await calendar(gql, hotel["id"])
    async with sessions() as blocker, blocker.begin():
        await blocker.execute(text("SELECT version FROM inventory_version WHERE hotel_id = :h FOR UPDATE"),
                              {"h": decode_id(hotel["id"], "Hotel", "id")})
        answer = await amend(quick, block["id"], (0, 1, 1))
    assert answer["__typename"] == "LockTimeout" and "retry" in answer["message"]
    assert (await calendar(gql, hotel["id"]))["version"] == before["version"]
    assert await amendments(gql, block["id"]) == []


async def test_each_write_and_the_release_job_run_on_a_connection_that_has_run_nothing_else(gql, app, sessions):
    """asyncpg learns a type's decoder from the statements it prepares: a statement must not need
    one it could only have learnt from another (an array inside a record, say)."""
    from app.auth import Principal, Role
    from app.services import hardblocks as service
    from app.services.context import Caller, raw_pool

    hotel, ids, agencies = await setup(gql, allotment=10)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=2, nights=3)
    pk = decode_id(block["id"], "Hardblock", "id")
    await amend(gql, block["id"], (0, 1, 3))
    [amended] = await amendments(gql, block["id"])
    services, staff = app.state.runtime.services, Caller(Principal("fresh-staff", Role.ADMIN, None))
    night = [START + timedelta(days=n) for n in range(3)]
    created = []
    writes = [
        lambda s: service.create_hardblock(s, staff, service.NewHardblock(
            decode_id(ids["SUP"], "RoomType", "id"), night[0], night[2], 1,
            agency_id=decode_id(agencies["BLUEWAVE"], "Agency", "id"), idempotency_key="fresh")),
        lambda s: service.revert_hardblock_amendment(s, staff, decode_id(amended["id"], "HardblockAmendment", "id")),
        lambda s: service.amend_hardblock(s, staff, pk, service.Amendment([(night[0], night[1], 1)])),
        lambda s: service.return_hardblock_rooms(s, staff, pk, night[1], night[2], 1),
        lambda s: service.release_hardblock_nights(s, staff, pk, [night[2]]),
        lambda s: service.bulk_extend_hardblocks(s, staff, [(pk, block["id"])], 1, idempotency_key="fresh-bulk"),
        lambda s: service.preview_hardblock_amendment(s, staff, pk, service.Amendment([(night[0], night[1], 2)])),
        lambda s: service.release_hardblock(s, staff, pk),
    ]

    async def on_a_fresh_pool(run):
        fresh = dataclasses.replace(services, raw=raw_pool(services.settings))
        try:
            return await run(fresh)
        finally:
            await fresh.raw.close()

    for write in writes:
        answer = await on_a_fresh_pool(write)
        for result in answer if isinstance(answer, list) else [answer]:
            assert not isinstance(result, Exception), result
        created.append(answer)
    async with sessions() as session, session.begin():  # time travel: the new block's nights are due
        (await session.get(models.Hardblock, created[0].id)).release_days = 100
    assert await on_a_fresh_pool(record_releases) == 2
