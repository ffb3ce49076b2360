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
