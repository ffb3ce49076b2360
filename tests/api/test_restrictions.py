"""Restrictions: setRestrictions (a RESTRICTION allotment event), the calendar's restrictions and
reasons, and createBooking's RestrictionViolated."""

from __future__ import annotations

from app.api.ids import to_global_id
from tests.api.test_calendar import VOID, calendar, d, insert_agency, setup_hotel
from tests.support import data

SET = """
mutation($input: SetRestrictionsInput!) {
  setRestrictions(input: $input) {
    __typename
    ... on AllotmentEvent { id kind from to voided agencies { code }
      restrictions { minStay maxStay closedToArrival closedToDeparture minAdvanceDays maxAdvanceDays } }
    ... on UserError { message code }
    ... on InvalidInput { field }
  }
}
"""


async def set_restrictions(gql, role="admin", **input):
    return data(await gql(SET, {"input": input}, role=role))["setRestrictions"]


def agency_gid(pk):
    return to_global_id("Agency", pk)


async def test_set_restrictions_records_a_restriction_event_audited_and_voidable(gql, sessions):
    hotel, ids = await setup_hotel(gql)
    agency = await insert_agency(sessions, "ACME")
    before = await calendar(gql, hotel["id"])
    event = await set_restrictions(gql, roomTypeId=ids["STD"], agencyIds=[agency_gid(agency)], minStay=2,
                                   closedToArrival=True, **{"from": d(0), "to": d(3)})
    assert event["__typename"] == "AllotmentEvent" and event["kind"] == "RESTRICTION"
    assert event["agencies"] == [{"code": "ACME"}]
    assert event["restrictions"] == {"minStay": 2, "maxStay": None, "closedToArrival": True,
                                     "closedToDeparture": False, "minAdvanceDays": None, "maxAdvanceDays": None}
    after = await calendar(gql, hotel["id"])
    assert after["version"] == before["version"] + 1
    query = "query($id: ID) { auditLog(entityId: $id) { edges { node { action after } } } }"
    entries = [e["node"] for e in data(await gql(query, {"id": event["id"]}))["auditLog"]["edges"]]
    assert entries[0]["action"] == "allotment_event.recorded"
    assert entries[0]["after"]["min_stay"] == 2 and entries[0]["after"]["agency_ids"] == [agency]
    voided = data(await gql(VOID, {"id": event["id"]}))["voidAllotmentEvent"]
    assert voided["voided"] is True


async def test_set_restrictions_validation_and_staff_only(gql, sessions):
    hotel, ids = await setup_hotel(gql)
    empty = await set_restrictions(gql, roomTypeId=ids["STD"], **{"from": d(0), "to": d(3)})
    assert empty["__typename"] == "InvalidInput" and empty["field"] == "restrictions"
    crossed = await set_restrictions(gql, roomTypeId=ids["STD"], minStay=3, maxStay=2, **{"from": d(0), "to": d(3)})
    assert crossed["__typename"] == "InvalidInput" and crossed["field"] == "maxStay"
    bad = await set_restrictions(gql, roomTypeId=ids["STD"], minAdvanceDays=-1, **{"from": d(0), "to": d(3)})
    assert bad["field"] == "minAdvanceDays"
    nobody = await set_restrictions(gql, roomTypeId=ids["STD"], agencyIds=[agency_gid(999999)], minStay=2,
                                    **{"from": d(0), "to": d(3)})
    assert nobody["__typename"] == "NotFound"
    agency = await insert_agency(sessions, "ACME")
    result = await gql(SET, {"input": {"roomTypeId": ids["STD"], "minStay": 2, "from": d(0), "to": d(3)}},
                       role="agent", agency=agency)
    assert result["errors"]


async def test_record_allotment_event_still_refuses_restriction(gql):
    from tests.api.test_calendar import RECORD
    hotel, ids = await setup_hotel(gql)
    result = data(await gql(RECORD, {"input": {"kind": "RESTRICTION", "roomTypeId": ids["STD"],
                                               "from": d(0), "to": d(1)}}))["recordAllotmentEvent"]
    assert result["__typename"] == "InvalidInput" and result["field"] == "kind"


CELLS = """
query($id: ID!, $from: Date!, $to: Date!) {
  node(id: $id) { ... on Hotel { calendar(from: $from, to: $to) {
    rows { roomType { code } cells { date available reasons
      restrictions { minStay maxStay closedToArrival closedToDeparture minAdvanceDays maxAdvanceDays } } }
  } } }
}
"""


async def cells(gql, hotel, code="STD", role="admin", agency=None, start=0, end=10):
    result = data(await gql(CELLS, {"id": hotel["id"], "from": d(start), "to": d(end)}, role=role, agency=agency))
    row = next(r for r in result["node"]["calendar"]["rows"] if r["roomType"]["code"] == code)
    return row["cells"]


async def test_calendar_shows_the_callers_restrictions_and_reasons(gql, sessions):
    hotel, ids = await setup_hotel(gql)
    acme, other = await insert_agency(sessions, "ACME"), await insert_agency(sessions, "OTHER")
    await set_restrictions(gql, roomTypeId=ids["STD"], minStay=2, closedToArrival=True, **{"from": d(1), "to": d(3)})
    await set_restrictions(gql, roomTypeId=ids["STD"], agencyIds=[agency_gid(acme)], minStay=4, maxAdvanceDays=10,
                           **{"from": d(2), "to": d(4)})
    await set_restrictions(gql, roomTypeId=ids["STD"], closedToArrival=False, **{"from": d(2), "to": d(3)})

    staff = await cells(gql, hotel)
    assert [c["restrictions"]["minStay"] for c in staff[:5]] == [None, 2, 2, None, None]
    assert [c["restrictions"]["closedToArrival"] for c in staff[:4]] == [False, True, False, False]
    assert [c["reasons"] for c in staff[:4]] == [[], ["CLOSED_TO_ARRIVAL"], [], []]
    assert all(c["available"] == 10 for c in staff)  # restrictions are not availability

    mine = await cells(gql, hotel, role="agent", agency="ACME")
    assert [c["restrictions"]["minStay"] for c in mine[:5]] == [None, 2, 4, 4, None]
    assert [c["restrictions"]["maxAdvanceDays"] for c in mine[:5]] == [None, None, 10, 10, None]
    # START is 60 days ahead: beyond a 10-day advance window
    assert [c["reasons"] for c in mine[:5]] == [[], ["CLOSED_TO_ARRIVAL"], ["ADVANCE_WINDOW"], ["ADVANCE_WINDOW"], []]
    theirs = await cells(gql, hotel, role="agent", agency="OTHER")
    assert [c["restrictions"] for c in theirs] == [c["restrictions"] for c in staff]
    assert (await cells(gql, hotel, code="SUP"))[1]["restrictions"]["minStay"] is None


BOOK = """
mutation($input: CreateBookingInput!) { createBooking(input: $input) {
  __typename
  ... on BookingGroup { id }
  ... on RestrictionViolated { violations { roomType { code } date rule detail } }
  ... on UserError { message code }
} }
"""


async def try_book(gql, agency_id, *items):
    from tests.api.test_bookings import booking_input
    return data(await gql(BOOK, {"input": booking_input(agency_id, *items)}))["createBooking"]


def rules(result):
    assert result["__typename"] == "RestrictionViolated", result
    assert result["code"] == "RESTRICTION_VIOLATED"
    return [(v["roomType"]["code"], v["date"], v["rule"]) for v in result["violations"]]


async def restrict(gql, room_type_id, start, end, **fields):
    event = await set_restrictions(gql, roomTypeId=room_type_id, **{"from": d(start), "to": d(end)}, **fields)
    assert event["__typename"] == "AllotmentEvent", event
    return event


async def test_min_and_max_stay_are_judged_on_the_arrival_night(gql):
    from tests.api.test_bookings import item, setup
    hotel, ids, agencies = await setup(gql)
    sun = agencies["SUNTRAVEL"]
    await restrict(gql, ids["STD"], 2, 3, minStay=3)
    await restrict(gql, ids["STD"], 4, 5, maxStay=1)
    assert rules(await try_book(gql, sun, item(ids["STD"], 2, nights=2))) == [("STD", d(2), "MIN_STAY")]
    assert (await try_book(gql, sun, item(ids["STD"], 2, nights=3)))["__typename"] == "BookingGroup"
    # minStay on a night inside the stay but not its arrival does not bind it
    assert (await try_book(gql, sun, item(ids["STD"], 1, nights=2)))["__typename"] == "BookingGroup"
    assert rules(await try_book(gql, sun, item(ids["STD"], 4, nights=2))) == [("STD", d(4), "MAX_STAY")]
    assert (await try_book(gql, sun, item(ids["STD"], 4, nights=1)))["__typename"] == "BookingGroup"


async def test_closed_to_arrival_and_to_departure_and_every_violation_listed(gql):
    from tests.api.test_bookings import item, setup
    hotel, ids, agencies = await setup(gql)
    sun = agencies["SUNTRAVEL"]
    cal = await calendar(gql, hotel["id"])
    await restrict(gql, ids["STD"], 3, 4, closedToArrival=True)
    await restrict(gql, ids["STD"], 6, 7, closedToDeparture=True)
    await restrict(gql, ids["SUP"], 3, 4, minStay=5)
    assert rules(await try_book(gql, sun, item(ids["STD"], 3, nights=1))) == [("STD", d(3), "CLOSED_TO_ARRIVAL")]
    # CTD binds the check-out date (a night the stay does not include), not the nights stayed
    assert rules(await try_book(gql, sun, item(ids["STD"], 4, nights=2))) == [("STD", d(6), "CLOSED_TO_DEPARTURE")]
    assert (await try_book(gql, sun, item(ids["STD"], 5, nights=2)))["__typename"] == "BookingGroup"
    result = await try_book(gql, sun, item(ids["STD"], 3, nights=3), item(ids["SUP"], 3, nights=2))
    assert rules(result) == [("STD", d(3), "CLOSED_TO_ARRIVAL"), ("STD", d(6), "CLOSED_TO_DEPARTURE"),
                             ("SUP", d(3), "MIN_STAY")]
    assert "restrictions not met" in result["message"]
    # nothing written by the refusals: only the one booking holds rooms
    after = await calendar(gql, hotel["id"])
    assert sum(column_sum for column_sum in
               (sum(c["held"] for c in r["cells"]) for r in after["rows"])) == 2
    assert after["version"] == cal["version"] + 4


async def test_advance_window_against_the_hotels_today(gql):
    from tests.api.test_bookings import item, setup
    hotel, ids, agencies = await setup(gql)
    sun = agencies["SUNTRAVEL"]
    await restrict(gql, ids["STD"], 0, 1, maxAdvanceDays=50)  # START is ~60 days ahead
    await restrict(gql, ids["STD"], 1, 2, minAdvanceDays=70)
    await restrict(gql, ids["STD"], 2, 3, minAdvanceDays=30, maxAdvanceDays=90)
    assert rules(await try_book(gql, sun, item(ids["STD"], 0, nights=1))) == [("STD", d(0), "MAX_ADVANCE_DAYS")]
    assert rules(await try_book(gql, sun, item(ids["STD"], 1, nights=1))) == [("STD", d(1), "MIN_ADVANCE_DAYS")]
    assert (await try_book(gql, sun, item(ids["STD"], 2, nights=1)))["__typename"] == "BookingGroup"


async def test_agency_specific_restrictions_last_wins_per_field_and_voiding_lifts(gql):
    from tests.api.test_bookings import item, setup
    hotel, ids, agencies = await setup(gql)
    sun, blue = agencies["SUNTRAVEL"], agencies["BLUEWAVE"]
    everyone = await restrict(gql, ids["STD"], 0, 10, minStay=2, closedToArrival=True)
    mine = await restrict(gql, ids["STD"], 0, 10, agencyIds=[sun], minStay=4)
    # later event wins the field it sets, the other field stays as the earlier one set it
    assert rules(await try_book(gql, sun, item(ids["STD"], 0, nights=3))) == [
        ("STD", d(0), "MIN_STAY"), ("STD", d(0), "CLOSED_TO_ARRIVAL")]
    assert rules(await try_book(gql, blue, item(ids["STD"], 0, nights=3))) == [("STD", d(0), "CLOSED_TO_ARRIVAL")]
    await restrict(gql, ids["STD"], 0, 10, closedToArrival=False)
    assert (await try_book(gql, blue, item(ids["STD"], 0, nights=3)))["__typename"] == "BookingGroup"
    assert rules(await try_book(gql, sun, item(ids["STD"], 0, nights=3))) == [("STD", d(0), "MIN_STAY")]
    # a later all-agency minStay overrides the agency's earlier one for it too
    lifted = await restrict(gql, ids["STD"], 0, 10, minStay=1)
    assert (await try_book(gql, sun, item(ids["STD"], 0, nights=1)))["__typename"] == "BookingGroup"
    data(await gql(VOID, {"id": lifted["id"]}))
    assert rules(await try_book(gql, sun, item(ids["STD"], 0, nights=1))) == [("STD", d(0), "MIN_STAY")]
    data(await gql(VOID, {"id": mine["id"]}))
    assert rules(await try_book(gql, sun, item(ids["STD"], 0, nights=1))) == [("STD", d(0), "MIN_STAY")]  # everyone's 2
    data(await gql(VOID, {"id": everyone["id"]}))
    assert (await try_book(gql, sun, item(ids["STD"], 0, nights=1)))["__typename"] == "BookingGroup"


async def test_set_restrictions_is_idempotent_with_a_key(gql):
    hotel, ids = await setup_hotel(gql)
    input = {"roomTypeId": ids["STD"], "from": d(0), "to": d(2), "minStay": 2, "idempotencyKey": "restr-1"}
    first = await set_restrictions(gql, **input)
    again = await set_restrictions(gql, **input)
    assert first["__typename"] == "AllotmentEvent" and again["id"] == first["id"]
    other = await set_restrictions(gql, **{**input, "minStay": 3})
    assert other["__typename"] == "IdempotencyConflict"


async def test_the_advance_window_counts_from_the_hotels_local_today(gql):
    from datetime import UTC, datetime, timedelta

    from domain import hotel_today
    from tests.api.test_bookings import booking_input
    from tests.api.test_catalog import CREATE_AGENCY, UPSERT_CONTRACT, contract_input
    from tests.api.test_hotel_time import zoned_hotel

    # UTC+14: its today is UTC's tomorrow for most of the UTC day (a UTC today would miscount by one)
    hotel, ids = await zoned_hotel(gql, "CXI", "Pacific/Kiritimati")
    today = hotel_today(datetime.now(UTC), "Pacific/Kiritimati")
    arrival = today + timedelta(days=20)
    data(await gql(UPSERT_CONTRACT, {"input": contract_input(
        hotel["id"], ids["STD"], externalId="C-CXI", releaseDays=0,
        **{"from": today.isoformat(), "to": (today + timedelta(days=40)).isoformat()})}))
    agency = data(await gql(CREATE_AGENCY, {"input": {"code": "ISLE", "name": "Isle"}}))["createAgency"]["id"]
    stay = {"roomTypeId": ids["STD"], "checkIn": arrival.isoformat(),
            "checkOut": (arrival + timedelta(days=1)).isoformat(), "rooms": 1}

    async def attempt():
        return data(await gql(BOOK, {"input": booking_input(agency, stay)}))["createBooking"]

    window = {"from": arrival.isoformat(), "to": (arrival + timedelta(days=1)).isoformat()}
    too_soon = await set_restrictions(gql, roomTypeId=ids["STD"], minAdvanceDays=21, **window)
    assert rules(await attempt()) == [("STD", arrival.isoformat(), "MIN_ADVANCE_DAYS")]
    data(await gql(VOID, {"id": too_soon["id"]}))
    await set_restrictions(gql, roomTypeId=ids["STD"], minAdvanceDays=20, maxAdvanceDays=20, **window)
    assert (await attempt())["__typename"] == "BookingGroup"


async def test_series_carries_the_restriction_fields_and_reasons(gql, sessions):
    hotel, ids = await setup_hotel(gql)
    acme = await insert_agency(sessions, "ACME")
    await set_restrictions(gql, roomTypeId=ids["STD"], minStay=2, closedToArrival=True, **{"from": d(1), "to": d(3)})
    await set_restrictions(gql, roomTypeId=ids["STD"], agencyIds=[agency_gid(acme)], maxStay=5, minAdvanceDays=1,
                           maxAdvanceDays=10, closedToDeparture=True, **{"from": d(2), "to": d(4)})
    series = """query($id: ID!, $from: Date!, $to: Date!) { node(id: $id) { ... on Hotel { calendar(from: $from, to: $to) {
      rows { roomType { code } series { minStay maxStay closedToArrival closedToDeparture minAdvanceDays
                                        maxAdvanceDays reasons } cells { reasons } } } } } }"""

    async def std(**caller):
        result = data(await gql(series, {"id": hotel["id"], "from": d(0), "to": d(5)}, **caller))
        return next(r for r in result["node"]["calendar"]["rows"] if r["roomType"]["code"] == "STD")

    staff = (await std())["series"]
    assert staff["minStay"] == [None, 2, 2, None, None] and staff["maxStay"] == [None] * 5
    assert staff["closedToArrival"] == [False, True, True, False, False]
    assert staff["reasons"] == [[], ["CLOSED_TO_ARRIVAL"], ["CLOSED_TO_ARRIVAL"], [], []]
    row = await std(role="agent", agency="ACME")
    mine = row["series"]
    assert mine["maxStay"] == [None, None, 5, 5, None] and mine["closedToDeparture"] == [False, False, True, True, False]
    assert mine["minAdvanceDays"] == [None, None, 1, 1, None] and mine["maxAdvanceDays"] == [None, None, 10, 10, None]
    assert mine["reasons"] == [cell["reasons"] for cell in row["cells"]]
    assert mine["reasons"][2] == ["CLOSED_TO_ARRIVAL", "ADVANCE_WINDOW"]


async def test_restrictions_bind_bookings_from_a_hardblock_too(gql):
    from tests.api.test_bookings import item, setup
    from tests.api.test_hardblocks import CREATE_BLOCK
    hotel, ids, agencies = await setup(gql)
    sun = agencies["SUNTRAVEL"]
    block = data(await gql(CREATE_BLOCK, {"input": {
        "agencyId": sun, "roomTypeId": ids["STD"], "from": d(0), "to": d(5), "rooms": 2, "releaseDays": 7}}))[
        "createHardblock"]
    await restrict(gql, ids["STD"], 1, 2, minStay=3)
    result = await try_book(gql, sun, item(ids["STD"], 1, nights=1, hardblock_id=block["id"]))
    assert rules(result) == [("STD", d(1), "MIN_STAY")]
    assert (await try_book(gql, sun, item(ids["STD"], 1, nights=3, hardblock_id=block["id"])))["__typename"] == \
        "BookingGroup"
