"""schema.graphql is the committed contract: it must equal what the code exports."""

from __future__ import annotations

from app.api.schema import SCHEMA_PATH, export_sdl


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
