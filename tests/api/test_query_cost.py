"""The query cost limit over HTTP: every answer says what the operation cost; an operation over
the budget is refused before any resolver or statement runs."""

from __future__ import annotations

from datetime import timedelta

from app.api.cost import DEFAULT_PAGE, LIST_ESTIMATE, ROOM_TYPES_ESTIMATE
from tests.api.test_calendar import START, setup_hotel
from tests.api.test_hardening import resolver_calls  # noqa: F401 - a fixture
from tests.support import captured_statements, data

CELLS = """
query($id: ID!, $from: Date!, $to: Date!, $ids: [ID!]) { node(id: $id) { ... on Hotel {
  calendar(from: $from, to: $to, roomTypeIds: $ids) { rows { cells { date available } } } } } }
"""
SERIES = """
query($id: ID!, $from: Date!, $to: Date!) { node(id: $id) { ... on Hotel {
  calendar(from: $from, to: $to) { rows { series { dates available } } } } } }
"""
PAGE = "query($first: Int) { hardblocks(first: $first) { edges { node { reference hotel { code } } } } }"
# The review's worst: 15 hotels lists, each with two years of cells and the cells' bookings and blocks.
HEAVY = "{ " + " ".join(
    f"h{n}: hotels {{ calendar(from: \"2027-01-01\", to: \"2029-01-03\") {{ rows {{ cells {{ date "
    "bookings { id } hardblocks { size } } } } }"
    for n in range(15)) + " }"


def cost(result: dict) -> int:
    return result["extensions"]["cost"]["requested"]


async def test_every_answer_carries_its_cost_and_the_limit(gql):
    result = await gql("{ viewer { uid agency { code } } }")
    assert result["extensions"]["cost"] == {"requested": 2, "limit": 500_000}


async def test_calendar_cost_grows_with_nights_and_room_types(gql):
    hotel, ids = await setup_hotel(gql)

    async def cells(nights, room_types):
        variables = {"id": hotel["id"], "from": START.isoformat(), "to": (START + timedelta(days=nights)).isoformat(),
                     "ids": room_types}
        return cost(await gql(CELLS, variables))

    # node 1 + calendar 1 + rows × (1 + nights × a cell's 1)
    assert await cells(10, [ids["STD"]]) == 3 + 10
    assert await cells(20, [ids["STD"]]) == 3 + 20
    assert await cells(20, [ids["STD"], ids["SUP"]]) == 2 + 2 * (1 + 20)
    assert await cells(20, None) == 2 + ROOM_TYPES_ESTIMATE * (1 + 20)  # how many there are is not known before
    series = cost(await gql(SERIES, {"id": hotel["id"], "from": START.isoformat(),
                                     "to": (START + timedelta(days=200)).isoformat()}))
    assert series == 2 + ROOM_TYPES_ESTIMATE * (1 + 1 + 2 * (1 + 200 // 50))  # arrays: 1 per 50 nights


async def test_pages_cost_what_they_may_hold(gql):
    assert cost(await gql(PAGE, {"first": 5})) == 1 + 5 * (1 + 1 + 1)
    assert cost(await gql(PAGE, {})) == 1 + DEFAULT_PAGE * 3
    nested = cost(await gql("{ hotels { roomTypes { code } } }"))
    assert nested == LIST_ESTIMATE * (1 + LIST_ESTIMATE)


async def test_an_operation_over_the_budget_runs_nothing(gql, app, resolver_calls):  # noqa: F811
    await setup_hotel(gql)
    resolver_calls.clear()
    with captured_statements(app.state.runtime.engine) as statements:
        result = await gql(HEAVY)
    assert result.get("data") is None and resolver_calls == [] and statements == []
    [error] = result["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert error["extensions"]["cost"] > error["extensions"]["limit"] == 500_000
    assert str(error["extensions"]["cost"]) in error["message"]
    assert cost(result) == error["extensions"]["cost"]


async def test_one_hotel_a_year_in_cells_fits(gql):
    hotel, ids = await setup_hotel(gql)
    variables = {"id": hotel["id"], "from": START.isoformat(), "to": (START + timedelta(days=366)).isoformat(),
                 "ids": None}
    assert data(await gql(CELLS, variables))["node"]["calendar"]["rows"]
