"""Issue 11, first findings: internal errors never reach clients, every client error has a code,
malformed ids name nothing, every list argument is capped before work starts, and every
connection has statement and idle-in-transaction timeouts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

import app.services.catalog
from db.engine import create_engine
from tests.api.test_calendar import START, setup_hotel
from tests.support import data, token

HOTELS = "{ hotels { code } }"


async def post(client, query: str, variables: dict[str, Any] | None = None, role: str = "admin") -> dict:
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}},
                                 headers={"Authorization": f"Bearer {token(role)}"})
    return response.json()


async def test_unexpected_errors_are_masked_outside_production_too(client, monkeypatch):
    # given a use case that fails with a detail the caller must not see (SQL, parameters)
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("SELECT secret FROM hotel WHERE code = 'SUN\\x00TRAVEL'")

    monkeypatch.setattr(app.services.catalog, "select", broken)

    # when a development/test app answers
    [error] = (await post(client, HOTELS))["errors"]

    # then the client gets a code and the request id to quote, not the text
    assert error["message"] == "Unexpected error."
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR" and error["extensions"]["requestId"]
    assert "SELECT" not in str(error)


async def test_a_malformed_node_id_names_nothing(client):
    for id in ("", "not base64", "Tm9wZQ=="):
        result = await post(client, "query($id: ID!) { node(id: $id) { id } }", {"id": id})
        assert "errors" not in result and result["data"] == {"node": None}, (id, result)


async def test_graphql_errors_carry_a_code(client):
    [unknown] = (await post(client, "{ nope }"))["errors"]
    assert unknown["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    [variable] = (await post(client, "query($d: Date!) { hotels { code } }", {"d": "not a date"}))["errors"]
    assert variable["extensions"]["code"] == "BAD_USER_INPUT"


async def test_room_type_lists_are_capped(client, db):
    hotel, ids = await setup_hotel_via(client)
    many = [ids["STD"]] * 201
    calendar = "query($id: ID!, $ids: [ID!]) { node(id: $id) { ... on Hotel { calendar(from: \"%s\", to: \"%s\", " \
               "roomTypeIds: $ids) { version } } } }" % (START, START + timedelta(days=1))
    [error] = (await post(client, calendar, {"id": hotel["id"], "ids": many}))["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "at most 200" in error["message"]
    upsert = """mutation($input: UpsertHotelInput!) { upsertHotel(input: $input) { __typename
      ... on InvalidInput { field message } } }"""
    room_types = [{"code": f"R{i}", "name": f"Room {i}"} for i in range(201)]
    result = data(await post(client, upsert, {"input": {"code": "BIG", "name": "Big", "roomTypes": room_types}}))
    assert result["upsertHotel"]["field"] == "roomTypes"


async def setup_hotel_via(client) -> tuple[dict, dict]:
    from tests.support import GraphQL

    return await setup_hotel(GraphQL(client), room_types=("STD",), allotment=4)


@pytest.fixture
async def block(client, db) -> dict:
    hotel, ids = await setup_hotel_via(client)
    agency = data(await post(client, 'mutation { createAgency(input: {code: "SUNTRAVEL", name: "Sun"}) '
                                     '{ ... on Agency { id } } }'))["createAgency"]
    created = data(await post(client, """mutation($input: CreateHardblockInput!) { createHardblock(input: $input) {
      __typename ... on Hardblock { id } } }""", {"input": {
        "agencyId": agency["id"], "roomTypeId": ids["STD"], "from": START.isoformat(),
        "to": (START + timedelta(days=3)).isoformat(), "rooms": 1}}))["createHardblock"]
    assert created["__typename"] == "Hardblock", created
    return created


async def test_an_overlay_gets_the_amendments_checks(client, block):
    query = """query($id: ID!, $overlay: HardblockAmendmentInput) { node(id: $id) { ... on Hardblock {
      gridSeries(overlay: $overlay) { proposedSize } } } }"""
    wide = {"hardblockId": block["id"], "changes": [{"from": "2000-01-01", "to": "9999-12-31", "rooms": 1}] * 51}
    [error] = (await post(client, query, {"id": block["id"], "overlay": wide}))["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "1 to 50 changes" in error["message"]
    fine = {"hardblockId": block["id"], "changes": [{"from": START.isoformat(),
                                                     "to": (START + timedelta(days=1)).isoformat(), "rooms": 2}]}
    series = data(await post(client, query, {"id": block["id"], "overlay": fine}))["node"]["gridSeries"]
    assert series["proposedSize"] == [2, None, None]


async def test_release_nights_counts_the_dates_as_sent(client, block):
    query = """mutation($id: ID!, $dates: [Date!]!) { releaseHardblockNights(id: $id, dates: $dates) {
      __typename ... on InvalidInput { field message } } }"""
    result = data(await post(client, query, {"id": block["id"], "dates": [START.isoformat()] * 10_000}))
    assert result["releaseHardblockNights"]["field"] == "dates"


async def test_bulk_id_lists_are_refused_whole_before_any_work(client, block):
    query = "mutation($ids: [ID!]!) { bulkReleaseHardblocks(ids: $ids) { __typename } }"
    result = await post(client, query, {"ids": [block["id"]] * 5_000})
    [error] = result["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "at most 100" in error["message"]
    assert len(str(result)) < 2_000


async def test_every_connection_has_statement_and_idle_timeouts(database_url):
    engine = create_engine(database_url, pool_size=1, statement_timeout_ms=200, idle_in_transaction_timeout_ms=300)
    try:
        async with engine.connect() as connection:
            settings = (await connection.execute(text(
                "SELECT current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout')"
            ))).one()
            assert tuple(settings) == ("200ms", "300ms")
            with pytest.raises(DBAPIError) as caught:
                await connection.execute(text("SELECT pg_sleep(2)"))
            assert getattr(caught.value.orig, "sqlstate", None) == "57014"  # query_canceled
    finally:
        await engine.dispose()
