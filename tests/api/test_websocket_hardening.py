"""Websockets under hardening (issue 11): per-operation reads, limits, malformed broadcast messages,
token expiry with a ping outstanding. Real uvicorn servers on loopback, real websocket clients.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.api.ids import decode_id
from app.services.changes import BOOKING_GROUPS_CHANNEL, inventory_channel
from app.settings import PROJECT_ROOT, Settings
from tests.api.test_bookings import CONFIRM, book, item
from tests.api.test_calendar import d, setup_hotel
from tests.api.test_subscriptions import (
    AVAILABILITY,
    GROUPS,
    http,
    next_data,
    open_socket,
    receive,
    subscribe,
    watch,
)
from tests.support import EMULATOR_HOST, PROJECT_ID, LiveServer, data, live_server, token
from tests.test_broadcast import eventually

WAIT_S = 10

GROUP_STATUS = "query($id: ID!) { node(id: $id) { ... on BookingGroup { status } } }"
CELL_BOOKINGS = """
query($id: ID!, $from: Date!, $to: Date!, $roomTypeIds: [ID!]) { node(id: $id) { ... on Hotel {
  calendar(from: $from, to: $to, roomTypeIds: $roomTypeIds) { rows { cells { held bookings { group { status } } } } } } } }
"""


async def run(ws: ClientConnection, op: str, query: str, variables: dict[str, Any] | None = None) -> dict:
    """Runs a query or mutation over the socket; returns its data."""
    await ws.send(json.dumps({"id": op, "type": "subscribe", "payload": {"query": query, "variables": variables}}))
    result = await next_data(ws, op)
    assert await receive(ws) == {"id": op, "type": "complete"}
    return result


def token_claims(bearer: str) -> dict[str, Any]:
    payload = bearer.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def closed(ws: ClientConnection, wait_s: float = WAIT_S) -> tuple[int | None, str | None]:
    """Waits for the server to close the socket (answering nothing); returns (code, reason)."""
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), wait_s)
    return ws.close_code, ws.close_reason


@pytest.fixture(scope="module")
def server(settings: Settings):
    with live_server(settings) as live:
        yield live


async def booked_group(server: LiveServer) -> tuple[dict, dict, str]:
    async with http(server) as gql:
        hotel, ids = await setup_hotel(gql)
        agency = data(await gql('mutation { createAgency(input: {code: "SUNTRAVEL", name: "Sun"}) '
                                "{ ... on Agency { id } } }"))["createAgency"]
        group = await book(gql, agency["id"], item(ids["STD"], 0, 1))
    return hotel, ids, group["id"]


# --- 1. each operation over a socket reads afresh ----------------------------------------------


async def test_a_query_over_a_socket_sees_writes_made_since_its_previous_query(server, db):
    # given a held group, read once over the socket
    hotel, ids, group_id = await booked_group(server)
    ws = await open_socket(server)
    assert (await run(ws, "q1", GROUP_STATUS, {"id": group_id}))["node"] == {"status": "HELD"}
    cells = {"id": hotel["id"], "from": d(0), "to": d(1), "roomTypeIds": [ids["STD"]]}
    assert await bookings_of_the_cell(ws, "c1", cells) == ["HELD"]

    # when the group is confirmed over HTTP
    async with http(server) as gql:
        assert (await gql(CONFIRM, {"id": group_id}))["data"]["confirmBooking"]["__typename"] == "SaleOrder"

    # then the same queries over the same socket read the confirmed group
    assert await bookings_of_the_cell(ws, "c2", cells) == ["CONFIRMED"]
    assert (await run(ws, "q2", GROUP_STATUS, {"id": group_id}))["node"] == {"status": "CONFIRMED"}
    await ws.close()


async def bookings_of_the_cell(ws: ClientConnection, op: str, variables: dict[str, Any]) -> list[str]:
    [row] = (await run(ws, op, CELL_BOOKINGS, variables))["node"]["calendar"]["rows"]
    [cell] = row["cells"]
    return [booking["group"]["status"] for booking in cell["bookings"]]


# --- 3. a token's expiry ends the socket, answered pings or not -----------------------------------


async def test_at_exp_the_socket_closes_4403_even_with_a_ping_outstanding_and_sends_nothing_after(settings, db):
    # given a server that pings often and would wait long for the pong
    with LiveServer(settings, ws_ping_interval_s=0.2, ws_ping_timeout_s=30) as server:
        _, _, group_id = await booked_group(server)
        bearer = token("admin", lifetime_s=2)
        expires_at = token_claims(bearer)["exp"]
        # and a subscriber whose token expires in 1-2 s and who never answers a ping
        ws = await subscribe(server, GROUPS, ws=await open_socket(server, bearer=bearer))
        message = json.dumps({"groupId": decode_id(group_id, "BookingGroup", "groupId"), "agencyId": 1})

        async def keep_publishing() -> None:
            while True:
                await server.call(server.broadcast.publish(BOOKING_GROUPS_CHANNEL, message))
                await asyncio.sleep(0.05)

        # when changes keep coming until after the token's exp
        publisher = asyncio.create_task(keep_publishing())
        received: list[tuple[float, str]] = []
        try:
            with pytest.raises(ConnectionClosed):
                while time.time() < expires_at + 3:
                    received.append((time.time(), json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))["type"]))
        finally:
            publisher.cancel()
        closed_at = time.time()

        # then events arrived until exp, none after it, and the socket closed with 4403 at exp
        assert ("ping" in {kind for _, kind in received}) and ("next" in {kind for _, kind in received})
        assert max(at for at, kind in received if kind == "next") < expires_at + 0.25
        assert (ws.close_code, ws.close_reason) == (4403, "Token expired")
        assert closed_at < expires_at + 1


# --- 2. limits per socket and per user; malformed broadcast messages -------------------------------

MAX_SUBSCRIPTIONS, MAX_SOCKETS, MAX_MESSAGE_BYTES = 2, 2, 2048
HOTEL = object()  # in a malformed message: the id of the test's hotel


@pytest.fixture(scope="module")
def limited(settings: Settings):
    with live_server(settings, ws_max_subscriptions_per_socket=MAX_SUBSCRIPTIONS,
                     ws_max_sockets_per_user=MAX_SOCKETS, ws_max_message_bytes=MAX_MESSAGE_BYTES) as live:
        yield live


async def test_a_subscription_past_the_cap_is_an_error_and_the_socket_stays_open(limited, db):
    # given a socket with as many subscriptions as allowed
    ws = await open_socket(limited, bearer=token("admin", uid="subscription-cap"))
    for op in ("1", "2"):
        await subscribe(limited, GROUPS, ws=ws, op=op)

    # when it asks for one more
    await ws.send(json.dumps({"id": "3", "type": "subscribe", "payload": {"query": GROUPS}}))

    # then that one is refused with a coded error
    refused = await receive(ws)
    assert refused["id"] == "3" and refused["type"] == "error"
    assert refused["payload"][0]["extensions"] == {"code": "TOO_MANY_SUBSCRIPTIONS"}
    # and the socket lives on: once one completes, another is accepted
    await ws.send(json.dumps({"type": "ping"}))
    assert await receive(ws) == {"type": "pong"}
    await ws.send(json.dumps({"id": "1", "type": "complete"}))
    await eventually(lambda: limited.broadcast.subscriber_count == 1, "the subscription to end")
    await subscribe(limited, GROUPS, ws=ws, op="3")
    await ws.close()


async def test_a_socket_past_the_per_user_cap_closes_with_4429(limited, db):
    # given a user with as many sockets as allowed
    bearer = token("agent", "SUNTRAVEL", uid="socket-cap")
    sockets = [await open_socket(limited, bearer=bearer) for _ in range(MAX_SOCKETS)]

    # when the same user opens one more
    ws = await connect(limited.ws_url, subprotocols=["graphql-transport-ws"], proxy=None, open_timeout=WAIT_S)
    await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {bearer}"}}))

    # then it is closed with 4429, without an ack
    assert await closed(ws) == (4429, "Too many open sockets for this user")
    # while another user still connects, and the first gets a socket again once one of its own closes
    await (await open_socket(limited, bearer=token("agent", "SUNTRAVEL", uid="someone-else"))).close()
    await sockets.pop().close()
    sockets.append(await eventually_open(limited, bearer))
    for ws in sockets:
        await ws.close()


async def eventually_open(server: LiveServer, bearer: str) -> ClientConnection:
    """A socket for `bearer` once the server has seen one of that user's sockets close."""
    for _ in range(100):
        ws = await connect(server.ws_url, subprotocols=["graphql-transport-ws"], proxy=None, open_timeout=WAIT_S)
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {bearer}"}}))
        try:
            if (await receive(ws))["type"] == "connection_ack":
                return ws
        except ConnectionClosed:
            await asyncio.sleep(0.05)
    raise AssertionError("the user never got a socket again")


@pytest.mark.parametrize("acknowledged", [False, True], ids=["before-init", "after-ack"])
async def test_a_message_over_the_size_limit_closes_with_4400(limited, acknowledged):
    ws = await connect(limited.ws_url, subprotocols=["graphql-transport-ws"], proxy=None, open_timeout=WAIT_S)
    if acknowledged:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token('admin')}"}}))
        assert (await receive(ws))["type"] == "connection_ack"
        # a message at the limit is served
        ping = json.dumps({"type": "ping"})
        at_limit = ping[:-1] + " " * (MAX_MESSAGE_BYTES - len(ping)) + "}"
        assert len(at_limit.encode()) == MAX_MESSAGE_BYTES
        await ws.send(at_limit)
        assert await receive(ws) == {"type": "pong"}

    # one byte more (counted in UTF-8) closes the socket
    query = "{ viewer { uid } }" + "#" + "é" * MAX_MESSAGE_BYTES
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}, ensure_ascii=False))

    assert await closed(ws) == (4400, f"Message larger than {MAX_MESSAGE_BYTES} bytes")


@pytest.mark.parametrize(
    ("channel", "malformed"),
    [
        ("inventory", {"hotelId": HOTEL, "version": "next", "roomTypeIds": [], "from": d(0), "to": d(1)}),
        ("inventory", {"hotelId": HOTEL, "version": 10**6, "roomTypeIds": [1], "from": "soon", "to": "later"}),
        ("booking_groups", {"groupId": None, "agencyId": 1}),
        ("booking_groups", {"groupId": [1], "agencyId": 1}),
    ],
    ids=["inventory-version", "inventory-dates", "group-null-id", "group-list-id"],
)
async def test_a_malformed_broadcast_message_is_dropped_and_subscriptions_live_on(server, db, caplog, channel,
                                                                                   malformed):
    # given subscribers to availability and to booking groups
    async with http(server) as gql:
        hotel, ids = await setup_hotel(gql)
        agency = data(await gql('mutation { createAgency(input: {code: "SUNTRAVEL", name: "Sun"}) '
                                "{ ... on Agency { id } } }"))["createAgency"]
        availability = await subscribe(server, AVAILABILITY, watch(hotel))
        groups = await subscribe(server, GROUPS)
        hotel_pk = decode_id(hotel["id"], "Hotel", "hotelId")

        # when a malformed message arrives on their channel, then a real change
        wire_channel = inventory_channel(hotel_pk) if channel == "inventory" else BOOKING_GROUPS_CHANNEL
        malformed = {key: hotel_pk if value is HOTEL else value for key, value in malformed.items()}
        await server.call(server.broadcast.publish(wire_channel, json.dumps(malformed)))
        await book(gql, agency["id"], item(ids["STD"], 0, 1))

    # then both subscriptions deliver the change, and the bad message is in the log
    assert (await next_data(availability))["availabilityChanged"]["cells"][0]["held"] == 1
    assert (await next_data(groups))["bookingGroupChanged"]["status"] == "HELD"
    assert any("malformed broadcast message" in record.getMessage() for record in caplog.records)
    await availability.close()
    await groups.close()


# --- 5. graceful shutdown -----------------------------------------------------------------------------


async def test_at_shutdown_an_open_subscription_socket_is_closed_with_1001(settings, db):
    # given a live server with a subscriber
    server = LiveServer(settings)
    server.start()
    try:
        ws = await subscribe(server, GROUPS)
    finally:
        # when the server is told to stop
        stopping = asyncio.create_task(asyncio.to_thread(server.close))

    # then the socket is closed with 1001 (going away), not uvicorn's 1012
    assert await closed(ws) == (1001, "Server shutting down")
    await stopping


@pytest.mark.parametrize("workers", [1, 2])
async def test_staysync_serve_closes_sockets_with_1001_on_sigterm(settings, db, workers):
    # given `staysync serve` in its own process(es), and a socket on it running a query and a subscription
    port = free_port()
    env = {**os.environ, "APP_ENV": "development", "DATABASE_URL": settings.database_url, "SEED_DEMO": "0",
           "FIREBASE_PROJECT_ID": PROJECT_ID, "FIREBASE_AUTH_EMULATOR_HOST": EMULATOR_HOST, "SHUTDOWN_TIMEOUT_S": "5",
           "WEB_CONCURRENCY": str(workers), "BROADCAST_URL": "memory://" if workers == 1 else settings.database_url}
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--no-migrate", "--port", str(port)],
                               cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ws = await connected(f"ws://127.0.0.1:{port}/graphql")
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token('admin')}"}}))
        assert (await receive(ws))["type"] == "connection_ack"
        assert (await run(ws, "q", "{ viewer { uid } }")) == {"viewer": {"uid": "dev-admin"}}
        await ws.send(json.dumps({"id": "s", "type": "subscribe", "payload": {"query": GROUPS}}))

        # when it gets SIGTERM (what an orchestrator sends)
        process.send_signal(signal.SIGTERM)

        # then the socket closes with 1001, and the process exits cleanly
        assert await closed(ws) == (1001, "Server shutting down")
        assert await asyncio.to_thread(process.wait, 15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def connected(url: str) -> ClientConnection:
    """A websocket to a server that may still be starting."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return await connect(url, subprotocols=["graphql-transport-ws"], proxy=None, open_timeout=WAIT_S)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
