"""Hardening defaults: query limits, no batching, caches, and what production hides.

Real HTTP (httpx against the ASGI app). The limits hold in every environment; production
additionally turns off GraphiQL, introspection and field suggestions, and masks internal errors.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import MaskErrors

import app.api.catalog
import app.api.permissions
import app.api.catalog
import app.api.schema
import app.services.catalog
from app.api.schema import GuardRails, build_schema
from app.auth import Principal, Role
from app.settings import Settings
from tests.support import EMULATOR_HOST, PROJECT_ID, data, token

# Production never verifies an emulator token; should anything try to fetch Google's
# certificates, it fails on loopback instead of leaving the machine.
NEVER_FETCHED = "http://127.0.0.1:9/never-fetched"

VIEWER = "query { viewer { uid role } }"
UPSERT_HOTEL = """
mutation {
  upsertHotel(input: {code: "SEAVIEW", name: "Sea View", roomTypes: [{code: "DBL", name: "Double"}]}) {
    ... on Hotel { id }
  }
}
"""
INTROSPECTION = "{ __schema { types { name } } }"
MISSPELLED = "{ hotls { id } }"
HOTELS = "{ hotels { id code } }"
CONTRACTS = "{ contracts { edges { node { id } } } }"


def nested(depth: int) -> str:
    """A valid query whose deepest field sits at `depth` (the root field is depth 0).

    node -> Hotel.roomTypes -> RoomType.hotel -> Hotel.roomTypes -> ... -> id
    """
    chain = ["roomTypes" if level % 2 == 0 else "hotel" for level in range(depth - 1)]
    selection = "id"
    for field in reversed(chain):
        selection = f"{field} {{ {selection} }}"
    return f"query Deep($id: ID!) {{ node(id: $id) {{ ... on Hotel {{ {selection} }} }} }}"


def aliased(count: int) -> str:
    return "{ " + " ".join(f"v{index}: viewer {{ uid }}" for index in range(count)) + " }"


def with_tokens(count: int) -> str:
    """`{ viewer { uid … } }` made of exactly `count` lexical tokens."""
    return "{ viewer { " + " ".join(["uid"] * (count - 5)) + " } }"


@pytest.fixture
def resolver_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every root-field access check: each root field checks its caller before resolving."""
    calls: list[str] = []
    original = app.api.permissions.require_principal

    def spy(context: Any, info: Any = None) -> Principal:
        calls.append("require_principal")
        return original(context, info)

    monkeypatch.setattr(app.api.permissions, "require_principal", spy)
    monkeypatch.setattr(app.api.catalog, "require_principal", spy)
    return calls


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {token('admin')}"}


def only_error(result: dict[str, Any]) -> str:
    assert result.get("data") is None, result
    [error] = result["errors"]
    return error["message"]


# --- limits (every environment) -------------------------------------------------------------


async def test_depth_over_ten_is_rejected_before_any_resolver(gql, resolver_calls):
    # given a hotel whose room types lead back to it
    hotel_id = data(await gql(UPSERT_HOTEL))["upsertHotel"]["id"]
    resolver_calls.clear()

    # when the query nests one level deeper than allowed
    result = await gql(nested(11), {"id": hotel_id})

    # then it is refused by validation: no data, no resolver ran
    assert "exceeds maximum operation depth of 10" in only_error(result)
    assert resolver_calls == []


async def test_depth_ten_is_allowed(gql, resolver_calls):
    hotel_id = data(await gql(UPSERT_HOTEL))["upsertHotel"]["id"]
    resolver_calls.clear()

    value = data(await gql(nested(10), {"id": hotel_id}))["node"]

    for level in range(9):  # down the chain: roomTypes, hotel, roomTypes, …
        value = value["roomTypes"][0] if level % 2 == 0 else value["hotel"]
    assert value["id"]  # the room type at depth 10
    assert resolver_calls  # the spy does see resolvers when they run


async def test_more_than_fifteen_aliases_are_rejected_before_any_resolver(gql, resolver_calls):
    assert len(data(await gql(aliased(15)))) == 15
    resolver_calls.clear()

    result = await gql(aliased(16))

    assert only_error(result) == "16 aliases found. Allowed: 15"
    assert resolver_calls == []


async def test_more_than_two_thousand_tokens_are_rejected_before_any_resolver(gql, resolver_calls):
    result = await gql(with_tokens(2001))

    message = only_error(result)
    assert message == "Syntax Error: Document contains more than 2000 tokens. Parsing aborted."
    assert resolver_calls == []
    # exactly at the limit the token limiter lets the document through (to the next checks)
    at_limit = await gql(with_tokens(2000))
    assert "tokens" not in str(at_limit.get("errors"))


async def test_batched_requests_are_rejected(client, resolver_calls):
    # when a JSON array of operations is posted
    response = await client.post(
        "/graphql", json=[{"query": VIEWER}, {"query": VIEWER}], headers=admin_headers()
    )

    # then it is a client error that says why, with no data
    assert response.status_code == 400
    assert "Batching is not enabled" in response.text
    assert "uid" not in response.text
    assert resolver_calls == []


def test_unexpected_errors_are_masked_in_every_environment():
    schema = build_schema(Settings(app_env="test"))

    built = [factory() for factory in schema.extensions]

    # issue 11: development and tests too
    assert any(isinstance(extension, MaskErrors) for extension in built)


async def test_a_repeated_document_hits_the_parse_and_validation_caches(gql):
    schema = build_schema(Settings(app_env="test"))
    [guard] = [e for e in (factory() for factory in schema.extensions) if isinstance(e, GuardRails)]
    document = "query RepeatedForTheCache { viewer { uid } }"
    await gql(document)
    parsed, validated = guard.cached_parse.cache_info().hits, guard.cached_validate.cache_info().hits

    await gql(document)

    assert guard.cached_parse.cache_info().hits > parsed
    assert guard.cached_validate.cache_info().hits > validated


async def test_graphiql_is_served_outside_production(client):
    response = await client.get("/graphql", headers={"Accept": "text/html"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


async def test_field_suggestions_outside_production(gql):
    assert "Did you mean 'hotels'?" in only_error(await gql(MISSPELLED))


# --- production -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def production_app(settings: Settings) -> AsyncIterator[Any]:
    """An APP_ENV=production app on the test database.

    Its FirebaseVerifier removes FIREBASE_AUTH_EMULATOR_HOST from os.environ; the rest of the
    suite runs in emulator mode, so it is put back at once. (This app never verifies a token:
    tests that need a caller stub its verifier.)
    """
    from app.main import create_app

    production = Settings(
        app_env="production",
        database_url=settings.database_url,
        firebase_project_id=PROJECT_ID,
        firebase_auth_emulator_host=None,
        firebase_cert_url=NEVER_FETCHED,
        seed_demo=False,
    )
    application = create_app(production)
    try:
        async with application.router.lifespan_context(application):
            os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = EMULATOR_HOST
            yield application
    finally:
        os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = EMULATOR_HOST


@pytest.fixture
async def production(production_app: Any, db: None) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=production_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://staysync.test") as http:
        yield http


@pytest.fixture
def signed_in_as(production_app: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[[Principal], None]:
    """Stands in for a verified Firebase token (production mode never accepts emulator tokens)."""

    def sign_in(principal: Principal) -> None:
        async def verify(token: str, *, fresh: bool = False) -> Principal:
            return principal

        monkeypatch.setattr(production_app.state.runtime.verifier, "verify", verify)

    return sign_in


async def post(http: httpx.AsyncClient, query: str, **headers: str) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_production_does_not_serve_graphiql(production):
    response = await production.get("/graphql", headers={"Accept": "text/html"})

    assert response.status_code == 404
    assert "graphiql" not in response.text.lower()


async def test_production_refuses_introspection(production, signed_in_as):
    signed_in_as(Principal("ops-1", Role.ADMIN, None))

    result = await post(production, INTROSPECTION, Authorization="Bearer signed")

    assert result["data"] is None
    messages = [error["message"] for error in result["errors"]]
    assert all("introspection has been disabled" in message for message in messages)
    assert "contained the field '__schema'" in messages[0]


async def test_production_gives_no_field_suggestions(production, signed_in_as):
    signed_in_as(Principal("ops-1", Role.ADMIN, None))

    message = only_error(await post(production, MISSPELLED, Authorization="Bearer signed"))

    assert message.startswith("Cannot query field 'hotls' on type 'Query'.")
    assert "Did you mean" not in message
    assert "hotels" not in message


async def test_production_masks_unexpected_errors(production, signed_in_as, monkeypatch):
    # given a resolver that fails for a reason the caller must not see
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(app.services.catalog, "select", broken)
    signed_in_as(Principal("ops-1", Role.ADMIN, None))

    # when it is called
    response = await production.post("/graphql", json={"query": HOTELS}, headers={"Authorization": "Bearer x"})

    # then the caller learns only that something went wrong
    assert response.status_code == 200
    assert only_error(response.json()) == "Unexpected error."
    assert "secret detail" not in response.text
    assert "RuntimeError" not in response.text


async def test_production_keeps_access_errors_readable(production, signed_in_as):
    # no token at all
    [unauthenticated] = (await post(production, VIEWER))["errors"]
    assert unauthenticated["extensions"]["code"] == "UNAUTHENTICATED"
    assert unauthenticated["message"].startswith("Authentication required")

    # a caller without the role
    signed_in_as(Principal("agent-1", Role.AGENT, "SUNTRAVEL"))
    [forbidden] = (await post(production, CONTRACTS, Authorization="Bearer signed"))["errors"]
    assert forbidden["extensions"]["code"] == "FORBIDDEN"
    assert forbidden["message"] == "Forbidden: this needs the admin or operator role"


async def test_production_still_answers_ordinary_queries(production, signed_in_as):
    signed_in_as(Principal("ops-1", Role.OPERATOR, None))

    assert data(await post(production, VIEWER, Authorization="Bearer signed")) == {
        "viewer": {"uid": "ops-1", "role": "OPERATOR"}
    }


def test_production_schema_masks_errors_and_disables_introspection():
    schema = build_schema(Settings(app_env="production", firebase_auth_emulator_host=None))
    built = [factory() for factory in schema.extensions]

    [guard] = [e for e in built if isinstance(e, GuardRails)]
    assert NoSchemaIntrospectionCustomRule in guard.rules
    assert any(isinstance(extension, MaskErrors) for extension in built)
    assert schema.config.disable_field_suggestions is True
