"""BookingGroup.auditTrail, createBooking's idempotency after a SoldOut, the write path's
one-statement inventory read against `load_inventory`, and that read's bookings summed per stay
against its rows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from app.api.ids import decode_id, to_global_id
from db import models
from db.calendar import load_inventory, load_stay_inventory
from domain import compute_hardblock_slots
from tests.api.test_bookings import book, cancel, confirm, count, item, setup
from tests.api.test_calendar import START, insert_booking, insert_hardblock, record
from tests.support import captured_statements, data

TRAIL = """
query($id: ID!) { node(id: $id) { ... on BookingGroup {
  reference auditTrail { action entityId actorUid actorRole agencyCode before after }
} } }
"""


async def trail(gql, group_id, **caller):
    node = data(await gql(TRAIL, {"id": group_id}, **caller))["node"]
    return None if node is None else node["auditTrail"]


async def test_the_audit_trail_tells_the_group_and_sale_order_story_oldest_first(gql):
    # given: a group held by an agent, confirmed by an operator, then cancelled; and another group
    hotel, ids, agencies = await setup(gql)
    group = await book(gql, None, item(ids["STD"], rooms=2), role="agent", agency="SUNTRAVEL")
    other = await book(gql, agencies["SUNTRAVEL"], item(ids["SUP"]))
    order = await confirm(gql, group["id"], role="operator")
    await cancel(gql, group["id"], reason="guest changed plans")

    # when
    entries = await trail(gql, group["id"], role="agent", agency="SUNTRAVEL")

    # then: the group's and its sale order's entries, in the order they happened, nothing else
    assert [(e["action"], e["entityId"]) for e in entries] == [
        ("booking_group.created", group["id"]),
        ("booking_group.confirmed", group["id"]),
        ("sale_order.created", order["id"]),
        ("booking_group.cancelled", group["id"]),
        ("sale_order.cancelled", order["id"]),
    ]
    created, confirmed, _, cancelled, _ = entries
    assert (created["actorRole"], created["agencyCode"], created["before"]) == ("agent", "SUNTRAVEL", None)
    assert created["after"]["status"] == "HELD" and created["after"]["items"][0]["rooms"] == 2
    assert confirmed["actorRole"] == "operator" and confirmed["after"]["status"] == "CONFIRMED"
    assert cancelled["before"]["status"] == "CONFIRMED" and cancelled["after"]["reason"] == "guest changed plans"
    assert [e["action"] for e in await trail(gql, other["id"])] == ["booking_group.created"]


async def test_the_audit_trail_is_scoped_like_its_group(gql):
    hotel, ids, agencies = await setup(gql)
    group = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"]))

    assert len(await trail(gql, group["id"], role="admin")) == 1
    assert len(await trail(gql, group["id"], role="agent", agency="SUNTRAVEL")) == 1
    assert await trail(gql, group["id"], role="agent", agency="BLUEWAVE") is None  # another agency's group
    listed = data(await gql("{ bookingGroups { edges { node { auditTrail { action } } } } }",
                            role="agent", agency="BLUEWAVE"))
    assert listed["bookingGroups"]["edges"] == []


async def test_a_sold_out_request_wrote_nothing_so_its_key_is_evaluated_again(gql, sessions):
    """A SoldOut rolls back the whole transaction, the idempotency key's claim included: there is
    no first result to replay, so a retry with the same key is decided afresh on the inventory as
    it is then (and may succeed once rooms are freed)."""
    hotel, ids, agencies = await setup(gql, allotment=2)
    blocker = await book(gql, agencies["BLUEWAVE"], item(ids["STD"], rooms=2))

    first = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"]), key="retry-after-sold-out")
    again = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"]), key="retry-after-sold-out")
    assert first["__typename"] == again["__typename"] == "SoldOut"
    assert await count(sessions, models.IdempotencyKey, models.IdempotencyKey.key == "retry-after-sold-out") == 0

    await cancel(gql, blocker["id"])
    held = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"]), key="retry-after-sold-out")
    replay = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"]), key="retry-after-sold-out")
    assert held["__typename"] == "BookingGroup" and replay["id"] == held["id"]
    # Once a result exists, the key is bound to it: a different request with it conflicts.
    changed = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], rooms=2), key="retry-after-sold-out")
    assert changed["__typename"] == "IdempotencyConflict"


async def test_the_write_path_reads_the_same_inventory_as_load_inventory(gql, sessions):
    # given: contracts, every kind of event (one voided), hardblocks with a released night,
    # bookings held, confirmed, cancelled, lapsed and from a block, on two room types
    hotel, ids, agencies = await setup(gql, room_types=("STD", "SUP", "DLX"))
    std, sup = (decode_id(ids[code], "RoomType", "id") for code in ("STD", "SUP"))
    sun = decode_id(agencies["SUNTRAVEL"], "Agency", "id")
    for kind, rt, offset, extra in (("INCREASE_ALLOTMENT", "STD", 0, {"quantity": 3}),
                                    ("REDUCE_ALLOTMENT", "SUP", 2, {"quantity": 1}),
                                    ("BLOCK_CONTRACT", "STD", 4, {}),
                                    ("RATE_CHANGE", "SUP", 1, {"rate": {"amount": "150", "currency": "EUR"}})):
        await record(gql, kind=kind, roomTypeId=ids[rt], **{"from": START.isoformat(),
                                                            "to": (START + timedelta(days=offset + 2)).isoformat()},
                     **extra)
    voided = await record(gql, kind="INCREASE_ALLOTMENT", roomTypeId=ids["SUP"], quantity=5,
                          **{"from": START.isoformat(), "to": (START + timedelta(days=3)).isoformat()})
    data(await gql('mutation($id: ID!) { voidAllotmentEvent(id: $id) { __typename } }', {"id": voided["id"]}))
    block = await insert_hardblock(sessions, hotel, std, sun, rooms=2, nights=4)
    await insert_hardblock(sessions, hotel, sup, sun, rooms=1, reference="HB-2")
    async with sessions() as session, session.begin():
        session.add(models.HardblockNightRelease(hardblock_id=block, night=START + timedelta(days=1), cause="MANUAL"))
    for status, rt, extra in (("HELD", std, {}), ("CONFIRMED", sup, {}), ("CANCELLED", std, {}),
                              ("HELD", sup, {"expires_in": timedelta(seconds=-1)}),
                              ("HELD", std, {"hardblock_id": block})):
        await insert_booking(sessions, hotel, rt, rooms=1, status=status, agency_id=sun, **extra)
    assert (await book(gql, agencies["SUNTRAVEL"], item(ids["SUP"], offset=3, rooms=2)))["__typename"] == "BookingGroup"

    # when
    hotel_id = decode_id(hotel["id"], "Hotel", "id")
    start, end = START - timedelta(days=1), START + timedelta(days=6)
    now = datetime.now(timezone.utc)
    async with sessions() as session:
        snapshot = await load_inventory(session, hotel_id, start, end, [std, sup])
    async with gql.http._transport.app.state.runtime.services.raw.connection() as connection:
        stay = await load_stay_inventory(connection, hotel_id, [sup, std], start, end)

    # then
    assert abs(stay.now - now) < timedelta(seconds=5)  # the database's clock, read with the rows
    assert stay.version == snapshot.version > 0
    assert stay.room_type_ids == sorted([std, sup])
    assert sorted(stay.contracts, key=lambda c: c.id) == sorted(snapshot.contracts, key=lambda c: c.id)
    assert sorted(stay.events, key=lambda e: e.id) == sorted(snapshot.events, key=lambda e: e.id)
    assert len(stay.events) == 4
    assert stay.hardblock_terms == snapshot.hardblock_terms and len(stay.hardblock_terms) == 2
    assert any(t.released_nights for t in stay.hardblock_terms)
    # summed per stay and status, lapsed holds left out: the same rooms per night
    assert len(stay.booking_lines) == 4
    counting = [b for b in snapshot.booking_lines if b.counts(now)]
    assert sum(b.rooms for b in stay.booking_lines) == sum(b.rooms for b in counting)
    assert stay.calendar(start, end, now) == snapshot.calendar(start, end, now)


async def test_create_booking_round_trips(gql, sessions):
    """Five round trips on asyncpg: the context read, then BEGIN with the locks, the read after
    them, the write and COMMIT; the critical section is the last three."""
    hotel, ids, agencies = await setup(gql)
    raw = gql.http._transport.app.state.runtime.services.raw
    with raw.logging_queries() as queries:
        group = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"]), item(ids["SUP"], rooms=2))
    assert group["__typename"] == "BookingGroup"
    assert len(queries) == 5, queries
    assert queries[0].startswith("WITH acting AS") and "pg_advisory_xact_lock" in queries[1]
    assert queries[1].startswith("BEGIN;")
    assert queries[3].startswith("WITH new_group") and queries[4] == "COMMIT"
    async with sessions() as session:
        rows = (await session.execute(select(models.Booking.rooms, func.count()).group_by(models.Booking.rooms)
                                      .order_by(models.Booking.rooms))).all()
    assert [tuple(r) for r in rows] == [(1, 1), (2, 1)]  # both items, from the one write


async def test_confirm_and_cancel_round_trips(gql):
    """Confirm and cancel: the group's context, BEGIN with the locks, the group FOR UPDATE, one
    write (statuses, sale order, audit entries, version, outbox), COMMIT."""
    hotel, ids, agencies = await setup(gql)
    group = await book(gql, agencies["SUNTRAVEL"], item(ids["STD"]), item(ids["SUP"], rooms=2))
    raw = gql.http._transport.app.state.runtime.services.raw
    for action in (confirm, cancel):
        with raw.logging_queries() as queries:
            answer = await action(gql, group["id"])
        assert answer["__typename"] in ("SaleOrder", "BookingGroup"), answer
        assert len(queries) == 5, queries
        assert queries[1].startswith("BEGIN;") and "FOR UPDATE" in queries[2] and queries[4] == "COMMIT"


async def test_a_request_already_sold_out_does_not_queue_on_the_lock(gql):
    hotel, ids, agencies = await setup(gql, allotment=2)
    assert (await book(gql, agencies["SUNTRAVEL"], item(ids["STD"], rooms=2)))["__typename"] == "BookingGroup"
    raw = gql.http._transport.app.state.runtime.services.raw
    with raw.logging_queries() as queries:
        late = await book(gql, agencies["BLUEWAVE"], item(ids["STD"]))
    assert late["__typename"] == "SoldOut"
    assert len(queries) == 1 and not any("pg_advisory_xact_lock" in q for q in queries)  # the context read only


async def test_bookings_summed_per_stay_give_the_calendar_of_the_rows(gql, sessions):
    """load_inventory's default read (bookings summed per stay in SQL) against reading every row:
    the same calendar and block slots at every instant, holds lapsing one by one included."""
    # given: several bookings per stay, some from a block, and holds of one stay lapsing at
    # different instants (the sum must not merge a lapsed hold with a live one)
    hotel, ids, agencies = await setup(gql, room_types=("STD", "SUP"))
    std, sup = (decode_id(ids[code], "RoomType", "id") for code in ("STD", "SUP"))
    sun = decode_id(agencies["SUNTRAVEL"], "Agency", "id")
    block = await insert_hardblock(sessions, hotel, std, sun, rooms=4, nights=4)
    expiries = (timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=20))
    for rt, status, extra in (*((std, "CONFIRMED", {}),) * 3, (std, "CONFIRMED", {"nights": 3}), (sup, "CONFIRMED", {}),
                              *((std, "HELD", {"expires_in": e}) for e in expiries),
                              (std, "HELD", {"expires_in": expiries[0]}), (std, "CANCELLED", {}),
                              *((std, "CONFIRMED", {"hardblock_id": block}),) * 2,
                              (std, "HELD", {"hardblock_id": block, "expires_in": expiries[1]})):
        await insert_booking(sessions, hotel, rt, rooms=1, status=status, agency_id=sun, **extra)

    # when
    hotel_id = decode_id(hotel["id"], "Hotel", "id")
    start, end = START - timedelta(days=1), START + timedelta(days=5)
    async with sessions() as session:
        summed = await load_inventory(session, hotel_id, start, end)
        rows = await load_inventory(session, hotel_id, start, end, booking_rows=True)

    # then: fewer lines, no rows, and the same numbers before, between and after the expiries
    assert summed.bookings is None and len(rows.bookings) == len(rows.booking_lines) == 12
    # STD's 2- and 3-night stays, SUP, four holds (each its own expiry), the block's confirmed and held
    assert len(summed.booking_lines) == 9
    now = datetime.now(timezone.utc)
    for instant in (now, now + timedelta(minutes=7), now + timedelta(minutes=15), now + timedelta(minutes=30)):
        assert summed.calendar(start, end, instant) == rows.calendar(start, end, instant)
        for terms in summed.hardblock_terms:
            assert (compute_hardblock_slots(terms, summed.events, summed.booking_lines, start, end, instant)
                    == compute_hardblock_slots(terms, rows.events, rows.booking_lines, start, end, instant))


SUMMED_OR_ROWS = """
query($id: ID!, $from: Date!, $to: Date!) {
  node(id: $id) { ... on Hotel { calendar(from: $from, to: $to) {
    rows { cells { date held sold hardblocks { booked ...Who } } } } } }
}
fragment Who on HardblockSlot { bookings { id } }
"""


async def test_a_calendar_reads_booking_rows_only_when_some_cell_shows_bookings(gql, sessions):
    # given: a block with a booking and a pool booking
    hotel, ids, agencies = await setup(gql, room_types=("STD",))
    std = decode_id(ids["STD"], "RoomType", "id")
    sun = decode_id(agencies["SUNTRAVEL"], "Agency", "id")
    block = await insert_hardblock(sessions, hotel, std, sun, rooms=2, nights=2)
    from_block = await insert_booking(sessions, hotel, std, rooms=1, status="CONFIRMED", agency_id=sun,
                                      hardblock_id=block)
    await insert_booking(sessions, hotel, std, rooms=1, status="CONFIRMED", agency_id=sun)
    variables = {"id": hotel["id"], "from": START.isoformat(), "to": (START + timedelta(days=1)).isoformat()}
    engine = gql.http._transport.app.state.runtime.engine

    # when: the slots' bookings asked for through a fragment, then the numbers alone
    with captured_statements(engine) as with_rows:
        deep = data(await gql(SUMMED_OR_ROWS, variables))
    with captured_statements(engine) as summed:
        flat = data(await gql(SUMMED_OR_ROWS.replace(" ...Who", "").replace(
            "fragment Who on HardblockSlot { bookings { id } }", ""), variables))

    # then: the same numbers; rows (with the booking's group_id) read only for the first
    cell = deep["node"]["calendar"]["rows"][0]["cells"][0]
    assert (cell["sold"], cell["hardblocks"][0]["booked"]) == (1, 1)
    assert [b["id"] for b in cell["hardblocks"][0]["bookings"]] == [to_global_id("Booking", from_block)]
    assert flat["node"]["calendar"]["rows"][0]["cells"][0] == {k: v for k, v in cell.items()} | {
        "hardblocks": [{"booked": 1}]}
    assert any("booking.group_id" in s for s in with_rows)
    assert not any("booking.group_id" in s for s in summed) and any("sum(booking.rooms)" in s for s in summed)
    assert len(with_rows) == len(summed)
