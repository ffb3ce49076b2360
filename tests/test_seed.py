"""The demo seed against real PostgreSQL: the catalogue, hardblocks (amended, partly and fully
released) and booking groups (held, confirmed, cancelled) written through the API's code paths,
grids and calendar that agree with each other, and a second run that changes nothing."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select

from app.seed import BLOCKS, BOOKINGS, SEED_UID, seed_demo
from db import models
from tests.support import data

pytestmark = pytest.mark.usefixtures("db")

BLOCKS_QUERY = """
{ hardblocks(first: 100) { edges { node {
  id reference status from to rooms releaseDays hotel { id code } roomType { code } agency { code }
  amendments { reason authorUid changes { from to rooms } }
  grid { date size booked available released releaseAt rate { amount currency } bookings { rooms } }
} } } }
"""
GROUPS_QUERY = """
{ bookingGroups(first: 100) { edges { node {
  reference status guestName expiresAt agency { code } saleOrder { number status }
  bookings { rooms hardblock { reference } }
} } } }
"""
CALENDAR = """
query($id: ID!, $from: Date!, $to: Date!) { node(id: $id) { ... on Hotel { calendar(from: $from, to: $to) {
  rows { roomType { code } cells { date hardblocked held sold available overcommitted } }
} } } }
"""

TABLES = (models.Agency, models.Hotel, models.RoomType, models.Contract, models.InventoryVersion, models.Hardblock,
          models.HardblockAmendment, models.HardblockNightRelease, models.AllotmentEvent, models.BookingGroup,
          models.Booking, models.SaleOrder, models.IdempotencyKey, models.AuditEntry)


async def seeded(database_url, settings, **kw) -> bool:
    return await seed_demo(database_url, settings=settings, **kw)


async def state(sessions) -> dict[str, Any]:
    """Row counts of every table the seed writes, plus the hotels' inventory versions."""
    async with sessions() as session:
        counts = {m.__tablename__: (await session.execute(select(func.count()).select_from(m))).scalar_one()
                  for m in TABLES}
        versions = dict((await session.execute(
            select(models.InventoryVersion.hotel_id, models.InventoryVersion.version))).all())
    return {"counts": counts, "versions": versions}


async def blocks(gql) -> list[dict[str, Any]]:
    return [e["node"] for e in data(await gql(BLOCKS_QUERY))["hardblocks"]["edges"]]


async def groups(gql) -> list[dict[str, Any]]:
    return [e["node"] for e in data(await gql(GROUPS_QUERY))["bookingGroups"]["edges"]]


async def test_the_demo_has_blocks_in_every_state_and_bookings_in_every_status(gql, database_url, settings):
    assert await seeded(database_url, settings) is True

    found = await blocks(gql)
    assert len(found) == sum(len(b) for b in BLOCKS.values())
    assert {b["hotel"]["code"] for b in found} == {"LIS-RIVER", "OPO-OLD"}
    for hotel in ("LIS-RIVER", "OPO-OLD"):
        assert len({b["agency"]["code"] for b in found if b["hotel"]["code"] == hotel}) >= 2
    assert Counter(b["status"] for b in found) == {"ACTIVE": 5, "RELEASED": 1}
    today = date.today()
    assert all(date.fromisoformat(b["from"]) >= today + timedelta(days=14) for b in found)
    for b in found:  # no night of any block has reached its release time
        assert all(datetime.fromisoformat(s["releaseAt"]) > datetime.now(timezone.utc) for s in b["grid"])

    reasons = [a["reason"] for b in found for a in b["amendments"]]
    assert "Lisbon congress week: two more rooms" in reasons
    assert "Tour operator cut the group for the last nights" in reasons  # rooms given back
    assert "extended by 3 nights" in reasons  # bulkExtendHardblocks
    assert {a["authorUid"] for b in found for a in b["amendments"]} == {SEED_UID}
    sizes = {s["size"] for b in found for s in b["grid"]}
    assert {b["rooms"] for b in found} < sizes  # grown and shrunk nights besides the created sizes
    extended = [b for b in found if any(date.fromisoformat(s["date"]) >= date.fromisoformat(b["from"])
                                        + timedelta(days=14) and s["size"] for s in b["grid"])]
    assert extended, "a block extended past its created nights"

    partly = [b for b in found if b["status"] == "ACTIVE" and any(s["released"] for s in b["grid"])]
    assert len(partly) == 1
    assert sum(1 for s in partly[0]["grid"] if s["released"]) == 2
    [released] = [b for b in found if b["status"] == "RELEASED"]
    assert any(s["booked"] for s in released["grid"])  # its bookings stayed
    assert all(s["available"] == 0 for s in released["grid"])

    listed = await groups(gql)
    assert len(listed) == sum(len(b) for b in BOOKINGS.values())
    statuses = Counter(g["status"] for g in listed)
    assert statuses == {"HELD": 5, "CONFIRMED": 6, "CANCELLED": 1}
    for g in listed:
        if g["status"] == "HELD":
            assert datetime.fromisoformat(g["expiresAt"]) > datetime.now(timezone.utc) + timedelta(days=7)
        if g["status"] == "CONFIRMED":
            assert g["saleOrder"]["status"] == "CONFIRMED" and g["saleOrder"]["number"]
        if g["status"] == "CANCELLED":
            assert g["saleOrder"]["status"] == "CANCELLED"
    from_blocks = [g for g in listed if any(b["hardblock"] for b in g["bookings"])]
    pool_only = [g for g in listed if not any(b["hardblock"] for b in g["bookings"])]
    assert from_blocks and pool_only
    assert any(len({bool(b["hardblock"]) for b in g["bookings"]}) == 2 for g in listed)  # block + pool items


async def test_the_grids_agree_with_the_bookings_and_the_calendar(gql, database_url, settings):
    await seeded(database_url, settings)
    found = await blocks(gql)

    committed: dict[tuple[str, str, str], int] = defaultdict(int)
    for b in found:
        for s in b["grid"]:
            assert 0 <= s["booked"] <= s["size"], (b["reference"], s)
            assert s["booked"] + s["available"] + s["released"] == s["size"], (b["reference"], s)
            assert sum(x["rooms"] for x in s["bookings"]) == s["booked"], (b["reference"], s)
            assert s["rate"] and s["rate"]["currency"] == "EUR"
            committed[b["hotel"]["code"], b["roomType"]["code"], s["date"]] += s["booked"] + s["available"]
    assert any(s["booked"] for b in found for s in b["grid"])

    hotel_ids = {b["hotel"]["code"]: b["hotel"]["id"] for b in found}
    start = min(date.fromisoformat(b["from"]) for b in found)
    end = max(date.fromisoformat(b["to"]) for b in found) + timedelta(days=2)
    pool = Counter()
    for code, hotel_id in hotel_ids.items():
        cal = data(await gql(CALENDAR, {"id": hotel_id, "from": start.isoformat(), "to": end.isoformat()}))
        for row in cal["node"]["calendar"]["rows"]:
            for cell in row["cells"]:
                key = (code, row["roomType"]["code"], cell["date"])
                assert cell["hardblocked"] == committed.get(key, 0), (key, cell)
                assert cell["overcommitted"] == 0 and cell["available"] >= 0, (key, cell)
                pool.update(held=cell["held"], sold=cell["sold"])
    assert pool["held"] > 0 and pool["sold"] > 0  # the pool bookings


async def test_seeding_again_changes_nothing(database_url, settings, sessions):
    assert await seeded(database_url, settings) is True
    first = await state(sessions)
    assert first["counts"]["hardblock"] and first["counts"]["booking_group"]

    assert await seeded(database_url, settings) is False  # hotels exist: nothing at all
    assert await seeded(database_url, settings, force=True) is False  # only what is missing: nothing
    assert await state(sessions) == first


async def test_force_adds_the_activity_to_a_demo_hotel_that_has_none(database_url, settings, sessions):
    from app.seed import _seed_catalogue

    async with sessions() as session, session.begin():  # a database seeded before blocks existed
        await _seed_catalogue(session, date.today())
    assert (await state(sessions))["counts"]["hardblock"] == 0

    assert await seeded(database_url, settings, force=True) is True
    after = await state(sessions)
    assert after["counts"]["hardblock"] == 6 and after["counts"]["booking_group"] == 12
    assert after["counts"]["hotel"] == 2
    assert await seeded(database_url, settings, force=True) is False
    assert await state(sessions) == after


async def test_the_activity_is_audited_like_api_writes(database_url, settings, sessions):
    await seeded(database_url, settings)
    async with sessions() as session:
        entries = (await session.execute(
            select(models.AuditEntry.action, models.AuditEntry.actor_uid, models.AuditEntry.actor_role)
            .where(models.AuditEntry.entity_type.in_(("Hardblock", "BookingGroup")))
        )).all()
    actions = Counter(action for action, _, _ in entries)
    assert actions["hardblock.created"] == 6
    assert actions["hardblock.amended"] == 3 and actions["hardblock.extended"] == 1
    assert actions["hardblock.rooms_returned"] == 1 and actions["hardblock.nights_released"] == 1
    assert actions["hardblock.released"] == 1
    assert actions["booking_group.created"] == 12
    assert {(uid, role) for _, uid, role in entries} == {(SEED_UID, "admin")}
