"""The wall: raw feed JSON in, `domain.supply` records and one issue per rejected record out."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from app.services.supply.feed import (
    MAX_ID_LENGTH,
    FeedShapeError,
    build_snapshot,
    load_json,
    parse_drop_file,
    parse_page,
    parse_webhook,
)
from domain.contracts import MAX_ROOMS
from domain.money import Money
from domain.supply import AllotmentUnit, SupplierContract, SupplierHotel, SupplierRoomType, SyncIssue, SyncIssueKind


def contract(**changes: Any) -> dict[str, Any]:
    record = {
        "id": "MHG-C-1001", "hotel_code": "LIS-RIVER", "room_type_code": "STD",
        "start_date": "2027-01-05", "end_date": "2027-01-09", "allotment": 10,
        "rate": {"amount": "120.00", "currency": "EUR"}, "release_days": 3, "status": "CONFIRMED",
        "terms": "Breakfast included.", "updated_at": "2027-01-01T10:00:00Z",
    }
    record.update(changes)
    return {key: value for key, value in record.items() if value is not DROP}


def hotel(**changes: Any) -> dict[str, Any]:
    record = {"code": "LIS-RIVER", "name": "Lisbon Riverside Hotel",
              "room_types": [{"code": "STD", "name": "Standard Double"}, {"code": "SUP", "name": "Superior"}]}
    record.update(changes)
    return {key: value for key, value in record.items() if value is not DROP}


DROP = object()  # a field left out


def rejected(record: object) -> SyncIssue:
    snapshot = build_snapshot(contracts=[record])
    assert snapshot.contracts == ()
    [issue] = snapshot.issues
    assert issue.kind is SyncIssueKind.INVALID_RECORD
    return issue


# --- records that pass ---------------------------------------------------------------------------


def test_a_contract_becomes_a_supplier_contract_with_a_half_open_range():
    # given / when
    snapshot = build_snapshot(contracts=[contract(nights=[{"date": "2027-01-08", "allotment": 4},
                                                           {"date": "2027-01-06", "allotment": 0}])])

    # then
    assert snapshot.issues == ()
    assert snapshot.contracts == (SupplierContract(
        external_id="MHG-C-1001", hotel_code="LIS-RIVER", room_type_code="STD",
        start=date(2027, 1, 5), end=date(2027, 1, 10),  # end_date 9th is the last night
        allotment=10, unit=AllotmentUnit.ROOMS, rate=Money(Decimal("120.00"), "EUR"), release_days=3,
        status="CONFIRMED", terms="Breakfast included.", updated_at=datetime(2027, 1, 1, 10, tzinfo=UTC),
        nights=((date(2027, 1, 6), 0), (date(2027, 1, 8), 4)),  # sorted by night
    ),)


def test_a_single_night_contract_has_start_equal_to_end_date():
    [parsed] = build_snapshot(contracts=[contract(start_date="2027-01-05", end_date="2027-01-05")]).contracts

    assert (parsed.start, parsed.end) == (date(2027, 1, 5), date(2027, 1, 6))


@pytest.mark.parametrize(("allotment", "value", "unit"), [
    (7, 7, AllotmentUnit.ROOMS),
    ({"value": 7, "unit": "ROOMS"}, 7, AllotmentUnit.ROOMS),
    ({"value": 35, "unit": "ROOM_NIGHTS"}, 35, AllotmentUnit.ROOM_NIGHTS),
    ({"value": 0, "unit": "ROOM_NIGHTS"}, 0, AllotmentUnit.ROOM_NIGHTS),
    (MAX_ROOMS, MAX_ROOMS, AllotmentUnit.ROOMS),
])
def test_allotment_is_rooms_or_a_value_with_its_unit(allotment, value, unit):
    [parsed] = build_snapshot(contracts=[contract(allotment=allotment)]).contracts

    assert (parsed.allotment, parsed.unit) == (value, unit)


def test_updated_at_keeps_its_zone_and_codes_are_upper_cased_like_the_catalogue():
    [parsed] = build_snapshot(contracts=[contract(updated_at="2027-01-01T12:00:00+02:00",
                                                  hotel_code=" lis-river ", room_type_code="std")]).contracts

    assert parsed.updated_at == datetime(2027, 1, 1, 10, tzinfo=UTC)
    assert parsed.updated_at.utcoffset() == timedelta(hours=2)
    assert (parsed.hotel_code, parsed.room_type_code) == ("LIS-RIVER", "STD")


def test_unknown_fields_are_ignored_and_null_optionals_mean_absent():
    [parsed] = build_snapshot(contracts=[contract(colour="blue", rate={"amount": "99.5", "currency": "EUR", "x": 1},
                                                  terms=None, nights=None)]).contracts

    assert (parsed.terms, parsed.nights, parsed.rate) == ("", (), Money(Decimal("99.5"), "EUR"))


def test_terms_and_nights_may_be_left_out():
    [parsed] = build_snapshot(contracts=[contract(terms=DROP)]).contracts

    assert (parsed.terms, parsed.nights) == ("", ())


def test_a_hotel_becomes_a_supplier_hotel():
    snapshot = build_snapshot(hotels=[hotel(extra={"stars": 4})])

    assert snapshot.hotels == (SupplierHotel("LIS-RIVER", "Lisbon Riverside Hotel", (
        SupplierRoomType("STD", "Standard Double"), SupplierRoomType("SUP", "Superior"))),)
    assert snapshot.issues == ()


# --- records that do not: each rejected alone, naming itself, the field and why -----------------


@pytest.mark.parametrize(("changes", "message"), [
    # missing fields
    ({"hotel_code": DROP}, "contract MHG-C-1001: hotel_code: required"),
    ({"rate": DROP, "status": DROP}, "contract MHG-C-1001: rate: required; status: required"),
    ({"release_days": DROP}, "contract MHG-C-1001: release_days: required"),
    # strings and booleans where numbers belong
    ({"allotment": "5"}, 'contract MHG-C-1001: allotment: must be an integer or {"value", "unit"}'),
    ({"allotment": True}, 'contract MHG-C-1001: allotment: must be an integer or {"value", "unit"}'),
    ({"allotment": 5.0}, 'contract MHG-C-1001: allotment: must be an integer or {"value", "unit"}'),
    ({"allotment": None}, 'contract MHG-C-1001: allotment: must be an integer or {"value", "unit"}'),
    ({"allotment": {"value": "5", "unit": "ROOMS"}}, "contract MHG-C-1001: allotment: value must be an integer"),
    ({"allotment": {"value": False, "unit": "ROOMS"}}, "contract MHG-C-1001: allotment: value must be an integer"),
    ({"allotment": {"value": 5}}, 'contract MHG-C-1001: allotment: must be an integer or {"value", "unit"}'),
    ({"release_days": "3"}, "contract MHG-C-1001: release_days: must be an integer"),
    ({"release_days": True}, "contract MHG-C-1001: release_days: must be an integer"),
    # unknown units
    ({"allotment": {"value": 5, "unit": "NIGHTS"}}, "contract MHG-C-1001: allotment: unit must be ROOMS or ROOM_NIGHTS"),
    ({"allotment": {"value": 5, "unit": "rooms"}}, "contract MHG-C-1001: allotment: unit must be ROOMS or ROOM_NIGHTS"),
    ({"allotment": {"value": 5, "unit": ["ROOMS"]}}, "contract MHG-C-1001: allotment: unit must be ROOMS or ROOM_NIGHTS"),
    # negative counts and counts too large
    ({"allotment": -1}, "contract MHG-C-1001: allotment: must not be negative"),
    ({"allotment": {"value": -5, "unit": "ROOM_NIGHTS"}}, "contract MHG-C-1001: allotment: must not be negative"),
    ({"allotment": MAX_ROOMS + 1}, f"contract MHG-C-1001: allotment: must be at most {MAX_ROOMS} rooms"),
    ({"allotment": {"value": MAX_ROOMS * 5 + 1, "unit": "ROOM_NIGHTS"}},
     f"contract MHG-C-1001: allotment: must be at most {MAX_ROOMS} rooms a night ({MAX_ROOMS * 5} room-nights)"),
    ({"allotment": 10**30}, f"contract MHG-C-1001: allotment: must be at most {MAX_ROOMS} rooms"),
    ({"release_days": -1}, "contract MHG-C-1001: release_days: must not be negative"),
    ({"release_days": 366}, "contract MHG-C-1001: release_days: must be at most 365"),
    ({"nights": [{"date": "2027-01-06", "allotment": -2}]}, "contract MHG-C-1001: nights[0].allotment: must not be negative"),
    ({"nights": [{"date": "2027-01-06", "allotment": "2"}]}, "contract MHG-C-1001: nights[0].allotment: must be an integer"),
    # dates
    ({"end_date": "2027-01-04"},
     "contract MHG-C-1001: end_date: must not be before start_date (end_date is the last night, inclusive)"),
    ({"start_date": "2027-02-30"}, "contract MHG-C-1001: start_date: must be a real calendar date YYYY-MM-DD"),
    ({"start_date": "05/01/2027"}, "contract MHG-C-1001: start_date: must be a date YYYY-MM-DD"),
    ({"start_date": "2027-01-05T00:00:00Z"}, "contract MHG-C-1001: start_date: must be a date YYYY-MM-DD"),
    ({"start_date": 20270105}, "contract MHG-C-1001: start_date: must be a date YYYY-MM-DD"),
    ({"start_date": "1999-12-31"}, "contract MHG-C-1001: start_date: must be on or after 2000-01-01"),
    ({"start_date": "2099-12-01", "end_date": "2100-01-01"}, "contract MHG-C-1001: end_date: must be before 2100-01-01"),
    ({"end_date": "9999-12-31"}, "contract MHG-C-1001: end_date: must be before 2100-01-01"),  # no overflow at +1 day
    ({"start_date": "2027-01-01", "end_date": "2031-01-01"},
     "contract MHG-C-1001: end_date: a contract may span at most 1098 nights, this one spans 1462"),
    # nights overrides
    ({"nights": [{"date": "2027-01-10", "allotment": 2}]},
     "contract MHG-C-1001: nights[0].date: must be a night of the contract (start_date to end_date)"),
    ({"nights": [{"date": "2027-01-04", "allotment": 2}]},
     "contract MHG-C-1001: nights[0].date: must be a night of the contract (start_date to end_date)"),
    ({"nights": [{"date": "2027-01-06", "allotment": 2}, {"date": "2027-01-06", "allotment": 3}]},
     "contract MHG-C-1001: nights[1].date: 2027-01-06 appears twice"),
    ({"nights": [{"allotment": 2}]}, "contract MHG-C-1001: nights[0].date: required"),
    ({"nights": ["2027-01-06"]}, "contract MHG-C-1001: nights[0]: must be an object"),
    ({"nights": {"date": "2027-01-06", "allotment": 2}}, "contract MHG-C-1001: nights: must be a list"),
    # money
    ({"rate": {"amount": 120.0, "currency": "EUR"}},
     'contract MHG-C-1001: rate.amount: must be a decimal string such as "120.00", '
     "not a JSON number (a number may already have lost digits as a float)"),
    ({"rate": {"amount": 120, "currency": "EUR"}},
     'contract MHG-C-1001: rate.amount: must be a decimal string such as "120.00", '
     "not a JSON number (a number may already have lost digits as a float)"),
    ({"rate": {"amount": "1e2", "currency": "EUR"}}, 'contract MHG-C-1001: rate.amount: must be a decimal string such as "120.00"'),
    ({"rate": {"amount": "NaN", "currency": "EUR"}}, 'contract MHG-C-1001: rate.amount: must be a decimal string such as "120.00"'),
    ({"rate": {"amount": " 120", "currency": "EUR"}}, 'contract MHG-C-1001: rate.amount: must be a decimal string such as "120.00"'),
    ({"rate": {"amount": "-1.00", "currency": "EUR"}}, "contract MHG-C-1001: rate.amount: must not be negative"),
    ({"rate": {"amount": "1.005", "currency": "EUR"}}, "contract MHG-C-1001: rate.amount: must have at most 2 decimals"),
    ({"rate": {"amount": "10000000000", "currency": "EUR"}}, "contract MHG-C-1001: rate.amount: must be below 10,000,000,000"),
    ({"rate": {"amount": "120.00", "currency": "eur"}},
     "contract MHG-C-1001: rate.currency: must be a 3-letter upper-case ISO 4217 code such as EUR"),
    ({"rate": {"amount": "120.00", "currency": "EURO"}},
     "contract MHG-C-1001: rate.currency: must be a 3-letter upper-case ISO 4217 code such as EUR"),
    ({"rate": {"amount": "120.00"}}, "contract MHG-C-1001: rate.currency: required"),
    ({"rate": "120.00 EUR"}, "contract MHG-C-1001: rate: must be an object"),
    # instants
    ({"updated_at": "2027-01-01T10:00:00"},
     "contract MHG-C-1001: updated_at: must carry a zone (Z or +HH:MM), such as 2027-01-01T10:00:00Z: "
     "a time without one is ambiguous"),
    ({"updated_at": "2027-01-01"},
     "contract MHG-C-1001: updated_at: must carry a zone (Z or +HH:MM), such as 2027-01-01T10:00:00Z: "
     "a time without one is ambiguous"),
    ({"updated_at": "yesterday"},
     "contract MHG-C-1001: updated_at: must be an ISO-8601 date and time with a zone, such as 2027-01-01T10:00:00Z"),
    ({"updated_at": 1798797600},
     "contract MHG-C-1001: updated_at: must be an ISO-8601 date and time with a zone, such as 2027-01-01T10:00:00Z"),
    # strings: types and bounds
    ({"status": 1}, "contract MHG-C-1001: status: must be a string"),
    ({"status": ""}, "contract MHG-C-1001: status: must not be empty"),
    ({"status": "C" * 65}, "contract MHG-C-1001: status: must be at most 64 characters"),
    ({"terms": "t" * 20_001}, "contract MHG-C-1001: terms: must be at most 20000 characters"),
    ({"hotel_code": "LISBON RIVER"}, "contract MHG-C-1001: hotel_code: must be 2 to 32 characters of A-Z, 0-9, '_' or '-'"),
    ({"hotel_code": "L"}, "contract MHG-C-1001: hotel_code: must be 2 to 32 characters of A-Z, 0-9, '_' or '-'"),
    ({"room_type_code": "S" * 33}, "contract MHG-C-1001: room_type_code: must be 1 to 32 characters of A-Z, 0-9, '_' or '-'"),
    ({"room_type_code": 7}, "contract MHG-C-1001: room_type_code: must be a string"),
])
def test_an_odd_contract_is_rejected_with_its_field_and_why(changes, message):
    issue = rejected(contract(**changes))

    assert issue == SyncIssue("MHG-C-1001", SyncIssueKind.INVALID_RECORD, message)


@pytest.mark.parametrize(("record", "message"), [
    ([1, 2], "contracts[0]: must be an object, not a list"),
    ("MHG-C-1001", "contracts[0]: must be an object, not a string"),
    (None, "contracts[0]: must be an object, not null"),
    (True, "contracts[0]: must be an object, not a boolean"),
    (5, "contracts[0]: must be an object, not a number"),
])
def test_a_record_that_is_not_an_object_is_named_by_its_position(record, message):
    assert rejected(record) == SyncIssue(None, SyncIssueKind.INVALID_RECORD, message)


@pytest.mark.parametrize(("external_id", "message"), [
    (DROP, "contracts[0]: id: required"),
    ("", "contracts[0]: id: must not be empty"),
    (1001, "contracts[0]: id: must be a string"),
    ("X" * (MAX_ID_LENGTH + 1), f"contracts[0]: id: must be at most {MAX_ID_LENGTH} characters"),
])
def test_a_record_without_a_usable_id_is_named_by_its_position_and_its_id_is_never_echoed(external_id, message):
    assert rejected(contract(id=external_id)) == SyncIssue(None, SyncIssueKind.INVALID_RECORD, message)


def test_an_id_of_the_longest_allowed_length_passes():
    [parsed] = build_snapshot(contracts=[contract(id="X" * MAX_ID_LENGTH)]).contracts

    assert parsed.external_id == "X" * MAX_ID_LENGTH


def test_huge_values_are_never_echoed_and_a_record_wrong_everywhere_lists_only_a_few_problems():
    huge = "A" * 1_000_000
    record = {"id": "MHG-C-9", "hotel_code": huge, "room_type_code": huge, "start_date": huge, "end_date": huge,
              "allotment": huge, "rate": huge, "release_days": huge, "status": huge, "updated_at": huge}

    issue = rejected(record)

    assert len(issue.message) < 600
    assert "AAAA" not in issue.message
    assert issue.message.startswith("contract MHG-C-9: hotel_code: must be 2 to 32 characters")
    assert issue.message.endswith("; and 4 more")


def test_bad_records_are_rejected_one_by_one_and_the_rest_go_on():
    # given
    records = [contract(id="A"), contract(id="B", allotment="5"), "junk", contract(id="C")]

    # when
    snapshot = build_snapshot(contracts=records)

    # then
    assert [c.external_id for c in snapshot.contracts] == ["A", "C"]
    assert [(i.external_id, i.message.split(":")[0]) for i in snapshot.issues] == [
        ("B", "contract B"), (None, "contracts[2]")]


# --- the same key twice in one snapshot ---------------------------------------------------------


def test_identical_copies_of_a_contract_count_once():
    # an offset pager repeats the last record of a page when the list shifts under it
    snapshot = build_snapshot(contracts=[contract(), contract(id="B"), contract(colour="ignored")])

    assert [c.external_id for c in snapshot.contracts] == ["MHG-C-1001", "B"]
    assert snapshot.issues == ()


def test_differing_copies_of_a_contract_are_all_rejected():
    snapshot = build_snapshot(contracts=[contract(allotment=10), contract(id="B"), contract(allotment=9)])

    assert [c.external_id for c in snapshot.contracts] == ["B"]
    assert snapshot.issues == tuple(
        SyncIssue("MHG-C-1001", SyncIssueKind.INVALID_RECORD,
                  f"contract MHG-C-1001: contracts[{index}] is rejected: this contract appears more than once "
                  "in the snapshot (contracts[0], contracts[2]) and the copies differ, so none is taken")
        for index in (0, 2))


def test_a_valid_copy_of_a_contract_whose_other_copy_is_invalid_is_rejected_too():
    snapshot = build_snapshot(contracts=[contract(), contract(allotment=-1)])

    assert snapshot.contracts == ()
    assert [issue.message for issue in snapshot.issues] == [
        "contract MHG-C-1001: allotment: must not be negative",
        "contract MHG-C-1001: contracts[0] is rejected: this contract appears more than once in the snapshot "
        "(contracts[0]) and another copy is invalid, so none is taken",
    ]


def test_the_same_instant_in_another_zone_is_an_identical_copy():
    snapshot = build_snapshot(contracts=[contract(), contract(updated_at="2027-01-01T11:00:00+01:00")])

    assert len(snapshot.contracts) == 1
    assert snapshot.issues == ()


def test_hotels_follow_the_same_rule_by_code():
    snapshot = build_snapshot(hotels=[hotel(), hotel(code="lis-river"), hotel(code="OPO-OLD"),
                                      hotel(code="OPO-OLD", name="Porto Old Town Inn")])

    assert [h.code for h in snapshot.hotels] == ["LIS-RIVER"]
    assert [(i.external_id, i.message.split(":")[1].strip()) for i in snapshot.issues] == [
        ("OPO-OLD", "hotels[2] is rejected"), ("OPO-OLD", "hotels[3] is rejected")]


# --- hotels --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("record", "external_id", "message"), [
    (hotel(name=DROP), "LIS-RIVER", "hotel LIS-RIVER: name: required"),
    (hotel(name="  "), "LIS-RIVER", "hotel LIS-RIVER: name: must be 1 to 200 characters"),
    (hotel(name="n" * 201), "LIS-RIVER", "hotel LIS-RIVER: name: must be 1 to 200 characters"),
    (hotel(room_types=DROP), "LIS-RIVER", "hotel LIS-RIVER: room_types: required"),
    (hotel(room_types="STD"), "LIS-RIVER", "hotel LIS-RIVER: room_types: must be a list"),
    (hotel(room_types=[{"code": "STD"}]), "LIS-RIVER", "hotel LIS-RIVER: room_types[0].name: required"),
    (hotel(room_types=[{"code": "S T D", "name": "x"}]), "LIS-RIVER",
     "hotel LIS-RIVER: room_types[0].code: must be 1 to 32 characters of A-Z, 0-9, '_' or '-'"),
    (hotel(room_types=[{"code": "STD", "name": "a"}, {"code": "std", "name": "b"}]), "LIS-RIVER",
     "hotel LIS-RIVER: room_types[1].code: STD appears twice in this hotel"),
    (hotel(room_types=[{"code": f"R{i}", "name": "r"} for i in range(201)]), "LIS-RIVER",
     "hotel LIS-RIVER: room_types: must have at most 200 items"),
    (hotel(code=DROP), None, "hotels[0]: code: required"),
    (hotel(code=42), None, "hotels[0]: code: must be a string"),
    (["LIS-RIVER"], None, "hotels[0]: must be an object, not a list"),
])
def test_an_odd_hotel_is_rejected_with_its_field_and_why(record, external_id, message):
    snapshot = build_snapshot(hotels=[record])

    assert snapshot.hotels == ()
    assert snapshot.issues == (SyncIssue(external_id, SyncIssueKind.INVALID_RECORD, message),)


def test_a_hotel_with_no_room_types_passes():
    [parsed] = build_snapshot(hotels=[hotel(room_types=[])]).hotels

    assert parsed.room_types == ()


# --- documents: pages, drop-folder files, webhook bodies ----------------------------------------


def test_a_page_holds_raw_records_and_the_next_page():
    page = parse_page({"data": [{"id": "x"}, 5], "next_page": 2, "total": 9})

    assert (page.data, page.next_page) == ([{"id": "x"}, 5], 2)
    assert parse_page({"data": [], "next_page": None}).next_page is None


@pytest.mark.parametrize(("document", "message"), [
    ([], "page: must be a JSON object, not a list"),
    ("x", "page: must be a JSON object, not a string"),
    ({}, "page: data: required; next_page: required"),
    ({"data": {}, "next_page": None}, "page: data: must be a list"),
    ({"data": [], "next_page": "2"}, "page: next_page: must be an integer"),
    ({"data": [], "next_page": True}, "page: next_page: must be an integer"),
    ({"data": [], "next_page": 0}, "page: next_page: must be at least 1"),
    ({"data": [], "next_page": 2.0}, "page: next_page: must be an integer"),
])
def test_a_page_that_is_not_the_page_shape_is_a_shape_error(document, message):
    with pytest.raises(FeedShapeError) as raised:
        parse_page(document)

    assert raised.value.message == message


def test_a_drop_file_is_a_snapshot_of_its_hotels_and_contracts():
    snapshot = parse_drop_file({"hotels": [hotel()], "contracts": [contract(), contract(id="B", allotment=-1)]})

    assert [h.code for h in snapshot.hotels] == ["LIS-RIVER"]
    assert [c.external_id for c in snapshot.contracts] == ["MHG-C-1001"]
    assert [i.external_id for i in snapshot.issues] == ["B"]
    assert parse_drop_file({"contracts": []}) == parse_drop_file({"hotels": []})


@pytest.mark.parametrize(("document", "message"), [
    ({}, 'file: must have "hotels" or "contracts" (or both)'),
    ({"data": []}, 'file: must have "hotels" or "contracts" (or both)'),
    ({"hotels": {}}, "file: hotels: must be a list"),
    ([hotel()], "file: must be a JSON object, not a list"),
])
def test_a_drop_file_that_is_not_the_documented_shape_is_a_shape_error(document, message):
    with pytest.raises(FeedShapeError) as raised:
        parse_drop_file(document)

    assert raised.value.message == message


def test_a_webhook_body_is_a_snapshot_of_its_contracts():
    snapshot = parse_webhook({"type": "contracts.updated", "data": [contract(), {"id": "B"}], "id": "evt_1"})

    assert snapshot.hotels == ()
    assert [c.external_id for c in snapshot.contracts] == ["MHG-C-1001"]
    assert [i.external_id for i in snapshot.issues] == ["B"]


@pytest.mark.parametrize(("document", "message"), [
    ({"type": "contracts.deleted", "data": []}, "webhook body: type: must be 'contracts.updated'"),
    ({"data": []}, "webhook body: type: required"),
    ({"type": "contracts.updated"}, "webhook body: data: required"),
    ({"type": "contracts.updated", "data": contract()}, "webhook body: data: must be a list"),
    ([contract()], "webhook body: must be a JSON object, not a list"),
    (None, "webhook body: must be a JSON object, not null"),
])
def test_a_webhook_body_that_is_not_the_documented_shape_is_a_shape_error(document, message):
    with pytest.raises(FeedShapeError) as raised:
        parse_webhook(document)

    assert raised.value.message == message


@pytest.mark.parametrize("body", [b"", b"{", b"nope", b'{"data": NaN}', b"\xff\xfe", b'{"a": 1} x'])
def test_a_body_that_is_not_json_is_a_shape_error(body):
    with pytest.raises(FeedShapeError) as raised:
        load_json(body, "page 3")

    assert raised.value.message.startswith("page 3: not valid JSON (")


def test_json_bodies_are_parsed_as_given():
    assert load_json(b'{"data": [1, "2"], "next_page": null}', "page") == {"data": [1, "2"], "next_page": None}
    assert load_json('{"a": "\u00e9"}', "page") == {"a": "é"}


def test_an_empty_snapshot_has_nothing_and_no_issues():
    assert build_snapshot() == parse_webhook({"type": "contracts.updated", "data": []}) == parse_drop_file({"hotels": []})
    assert build_snapshot().issues == ()


def test_a_negative_zone_offset_is_kept():
    [parsed] = build_snapshot(contracts=[contract(updated_at="2027-01-01T10:00:00-05:30")]).contracts

    assert parsed.updated_at.tzinfo == timezone(-timedelta(hours=5, minutes=30))
