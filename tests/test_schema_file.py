"""schema.graphql is the committed contract: it must equal what the code exports."""

from __future__ import annotations

from graphql import get_introspection_query

from app.api.schema import SCHEMA_PATH, export_sdl, sdl_of_introspection


def test_schema_graphql_is_in_sync_with_the_code():
    exported = export_sdl()
    committed = SCHEMA_PATH.read_text()
    assert committed == exported, "schema.graphql is stale: run `make schema` and commit it"


def test_contract_names_exist():
    sdl = export_sdl()
    for name in ("node(id: ID!): Node", "viewer: Viewer!", "hotels: [Hotel!]!", "agencies: [Agency!]!",
                 "interface UserError", "type Money", "union CreateAgencyResult", "union UpsertHotelResult",
                 "union UpsertContractResult", "contracts(", "auditLog("):
        assert name in sdl, name


async def test_the_file_is_the_schema_clients_introspect(client):
    # over HTTP, as a client generating types would ask (no token: introspection is public here)
    query = get_introspection_query(descriptions=True, specified_by_url=True)
    response = await client.post("/graphql", json={"query": query})
    served = sdl_of_introspection(response.json()["data"])
    assert served == SCHEMA_PATH.read_text()
    assert 'scalar JSON @specifiedBy(url: "https://ecma-international.org' in served
