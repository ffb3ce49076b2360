"""Issue 11: a lost database or an exhausted pool is a typed, retryable 503, never SQL text; and one
request never holds more than DB_CONNECTIONS_PER_REQUEST pooled connections.

The restart test restarts a PostgreSQL of its own (tests.test_broadcast.DedicatedPostgres) while
bookings stream against a live server; the machine's shared server is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from typing import Any

import asyncpg
import httpx

from db import migrate
from db.scratch import scratch_database
from tests.api.test_bookings import CREATE, booking_input, item, setup
from tests.api.test_calendar import END, START
from tests.api.test_health import serving
from tests.support import GraphQL, LiveServer, data, listening, token
from tests.test_broadcast import dedicated_postgres  # noqa: F401 (fixture)

HOTELS = "{ hotels { code } }"
# What a driver or pool error says; none of it may reach a client.
LEAKS = ("SELECT", "INSERT", "connection", "database system", "Errno", "asyncpg", "sqlalchemy", "QueuePool",
         "terminating")


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    errors = response.json()["errors"]
    assert errors and all(e["extensions"]["code"] == "SERVICE_UNAVAILABLE" for e in errors), errors
    assert all(e["extensions"]["requestId"] == response.headers["x-request-id"] for e in errors)
    for leak in LEAKS:
        assert leak not in response.text, response.text


async def test_an_exhausted_pool_answers_503_within_the_pool_timeout(settings, database_url):
    # given a pool of one connection (and one of overflow), both held elsewhere
    async with serving(settings.model_copy(update={"db_pool_size": 1, "db_pool_timeout_s": 0.5}), database_url) as http:
        engine = http._transport.app.state.runtime.engine
        async with engine.connect() as first, engine.connect() as second:
            await first.exec_driver_sql("SELECT 1")
            await second.exec_driver_sql("SELECT 1")

            # when a request needs a connection
            started = time.monotonic()
            response = await asyncio.wait_for(
                http.post("/graphql", json={"query": HOTELS}, headers={"Authorization": f"Bearer {token('admin')}"}),
                5)

        # then it is told to retry, soon, and without the pool's message
        assert time.monotonic() - started < 3
        assert_unavailable(response)
        # and once a connection is free again the same request succeeds
        again = await http.post("/graphql", json={"query": HOTELS}, headers={"Authorization": f"Bearer {token('admin')}"})
        assert again.status_code == 200 and "errors" not in again.json()


async def post_booking(http: httpx.AsyncClient, booking: dict[str, Any]) -> httpx.Response:
    return await http.post("/graphql", json={"query": CREATE, "variables": {"input": booking}},
                           headers={"Authorization": f"Bearer {token('admin')}"})


def booked(response: httpx.Response) -> bool:
    if response.status_code != 200:
        return False
    body = response.json()
    return not body.get("errors") and body["data"]["createBooking"]["__typename"] == "BookingGroup"


async def test_bookings_across_a_database_restart_succeed_or_get_a_retryable_503(settings, dedicated_postgres):
    async with scratch_database(dedicated_postgres.url, "staysync_restart") as url:
        await asyncio.to_thread(migrate.upgrade, url)
        with LiveServer(settings, database_url=url, db_pool_timeout_s=2, lock_timeout_ms=10_000) as server:
            async with httpx.AsyncClient(base_url=server.http_url, trust_env=False, timeout=30) as http:
                # given bookings streaming from four clients
                _, ids, agencies = await setup(GraphQL(http), allotment=1000, room_types=("STD",))
                bookings: dict[str, dict[str, Any]] = {}
                answers: list[tuple[str, httpx.Response]] = []
                stop = asyncio.Event()

                async def book_until_stopped() -> None:
                    while not stop.is_set():
                        key = uuid.uuid4().hex
                        bookings[key] = booking_input(agencies["SUNTRAVEL"], item(ids["STD"], offset=len(bookings) % 20),
                                                      key=key, guest=key)
                        response = await post_booking(http, bookings[key])
                        answers.append((key, response))
                        if not booked(response):
                            await asyncio.sleep(0.05)

                async def successes_beyond(count: int) -> None:
                    while sum(booked(r) for _, r in answers) < count:
                        await asyncio.sleep(0.02)

                clients = [asyncio.create_task(book_until_stopped()) for _ in range(4)]
                try:
                    await asyncio.wait_for(successes_beyond(20), 30)

                    # when PostgreSQL restarts (`pg_ctl -m fast`) under them
                    await asyncio.to_thread(dedicated_postgres.stop)
                    await asyncio.sleep(0.5)
                    await asyncio.to_thread(dedicated_postgres.start)
                    before_restart = sum(booked(r) for _, r in answers)
                    await asyncio.wait_for(successes_beyond(before_restart + 20), 30)
                finally:
                    stop.set()
                    await asyncio.gather(*clients, return_exceptions=True)

                # then every answer was a booking or a typed, retryable 503 without SQL
                refused = [key for key, response in answers if not booked(response)]
                for key, response in answers:
                    if not booked(response):
                        assert_unavailable(response)
                assert refused, "the restart should have caught some requests"
                # and a retry with the same idempotency key is safe: each books once
                for key in refused:
                    assert booked(await post_booking(http, bookings[key]))

        connection = await asyncpg.connect(url)
        try:
            rows = await connection.fetch("SELECT guest_name, count(*) AS n FROM booking_group GROUP BY guest_name")
        finally:
            await connection.close()
    # none lost, none doubled
    assert Counter({row["guest_name"]: row["n"] for row in rows}) == Counter(set(bookings))


# --- the connection budget of one request --------------------------------------------------------


@contextlib.contextmanager
def checked_out_connections(engine: Any) -> Any:
    """The most connections `engine`'s pool had checked out at once while the block ran."""
    state = {"now": 0, "most": 0}

    def checkout(*args: Any) -> None:
        state["now"] += 1
        state["most"] = max(state["most"], state["now"])

    def checkin(*args: Any) -> None:
        state["now"] -= 1

    with listening(engine, checkout=checkout, checkin=checkin):
        yield state


async def test_one_request_holds_at_most_its_connection_budget(app, gql):
    # given a hotel, and a document of fifteen aliased calendars (each loads on its own)
    await setup(gql, room_types=("STD", "SUP"))
    fields = " ".join(
        f'c{n}: hotels {{ calendar(from: "{START}", to: "{END}") {{ version rows {{ cells {{ available }} }} }} }}'
        for n in range(15))

    # when it runs
    with checked_out_connections(app.state.runtime.engine) as connections:
        result = data(await gql(f"{{ {fields} }}"))

    # then all fifteen are answered, never on more than DB_CONNECTIONS_PER_REQUEST connections
    assert len(result) == 15 and all(len(hotels[0]["calendar"]["rows"]) == 2 for hotels in result.values())
    assert 1 <= connections["most"] <= app.state.runtime.settings.db_connections_per_request == 2


async def test_over_a_websocket_the_error_carries_the_code(settings, database_url):
    from tests.api.test_subscriptions import open_socket, receive

    with LiveServer(settings, db_pool_size=1, db_pool_timeout_s=0.5) as server:
        engine = server.app.state.runtime.engine

        async def hold_every_connection() -> list[Any]:
            held = [await engine.connect(), await engine.connect()]  # the pool's one, and its one of overflow
            for connection in held:
                await connection.exec_driver_sql("SELECT 1")
            return held

        async def release(held: list[Any]) -> None:
            for connection in held:
                await connection.close()

        # given a socket, and a server whose pool has nothing left to give
        ws = await open_socket(server)
        held = await server.call(hold_every_connection())
        try:
            # when an operation on the socket needs the database
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": HOTELS}}))
            message = await receive(ws)
        finally:
            await server.call(release(held))

        # then its error is typed and retryable, without the pool's message; the socket stays open
        assert message["type"] == "next" and message["id"] == "1", message
        [error] = message["payload"]["errors"]
        assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE" and error["extensions"]["requestId"]
        assert not any(leak in json.dumps(message) for leak in LEAKS)
        assert (await receive(ws))["type"] == "complete"
        await ws.send(json.dumps({"id": "2", "type": "subscribe", "payload": {"query": HOTELS}}))
        again = await receive(ws)
        assert again["type"] == "next" and "errors" not in again["payload"], again
        await ws.close()
