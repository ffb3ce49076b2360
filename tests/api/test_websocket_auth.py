"""Websocket authentication over graphql-transport-ws, against a real uvicorn server on loopback.

The token travels in the `connection_init` payload (`{"authorization": "Bearer …"}`); a missing
or bad token closes the socket with 4403, silence past the init timeout with 4408.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.settings import Settings
from tests.support import LiveServer, token

SUBPROTOCOL = "graphql-transport-ws"
INIT_TIMEOUT_S = 0.5
WAIT_S = 5  # upper bound for any single frame; never reached when things work

VIEWER = "query { viewer { uid role agency { code } } }"
UNKNOWN_SUBSCRIPTION = "subscription { noSuchField }"
TOO_DEEP = "{ hotels { " + "roomTypes { hotel { " * 5 + "id" + " } }" * 5 + " } }"
TOO_MANY_TOKENS = "{ viewer { " + "uid " * 1996 + "} }"


@pytest.fixture(scope="module")
def server_url(settings: Settings) -> Iterator[str]:
    """A real uvicorn (lifespan on) serving the app on a free loopback port, in its own thread."""
    with LiveServer(settings, ws_connection_init_timeout_s=INIT_TIMEOUT_S) as live:
        yield live.ws_url


@pytest.fixture
async def ws(server_url: str) -> AsyncIterator[ClientConnection]:
    # proxy=None: never route a loopback test through a proxy from the environment
    async with connect(server_url, subprotocols=[SUBPROTOCOL], proxy=None, open_timeout=WAIT_S) as connection:
        assert connection.subprotocol == SUBPROTOCOL
        yield connection


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def receive(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))


async def closed(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Waits for the server to close the socket; returns (code, reason)."""
    with pytest.raises(ConnectionClosed):
        while True:
            unexpected = await asyncio.wait_for(ws.recv(), WAIT_S)
            raise AssertionError(f"expected the socket to close, got {unexpected!r}")
    return ws.close_code, ws.close_reason


def assert_ack(message: dict[str, Any]) -> None:
    # the protocol allows the ack's payload to be absent or null
    assert message["type"] == "connection_ack", message
    assert message.get("payload") is None, message


async def init(ws: ClientConnection, authorization: str | None) -> None:
    payload = {} if authorization is None else {"authorization": authorization}
    await send(ws, {"type": "connection_init", "payload": payload})


# --- connection_init ------------------------------------------------------------------------


async def test_valid_token_is_acknowledged(ws):
    await init(ws, f"Bearer {token('admin')}")

    assert_ack(await receive(ws))


async def test_operations_run_as_the_token_s_caller(db, ws):  # db first: its TRUNCATE must not eat the init window
    # given an operator connected with its token
    await init(ws, f"Bearer {token('operator')}")
    assert_ack(await receive(ws))

    # when it runs a query over the socket
    await send(ws, {"id": "1", "type": "subscribe", "payload": {"query": VIEWER}})

    # then the query sees the principal from connection_init (and is priced like any other)
    answer = await receive(ws)
    assert answer["payload"].pop("extensions")["cost"]["requested"] == 2
    assert answer == {
        "id": "1",
        "type": "next",
        "payload": {"data": {"viewer": {"uid": "dev-operator", "role": "OPERATOR", "agency": None}}},
    }
    assert await receive(ws) == {"id": "1", "type": "complete"}


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer not-a-jwt", "Token abc", f"Basic {token('admin')}"],
    ids=["missing", "empty", "invalid-token", "wrong-scheme", "basic"],
)
async def test_missing_or_invalid_token_closes_with_4403(ws, authorization):
    await init(ws, authorization)

    code, reason = await closed(ws)

    assert code == 4403
    assert reason == "Forbidden"


async def test_token_without_role_claim_closes_with_4403(ws):
    import base64

    header, payload, signature = token("admin").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    del claims["role"]
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    await init(ws, f"Bearer {header}.{payload}.{signature}")

    assert (await closed(ws))[0] == 4403


async def test_header_style_key_is_accepted(ws):
    await send(ws, {"type": "connection_init", "payload": {"Authorization": f"Bearer {token('admin')}"}})

    assert_ack(await receive(ws))


async def test_no_connection_init_closes_with_4408(server_url):
    loop = asyncio.get_running_loop()
    started = loop.time()  # before the server accepts, so the whole timeout lies after it

    async with connect(server_url, subprotocols=[SUBPROTOCOL], proxy=None, open_timeout=WAIT_S) as ws:
        code, reason = await closed(ws)

    assert code == 4408
    assert reason == "Connection initialisation timeout"
    assert loop.time() - started >= INIT_TIMEOUT_S


async def test_subscribe_before_connection_init_closes_with_4401(ws):
    await send(ws, {"id": "1", "type": "subscribe", "payload": {"query": VIEWER}})

    assert (await closed(ws))[0] == 4401


# --- after the ack ----------------------------------------------------------------------------


async def test_ping_is_answered_with_pong(ws):
    await init(ws, f"Bearer {token('agent', 'SUNTRAVEL')}")
    assert_ack(await receive(ws))

    await send(ws, {"type": "ping"})

    assert await receive(ws) == {"type": "pong"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (UNKNOWN_SUBSCRIPTION, "Cannot query field 'noSuchField' on type 'Subscription'."),
        ("{ noSuchField }", "Cannot query field 'noSuchField' on type 'Query'."),
        (TOO_DEEP, "exceeds maximum operation depth of 10"),
    ],
    ids=["unknown-subscription", "unknown-field", "too-deep"],
)
async def test_invalid_operation_is_an_error_message_not_a_crash(ws, caplog, query, expected):
    await init(ws, f"Bearer {token('admin')}")
    assert_ack(await receive(ws))

    await send(ws, {"id": "op-1", "type": "subscribe", "payload": {"query": query}})

    message = await receive(ws)
    assert message["type"] == "error"
    assert message["id"] == "op-1"
    assert expected in message["payload"][0]["message"]
    # and the connection lives on
    await send(ws, {"type": "ping"})
    assert await receive(ws) == {"type": "pong"}
    assert not [record for record in caplog.records if record.levelname == "ERROR" and record.exc_info]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("subscription {", "Syntax Error: Expected Name, found <EOF>."),
        (TOO_MANY_TOKENS, "Syntax Error: Document contains more than 2000 tokens. Parsing aborted."),
    ],
    ids=["syntax-error", "too-many-tokens"],
)
async def test_unparsable_operation_closes_with_4400_and_the_reason(ws, caplog, query, expected):
    # graphql-transport-ws: a document that cannot be parsed is a protocol error (4400), not a
    # silent `complete` from a crashed operation task
    await init(ws, f"Bearer {token('admin')}")
    assert_ack(await receive(ws))

    await send(ws, {"id": "op-1", "type": "subscribe", "payload": {"query": query}})

    assert await closed(ws) == (4400, expected)
    assert not [record for record in caplog.records if record.name == "strawberry.ws.task"]
