"""Hotel time (issue 14): every hotel has an IANA time zone; its release cut-offs, auto-release,
"today" and "past" are at the hotel-local midnight. Through the API on real PostgreSQL."""

from __future__ import annotations

from tests.api.test_catalog import AUDIT, UPSERT_HOTEL
from tests.support import data

HOTEL_ZONE = """
mutation($input: UpsertHotelInput!) {
  upsertHotel(input: $input) {
    __typename
    ... on Hotel { id code timeZone roomTypes { id code } }
    ... on InvalidInput { message code field }
  }
}
"""


async def zoned_hotel(gql, code, time_zone, room_types=("STD",)):
    hotel = data(await gql(HOTEL_ZONE, {"input": {
        "code": code, "name": f"Hotel {code}", "timeZone": time_zone,
        "roomTypes": [{"code": rt, "name": rt.title()} for rt in room_types]}}))["upsertHotel"]
    assert hotel["__typename"] == "Hotel", hotel
    return hotel, {rt["code"]: rt["id"] for rt in hotel["roomTypes"]}


async def test_upsert_hotel_takes_and_keeps_a_time_zone(gql):
    hotel, _ = await zoned_hotel(gql, "AKL", "Pacific/Auckland")
    assert hotel["timeZone"] == "Pacific/Auckland"
    # Omitted on update: the stored zone stays.
    again = data(await gql(HOTEL_ZONE, {"input": {"code": "AKL", "name": "Renamed"}}))["upsertHotel"]
    assert again["timeZone"] == "Pacific/Auckland"
    moved = data(await gql(HOTEL_ZONE, {"input": {"code": "AKL", "name": "Renamed",
                                                  "timeZone": "America/New_York"}}))["upsertHotel"]
    assert moved["timeZone"] == "America/New_York"
    entries = data(await gql(AUDIT, {"id": hotel["id"]}))["auditLog"]["edges"]
    zones = [(e["node"]["before"] or {}).get("timeZone") for e in entries] + \
        [e["node"]["after"]["timeZone"] for e in entries]
    assert {"Pacific/Auckland", "America/New_York"} <= set(zones)


async def test_a_new_hotel_is_utc_by_default(gql):
    hotel = data(await gql(HOTEL_ZONE, {"input": {"code": "UTCH", "name": "Plain"}}))["upsertHotel"]
    assert hotel["timeZone"] == "UTC"


async def test_upsert_hotel_refuses_an_unknown_zone(gql):
    refused = data(await gql(HOTEL_ZONE, {"input": {"code": "MARS", "name": "Olympus",
                                                    "timeZone": "Mars/Olympus"}}))["upsertHotel"]
    assert refused["__typename"] == "InvalidInput"
    assert refused["field"] == "timeZone"
    assert "IANA" in refused["message"]
    hotels = data(await gql("{ hotels { code } }"))["hotels"]
    assert "MARS" not in [h["code"] for h in hotels]
