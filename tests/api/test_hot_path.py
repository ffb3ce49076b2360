"""Issue 12, the request path: what every request repeats is done once."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.api.test_bookings import setup
from tests.api.test_calendar import d
from tests.api.test_hardblocks import block_input
from tests.support import captured_statements, data, token

VIEWER = {"query": "{ viewer { uid role } }"}


async def test_a_second_request_with_the_same_token_is_not_verified_again(client, verifications):
    bearer = token("operator", uid="hot-path-operator")

    answers = [await client.post("/graphql", json=VIEWER, headers={"Authorization": f"Bearer {bearer}"})
               for _ in range(2)]

    assert [a.json()["data"]["viewer"] for a in answers] == [{"uid": "hot-path-operator", "role": "OPERATOR"}] * 2
    assert verifications == [bearer]


# --- the hardblock writes on asyncpg (the booking path's round trips: test_booking_history.py) ---

BLOCK_WRITTEN = "__typename ... on Hardblock { id reference from to status } ... on UserError { message }"
CREATE_BLOCK = f"mutation($input: CreateHardblockInput!) {{ createHardblock(input: $input) {{ {BLOCK_WRITTEN} }} }}"
AMEND_BLOCK = f"mutation($input: HardblockAmendmentInput!) {{ amendHardblock(input: $input) {{ {BLOCK_WRITTEN} }} }}"


async def _written(gql, document, variables, runtime):
    """The answer, the asyncpg pool's statements and SQLAlchemy's statements of one write."""
    with runtime.services.raw.logging_queries() as raw, captured_statements(runtime.engine) as orm:
        answer = data(await gql(document, variables))
    return answer, raw, orm


async def test_create_and_amend_hardblock_take_five_round_trips_and_no_sqlalchemy_statement(gql):
    """The context read, then BEGIN with the room type's lock, the read after it (the block, its
    room type's inventory, the clock, the key), one write (block, amendment and events, audit entry,
    key, version bump, outbox row) and COMMIT. Before issue 12's move, on SQLAlchemy: 21 and 20
    (bench/hardblock_writes.py counts them)."""
    hotel, ids, agencies = await setup(gql, allotment=10)
    runtime = gql.http._transport.app.state.runtime
    request = {**block_input(agencies["SUNTRAVEL"], ids["STD"], rooms=2), "idempotencyKey": "hot-block"}
    changes = [{"from": d(0), "to": d(1), "rooms": 4}]
    # Warm-up: statements prepared, asyncpg's type introspection done, on this connection.
    warm_up = data(await gql(CREATE_BLOCK, {"input": {**request, "idempotencyKey": "warm-up"}}))["createHardblock"]
    warmed = data(await gql(AMEND_BLOCK, {"input": {"hardblockId": warm_up["id"], "changes": changes,
                                                    "idempotencyKey": "warm-up-amend"}}))["amendHardblock"]
    assert warmed["__typename"] == "Hardblock", warmed

    created, raw, orm = await _written(gql, CREATE_BLOCK, {"input": request}, runtime)

    block = created["createHardblock"]
    assert block["__typename"] == "Hardblock", block
    assert orm == [], orm
    assert len(raw) == 5, raw
    context, begin, state, write, commit = raw
    assert context.startswith("WITH earlier AS") and "FROM hardblock_amendment" in context
    assert begin.startswith("BEGIN;") and "pg_advisory_xact_lock" in begin
    assert "nextval(pg_get_serial_sequence('hardblock', 'id'))" in state and "statement_timestamp()" in state
    assert write.startswith("WITH new_block AS") and "INSERT INTO audit_log" in write and "INSERT INTO outbox" in write
    assert "INSERT INTO idempotency_key" in write and commit == "COMMIT"

    amended, raw, orm = await _written(gql, AMEND_BLOCK, {"input": {"hardblockId": block["id"], "changes": changes,
                                                                    "idempotencyKey": "hot-amend"}}, runtime)
    assert amended["amendHardblock"]["__typename"] == "Hardblock", amended
    assert orm == [], orm
    assert len(raw) == 5, raw
    context, begin, state, write, commit = raw
    assert begin.startswith("BEGIN;") and "pg_advisory_xact_lock" in begin
    assert "blk AS" in state and "nextval(pg_get_serial_sequence('hardblock_amendment', 'id'))" in state
    assert write.startswith("WITH changed AS") and "INSERT INTO allotment_event" in write and commit == "COMMIT"

    # A retry answers from the context read: one round trip, nothing locked.
    again, raw, orm = await _written(gql, CREATE_BLOCK, {"input": request}, runtime)
    assert again["createHardblock"]["id"] == block["id"]
    assert (len(raw), orm) == (1, [])


@pytest.mark.parametrize("error", [asyncpg.InternalClientError("broken mid-statement"), asyncio.CancelledError()])
async def test_a_connection_that_broke_is_dropped_and_the_error_is_the_callers_to_see(app, error):
    """Not replaced by the proxy's refusal to be asked anything once its connection is terminated:
    a cancelled request stays cancelled."""
    raw = app.state.runtime.services.raw
    with pytest.raises(type(error)):
        async with raw.connection() as connection:
            raise error
    async with raw.connection() as connection:  # the pool gives a working one
        assert await connection.fetchval("SELECT 1") == 1
