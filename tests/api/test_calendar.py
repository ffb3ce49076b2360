"""Hotel.calendar against real PostgreSQL data written through the mutations."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from app.api.ids import decode_id, to_global_id
from db import models
from domain import AllotmentEvent, ContractTerms, EventKind, Money, compute_calendar
from tests.api.test_catalog import UPSERT_CONTRACT, contract_input, make_hotel
from tests.support import captured_statements, data

START = date.today() + timedelta(days=60)  # well before any release cut-off
END = START + timedelta(days=10)

CALENDAR = """
query($id: ID!, $from: Date!, $to: Date!, $roomTypeIds: [ID!]) {
  node(id: $id) { ... on Hotel { calendar(from: $from, to: $to, roomTypeIds: $roomTypeIds) {
    version
    rows { roomType { code } cells { date allotment hardblocked held sold available overcommitted closed
                                     releaseDate rate { amount currency } } }
  } } }
}
"""
CALENDAR_DEEP = """
query($id: ID!, $from: Date!, $to: Date!) {
  node(id: $id) { ... on Hotel { calendar(from: $from, to: $to) {
    version
    rows { roomType { id } series { available }
           cells { date available rate { amount } bookings { id rooms status group { reference } }
                   hardblocks { date size booked available hardblock { reference } bookings { id } } } }
  } } }
}
"""
RECORD = """
mutation($input: AllotmentEventInput!) {
  recordAllotmentEvent(input: $input) {
    __typename
    ... on AllotmentEvent { id kind from to quantity voided rate { amount currency } }
    ... on UserError { message code }
    ... on InvalidInput { field }
  }
}
"""
VOID = """
mutation($id: ID!) { voidAllotmentEvent(id: $id) {
  __typename ... on AllotmentEvent { id voided voidedBy } ... on UserError { message code } } }
"""


def d(offset: int) -> str:
    return (START + timedelta(days=offset)).isoformat()


async def setup_hotel(gql, room_types=("STD", "SUP"), allotment=10):
    hotel, ids = await make_hotel(gql, room_types=room_types)
    for n, code in enumerate(room_types):
        data(await gql(UPSERT_CONTRACT, {"input": contract_input(
            hotel["id"], ids[code], externalId=f"C-{code}", allotment=allotment,
            **{"from": START.isoformat(), "to": (START + timedelta(days=30)).isoformat()})}))
    return hotel, ids


async def calendar(gql, hotel_id, start=START, end=END, role="admin", agency=None, **variables):
    result = await gql(CALENDAR, {"id": hotel_id, "from": start.isoformat(), "to": end.isoformat(), **variables},
                       role=role, agency=agency)
    return data(result)["node"]["calendar"]


def column(cal, code, name):
    row = next(r for r in cal["rows"] if r["roomType"]["code"] == code)
    return [cell[name] for cell in row["cells"]]


async def record(gql, **input):
    return data(await gql(RECORD, {"input": input}))["recordAllotmentEvent"]


async def test_contract_allotment_rate_and_release_date(gql):
    hotel, ids = await setup_hotel(gql)
    cal = await calendar(gql, hotel["id"])
    assert cal["version"] == 2  # two contracts
    cell = next(r for r in cal["rows"] if r["roomType"]["code"] == "STD")["cells"][0]
    assert cell == {"date": START.isoformat(), "allotment": 10, "hardblocked": 0, "held": 0, "sold": 0,
                    "available": 10, "overcommitted": 0, "closed": False,
                    "releaseDate": (START - timedelta(days=7)).isoformat(),
                    "rate": {"amount": "99.50", "currency": "EUR"}}
    assert len(column(cal, "SUP", "date")) == 10


async def test_events_change_the_calendar_and_voiding_reverts_exactly(gql):
    hotel, ids = await setup_hotel(gql)
    before = await calendar(gql, hotel["id"])

    inc = await record(gql, kind="INCREASE_ALLOTMENT", roomTypeId=ids["STD"], **{"from": d(0), "to": d(5)}, quantity=3)
    red = await record(gql, kind="REDUCE_ALLOTMENT", roomTypeId=ids["STD"], **{"from": d(3), "to": d(8)}, quantity=5)
    stop = await record(gql, kind="BLOCK_CONTRACT", roomTypeId=ids["STD"], **{"from": d(9), "to": d(10)})
    rate = await record(gql, kind="RATE_CHANGE", roomTypeId=ids["STD"], **{"from": d(1), "to": d(2)},
                        rate={"amount": "120", "currency": "eur"})
    assert inc["__typename"] == red["__typename"] == stop["__typename"] == rate["__typename"] == "AllotmentEvent"
    assert rate["rate"] == {"amount": "120.00", "currency": "EUR"}

    after = await calendar(gql, hotel["id"])
    assert after["version"] == before["version"] + 4
    assert column(after, "STD", "allotment") == [13, 13, 13, 8, 8, 5, 5, 5, 10, 10]
    assert column(after, "STD", "closed") == [False] * 9 + [True]
    assert column(after, "STD", "available") == [13, 13, 13, 8, 8, 5, 5, 5, 10, 0]
    assert [c and c["amount"] for c in column(after, "STD", "rate")][:3] == ["99.50", "120.00", "99.50"]
    assert column(after, "SUP", "allotment") == column(before, "SUP", "allotment")

    for event in (inc, red, stop, rate):
        voided = data(await gql(VOID, {"id": event["id"]}))["voidAllotmentEvent"]
        assert voided["voided"] is True and voided["voidedBy"] == "dev-admin"
    reverted = await calendar(gql, hotel["id"])
    assert reverted["rows"] == before["rows"]
    assert reverted["version"] == before["version"] + 8

    again = data(await gql(VOID, {"id": inc["id"]}))["voidAllotmentEvent"]
    assert again["__typename"] == "InvalidTransition" and again["code"] == "INVALID_TRANSITION"


async def test_reduction_below_commitments_shows_overcommitted(gql, sessions):
    hotel, ids = await setup_hotel(gql, allotment=4)
    std = decode_id(ids["STD"], "RoomType", "id")
    await insert_booking(sessions, hotel, std, rooms=3, status="CONFIRMED")
    await record(gql, kind="REDUCE_ALLOTMENT", roomTypeId=ids["STD"], **{"from": d(0), "to": d(1)}, quantity=3)
    cal = await calendar(gql, hotel["id"], end=START + timedelta(days=2))
    assert column(cal, "STD", "allotment") == [1, 4]
    assert column(cal, "STD", "sold") == [3, 3]
    assert column(cal, "STD", "overcommitted") == [2, 0]
    assert column(cal, "STD", "available") == [0, 1]


async def test_record_event_validation_and_scope(gql):
    hotel, ids = await setup_hotel(gql)
    cases = [
        (dict(kind="INCREASE_ALLOTMENT", roomTypeId=ids["STD"], **{"from": d(2), "to": d(1)}, quantity=1), "to"),
        (dict(kind="INCREASE_ALLOTMENT", roomTypeId=ids["STD"], **{"from": d(0), "to": d(1)}), "quantity"),
        (dict(kind="REDUCE_ALLOTMENT", roomTypeId=ids["STD"], **{"from": d(0), "to": d(1)}, quantity=0), "quantity"),
        (dict(kind="BLOCK_CONTRACT", roomTypeId=ids["STD"], **{"from": d(0), "to": d(1)}, quantity=2), "quantity"),
        (dict(kind="RATE_CHANGE", roomTypeId=ids["STD"], **{"from": d(0), "to": d(1)}), "rate"),
        (dict(kind="RATE_CHANGE", roomTypeId=ids["STD"], **{"from": d(0), "to": d(1)},
              rate={"amount": "-1", "currency": "EUR"}), "rate.amount"),
        (dict(kind="BLOCK_AMENDMENT", roomTypeId=ids["STD"], **{"from": d(0), "to": d(1)}, quantity=1,
              hardblockId=to_global_id("Hardblock", 1)), "kind"),
        (dict(kind="RESTRICTION", roomTypeId=ids["STD"], **{"from": d(0), "to": d(1)}), "kind"),
        (dict(kind="BLOCK_CONTRACT", roomTypeId=hotel["id"], **{"from": d(0), "to": d(1)}), "roomTypeId"),
    ]
    for input, field in cases:
        result = await record(gql, **input)
        assert result["__typename"] == "InvalidInput", (field, result)
        assert result["field"] == field, (field, result)
    missing = await record(gql, kind="BLOCK_CONTRACT", roomTypeId=to_global_id("RoomType", 99999),
                           **{"from": d(0), "to": d(1)})
    assert missing["__typename"] == "NotFound"
    cal = await calendar(gql, hotel["id"])
    assert cal["version"] == 2  # nothing was written

    forbidden = await gql(RECORD, {"input": dict(kind="BLOCK_CONTRACT", roomTypeId=ids["STD"],
                                                  **{"from": d(0), "to": d(1)})}, role="agent", agency="SUNTRAVEL")
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    audit = data(await gql("{ auditLog { edges { node { action } } } }"))["auditLog"]["edges"]
    assert not any(e["node"]["action"].startswith("allotment_event") for e in audit)


async def test_recorded_and_voided_events_are_audited(gql):
    hotel, ids = await setup_hotel(gql)
    event = await record(gql, kind="INCREASE_ALLOTMENT", roomTypeId=ids["STD"], **{"from": d(0), "to": d(1)}, quantity=2)
    data(await gql(VOID, {"id": event["id"]}))
    query = "query($id: ID) { auditLog(entityId: $id) { edges { node { action before after } } } }"
    entries = [e["node"] for e in data(await gql(query, {"id": event["id"]}))["auditLog"]["edges"]]
    assert [e["action"] for e in entries] == ["allotment_event.voided", "allotment_event.recorded"]
    assert entries[0]["before"]["voided_at"] is None and entries[0]["after"]["voided_by"] == "dev-admin"


async def test_calendar_bad_ranges_are_clear_errors(gql):
    hotel, ids = await setup_hotel(gql)
    for start, end in ((END, START), (START, START + timedelta(days=800))):
        result = await gql(CALENDAR, {"id": hotel["id"], "from": start.isoformat(), "to": end.isoformat()})
        assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    other, other_ids = await make_hotel(gql, code="OPO", room_types=("DBL",))
    result = await gql(CALENDAR, {"id": hotel["id"], "from": START.isoformat(), "to": END.isoformat(),
                                  "roomTypeIds": [other_ids["DBL"]]})
    assert "room types of this hotel" in result["errors"][0]["message"]


async def test_room_type_filter(gql):
    hotel, ids = await setup_hotel(gql)
    cal = await calendar(gql, hotel["id"], roomTypeIds=[ids["SUP"]])
    assert [r["roomType"]["code"] for r in cal["rows"]] == ["SUP"]


# --- bookings and blocks in cells (rows inserted directly until createBooking exists) ----------


async def insert_agency(sessions, code):
    async with sessions() as session, session.begin():
        agency = models.Agency(code=code, name=code.title())
        session.add(agency)
        await session.flush()
        return agency.id


async def insert_booking(sessions, hotel, room_type_id, *, rooms, status="HELD", agency_id=None,
                         check_in=START, nights=2, hardblock_id=None, expires_in=timedelta(minutes=15)):
    hotel_id = decode_id(hotel["id"], "Hotel", "id")
    async with sessions() as session, session.begin():
        if agency_id is None:
            agency = models.Agency(code=f"AG{random.randrange(10**6)}", name="Agency")
            session.add(agency)
            await session.flush()
            agency_id = agency.id
        expires_at = datetime.now(timezone.utc) + expires_in if status == "HELD" else None
        group = models.BookingGroup(reference=f"BG-{random.randrange(10**9)}", agency_id=agency_id, status=status,
                                    expires_at=expires_at, created_by="test")
        session.add(group)
        await session.flush()
        booking = models.Booking(group_id=group.id, agency_id=agency_id, hotel_id=hotel_id,
                                 room_type_id=room_type_id, hardblock_id=hardblock_id, check_in=check_in,
                                 check_out=check_in + timedelta(days=nights), rooms=rooms, status=status,
                                 expires_at=expires_at, total_amount=Decimal("100.00"), currency="EUR")
        session.add(booking)
        await session.flush()
        return booking.id


async def insert_hardblock(sessions, hotel, room_type_id, agency_id, *, rooms, nights=3, reference="HB-1"):
    async with sessions() as session, session.begin():
        block = models.Hardblock(reference=reference, agency_id=agency_id,
                                 hotel_id=decode_id(hotel["id"], "Hotel", "id"), room_type_id=room_type_id,
                                 start_date=START, end_date=START + timedelta(days=nights), rooms=rooms,
                                 release_days=0)
        session.add(block)
        await session.flush()
        return block.id


async def test_held_sold_hardblocked_and_expired_holds(gql, sessions):
    hotel, ids = await setup_hotel(gql)
    std = decode_id(ids["STD"], "RoomType", "id")
    sun = await insert_agency(sessions, "SUNTRAVEL")
    await insert_booking(sessions, hotel, std, rooms=2, status="HELD", agency_id=sun)
    await insert_booking(sessions, hotel, std, rooms=1, status="CONFIRMED", agency_id=sun, nights=1)
    await insert_booking(sessions, hotel, std, rooms=4, status="HELD", agency_id=sun,
                         expires_in=timedelta(seconds=-1))  # expired: counts nowhere, no sweeper needed
    await insert_booking(sessions, hotel, std, rooms=5, status="CANCELLED", agency_id=sun)
    block = await insert_hardblock(sessions, hotel, std, sun, rooms=3)
    await insert_booking(sessions, hotel, std, rooms=1, status="CONFIRMED", agency_id=sun, hardblock_id=block)

    cal = await calendar(gql, hotel["id"], end=START + timedelta(days=4))
    assert column(cal, "STD", "held") == [2, 2, 0, 0]
    assert column(cal, "STD", "sold") == [1, 0, 0, 0]
    assert column(cal, "STD", "hardblocked") == [3, 3, 3, 0]
    assert column(cal, "STD", "available") == [4, 5, 7, 10]
    for i in range(4):  # allotment + overcommitted = hardblocked + held + sold + available
        assert (column(cal, "STD", "allotment")[i] + column(cal, "STD", "overcommitted")[i]
                == sum(column(cal, "STD", name)[i] for name in ("hardblocked", "held", "sold", "available")))


async def test_agents_see_pool_numbers_but_only_their_own_bookings_and_blocks(gql, sessions):
    hotel, ids = await setup_hotel(gql)
    std = decode_id(ids["STD"], "RoomType", "id")
    sun, blue = await insert_agency(sessions, "SUNTRAVEL"), await insert_agency(sessions, "BLUEWAVE")
    mine = await insert_booking(sessions, hotel, std, rooms=2, agency_id=sun)
    await insert_booking(sessions, hotel, std, rooms=1, agency_id=blue)
    await insert_hardblock(sessions, hotel, std, blue, rooms=2, reference="HB-BLUE")
    variables = {"id": hotel["id"], "from": START.isoformat(), "to": (START + timedelta(days=1)).isoformat()}

    staff = data(await gql(CALENDAR_DEEP, variables))["node"]["calendar"]
    agent = data(await gql(CALENDAR_DEEP, variables, role="agent", agency="SUNTRAVEL"))["node"]["calendar"]

    def first_cell(cal, code_id):
        return next(r for r in cal["rows"] if r["roomType"]["id"] == code_id)["cells"][0]

    staff_cell, agent_cell = first_cell(staff, ids["STD"]), first_cell(agent, ids["STD"])
    assert staff_cell["available"] == agent_cell["available"] == 10 - 3 - 2
    assert len(staff_cell["bookings"]) == 2 and len(staff_cell["hardblocks"]) == 1
    assert [b["id"] for b in agent_cell["bookings"]] == [to_global_id("Booking", mine)]
    assert agent_cell["hardblocks"] == []
    slot = staff_cell["hardblocks"][0]
    assert (slot["size"], slot["booked"], slot["available"], slot["hardblock"]["reference"]) == (2, 0, 2, "HB-BLUE")


async def test_calendar_statement_count_does_not_grow(gql, sessions):
    """Room types, nights, events and bookings multiply; the number of SQL statements does not."""
    small, small_ids = await setup_hotel(gql, room_types=("A",))
    big, big_ids = await make_hotel(gql, code="BIG", room_types=tuple(f"R{i}" for i in range(8)))
    sun = await insert_agency(sessions, "SUNTRAVEL")
    for code, rt in big_ids.items():
        data(await gql(UPSERT_CONTRACT, {"input": contract_input(
            big["id"], rt, externalId=f"B-{code}", **{"from": START.isoformat(),
                                                      "to": (START + timedelta(days=40)).isoformat()})}))
        rt_id = decode_id(rt, "RoomType", "id")
        for k in range(3):
            await record(gql, kind="INCREASE_ALLOTMENT", roomTypeId=rt, **{"from": d(k), "to": d(k + 5)}, quantity=1)
            await insert_booking(sessions, big, rt_id, rooms=1, agency_id=sun, check_in=START + timedelta(days=k))
        await insert_hardblock(sessions, big, rt_id, sun, rooms=1, reference=f"HB-{code}")
    small_rt = decode_id(small_ids["A"], "RoomType", "id")
    await insert_booking(sessions, small, small_rt, rooms=1, agency_id=sun)
    await insert_hardblock(sessions, small, small_rt, sun, rooms=1, reference="HB-SMALL")

    small_count = await measure_app(gql, small, 1)
    big_count = await measure_app(gql, big, 30)
    assert big_count == small_count, (small_count, big_count)
    assert small_count <= 15


async def measure_app(gql, hotel, days):
    """Statements the app's own engine runs for one deep calendar query."""
    app = gql.http._transport.app  # the ASGI app under test
    variables = {"id": hotel["id"], "from": START.isoformat(), "to": (START + timedelta(days=days)).isoformat()}
    with captured_statements(app.state.runtime.engine) as statements:
        result = await gql(CALENDAR_DEEP, variables)
    data(result)
    return len(statements)


async def test_calendar_matches_the_domain_pipeline_on_random_events(gql, sessions):
    """Random events written through the API give exactly what the pure pipeline computes."""
    hotel, ids = await setup_hotel(gql, room_types=("STD",), allotment=6)
    rt = decode_id(ids["STD"], "RoomType", "id")
    rng = random.Random(7)
    written = []
    for _ in range(25):
        a = rng.randrange(0, 9)
        b = rng.randrange(a + 1, 11)
        kind = rng.choice(["INCREASE_ALLOTMENT", "REDUCE_ALLOTMENT", "BLOCK_CONTRACT", "RATE_CHANGE"])
        extra = {"quantity": rng.randrange(1, 5)} if "ALLOTMENT" in kind else {}
        if kind == "RATE_CHANGE":
            extra = {"rate": {"amount": f"{rng.randrange(50, 150)}.00", "currency": "EUR"}}
        event = await record(gql, kind=kind, roomTypeId=ids["STD"], **{"from": d(a), "to": d(b)}, **extra)
        written.append(event)
        if rng.random() < 0.25:
            data(await gql(VOID, {"id": event["id"]}))
            event["voided"] = True

    async with sessions() as session:
        from sqlalchemy import select

        rows = (await session.execute(select(models.AllotmentEvent))).scalars().all()
    events = [AllotmentEvent(id=r.id, kind=EventKind(r.kind), room_type_id=rt, start=r.start_date, end=r.end_date,
                             effective_at=r.effective_at, quantity=r.quantity,
                             rate=Money(r.rate_amount, r.currency) if r.rate_amount is not None else None,
                             voided=r.voided_at is not None) for r in rows]
    contract = ContractTerms(id=1, room_type_id=rt, start=START, end=START + timedelta(days=30), allotment=6,
                             rate=Money(Decimal("99.50"), "EUR"), release_days=7)
    expected = compute_calendar([contract], events, [], [], [rt], START, END, datetime.now(timezone.utc))[rt]
    cal = await calendar(gql, hotel["id"])
    assert column(cal, "STD", "allotment") == list(expected.allotment)
    assert column(cal, "STD", "available") == list(expected.available)
    assert column(cal, "STD", "closed") == list(expected.closed)
    assert [c and Decimal(c["amount"]) for c in column(cal, "STD", "rate")] == [r and r.amount for r in expected.rate]
