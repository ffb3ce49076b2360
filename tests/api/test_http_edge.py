"""Issue 11, the HTTP edge: a request body limit checked while the body streams in, CORS for
browser front ends on other origins, and our request id kept apart from the client's."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import httpx
import pytest

import app.services.catalog
from app.settings import Settings
from tests.support import LiveServer, data, token

LIMIT = 2048
HOTELS = "{ hotels { code } }"
FRONT_END = "https://agents.example.com"


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings, max_request_bytes=LIMIT, cors_origins=(FRONT_END,)) as live:
        yield live


async def raw_request(server: LiveServer, head: str, chunks: list[bytes]) -> tuple[int, dict, bytes]:
    """Sends a request's head and `chunks` as they are, then reads the answer without sending the
    rest: a server that waits for the whole body before answering times out here."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(head.encode())
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
        headers = {}
        while (line := await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)
        return int(status_line.split()[1]), headers, body
    finally:
        writer.close()


def head(content_headers: str) -> str:
    return (f"POST /graphql HTTP/1.1\r\nHost: staysync.test\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token('admin')}\r\n{content_headers}\r\n")


def assert_too_large(status: int, body: bytes) -> None:
    assert status == 413
    [error] = json.loads(body)["errors"]
    assert error["extensions"]["code"] == "REQUEST_TOO_LARGE" and error["extensions"]["maxBytes"] == LIMIT


async def test_a_declared_length_over_the_limit_is_refused_before_the_body(server):
    # when a client announces a body one byte over the limit and sends none of it
    status, _, body = await raw_request(server, head(f"Content-Length: {LIMIT + 1}\r\n"), [])

    # then the answer comes at once
    assert_too_large(status, body)


async def test_a_chunked_body_is_refused_once_it_passes_the_limit(server):
    # given a chunked body that has just passed the limit and is not finished
    chunk = b" " * 1000
    chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)]

    # when the server is asked no more than that
    status, _, body = await raw_request(server, head("Transfer-Encoding: chunked\r\n"), chunks)

    # then it has refused without waiting for the end of the body
    assert_too_large(status, body)


async def test_a_body_within_the_limit_is_served(server, db):
    query = {"query": HOTELS, "variables": {}, "padding": " " * (LIMIT - 200)}

    async def chunks():
        yield json.dumps(query).encode()

    async with httpx.AsyncClient(base_url=server.http_url, trust_env=False) as http:
        sized = await http.post("/graphql", json=query, headers={"Authorization": f"Bearer {token('admin')}"})
        chunked = await http.post("/graphql", content=chunks(), headers={
            "Authorization": f"Bearer {token('admin')}", "Content-Type": "application/json"})

    assert sized.status_code == chunked.status_code == 200
    assert data(sized.json()) == data(chunked.json()) == {"hotels": []}


async def test_the_default_limit_is_256_kib():
    assert Settings(app_env="test").max_request_bytes == 262_144


# --- CORS ----------------------------------------------------------------------------------------


def preflight(origin: str) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-request-id"}


async def test_a_preflight_from_an_allowed_origin_is_answered(server):
    async with httpx.AsyncClient(base_url=server.http_url, trust_env=False) as http:
        response = await http.options("/graphql", headers=preflight(FRONT_END))

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == FRONT_END
    allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "x-request-id"} <= allowed
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}


async def test_an_allowed_origin_reads_answers_and_our_request_id(server, db):
    async with httpx.AsyncClient(base_url=server.http_url, trust_env=False) as http:
        response = await http.post("/graphql", json={"query": HOTELS}, headers={
            "Origin": FRONT_END, "Authorization": f"Bearer {token('admin')}"})

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == FRONT_END
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()


async def test_other_origins_get_no_cors_headers(server):
    async with httpx.AsyncClient(base_url=server.http_url, trust_env=False) as http:
        response = await http.options("/graphql", headers=preflight("https://evil.example.com"))

    assert "access-control-allow-origin" not in response.headers


async def test_no_origin_is_allowed_by_default(client):
    assert Settings(app_env="test").cors_origins == ()
    response = await client.options("/graphql", headers=preflight(FRONT_END))
    assert "access-control-allow-origin" not in response.headers


def test_cors_origins_are_exact_origins():
    assert Settings(app_env="test", cors_origins=f"{FRONT_END}, http://localhost:5173").cors_origins == (
        FRONT_END, "http://localhost:5173")
    for wrong in ("*", "https://agents.example.com/", "agents.example.com", "https://*.example.com"):
        with pytest.raises(ValueError, match="exact origins"):
            Settings(app_env="test", cors_origins=wrong)


# --- request ids ---------------------------------------------------------------------------------


async def test_our_request_id_is_ours_and_the_clients_is_kept_beside_it(client, monkeypatch, caplog):
    # given a use case that fails unexpectedly, and a client that names its request
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(app.services.catalog, "select", broken)

    # when it calls with its own X-Request-Id
    with caplog.at_level(logging.ERROR, logger="app.api.schema"):
        response = await client.post("/graphql", json={"query": HOTELS}, headers={
            "Authorization": f"Bearer {token('admin')}", "X-Request-Id": "client-chosen-1"})

    # then the id in the error, the response header and the log is the server's own
    ours = response.headers["x-request-id"]
    assert ours and ours != "client-chosen-1"
    [error] = response.json()["errors"]
    assert error["extensions"]["requestId"] == ours
    [record] = [r for r in caplog.records if "unexpected error" in r.getMessage()]
    # and the client's id is logged beside it, so either side can find the request
    assert ours in record.getMessage() and "client-chosen-1" in record.getMessage()


async def test_the_audit_log_records_our_request_id_not_the_clients(client, db):
    create = 'mutation { createAgency(input: {code: "SUN", name: "Sun"}) { ... on Agency { id } } }'
    response = await client.post("/graphql", json={"query": create}, headers={
        "Authorization": f"Bearer {token('admin')}", "X-Request-Id": "client-chosen-2"})
    agency_id = data(response.json())["createAgency"]["id"]

    audit = await client.post("/graphql", json={
        "query": "query($id: ID!) { auditLog(entityId: $id) { edges { node { requestId } } } }",
        "variables": {"id": agency_id}}, headers={"Authorization": f"Bearer {token('admin')}"})

    [entry] = data(audit.json())["auditLog"]["edges"]
    assert entry["node"]["requestId"] == response.headers["x-request-id"] != "client-chosen-2"
