"""app.api.plain completes lists of plain data without per-field execution: on generated
selections (fields, aliases, duplicates, fragments, @include/@skip, __typename, fields with
resolvers among them) it answers exactly what graphql-core's own completion answers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.api.context import Context
from app.api.plain import PlainListExecutor
from app.api.schema import build_schema
from app.auth import Principal, Role
from tests.api.test_bookings import book, item, setup
from tests.api.test_calendar import START, record
from tests.api.test_hardblocks import create_block

PLAIN_LEAVES = ["date", "allotment", "hardblocked", "held", "sold", "available", "overcommitted", "closed",
                "releaseDate", "reasons", "__typename"]
NESTED = ["rate { amount currency }", "restrictions { minStay closedToArrival }", "rate { __typename amount }", "roomType { code name }"]
WITH_RESOLVERS = ["roomType { id }", "bookings { id rooms }", "hardblocks { size }"]  # graphql-core's part


@st.composite
def selections(draw: Any, depth: int = 0) -> str:
    """A selection set over CalendarCell."""
    parts = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["leaf", "leaf", "leaf", "nested", "resolver", "fragment", "directive"]))
        if kind == "leaf":
            field = draw(st.sampled_from(PLAIN_LEAVES))
            # aliases named after their field: the same alias never names two different fields
            alias = draw(st.sampled_from(["", f"{field.strip('_')}A: ", f"{field.strip('_')}B: "]))
            parts.append(alias + field)
        elif kind == "nested":
            nested = draw(st.sampled_from(NESTED))
            alias = draw(st.sampled_from(["", f"{nested.split()[0]}N{NESTED.index(nested)}: "]))
            parts.append(alias + nested)
        elif kind == "resolver":
            parts.append(draw(st.sampled_from(WITH_RESOLVERS)))
        elif kind == "fragment" and depth < 2:
            parts.append("... on CalendarCell { " + draw(selections(depth + 1)) + " }")
        elif kind == "directive" and depth < 2:
            which = draw(st.sampled_from(["@include(if: $flag)", "@skip(if: $flag)"]))
            parts.append(f"... {which} {{ " + draw(selections(depth + 1)) + " }")
    if depth == 0 and draw(st.booleans()):
        parts.append("...Named")
    return " ".join(parts) or "date"  # a selection set selects something


def document(selection: str) -> str:
    named = "fragment Named on CalendarCell { available d2: date }"
    body = (f"query($id: ID!, $from: Date!, $to: Date!, $flag: Boolean!) {{ node(id: $id) {{ ... on Hotel {{ "
            f"calendar(from: $from, to: $to) {{ rows {{ cells {{ {selection} }} series {{ dates available @include(if: $flag) held }} }} "
            f"}} }} }} }}")
    return body + (" " + named if "...Named" in selection else "")


@pytest.fixture
async def calendar_data(gql, sessions) -> dict[str, Any]:
    hotel, ids, agencies = await setup(gql, allotment=6)
    await record(gql, kind="RATE_CHANGE", roomTypeId=ids["STD"], rate={"amount": "120.50", "currency": "EUR"},
                 **{"from": START.isoformat(), "to": (START + timedelta(days=2)).isoformat()})
    await create_block(gql, agencies["SUNTRAVEL"], ids["STD"], rooms=2)
    await book(gql, agencies["BLUEWAVE"], item(ids["SUP"], rooms=1))
    runtime = gql.http._transport.app.state.runtime
    # Generated selections may hold more aliases than a client may send: that limit is not what is tested.
    roomy = runtime.settings.model_copy(update={"graphql_max_aliases": 10_000})
    plain, baseline = build_schema(roomy), build_schema(roomy)
    baseline.execution_context_class = StrawberryGraphQLCoreExecutionContext
    assert issubclass(plain.execution_context_class, PlainListExecutor)
    # from before the contract to past its end: null rates and release dates too
    variables = {"id": hotel["id"], "from": (START - timedelta(days=2)).isoformat(),
                 "to": (START + timedelta(days=33)).isoformat()}
    return {"runtime": runtime, "plain": plain, "baseline": baseline, "variables": variables}


def context(runtime: Any, role: Role) -> Context:
    principal = Principal(uid="t", role=role, agency_code="SUNTRAVEL" if role is Role.AGENT else None)
    return Context(services=runtime.services, verifier=None, broadcast=None, principal=principal)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(selection=selections(), flag=st.booleans(), role=st.sampled_from([Role.ADMIN, Role.AGENT]))
async def test_plain_lists_answer_what_graphql_core_answers(calendar_data, selection, flag, role):
    query, variables = document(selection), {**calendar_data["variables"], "flag": flag}
    runtime = calendar_data["runtime"]
    fast = await calendar_data["plain"].execute(query, variable_values=variables, context_value=context(runtime, role))
    slow = await calendar_data["baseline"].execute(query, variable_values=variables,
                                                   context_value=context(runtime, role))
    assert fast.errors == slow.errors, query
    assert fast.data == slow.data, query
    assert fast.data is not None and fast.data["node"]["calendar"]["rows"], query


async def test_a_null_in_a_non_null_field_falls_back_to_graphql_core(calendar_data, monkeypatch):
    """The plan never reports errors itself: graphql-core completes the list and says what is wrong."""
    from app.api import inventory

    runtime = calendar_data["runtime"]
    original = inventory.row_cells

    def broken(*args: Any) -> Any:
        cells = original(*args)
        cells[1].available = None  # the schema says Int!
        return cells

    monkeypatch.setattr(inventory, "row_cells", broken)
    query = document("date available")
    variables = {**calendar_data["variables"], "flag": True}
    fast = await calendar_data["plain"].execute(query, variable_values=variables,
                                                context_value=context(runtime, Role.ADMIN))
    slow = await calendar_data["baseline"].execute(query, variable_values=variables,
                                                   context_value=context(runtime, Role.ADMIN))
    assert fast.errors and [e.message for e in fast.errors] == [e.message for e in slow.errors]
    assert fast.data == slow.data


async def test_cells_of_plain_fields_skip_per_field_completion(calendar_data, monkeypatch):
    """The property above would hold trivially if the plans never ran: they do, for cells."""
    completed: list[str] = []
    original = StrawberryGraphQLCoreExecutionContext.complete_object_value

    def spy(self: Any, return_type: Any, *args: Any) -> Any:
        completed.append(return_type.name)
        return original(self, return_type, *args)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "complete_object_value", spy)
    runtime, variables = calendar_data["runtime"], {**calendar_data["variables"], "flag": True}
    for schema, cells in ((calendar_data["plain"], 0), (calendar_data["baseline"], 2 * 35)):
        completed.clear()
        result = await schema.execute(document("date available rate { amount }"), variable_values=variables,
                                      context_value=context(runtime, Role.ADMIN))
        assert not result.errors
        assert completed.count("CalendarCell") == cells
