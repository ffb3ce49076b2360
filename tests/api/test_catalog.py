"""Admin setup: agencies, hotels, contracts — validated, audited, idempotent where natural."""

from __future__ import annotations

from tests.support import data

CREATE_AGENCY = """
mutation($input: CreateAgencyInput!) {
  createAgency(input: $input) {
    __typename
    ... on Agency { id code name }
    ... on UserError { message code }
    ... on InvalidInput { field }
  }
}
"""
UPSERT_HOTEL = """
mutation($input: UpsertHotelInput!) {
  upsertHotel(input: $input) {
    __typename
    ... on Hotel { id code name roomTypes { id code name } }
    ... on InvalidInput { message code field }
  }
}
"""
UPSERT_CONTRACT = """
mutation($input: UpsertContractInput!) {
  upsertContract(input: $input) {
    __typename
    ... on Contract { id externalId from to allotment releaseDays status terms rate { amount currency }
                      hotel { code } roomType { code } }
    ... on UserError { message code }
    ... on InvalidInput { field }
  }
}
"""
AUDIT = """
query($id: ID) {
  auditLog(entityId: $id) { edges { node { action actorUid actorRole entityType entityId before after requestId } } }
}
"""
CONTRACTS = """
query($hotelId: ID, $search: String, $first: Int, $after: String) {
  contracts(hotelId: $hotelId, search: $search, first: $first, after: $after) {
    edges { cursor node { externalId } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def make_hotel(gql, code="LIS", room_types=("STD", "SUP")):
    hotel = data(
        await gql(UPSERT_HOTEL, {"input": {"code": code, "name": f"Hotel {code}",
                                           "roomTypes": [{"code": rt, "name": rt.title()} for rt in room_types]}})
    )["upsertHotel"]
    return hotel, {rt["code"]: rt["id"] for rt in hotel["roomTypes"]}


def contract_input(hotel_id, room_type_id, **overrides):
    value = {
        "externalId": "C-1", "hotelId": hotel_id, "roomTypeId": room_type_id, "from": "2027-01-01",
        "to": "2027-02-01", "allotment": 10, "rate": {"amount": "99.50", "currency": "EUR"},
        "releaseDays": 7, "terms": "Breakfast included; free cancellation",
    }
    value.update(overrides)
    return value


async def test_create_agency_normalises_audits_and_is_idempotent(gql):
    created = data(await gql(CREATE_AGENCY, {"input": {"code": " suntravel ", "name": "Sun Travel"}}))["createAgency"]
    assert created["__typename"] == "Agency" and created["code"] == "SUNTRAVEL"

    again = data(await gql(CREATE_AGENCY, {"input": {"code": "SUNTRAVEL", "name": "Sun Travel"}}))["createAgency"]
    assert again["id"] == created["id"]

    clash = data(await gql(CREATE_AGENCY, {"input": {"code": "SUNTRAVEL", "name": "Other"}}))["createAgency"]
    assert clash["__typename"] == "InvalidInput" and clash["field"] == "code"

    entries = data(await gql(AUDIT, {"id": created["id"]}))["auditLog"]["edges"]
    assert [e["node"]["action"] for e in entries] == ["agency.created"]
    entry = entries[0]["node"]
    assert entry["actorUid"] == "dev-admin" and entry["actorRole"] == "admin"
    assert entry["after"] == {"code": "SUNTRAVEL", "name": "Sun Travel", "tier": None, "contact_email": None,
                              "payment_terms": "CREDIT", "credit_limit": None, "credit_currency": None,
                              "deposit_percent": None, "balance_due_days": None} and entry["before"] is None
    assert entry["entityId"] == created["id"] and entry["requestId"]


async def test_create_agency_rejects_bad_input_and_writes_nothing(gql):
    for value, field in (({"code": "x", "name": "A"}, "code"), ({"code": "OK", "name": "  "}, "name"),
                         ({"code": "has space", "name": "A"}, "code")):
        result = data(await gql(CREATE_AGENCY, {"input": value}))["createAgency"]
        assert result["__typename"] == "InvalidInput" and result["field"] == field
        assert result["code"] == "INVALID_INPUT" and result["message"]
    assert data(await gql("{ agencies { id } }"))["agencies"] == []
    assert data(await gql(AUDIT))["auditLog"]["edges"] == []


async def test_upsert_hotel_by_code_keeps_room_types_and_audits_changes(gql):
    hotel, room_types = await make_hotel(gql)
    again, _ = await make_hotel(gql)
    assert again["id"] == hotel["id"]

    renamed = data(await gql(UPSERT_HOTEL, {"input": {"code": "lis", "name": "Lisbon Riverside",
                                                      "roomTypes": [{"code": "DLX", "name": "Deluxe"}]}}))
    renamed = renamed["upsertHotel"]
    assert renamed["name"] == "Lisbon Riverside"
    assert sorted(rt["code"] for rt in renamed["roomTypes"]) == ["DLX", "STD", "SUP"]
    assert {rt["code"]: rt["id"] for rt in renamed["roomTypes"]}["STD"] == room_types["STD"]

    actions = [e["node"]["action"] for e in data(await gql(AUDIT, {"id": hotel["id"]}))["auditLog"]["edges"]]
    assert actions == ["hotel.updated", "hotel.created"]  # the identical retry wrote nothing


async def test_upsert_hotel_rejects_duplicate_room_type_codes(gql):
    result = data(await gql(UPSERT_HOTEL, {"input": {"code": "LIS", "name": "L", "roomTypes": [
        {"code": "STD", "name": "a"}, {"code": "std", "name": "b"}]}}))["upsertHotel"]
    assert result["__typename"] == "InvalidInput" and result["field"] == "roomTypes[1].code"
    assert data(await gql("{ hotels { id } }"))["hotels"] == []


async def test_upsert_contract_creates_updates_and_bumps_nothing_on_retry(gql, sessions):
    hotel, room_types = await make_hotel(gql)
    value = contract_input(hotel["id"], room_types["STD"])
    created = data(await gql(UPSERT_CONTRACT, {"input": value}))["upsertContract"]
    assert created["__typename"] == "Contract"
    assert created["rate"] == {"amount": "99.50", "currency": "EUR"}
    assert (created["from"], created["to"], created["hotel"], created["roomType"]) == (
        "2027-01-01", "2027-02-01", {"code": "LIS"}, {"code": "STD"})

    retry = data(await gql(UPSERT_CONTRACT, {"input": value}))["upsertContract"]
    assert retry["id"] == created["id"]
    updated = data(await gql(UPSERT_CONTRACT, {"input": {**value, "allotment": 4}}))["upsertContract"]
    assert updated["id"] == created["id"] and updated["allotment"] == 4

    entries = data(await gql(AUDIT, {"id": created["id"]}))["auditLog"]["edges"]
    assert [e["node"]["action"] for e in entries] == ["contract.updated", "contract.created"]
    assert entries[0]["node"]["before"]["allotment"] == 10 and entries[0]["node"]["after"]["allotment"] == 4

    from db.inventory import current_version
    from app.api.ids import decode_id

    async with sessions() as session:
        assert await current_version(session, decode_id(hotel["id"], "Hotel", "id")) == 2


async def test_upsert_contract_validation_names_the_field(gql):
    hotel, room_types = await make_hotel(gql)
    other, other_types = await make_hotel(gql, code="OPO", room_types=("DBL",))
    std = room_types["STD"]
    cases = [
        (contract_input(hotel["id"], std, to="2027-01-01"), "to"),
        (contract_input(hotel["id"], std, allotment=-1), "allotment"),
        (contract_input(hotel["id"], std, releaseDays=-2), "releaseDays"),
        (contract_input(hotel["id"], std, rate={"amount": "abc", "currency": "EUR"}), "rate.amount"),
        (contract_input(hotel["id"], std, rate={"amount": "1.234", "currency": "EUR"}), "rate.amount"),
        (contract_input(hotel["id"], std, rate={"amount": "-5", "currency": "EUR"}), "rate.amount"),
        (contract_input(hotel["id"], std, rate={"amount": "5", "currency": "EURO"}), "rate.currency"),
        (contract_input(hotel["id"], std, externalId=" "), "externalId"),
        (contract_input(hotel["id"], hotel["id"]), "roomTypeId"),
        (contract_input("not-an-id", std), "hotelId"),
        (contract_input(hotel["id"], other_types["DBL"]), "roomTypeId"),
        (contract_input(hotel["id"], std, status="MAYBE"), "status"),
    ]
    for value, field in cases:
        result = data(await gql(UPSERT_CONTRACT, {"input": value}))["upsertContract"]
        assert result["__typename"] == "InvalidInput", (field, result)
        assert result["field"] == field, (field, result)
    assert data(await gql(CONTRACTS))["contracts"]["edges"] == []


async def test_upsert_contract_unknown_hotel_is_not_found(gql):
    from app.api.ids import to_global_id

    hotel, room_types = await make_hotel(gql)
    value = contract_input(to_global_id("Hotel", 999999), room_types["STD"])
    result = data(await gql(UPSERT_CONTRACT, {"input": value}))["upsertContract"]
    assert result["__typename"] == "NotFound" and result["code"] == "NOT_FOUND"


async def test_contracts_full_text_search_filter_and_pagination(gql):
    hotel, room_types = await make_hotel(gql)
    other, other_types = await make_hotel(gql, code="OPO", room_types=("DBL",))
    for n, terms in enumerate(["Breakfast included, sea view", "Room only; non-refundable",
                               "Breakfast and dinner included (half board)"]):
        data(await gql(UPSERT_CONTRACT, {"input": contract_input(
            hotel["id"], room_types["STD"], externalId=f"LIS-{n}", terms=terms)}))
    data(await gql(UPSERT_CONTRACT, {"input": contract_input(
        other["id"], other_types["DBL"], externalId="OPO-1", terms="Breakfast included")}))

    def ids(result):
        return [e["node"]["externalId"] for e in data(result)["contracts"]["edges"]]

    assert ids(await gql(CONTRACTS, {"search": "breakfast"})) == ["LIS-0", "LIS-2", "OPO-1"]
    assert ids(await gql(CONTRACTS, {"search": "breakfast", "hotelId": hotel["id"]})) == ["LIS-0", "LIS-2"]
    assert ids(await gql(CONTRACTS, {"search": "dinner -sea"})) == ["LIS-2"]
    assert ids(await gql(CONTRACTS, {"search": "refundable"})) == ["LIS-1"]

    page = data(await gql(CONTRACTS, {"first": 2}))["contracts"]
    assert [e["node"]["externalId"] for e in page["edges"]] == ["LIS-0", "LIS-1"]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = data(await gql(CONTRACTS, {"first": 2, "after": page["pageInfo"]["endCursor"]}))["contracts"]
    assert [e["node"]["externalId"] for e in rest["edges"]] == ["LIS-2", "OPO-1"]
    assert rest["pageInfo"]["hasNextPage"] is False


async def test_audit_log_is_append_only_in_the_database(gql, sessions):
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    data(await gql(CREATE_AGENCY, {"input": {"code": "SUNTRAVEL", "name": "Sun Travel"}}))
    for statement in ("UPDATE audit_log SET action = 'forged'", "DELETE FROM audit_log"):
        async with sessions() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                await session.execute(text(statement))


async def test_audit_log_refuses_truncate(gql, sessions):
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    data(await gql(CREATE_AGENCY, {"input": {"code": "SUNTRAVEL", "name": "Sun Travel"}}))
    async with sessions() as session:
        with pytest.raises(DBAPIError, match="append-only"):
            await session.execute(text("TRUNCATE audit_log"))
    async with sessions() as session:
        assert (await session.execute(text("SELECT count(*) FROM audit_log"))).scalar_one() >= 1
