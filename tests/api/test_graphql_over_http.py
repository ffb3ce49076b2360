"""Issue 12: GraphQL over HTTP (application/graphql-response+json, GET) and persisted queries.

The checks of graphql-http's audit that Python can make; `bench/graphql_http_audit.sh` runs the
audit itself against a live server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.graphql_http import GRAPHQL_RESPONSE_JSON, response_media_type
from app.persisted_queries import PersistedQueries, document_hash, load_registry
from app.settings import Settings
from tests.api.test_catalog import CREATE_AGENCY
from tests.api.test_query_cost import HEAVY
from tests.support import LiveServer, token

VIEWER = "{ viewer { uid role } }"
AGENCIES = "query Agencies { agencies { code } }"


def headers(accept: str | None = None, role: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role)}", **({"Accept": accept} if accept else {})}


def persisted(document: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": document_hash(document)}}


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body["errors"]]


# --- content negotiation -------------------------------------------------------------------------


@pytest.mark.parametrize(("accept", "media_type"), [
    (None, "application/json"),
    ("*/*", "application/json"),
    ("application/*", "application/json"),
    ("application/json", "application/json"),
    ("text/html", "application/json"),  # nothing we can give: what older clients understand
    (GRAPHQL_RESPONSE_JSON, GRAPHQL_RESPONSE_JSON),
    (f"{GRAPHQL_RESPONSE_JSON}, application/json", GRAPHQL_RESPONSE_JSON),
    (f"application/json, {GRAPHQL_RESPONSE_JSON}", GRAPHQL_RESPONSE_JSON),
    (f"{GRAPHQL_RESPONSE_JSON}, application/json;q=0.9", GRAPHQL_RESPONSE_JSON),
    (f"{GRAPHQL_RESPONSE_JSON};q=0.5, application/json", "application/json"),
    (f"{GRAPHQL_RESPONSE_JSON};q=0, */*", "application/json"),
])
def test_the_answer_takes_the_media_type_the_client_accepts(accept, media_type):
    assert response_media_type(accept) == media_type


async def test_the_content_type_matches_what_was_negotiated(client):
    for accept, content_type in ((GRAPHQL_RESPONSE_JSON, f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"),
                                 ("application/json", "application/json"), (None, "application/json")):
        response = await client.post("/graphql", json={"query": VIEWER}, headers=headers(accept))

        assert response.status_code == 200
        assert response.headers["content-type"] == content_type
        assert {"Accept", "Authorization"} <= {name.strip() for name in response.headers["vary"].split(",")}
        assert response.json()["data"]["viewer"]["role"] == "ADMIN"


# --- requests that never execute -----------------------------------------------------------------

NEVER_EXECUTE = [
    pytest.param({"query": "{"}, "GRAPHQL_PARSE_FAILED", id="parse"),
    pytest.param({"query": "{ noSuchField }"}, "GRAPHQL_VALIDATION_FAILED", id="validation"),
    pytest.param({"query": "query($id: ID!) { node(id: $id) { id } }", "variables": {"id": {"a": 1}}},
                 "BAD_USER_INPUT", id="variable-coercion"),
    pytest.param({"query": HEAVY}, "QUERY_TOO_COSTLY", id="too-costly"),
    pytest.param({"query": VIEWER, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}},
                 "PERSISTED_QUERY_HASH_MISMATCH", id="hash-mismatch"),
]


@pytest.mark.parametrize(("body", "code"), NEVER_EXECUTE)
async def test_with_graphql_response_json_a_request_that_never_executes_is_a_400_without_data(client, body, code):
    response = await client.post("/graphql", json=body, headers=headers(GRAPHQL_RESPONSE_JSON))

    assert response.status_code == 400
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE_JSON)
    answer = response.json()
    assert "data" not in answer
    assert codes(answer) == [code]


@pytest.mark.parametrize(("body", "code"), NEVER_EXECUTE)
async def test_with_application_json_it_stays_a_200_with_null_data(client, body, code):
    response = await client.post("/graphql", json=body, headers=headers("application/json"))

    assert response.status_code == 200
    answer = response.json()
    assert answer["data"] is None
    assert codes(answer) == [code]


async def test_a_field_error_is_a_200_with_its_data_entry_in_either_media_type(client):
    # a caller without a token: execution ran, and its root field failed (data is null, but present)
    for accept in (GRAPHQL_RESPONSE_JSON, "application/json"):
        response = await client.post("/graphql", json={"query": "{ hotels { code } }"}, headers={"Accept": accept})

        assert response.status_code == 200
        answer = response.json()
        assert "data" in answer and codes(answer) == ["UNAUTHENTICATED"]


# --- GET ---------------------------------------------------------------------------------------


async def test_queries_run_over_get_and_mutations_are_refused_with_405(client):
    query = await client.get("/graphql", params={"query": VIEWER}, headers=headers(GRAPHQL_RESPONSE_JSON))
    assert query.status_code == 200 and query.json()["data"]["viewer"]["role"] == "ADMIN"

    mutation = 'mutation { createAgency(input: {code: "GETS", name: "Over GET"}) { __typename } }'
    refused = await client.get("/graphql", params={"query": mutation}, headers=headers())

    assert refused.status_code == 405 and refused.headers["allow"] == "POST"
    assert (await client.post("/graphql", json={"query": AGENCIES}, headers=headers())).json()["data"] == {
        "agencies": []}


# --- automatic persisted queries --------------------------------------------------------------------


async def test_a_hash_the_server_does_not_know_asks_for_the_document(client):
    document = "query NotYetSent { viewer { uid } }"

    response = await client.post("/graphql", json={"extensions": persisted(document)}, headers=headers())

    [error] = response.json()["errors"]
    assert (error["message"], error["extensions"]["code"]) == ("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")


async def test_a_document_sent_once_with_its_hash_then_runs_by_hash_over_post_and_get(client):
    document = "query Role($x: Boolean!) { viewer { uid role @include(if: $x) } }"
    extensions = persisted(document)

    # the client's first try, the server's answer, and the client's second try with the document
    first = await client.post("/graphql", json={"extensions": extensions, "variables": {"x": True}},
                              headers=headers())
    second = await client.post("/graphql", json={"query": document, "extensions": extensions,
                                                 "variables": {"x": True}}, headers=headers())
    # from then on the hash is enough, in a URL a CDN can cache too
    by_post = await client.post("/graphql", json={"extensions": extensions, "variables": {"x": False}},
                                headers=headers())
    by_get = await client.get("/graphql", headers=headers("*/*, text/html"), params={
        "extensions": json.dumps(extensions), "variables": json.dumps({"x": True})})

    assert codes(first.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert second.json()["data"] == {"viewer": {"uid": "dev-admin", "role": "ADMIN"}}
    assert by_post.json()["data"] == {"viewer": {"uid": "dev-admin"}}
    assert by_get.status_code == 200, by_get.text
    assert by_get.json()["data"] == {"viewer": {"uid": "dev-admin", "role": "ADMIN"}}


async def test_a_document_whose_hash_does_not_match_is_refused_and_not_stored(client):
    document = "query Mismatch { viewer { uid } }"
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": document_hash(document + " ")}}

    refused = await client.post("/graphql", json={"query": document, "extensions": wrong}, headers=headers())
    later = await client.post("/graphql", json={"extensions": wrong}, headers=headers())

    assert codes(refused.json()) == ["PERSISTED_QUERY_HASH_MISMATCH"]
    assert codes(later.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


@pytest.mark.parametrize(("persisted_query", "code"), [
    ({"version": 2, "sha256Hash": "a" * 64}, "PERSISTED_QUERY_NOT_SUPPORTED"),
    ("a" * 64, "PERSISTED_QUERY_NOT_SUPPORTED"),
    ({"version": 1, "sha256Hash": "not a hash"}, "BAD_USER_INPUT"),
])
async def test_a_malformed_persisted_query_extension_is_refused(client, persisted_query, code):
    response = await client.post("/graphql", json={"extensions": {"persistedQuery": persisted_query}},
                                 headers=headers())

    assert codes(response.json()) == [code]


async def test_a_persisted_mutation_runs_by_hash_over_post_but_not_over_get(client):
    document = 'mutation { createAgency(input: {code: "APQM", name: "Persisted"}) { __typename } }'
    extensions = persisted(document)
    await client.post("/graphql", json={"query": document, "extensions": extensions}, headers=headers())

    over_get = await client.get("/graphql", params={"extensions": json.dumps(extensions)}, headers=headers())

    assert over_get.status_code == 405
    agencies = (await client.post("/graphql", json={"query": AGENCIES}, headers=headers())).json()["data"]
    assert agencies == {"agencies": [{"code": "APQM"}]}


def test_the_store_of_persisted_documents_is_bounded():
    store = PersistedQueries(max_documents=2)
    first, second, third = (f"{{ viewer {{ uid }} }} # {n}" for n in range(3))
    for document in (first, second, third):
        store.document(document, persisted(document))

    assert store.document(None, persisted(third)) == third
    assert store.document(None, persisted(second)) == second
    with pytest.raises(Exception, match="PersistedQueryNotFound"):
        store.document(None, persisted(first))


# --- the allow-list (PERSISTED_QUERIES_ONLY) --------------------------------------------------------


@pytest.fixture(scope="module")
def registry_file(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("registry") / "persisted-queries.json"
    operations = [{"id": document_hash(d), "name": n, "type": t, "body": d}
                  for d, n, t in ((AGENCIES, "Agencies", "query"), (CREATE_AGENCY, "CreateAgency", "mutation"))]
    path.write_text(json.dumps({"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}))
    return path


@pytest.fixture(scope="module")
async def allow_list_app(settings: Settings, registry_file: Any) -> AsyncIterator[Any]:
    from app.main import create_app

    application = create_app(settings.model_copy(update={"persisted_queries_only": True,
                                                        "persisted_queries_file": registry_file}))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def allow_listed(allow_list_app: Any, db: None) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=allow_list_app),
                                 base_url="http://staysync.test") as http:
        yield http


async def test_with_an_allow_list_only_registered_documents_run(allow_listed):
    async def post(body: dict[str, Any]) -> dict[str, Any]:
        return (await allow_listed.post("/graphql", json=body, headers=headers())).json()

    created = await post({"extensions": persisted(CREATE_AGENCY),
                          "variables": {"input": {"code": "LISTED", "name": "Listed"}}})
    in_full = await post({"query": AGENCIES})
    by_hash = await post({"extensions": persisted(AGENCIES)})
    unlisted = await post({"query": VIEWER})
    unlisted_with_hash = await post({"query": VIEWER, "extensions": persisted(VIEWER)})
    unknown_hash = await post({"extensions": persisted(VIEWER)})

    assert created["data"]["createAgency"]["__typename"] == "Agency"
    assert in_full["data"] == by_hash["data"] == {"agencies": [{"code": "LISTED"}]}
    assert codes(unlisted) == codes(unlisted_with_hash) == ["PERSISTED_QUERY_NOT_IN_LIST"]
    assert codes(unknown_hash) == ["PERSISTED_QUERY_NOT_FOUND"]  # and a resend with the document will not help


def test_a_registry_whose_ids_are_not_their_documents_hashes_is_refused(tmp_path):
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({document_hash(VIEWER): VIEWER}))
    assert load_registry(path) == {document_hash(VIEWER): VIEWER}  # Relay's format: hash -> document

    path.write_text(json.dumps({"0" * 64: VIEWER}))
    with pytest.raises(ValueError, match="is not the SHA-256"):
        load_registry(path)


def test_the_allow_list_needs_its_registry():
    with pytest.raises(ValueError, match="PERSISTED_QUERIES_FILE"):
        Settings(app_env="test", persisted_queries_only=True)


async def test_the_allow_list_holds_on_websockets_too(settings, registry_file, db):
    from tests.api.test_subscriptions import open_socket, receive

    with LiveServer(settings, persisted_queries_only=True, persisted_queries_file=registry_file) as server:
        ws = await open_socket(server)
        try:
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": VIEWER}}))
            refused = await receive(ws)
            await ws.send(json.dumps({"id": "2", "type": "subscribe", "payload": {
                "query": AGENCIES, "extensions": persisted(AGENCIES)}}))
            listed = await receive(ws)
        finally:
            await ws.close()

    assert refused["type"] == "error" and codes({"errors": refused["payload"]}) == ["PERSISTED_QUERY_NOT_IN_LIST"]
    assert (listed["id"], listed["type"], listed["payload"]["data"]) == ("2", "next", {"agencies": []})
