"""Issue 11's access decisions, over HTTP: what agents see of the pool, which block writes are
staff's, retries of keyed writes, and bounds on what the database can hold."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from tests.api.test_bookings import CREATE, book, booking_input, item, setup
from tests.api.test_calendar import RECORD, START, calendar, column, d
from tests.api.test_catalog import UPSERT_CONTRACT, contract_input
from tests.api.test_hardblocks import (
    AMEND,
    BULK_EXTEND,
    BULK_RELEASE,
    CREATE_BLOCK,
    RELEASE_NIGHTS,
    RETURN,
    REVERT,
    amend,
    amendments,
    block_input,
    blocked,
    create_block,
    sizes,
)
from tests.support import data

POOL_FIGURES = ("allotment", "hardblocked", "held", "sold", "overcommitted")
SERIES = """
query($id: ID!, $from: Date!, $to: Date!) { node(id: $id) { ... on Hotel { calendar(from: $from, to: $to) {
  rows { series { allotment hardblocked held sold overcommitted available closed releaseDate rate } } } } } }
"""
CELL_BLOCKS = """
query($id: ID!, $from: Date!, $to: Date!) { node(id: $id) { ... on Hotel { calendar(from: $from, to: $to) {
  rows { roomType { code } cells { hardblocks { size hardblock { agency { code } } } } } } } } }
"""
KEYED_BULK_EXTEND = BULK_EXTEND.replace("$n: Int!)", "$n: Int!, $key: String)").replace(
    "nights: $n)", "nights: $n, idempotencyKey: $key)")
KEYED_BULK_RELEASE = BULK_RELEASE.replace("($ids: [ID!]!)", "($ids: [ID!]!, $key: String)").replace(
    "(ids: $ids)", "(ids: $ids, idempotencyKey: $key)")


def forbidden(result: dict) -> bool:
    return result["data"] is None and result["errors"][0]["extensions"]["code"] == "FORBIDDEN"


# --- what agents see -------------------------------------------------------------------------------


async def test_agents_see_what_they_can_book_not_the_wholesalers_position(gql):
    hotel, ids, agencies = await setup(gql, allotment=6)
    await create_block(gql, agencies["BLUEWAVE"], ids["STD"], rooms=2)
    await book(gql, agencies["BLUEWAVE"], item(ids["STD"], rooms=1))
    staff = await calendar(gql, hotel["id"], START, START + timedelta(days=2))
    agent = await calendar(gql, hotel["id"], START, START + timedelta(days=2), role="agent", agency="SUNTRAVEL")

    assert column(staff, "STD", "allotment") == [6, 6] and column(staff, "STD", "hardblocked") == [2, 2]
    for name in POOL_FIGURES:
        assert column(agent, "STD", name) == [None, None], name
    for name in ("available", "closed", "releaseDate", "rate"):  # the same for both
        assert column(agent, "STD", name) == column(staff, "STD", name), name
    assert column(agent, "STD", "available") == [3, 3]

    variables = {"id": hotel["id"], "from": d(0), "to": d(2)}
    agent_series = data(await gql(SERIES, variables, role="agent", agency="SUNTRAVEL"))["node"]["calendar"]["rows"][0]
    staff_series = data(await gql(SERIES, variables))["node"]["calendar"]["rows"][0]
    assert all(agent_series["series"][name] is None for name in POOL_FIGURES)
    assert all(staff_series["series"][name] is not None for name in POOL_FIGURES)
    assert agent_series["series"]["available"] == staff_series["series"]["available"]


async def test_agents_see_only_their_own_blocks_in_the_cells(gql):
    hotel, ids, agencies = await setup(gql, allotment=6)
    await create_block(gql, agencies["BLUEWAVE"], ids["STD"], rooms=2)
    await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=1)
    variables = {"id": hotel["id"], "from": d(0), "to": d(1)}

    def owners(result):
        row = next(r for r in data(result)["node"]["calendar"]["rows"] if r["roomType"]["code"] == "STD")
        return sorted(s["hardblock"]["agency"]["code"] for s in row["cells"][0]["hardblocks"])

    assert owners(await gql(CELL_BLOCKS, variables, role="agent", agency="SUNTRAVEL")) == ["SUNTRAVEL"]
    assert owners(await gql(CELL_BLOCKS, variables)) == ["BLUEWAVE", "SUNTRAVEL"]


# --- block writes that take from the pool are staff's ---------------------------------------------


async def test_agents_give_block_rooms_back_but_never_take_more(gql):
    hotel, ids, agencies = await setup(gql, allotment=6)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=2, nights=3)
    agent = {"role": "agent", "agency": "SUNTRAVEL"}

    grow = {"hardblockId": block["id"], "changes": [{"from": d(0), "to": d(1), "rooms": 3}]}
    extend = {"hardblockId": block["id"], "changes": [{"from": d(3), "to": d(4), "rooms": 1}]}
    for change in (grow, extend):
        assert forbidden(await gql(AMEND, {"input": change}, **agent))
    assert forbidden(await gql(CREATE_BLOCK, {"input": block_input(agencies["SUNTRAVEL"], ids["STD"])}, **agent))
    assert forbidden(await gql(BULK_EXTEND, {"ids": [block["id"]], "n": 2}, **agent))
    assert await blocked(gql, hotel) == [2, 2, 2, 0, 0, 0]  # nothing changed

    shrunk = await amend(gql, block["id"], (0, 1, 1), **agent)
    assert sizes(shrunk) == [1, 2, 2]
    [recorded] = await amendments(gql, block["id"])
    assert forbidden(await gql(REVERT, {"id": recorded["id"]}, **agent))  # reverting is staff's, either way
    returned = data(await gql(RETURN, {"input": {"hardblockId": block["id"], "from": d(1), "to": d(2),
                                                 "rooms": 1}}, **agent))["returnHardblockRooms"]
    assert sizes(returned) == [1, 1, 2]
    released = data(await gql(RELEASE_NIGHTS, {"id": block["id"], "dates": [d(2)]}, **agent))
    assert released["releaseHardblockNights"]["__typename"] == "Hardblock"
    assert await blocked(gql, hotel) == [1, 1, 0, 0, 0, 0]

    # staff grow, extend and revert as before
    assert sizes(await amend(gql, block["id"], (0, 1, 3), role="operator"))[0] == 3
    assert data(await gql(REVERT, {"id": recorded["id"]}, role="operator"))["revertHardblockAmendment"][
        "__typename"] == "Hardblock"


# --- keyed retries ---------------------------------------------------------------------------------


async def test_a_retried_create_hardblock_makes_one_block(gql):
    hotel, ids, agencies = await setup(gql, allotment=6)
    request = {**block_input(agencies["SUNTRAVEL"], ids["STD"], rooms=2), "idempotencyKey": "blk-1"}
    first = data(await gql(CREATE_BLOCK, {"input": request}))["createHardblock"]
    again = data(await gql(CREATE_BLOCK, {"input": request}))["createHardblock"]
    assert again["id"] == first["id"] and again["reference"] == first["reference"]
    assert await blocked(gql, hotel) == [2, 2, 2, 0, 0, 0]

    different = data(await gql(CREATE_BLOCK, {"input": {**request, "rooms": 3}}))["createHardblock"]
    assert different["__typename"] == "IdempotencyConflict"
    # scoped to the caller: another staff member's key of the same name is theirs
    other = data(await gql(CREATE_BLOCK, {"input": request}, role="operator"))["createHardblock"]
    assert other["__typename"] == "Hardblock" and other["id"] != first["id"]


async def test_retried_returns_and_amendments_apply_once(gql):
    hotel, ids, agencies = await setup(gql, allotment=6)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=3, nights=2)
    agent = {"role": "agent", "agency": "SUNTRAVEL"}
    give_back = {"hardblockId": block["id"], "from": d(0), "to": d(2), "rooms": 1, "idempotencyKey": "ret-1"}
    for _ in range(2):
        returned = data(await gql(RETURN, {"input": give_back}, **agent))["returnHardblockRooms"]
        assert sizes(returned) == [2, 2]
    conflict = data(await gql(RETURN, {"input": {**give_back, "rooms": 2}}, **agent))["returnHardblockRooms"]
    assert conflict["__typename"] == "IdempotencyConflict"

    change = {"hardblockId": block["id"], "changes": [{"from": d(0), "to": d(1), "rooms": 5}], "idempotencyKey": "a-1"}
    for _ in range(2):
        assert sizes(data(await gql(AMEND, {"input": change}))["amendHardblock"]) == [5, 2]
    assert len(await amendments(gql, block["id"])) == 2  # the return and one amendment
    assert await blocked(gql, hotel) == [5, 2, 0, 0, 0, 0]


async def test_a_failed_keyed_write_changes_nothing_and_can_be_retried(gql):
    hotel, ids, agencies = await setup(gql, allotment=4)
    block = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=2, nights=1)
    change = {"hardblockId": block["id"], "changes": [{"from": d(0), "to": d(1), "rooms": 9}], "idempotencyKey": "g-1"}
    assert data(await gql(AMEND, {"input": change}))["amendHardblock"]["__typename"] == "SoldOut"
    await gql(UPSERT_CONTRACT, {"input": contract_input(hotel["id"], ids["STD"], externalId="C-STD", allotment=20, **{
        "from": START.isoformat(), "to": (START + timedelta(days=30)).isoformat()})})
    assert sizes(data(await gql(AMEND, {"input": change}))["amendHardblock"]) == [9]


async def test_retried_bulk_operations_answer_the_first_results(gql):
    hotel, ids, agencies = await setup(gql, allotment=6)
    one = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=1, nights=2)
    two = await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=1, nights=2)
    extend = {"ids": [one["id"], two["id"]], "n": 1}
    for _ in range(2):
        extended = data(await gql(KEYED_BULK_EXTEND, {**extend, "key": "ext-1"}))["bulkExtendHardblocks"]
        assert [sizes(b) for b in extended] == [[1, 1, 1], [1, 1, 1]]
    assert await blocked(gql, hotel) == [2, 2, 2, 0, 0, 0]

    release = KEYED_BULK_RELEASE
    missing = "SGFyZGJsb2NrOjk5OTk5"  # Hardblock:99999
    first = data(await gql(release, {"ids": [one["id"], missing], "key": "rel-1"}))["bulkReleaseHardblocks"]
    again = data(await gql(release, {"ids": [one["id"], missing], "key": "rel-1"}))["bulkReleaseHardblocks"]
    assert [r["__typename"] for r in first] == [r["__typename"] for r in again] == ["Hardblock", "NotFound"]
    assert first[1]["message"] == again[1]["message"]
    # not an InvalidTransition "already released": the retry is the first request's answer
    assert again[0]["status"] == "RELEASED"
    conflict = data(await gql(release, {"ids": [two["id"]], "key": "rel-1"}))["bulkReleaseHardblocks"]
    assert [r["__typename"] for r in conflict] == ["IdempotencyConflict"]


async def test_a_retried_allotment_event_is_recorded_once(gql):
    hotel, ids, agencies = await setup(gql, allotment=6)
    event = {"kind": "INCREASE_ALLOTMENT", "roomTypeId": ids["STD"], "from": d(0), "to": d(2), "quantity": 2,
             "idempotencyKey": "inc-1"}
    first = data(await gql(RECORD, {"input": event}))["recordAllotmentEvent"]
    again = data(await gql(RECORD, {"input": event}))["recordAllotmentEvent"]
    assert first["__typename"] == "AllotmentEvent" and again["id"] == first["id"]
    assert column(await calendar(gql, hotel["id"], START, START + timedelta(days=2)), "STD", "allotment") == [8, 8]
    conflict = data(await gql(RECORD, {"input": {**event, "quantity": 3}}))["recordAllotmentEvent"]
    assert conflict["__typename"] == "IdempotencyConflict"


@pytest.mark.parametrize("key", ["", "   ", "k" * 201])
async def test_a_blank_or_long_key_is_invalid_input(gql, key):
    hotel, ids, agencies = await setup(gql, allotment=6)
    event = {"kind": "INCREASE_ALLOTMENT", "roomTypeId": ids["STD"], "from": d(0), "to": d(2), "quantity": 2,
             "idempotencyKey": key}
    refused = data(await gql(RECORD, {"input": event}))["recordAllotmentEvent"]
    assert (refused["__typename"], refused["field"]) == ("InvalidInput", "idempotencyKey")


# --- what the database can hold ------------------------------------------------------------------


async def test_huge_quantities_and_totals_are_refused_with_a_reason(gql):
    hotel, ids, agencies = await setup(gql, allotment=6)
    huge = {"kind": "INCREASE_ALLOTMENT", "roomTypeId": ids["STD"], "from": d(0), "to": d(2), "quantity": 2**31 - 1}
    refused = data(await gql(RECORD, {"input": huge}))["recordAllotmentEvent"]
    assert (refused["__typename"], refused["field"]) == ("InvalidInput", "quantity")
    contract = contract_input(hotel["id"], ids["STD"], externalId="C-STD", allotment=2**31 - 1, **{
        "from": START.isoformat(), "to": (START + timedelta(days=30)).isoformat()})
    assert data(await gql(UPSERT_CONTRACT, {"input": contract}))["upsertContract"]["field"] == "allotment"

    pricey = contract_input(hotel["id"], ids["SUP"], externalId="C-SUP", allotment=6,
                            rate={"amount": "9999999999.99", "currency": "EUR"},
                            **{"from": START.isoformat(), "to": (START + timedelta(days=30)).isoformat()})
    assert data(await gql(UPSERT_CONTRACT, {"input": pricey}))["upsertContract"]["__typename"] == "Contract"
    result = data(await gql(CREATE, {"input": booking_input(agencies["SUNTRAVEL"], item(ids["SUP"], rooms=2),
                                                            key=uuid.uuid4().hex)}))["createBooking"]
    assert (result["__typename"], result["field"]) == ("InvalidInput", "items")
    assert "more than a booking can hold" in result["message"]
