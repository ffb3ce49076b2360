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
