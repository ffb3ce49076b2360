"""Hardblock races over real HTTP against a real uvicorn (see test_booking_races.py): an amendment
racing bookings from the same block, a release racing them, and a new block racing pool
bookings for the last rooms; without the inventory lock the same races break the rules."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

from app.services import bookings as booking_service
from app.services import hardblocks as hardblock_service
from tests.api.test_booking_races import http, inventory_lock_disabled, post, server  # noqa: F401  (fixtures)
from tests.api.test_bookings import CREATE, booking_input, item, setup
from tests.api.test_calendar import START, calendar, column, d
from tests.api.test_hardblocks import (
    AMEND, AMENDMENTS, BULK_EXTEND, CREATE_BLOCK, GRID, RELEASE, RELEASE_NIGHTS, REVERT, block_input,
)

BOOKERS = 30
# Longer than any writer's way from its start to its read: every racer has read before any writes.
READ_PAUSE_S = 0.2


def slow_reads(monkeypatch: Any) -> None:
    """A pause after every availability read: widens the read-to-write window the lock closes,
    so the unlocked races break the rules every time, not by chance."""
    for module in (booking_service, hardblock_service):
        for name in ("read_locked", "read_block_state", "read_pool_state"):
            read = getattr(module, name, None)
            if read is None:
                continue

            async def slow(*args: Any, _read: Any = read, **kwargs: Any) -> Any:
                result = await _read(*args, **kwargs)
                await asyncio.sleep(READ_PAUSE_S)
                return result

            monkeypatch.setattr(module, name, slow)


async def grid(http, block_id):
    return (await post(http, GRID, {"id": block_id}))["node"]["grid"]


async def book_from(http, ids, block_id) -> str:
    result = await post(http, CREATE, {"input": booking_input(None, item(ids["STD"], nights=1,
                                                                          hardblock_id=block_id))},
                        role="agent", agency="SUNTRAVEL")
    return result["createBooking"]["__typename"]


async def shrink_while_booking(gql, http, bookers: int = BOOKERS) -> tuple[str, Counter, list[dict]]:
    hotel, ids, agencies = await setup(gql, allotment=20)
    block = (await post(http, CREATE_BLOCK, {"input": block_input(agencies["SUNTRAVEL"], ids["STD"], rooms=5)}))
    block_id = block["createHardblock"]["id"]

    async def shrink() -> str:
        await asyncio.sleep(0.01)  # a few bookings get in first
        changes = [{"from": d(0), "to": d(1), "rooms": 2}]
        result = await post(http, AMEND, {"input": {"hardblockId": block_id, "changes": changes}})
        return result["amendHardblock"]["__typename"]

    amended, *booked = await asyncio.gather(shrink(), *(book_from(http, ids, block_id) for _ in range(bookers)))
    return amended, Counter(booked), await grid(http, block_id)


async def test_an_amendment_racing_bookings_never_leaves_the_block_below_them(gql, http):
    amended, booked, slots = await shrink_while_booking(gql, http)
    night = slots[0]
    assert night["booked"] <= night["size"]
    if amended == "Hardblock":  # it went first, or while at most 2 were booked
        assert (night["size"], booked["BookingGroup"]) == (2, 2)
    else:
        assert amended == "BlockUnderflow"
        assert (night["size"], booked["BookingGroup"]) == (5, 5)
    assert booked["BookingGroup"] + booked["SoldOut"] == BOOKERS


async def test_without_the_lock_an_amendment_leaves_the_block_below_its_bookings(gql, http, monkeypatch):
    slow_reads(monkeypatch)
    with inventory_lock_disabled():
        # No more bookers than the block holds: only the shrink can leave it below them.
        amended, booked, slots = await shrink_while_booking(gql, http, bookers=5)
    assert slots[0]["booked"] > slots[0]["size"], (amended, booked, slots[0])


async def test_a_release_racing_bookings_keeps_what_was_booked_and_nothing_more(gql, http):
    hotel, ids, agencies = await setup(gql, allotment=20)
    block = await post(http, CREATE_BLOCK, {"input": block_input(agencies["SUNTRAVEL"], ids["STD"], rooms=5)})
    block_id = block["createHardblock"]["id"]

    async def release() -> str:
        await asyncio.sleep(0.01)
        return (await post(http, RELEASE, {"id": block_id}))["releaseHardblock"]["__typename"]

    released, *booked = await asyncio.gather(release(), *(book_from(http, ids, block_id) for _ in range(BOOKERS)))
    assert released == "Hardblock"
    taken = Counter(booked)["BookingGroup"]
    assert taken <= 5 and Counter(booked)["SoldOut"] == BOOKERS - taken
    night = (await grid(http, block_id))[0]
    assert (night["size"], night["booked"], night["available"], night["released"]) == (5, taken, 0, 5 - taken)
    cal = await calendar(gql, hotel["id"], end=START + timedelta(days=1))
    assert column(cal, "STD", "hardblocked") == [taken]  # the pool got back every unsold room
    assert column(cal, "STD", "available") == [20 - taken]


async def block_racing_the_pool(gql, http) -> tuple[str, Counter, dict]:
    hotel, ids, agencies = await setup(gql, allotment=10)

    async def block() -> str:
        await asyncio.sleep(0.005)
        result = await post(http, CREATE_BLOCK, {"input": block_input(agencies["BLUEWAVE"], ids["STD"], nights=1,
                                                                      rooms=5)})
        return result["createHardblock"]["__typename"]

    async def pool_booking() -> str:
        result = await post(http, CREATE, {"input": booking_input(None, item(ids["STD"], nights=1))},
                            role="agent", agency="SUNTRAVEL")
        return result["createBooking"]["__typename"]

    blocked, *booked = await asyncio.gather(block(), *(pool_booking() for _ in range(8)))
    cal = await calendar(gql, hotel["id"], end=START + timedelta(days=1))
    return blocked, Counter(booked), {name: column(cal, "STD", name)[0]
                                      for name in ("hardblocked", "held", "available", "overcommitted")}


async def test_a_new_block_and_pool_bookings_never_share_the_last_rooms(gql, http):
    blocked, booked, cell = await block_racing_the_pool(gql, http)
    assert cell["overcommitted"] == 0
    assert cell["hardblocked"] == (5 if blocked == "Hardblock" else 0)
    assert cell["held"] == booked["BookingGroup"]
    assert cell["hardblocked"] + cell["held"] + cell["available"] == 10


async def test_without_the_lock_a_new_block_oversells_the_pool(gql, http, monkeypatch):
    slow_reads(monkeypatch)
    with inventory_lock_disabled():
        blocked, booked, cell = await block_racing_the_pool(gql, http)
    assert cell["overcommitted"] > 0, (blocked, booked, cell)


async def block_writes_racing_pool_bookings(gql, http, bookings: int = 12) -> list[tuple[int, int, int, int]]:
    """Every other block write that takes rooms from the pool or gives them back, racing pool
    bookings for the same nights; returns (hardblocked, held, available, overcommitted) per night."""
    hotel, ids, agencies = await setup(gql, allotment=12)
    made = [await post(http, CREATE_BLOCK, {"input": block_input(agencies[code], ids["STD"], nights=2, rooms=3)})
            for code in ("SUNTRAVEL", "BLUEWAVE")]
    first, second = (m["createHardblock"]["id"] for m in made)
    grown = await post(http, AMEND, {"input": {"hardblockId": first, "changes": [{"from": d(0), "to": d(2),
                                                                                   "rooms": 1}]}})
    assert grown["amendHardblock"]["__typename"] == "Hardblock"
    amendment = (await post(http, AMENDMENTS, {"id": first}))["node"]["amendments"][0]["id"]

    writes = [
        post(http, BULK_EXTEND, {"ids": [second, first], "n": 2}),  # nights 2-3 at 3 and 1 rooms
        post(http, REVERT, {"id": amendment}),  # the first block back to 3 rooms on nights 0-1
        post(http, RELEASE_NIGHTS, {"id": second, "dates": [d(0)]}),  # 3 rooms back on night 0
    ]
    booking = [post(http, CREATE, {"input": booking_input(None, item(ids["STD"], nights=4))},
                    role="agent", agency="SUNTRAVEL") for _ in range(bookings)]
    await asyncio.gather(*writes, *booking)
    cal = await calendar(gql, hotel["id"], end=START + timedelta(days=4))
    return list(zip(*(column(cal, "STD", name) for name in ("hardblocked", "held", "available", "overcommitted"))))


async def test_extending_reverting_and_releasing_blocks_racing_pool_bookings_never_overcommit(gql, http):
    for hardblocked, held, available, overcommitted in await block_writes_racing_pool_bookings(gql, http):
        assert overcommitted == 0
        assert hardblocked + held + available == 12


async def test_without_the_lock_those_writes_oversell_the_pool(gql, http, monkeypatch):
    slow_reads(monkeypatch)
    with inventory_lock_disabled():
        # 8 bookings fit the pool's 8 rooms on nights 0-1: only the block writes can oversell it.
        cells = await block_writes_racing_pool_bookings(gql, http, bookings=8)
    assert any(overcommitted for *_, overcommitted in cells), cells
