"""Websockets under hardening (issue 11): per-operation reads, limits, malformed broadcast messages,
token expiry with a ping outstanding. Real uvicorn servers on loopback, real websocket clients.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from app.api.ids import decode_id
from app.services.changes import BOOKING_GROUPS_CHANNEL
from app.settings import Settings
from tests.api.test_bookings import CONFIRM, book, item
from tests.api.test_calendar import d, setup_hotel
from tests.api.test_subscriptions import GROUPS, http, next_data, open_socket, receive, subscribe
from tests.support import LiveServer, data, live_server, token

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
