"""Subscriptions over graphql-transport-ws, against real uvicorn servers on loopback.

Changes are made through HTTP mutations on a live server; subscribers are real websocket
clients. The cross-worker and restart cases run two servers (worker A writes, worker B serves
the subscriber) that share only the database and the broadcast backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.api.ids import decode_id
from app.services.changes import HARDBLOCKS_CHANNEL
from app.settings import Settings
from tests.api.test_bookings import CANCEL, book, item
from tests.api.test_calendar import END, START, d, insert_hardblock, record, setup_hotel
from tests.api.test_catalog import CREATE_AGENCY
from tests.support import GraphQL, LiveServer, data, live_server, token
from tests.test_broadcast import dedicated_postgres, eventually, redis_server, requires_redis  # noqa: F401 (fixtures)

SUBPROTOCOL = "graphql-transport-ws"
WAIT_S = 10  # upper bound for any single frame; never reached when things work

AVAILABILITY = """
subscription($hotelId: ID!, $from: Date!, $to: Date!, $roomTypeIds: [ID!], $since: Int) {
  availabilityChanged(hotelId: $hotelId, from: $from, to: $to, roomTypeIds: $roomTypeIds, sinceVersion: $since) {
    version resync hotel { code }
    cells { date roomType { code } held available bookings { group { reference agency { code } } } }
  }
}
"""
GROUPS = """
subscription($id: ID) { bookingGroupChanged(groupId: $id) { reference status agency { code } } }
"""
HARDBLOCKS = """
subscription($id: ID) { hardblockChanged(hardblockId: $id) { reference agency { code } } }
"""


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[LiveServer]:
    # A thousand sockets connecting at once keep the loop busy for seconds: wait for the pool
    # as long as that takes (these tests are about delivery, not about a saturated database).
    with live_server(settings, db_pool_timeout_s=30) as live:
        yield live


@contextlib.asynccontextmanager
async def http(server: LiveServer) -> AsyncIterator[GraphQL]:
    async with httpx.AsyncClient(base_url=server.http_url, trust_env=False, timeout=WAIT_S) as client:
        yield GraphQL(client)


@pytest.fixture
async def gql_a(server: LiveServer, db: None) -> AsyncIterator[GraphQL]:
    async with http(server) as gql:
        yield gql


async def receive(ws: ClientConnection) -> dict[str, Any]:
    frame = await asyncio.wait_for(ws.recv(), WAIT_S)
    assert isinstance(frame, str), f"graphql-transport-ws messages are text frames, not {frame!r}"
    return json.loads(frame)


async def open_socket(server: LiveServer, role: str = "admin", agency: str | None = None,
                      bearer: str | None = None) -> ClientConnection:
    ws = await connect(server.ws_url, subprotocols=[SUBPROTOCOL], proxy=None, open_timeout=WAIT_S)
    bearer = bearer or token(role, agency)
    await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {bearer}"}}))
    assert (await receive(ws))["type"] == "connection_ack"
    return ws


async def subscribe(server: LiveServer, query: str, variables: dict[str, Any] | None = None, *,
                    role: str = "admin", agency: str | None = None, ws: ClientConnection | None = None,
                    op: str = "1") -> ClientConnection:
    """Subscribes, and returns once the server has registered the subscriber."""
    ws = ws or await open_socket(server, role, agency)
    before = server.broadcast.subscriber_count
    await ws.send(json.dumps({"id": op, "type": "subscribe", "payload": {"query": query, "variables": variables}}))
    await eventually(lambda: server.broadcast.subscriber_count > before, "the subscription to register")
    return ws


async def next_data(ws: ClientConnection, op: str = "1") -> dict[str, Any]:
    """The next result of operation `op` (answering the server's pings on the way)."""
    while True:
        message = await receive(ws)
        if message["type"] == "ping":
            await ws.send(json.dumps({"type": "pong"}))
            continue
        assert message.get("id") == op and message["type"] == "next", message
        assert "errors" not in message["payload"], message
        return message["payload"]["data"]


async def nothing_within(ws: ClientConnection, seconds: float) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.recv(), seconds)


async def hotel_version(gql: GraphQL, hotel_id: str) -> int:
    query = ("query($id: ID!, $from: Date!, $to: Date!) { node(id: $id) { ... on Hotel { "
             "calendar(from: $from, to: $to) { version } } } }")
    result = await gql(query, {"id": hotel_id, "from": START.isoformat(), "to": END.isoformat()})
    return data(result)["node"]["calendar"]["version"]


async def setup(gql: GraphQL) -> tuple[dict, dict, dict]:
    hotel, ids = await setup_hotel(gql)
    agencies = {}
    for code in ("SUNTRAVEL", "BLUEWAVE"):
        agencies[code] = data(await gql(CREATE_AGENCY, {"input": {"code": code, "name": code.title()}}))[
            "createAgency"]["id"]
    return hotel, ids, agencies


def watch(hotel: dict, start: int = 0, end: int = 5, **more: Any) -> dict[str, Any]:
    return {"hotelId": hotel["id"], "from": d(start), "to": d(end), **more}


# --- availabilityChanged ---------------------------------------------------------------------------


async def test_events_arrive_for_the_watched_cells_and_not_for_others(server, gql_a):
    # given a subscriber watching STD on nights 0-4
    hotel, ids, agencies = await setup(gql_a)
    start_version = await hotel_version(gql_a, hotel["id"])
    ws = await subscribe(server, AVAILABILITY, watch(hotel, roomTypeIds=[ids["STD"]]))

    # when changes land on another room type, and outside the nights, then one on the watched cells
    await record(gql_a, kind="INCREASE_ALLOTMENT", roomTypeId=ids["SUP"], **{"from": d(0), "to": d(3)}, quantity=1)
    await record(gql_a, kind="INCREASE_ALLOTMENT", roomTypeId=ids["STD"], **{"from": d(6), "to": d(8)}, quantity=1)
    group = await book(gql_a, agencies["SUNTRAVEL"], item(ids["STD"], offset=4, nights=3, rooms=2))

    # then the first event is the booking, with only the watched cells it touched, read after it
    change = (await next_data(ws))["availabilityChanged"]
    assert change["version"] == start_version + 3
    assert change["resync"] is False
    assert change["hotel"] == {"code": "LIS"}
    assert [(c["date"], c["roomType"]["code"], c["held"], c["available"]) for c in change["cells"]] == [
        (d(4), "STD", 2, 8)]
    assert change["cells"][0]["bookings"] == [{"group": {"reference": group["reference"],
                                                         "agency": {"code": "SUNTRAVEL"}}}]

    # and an allotment event on the watched cells is the next one
    await record(gql_a, kind="REDUCE_ALLOTMENT", roomTypeId=ids["STD"], **{"from": d(0), "to": d(2)}, quantity=3)
    change = (await next_data(ws))["availabilityChanged"]
    assert change["version"] == start_version + 4
    assert [(c["date"], c["available"]) for c in change["cells"]] == [(d(0), 7), (d(1), 7)]
    await ws.close()


async def test_since_version_resyncs_first_and_a_version_that_never_arrives_resyncs(server, gql_a, engine):
    hotel, ids, _ = await setup(gql_a)
    version = await hotel_version(gql_a, hotel["id"])

    # a client whose calendar is one version behind gets the whole range first
    ws = await subscribe(server, AVAILABILITY, watch(hotel, 0, 2, since=version - 1))
    change = (await next_data(ws))["availabilityChanged"]
    assert (change["resync"], change["version"], len(change["cells"])) == (True, version, 4)

    # then one event per change, versions consecutive
    for expected in (version + 1, version + 2):
        await record(gql_a, kind="INCREASE_ALLOTMENT", roomTypeId=ids["STD"], **{"from": d(0), "to": d(1)},
                     quantity=1)
        change = (await next_data(ws))["availabilityChanged"]
        assert (change["resync"], change["version"], len(change["cells"])) == (False, expected, 1)

    # when a change is committed but its message is lost (here: a version bumped without a publish)
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE inventory_version SET version = version + 1"))
    await record(gql_a, kind="INCREASE_ALLOTMENT", roomTypeId=ids["SUP"], **{"from": d(1), "to": d(2)}, quantity=1)

    # then the next change still arrives, and then a resync, once the missing version is overdue
    change = (await next_data(ws))["availabilityChanged"]
    assert (change["resync"], change["version"]) == (False, version + 4)
    change = (await next_data(ws))["availabilityChanged"]
    assert (change["resync"], change["version"], len(change["cells"])) == (True, version + 4, 4)
    await ws.close()


async def test_bad_arguments_are_errors_not_streams(server, gql_a):
    hotel, ids, _ = await setup(gql_a)
    ws = await open_socket(server)
    for variables, expected in [
        (watch(hotel, 3, 1), "must be after from"),
        ({**watch(hotel), "hotelId": ids["STD"]}, "hotelId"),
        (watch(hotel, roomTypeIds=["bm90LWFuLWlk"]), "roomTypeIds"),
    ]:
        await ws.send(json.dumps({"id": "x", "type": "subscribe",
                                  "payload": {"query": AVAILABILITY, "variables": variables}}))
        message = await receive(ws)
        assert message["type"] in ("next", "error"), message
        errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
        assert expected in errors[0]["message"]
        if message["type"] == "next":
            assert (await receive(ws))["type"] == "complete"
    await ws.close()
    await eventually(lambda: server.broadcast.subscriber_count == 0, "no subscribers")


async def test_subscriptions_need_a_token_s_role(server, gql_a):
    hotel, _, _ = await setup(gql_a)
    ws = await connect(server.ws_url, subprotocols=[SUBPROTOCOL], proxy=None, open_timeout=WAIT_S)
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    with pytest.raises(ConnectionClosed):
        await receive(ws)
    assert ws.close_code == 4403


# --- scoping ---------------------------------------------------------------------------------------


async def test_agents_receive_only_their_agency_s_groups_and_bookings(server, gql_a):
    hotel, ids, agencies = await setup(gql_a)
    agent = await subscribe(server, GROUPS, role="agent", agency="SUNTRAVEL")
    agent_cells = await subscribe(server, AVAILABILITY, watch(hotel, roomTypeIds=[ids["STD"]]), role="agent",
                                  agency="SUNTRAVEL")
    operator = await subscribe(server, GROUPS, role="operator")

    foreign = await book(gql_a, agencies["BLUEWAVE"], item(ids["STD"], rooms=1))
    spy = await subscribe(server, GROUPS, {"id": foreign["id"]}, role="agent", agency="SUNTRAVEL")
    await gql_a(CANCEL, {"id": foreign["id"]})
    own = await book(gql_a, agencies["SUNTRAVEL"], item(ids["STD"], rooms=1))

    assert (await next_data(agent))["bookingGroupChanged"] == {
        "reference": own["reference"], "status": "HELD", "agency": {"code": "SUNTRAVEL"}}
    assert [(await next_data(operator))["bookingGroupChanged"]["reference"] for _ in range(3)] == [
        foreign["reference"], foreign["reference"], own["reference"]]
    # what is available is everyone's; the pool's make-up and bookings in the cells only staff's / its own
    availability = [(await next_data(agent_cells))["availabilityChanged"] for _ in range(3)]
    assert [change["cells"][0]["available"] for change in availability] == [9, 10, 9]
    assert [change["cells"][0]["held"] for change in availability] == [None, None, None]
    assert [change["cells"][0]["bookings"] for change in availability] == [[], [], [
        {"group": {"reference": own["reference"], "agency": {"code": "SUNTRAVEL"}}}]]
    await nothing_within(spy, 0.3)  # another agency's group, even by id
    for ws in (agent, agent_cells, operator, spy):
        await ws.close()


async def test_subscribers_alike_share_one_execution_and_each_scope_sees_only_its_own(server, gql_a, monkeypatch):
    # given subscribers on the same cells: three SUNTRAVEL agents, a BLUEWAVE agent, an admin, and an
    # admin that asks the same with other variables (a wider range), all on one worker
    from app.api.subscriptions import SharedResultsExecutor

    executions = []
    own = SharedResultsExecutor._own

    async def counted(self: SharedResultsExecutor, serially: bool | None) -> Any:
        executions.append(self.context_value.principal.agency_code)
        return await own(self, serially)

    monkeypatch.setattr(SharedResultsExecutor, "_own", counted)
    hotel, ids, agencies = await setup(gql_a)
    cells = watch(hotel, roomTypeIds=[ids["STD"]])
    sun = [await subscribe(server, AVAILABILITY, cells, role="agent", agency="SUNTRAVEL") for _ in range(3)]
    blue = await subscribe(server, AVAILABILITY, cells, role="agent", agency="BLUEWAVE")
    admin = await subscribe(server, AVAILABILITY, cells)
    wider = await subscribe(server, AVAILABILITY, watch(hotel, end=6, roomTypeIds=[ids["STD"]]))

    # when each agency books on a watched night
    ours = await book(gql_a, agencies["SUNTRAVEL"], item(ids["STD"], rooms=1))
    theirs = await book(gql_a, agencies["BLUEWAVE"], item(ids["STD"], rooms=2))

    # then every subscriber gets both changes, with the pool numbers for all and only its own bookings
    def bookings(change: dict) -> set[str]:
        return {b["group"]["reference"] for c in change["cells"] for b in c["bookings"]}

    for _ in range(2):
        sun_changes = [(await next_data(ws))["availabilityChanged"] for ws in sun]
        assert sun_changes[0] == sun_changes[1] == sun_changes[2]
        blue_change = (await next_data(blue))["availabilityChanged"]
        admin_change = (await next_data(admin))["availabilityChanged"]
        wider_change = (await next_data(wider))["availabilityChanged"]
        assert [c["available"] for c in sun_changes[0]["cells"]] == [c["available"] for c in blue_change["cells"]] \
            == [c["available"] for c in admin_change["cells"]]
        assert {c["held"] for c in sun_changes[0]["cells"] + blue_change["cells"]} == {None}  # staff's figure
        assert None not in [c["held"] for c in admin_change["cells"]]
        assert bookings(sun_changes[0]) <= {ours["reference"]}
        assert bookings(blue_change) <= {theirs["reference"]}
    assert bookings(sun_changes[0]) == {ours["reference"]}
    assert bookings(blue_change) == {theirs["reference"]}
    assert bookings(admin_change) == bookings(wider_change) == {ours["reference"], theirs["reference"]}
    # and one execution per change for each distinct (query, variables, scope): the three SUNTRAVEL
    # agents share one, the two admins do not (their variables differ)
    assert sorted(executions, key=str) == sorted([None, None, "BLUEWAVE", "SUNTRAVEL"] * 2, key=str)
    for ws in (*sun, blue, admin, wider):
        await ws.close()


async def test_hardblock_changes_reach_who_may_see_them(server, gql_a, sessions):
    hotel, ids, agencies = await setup(gql_a)
    std = decode_id(ids["STD"], "RoomType", "id")
    sun, blue = (decode_id(agencies[code], "Agency", "id") for code in ("SUNTRAVEL", "BLUEWAVE"))
    foreign = await insert_hardblock(sessions, hotel, std, blue, rooms=2, reference="HB-BLUE")
    own = await insert_hardblock(sessions, hotel, std, sun, rooms=2, reference="HB-SUN")
    agent = await subscribe(server, HARDBLOCKS, role="agent", agency="SUNTRAVEL")
    admin = await subscribe(server, HARDBLOCKS, {"id": f"{to_global('Hardblock', foreign)}"})

    # What a committed change of each block tells the hardblocks channel.
    for block_id, agency_id in ((foreign, blue), (own, sun)):
        message = json.dumps({"hardblockId": block_id, "agencyId": agency_id})
        await server.call(server.broadcast.publish(HARDBLOCKS_CHANNEL, message))

    assert (await next_data(agent))["hardblockChanged"] == {"reference": "HB-SUN", "agency": {"code": "SUNTRAVEL"}}
    assert (await next_data(admin))["hardblockChanged"] == {"reference": "HB-BLUE", "agency": {"code": "BLUEWAVE"}}
    await agent.close()
    await admin.close()


async def test_hardblock_writes_publish_the_block_and_its_cells(server, gql_a):
    from tests.api.test_hardblocks import AMEND, CREATE_BLOCK, RELEASE, block_input

    hotel, ids, agencies = await setup(gql_a)
    blocks = await subscribe(server, HARDBLOCKS, role="agent", agency="SUNTRAVEL")
    cells = await subscribe(server, AVAILABILITY, watch(hotel, roomTypeIds=[ids["STD"]]))
    created = data(await gql_a(CREATE_BLOCK, {"input": block_input(agencies["SUNTRAVEL"], ids["STD"], rooms=3)}))
    block_id = created["createHardblock"]["id"]
    assert (await next_data(blocks))["hardblockChanged"]["agency"] == {"code": "SUNTRAVEL"}
    change = (await next_data(cells))["availabilityChanged"]
    assert [(c["date"], c["available"]) for c in change["cells"]] == [(d(n), 7) for n in range(3)]
    amended = await gql_a(AMEND, {"input": {"hardblockId": block_id,
                                            "changes": [{"from": d(1), "to": d(2), "rooms": 1}]}})
    assert data(amended)["amendHardblock"]["__typename"] == "Hardblock"
    await next_data(blocks)
    change = (await next_data(cells))["availabilityChanged"]
    assert [(c["date"], c["available"]) for c in change["cells"]] == [(d(1), 9)]
    assert data(await gql_a(RELEASE, {"id": block_id}))["releaseHardblock"]["__typename"] == "Hardblock"
    await next_data(blocks)
    change = (await next_data(cells))["availabilityChanged"]
    assert [c["available"] for c in change["cells"]] == [10, 10, 10]
    for ws in (blocks, cells):
        await ws.close()


def to_global(type_name: str, pk: int) -> str:
    from app.api.ids import to_global_id

    return to_global_id(type_name, pk)


# --- several workers, and backend restarts ---------------------------------------------------------


async def _change_on_a_reaches_b(a: LiveServer, b: LiveServer) -> None:
    async with http(a) as gql:
        hotel, ids, agencies = await setup(gql)
        version = await hotel_version(gql, hotel["id"])
        ws = await subscribe(b, AVAILABILITY, watch(hotel))
        await book(gql, agencies["SUNTRAVEL"], item(ids["SUP"], offset=1, nights=1, rooms=3))
        change = (await next_data(ws))["availabilityChanged"]
        assert (change["version"], change["cells"][0]["held"]) == (version + 1, 3)
        await ws.close()


async def test_a_change_on_worker_a_reaches_a_subscriber_on_worker_b_postgres(settings, db):
    with live_server(settings, broadcast_url=settings.database_url) as a, \
            live_server(settings, broadcast_url=settings.database_url) as b:
        await _change_on_a_reaches_b(a, b)


@requires_redis
async def test_a_change_on_worker_a_reaches_a_subscriber_on_worker_b_redis(settings, db, redis_server):
    with live_server(settings, broadcast_url=redis_server.url) as a, \
            live_server(settings, broadcast_url=redis_server.url) as b:
        await _change_on_a_reaches_b(a, b)


async def _restart_mid_stream(settings: Settings, url: str, stop: Any, start: Any) -> None:
    with live_server(settings, broadcast_url=url) as a, live_server(settings, broadcast_url=url) as b:
        async with http(a) as gql:
            hotel, ids, agencies = await setup(gql)
            ws = await subscribe(b, AVAILABILITY, watch(hotel))
            await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], rooms=1))
            before = (await next_data(ws))["availabilityChanged"]

            await asyncio.to_thread(stop)
            await eventually(lambda: not b.broadcast.connected, "worker B to notice the outage")
            await asyncio.to_thread(start)

            resync = (await next_data(ws))["availabilityChanged"]
            assert (resync["resync"], resync["version"], len(resync["cells"])) == (True, before["version"], 10)
            await eventually(lambda: a.broadcast.connected, "worker A to reconnect")
            await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], rooms=1))
            after = (await next_data(ws))["availabilityChanged"]
            assert (after["resync"], after["version"], after["cells"][0]["held"]) == (
                False, before["version"] + 1, 2)
            await ws.close()


async def test_postgres_restart_mid_stream_reconnects_and_resyncs(settings, db, dedicated_postgres):
    await _restart_mid_stream(settings, dedicated_postgres.url, dedicated_postgres.stop, dedicated_postgres.start)


@requires_redis
async def test_redis_restart_mid_stream_reconnects_and_resyncs(settings, db, redis_server):
    await _restart_mid_stream(settings, redis_server.url, redis_server.stop, redis_server.start)


# --- connection hygiene ----------------------------------------------------------------------------


async def test_a_thousand_abrupt_disconnects_leave_no_subscriber_behind(server, gql_a):
    hotel, _, _ = await setup(gql_a)
    limit = asyncio.Semaphore(100)

    async def open_one(n: int) -> ClientConnection:
        async with limit:
            # a thousand users: one user gets at most WS_MAX_SOCKETS_PER_USER sockets
            ws = await open_socket(server, bearer=token("agent", "SUNTRAVEL", uid=f"agent-{n}"))
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
                "query": AVAILABILITY if n % 2 else GROUPS, "variables": watch(hotel) if n % 2 else {}}}))
            return ws

    sockets = await asyncio.gather(*(open_one(n) for n in range(1000)))
    await eventually(lambda: server.broadcast.subscriber_count == 1000, "1,000 subscribers")

    for ws in sockets:
        ws.transport.abort()  # no close frame: as if the network vanished

    await eventually(lambda: server.broadcast.subscriber_count == 0, "every subscriber to be freed")


async def test_an_expired_token_closes_the_socket(server, gql_a):
    hotel, _, _ = await setup(gql_a)
    ws = await subscribe(server, AVAILABILITY, watch(hotel), ws=await open_socket(
        server, bearer=token("operator", lifetime_s=1)))

    with pytest.raises(ConnectionClosed):
        await next_data(ws)
    assert (ws.close_code, ws.close_reason) == (4403, "Token expired")
    await eventually(lambda: server.broadcast.subscriber_count == 0, "the subscription to be freed")


async def test_an_already_expired_token_is_refused(server):
    ws = await connect(server.ws_url, subprotocols=[SUBPROTOCOL], proxy=None, open_timeout=WAIT_S)
    stale = token("admin", now=time.time() - 7200)
    await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {stale}"}}))
    with pytest.raises(ConnectionClosed):
        await receive(ws)
    assert ws.close_code == 4403


async def test_server_pings_drop_clients_that_stop_answering(settings, db):
    with live_server(settings, ws_ping_interval_s=0.2, ws_ping_timeout_s=0.3) as pinging:
        async with http(pinging) as gql:
            hotel, _, _ = await setup(gql)
        alive = await subscribe(pinging, AVAILABILITY, watch(hotel))
        silent = await subscribe(pinging, AVAILABILITY, watch(hotel))

        for _ in range(3):  # a client that answers stays
            assert await receive(alive) == {"type": "ping"}
            await alive.send(json.dumps({"type": "pong"}))
        assert await receive(silent) == {"type": "ping"}
        with pytest.raises(ConnectionClosed):  # one that does not is dropped, its subscription freed
            await receive(silent)
        assert (silent.close_code, silent.close_reason) == (4408, "Ping timeout")
        await eventually(lambda: pinging.broadcast.subscriber_count == 1, "the silent client's subscription freed")
        await alive.close()
        await eventually(lambda: pinging.broadcast.subscriber_count == 0, "no subscribers")
