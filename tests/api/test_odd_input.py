"""Inputs a fuzzer sends: whatever arrives, the answer is data, a typed result or a validation
error raised before any resolver, never an error inside a resolver (one with a `path`)."""

from __future__ import annotations

import base64

from app.api.ids import to_global_id
from app.services.pages import page_size
from tests.api.test_bookings import book, item, setup
from tests.api.test_catalog import CREATE_AGENCY, UPSERT_CONTRACT, contract_input
from tests.api.test_hardblocks import CREATE_BLOCK, block_input
from tests.support import data


def cursor(n: int | str) -> str:
    return base64.urlsafe_b64encode(f"cursor:{n}".encode()).decode()


async def test_cursors_and_page_sizes_that_name_nothing_give_empty_pages(gql):
    hotel, ids, agencies = await setup(gql)
    await book(gql, agencies["SUNTRAVEL"], item(ids["STD"]))
    query = "query($f: Int, $a: String) { bookingGroups(first: $f, after: $a) { edges { node { id } } } }"
    for first, after, count in ((None, cursor(2**31), 0), (None, cursor(-1), 0), (None, "junk", 0),
                                (None, cursor("1_0"), 0), (None, cursor("9" * 5000), 0), (None, cursor("²"), 0),
                                (-1, None, 0), (10_000, None, 1)):
        edges = data(await gql(query, {"f": first, "a": after}))["bookingGroups"]["edges"]
        assert len(edges) == count, (first, after)
    assert (page_size(None), page_size(-5), page_size(10_000)) == (50, 0, 200)
    audit = "query($a: String, $e: ID) { auditLog(after: $a, entityId: $e) { edges { node { id } } } }"
    assert data(await gql(audit, {"a": cursor(2**63)}))["auditLog"]["edges"] == []
    assert data(await gql(audit, {"e": "x"}))["auditLog"]["edges"] == []


async def test_ids_that_name_nothing_resolve_to_null(gql):
    for type_name, pk in (("Node", "1"), ("Hotel", "9" * 5000), ("Hotel", "²"), ("Hotel", str(2**31))):
        node = data(await gql("query($id: ID!) { node(id: $id) { id } }", {"id": to_global_id(type_name, pk)}))
        assert node["node"] is None, (type_name, pk)


async def test_nul_characters_are_refused_before_anything_runs(gql):
    result = await gql(CREATE_AGENCY, {"input": {"code": "NULA", "name": "a\x00b"}})
    [error] = result["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "path" not in error
    literal = 'mutation { createAgency(input: {code: "NULB", name: "a\\u0000b"}) { __typename } }'
    # the literals' check is remembered per document: the second time refuses as the first did
    for _ in range(2):
        assert (await gql(literal))["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert data(await gql("{ agencies { code } }"))["agencies"] == []


async def test_a_document_that_passed_the_nul_check_still_has_its_variables_checked(gql):
    # given a document whose literals were found clean
    assert data(await gql(CREATE_AGENCY, {"input": {"code": "CLEAN", "name": "Clean"}}))

    # when the same document comes again with a NUL in its variables
    result = await gql(CREATE_AGENCY, {"input": {"code": "NULC", "name": "a\x00b"}})

    # then it is refused before anything runs
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert [a["code"] for a in data(await gql("{ agencies { code } }"))["agencies"]] == ["CLEAN"]


async def test_a_subscription_posted_over_http_is_a_400(client):
    from tests.support import token

    response = await client.post("/graphql", json={"query": "subscription { hardblockChanged { id } }"},
                                 headers={"Authorization": f"Bearer {token('admin')}"})
    assert response.status_code == 400


async def test_dates_outside_the_service_window_and_a_sold_out_new_block(gql):
    hotel, ids, agencies = await setup(gql)
    ancient = contract_input(hotel["id"], ids["STD"], externalId="ANCIENT", **{"from": "0001-01-01", "to": "0001-02-01"})
    result = data(await gql(UPSERT_CONTRACT, {"input": ancient}))["upsertContract"]
    assert (result["__typename"], result["field"]) == ("InvalidInput", "from")
    too_big = data(await gql(CREATE_BLOCK, {"input": block_input(agencies["SUNTRAVEL"], ids["STD"], rooms=999)}))
    sold_out = too_big["createHardblock"]
    assert sold_out["__typename"] == "SoldOut" and sold_out["shortfalls"][0]["hardblock"] is None


async def test_an_empty_selection_set_is_a_syntax_error(gql):
    # graphql-core 3.3 parses `{ }`; the grammar does not allow it, and nothing may fail on it.
    for query in ("{ viewer { } }", "{ viewer { ... on Viewer { } } }", "{ hotels { } }"):
        result = await gql(query)
        assert result.get("data") is None, query
        [error] = result["errors"]
        assert error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED", (query, error)
        assert "selects nothing" in error["message"]
