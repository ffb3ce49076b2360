"""Hotel time (issue 14): every hotel has an IANA time zone; its release cut-offs, auto-release,
"today" and "past" are at the hotel-local midnight. Through the API on real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from app.api.ids import decode_id
from app.services.hardblocks import record_releases
from db import models
from tests.api.test_bookings import CREATE as CREATE_BOOKING
from tests.api.test_bookings import audit_actions, booking_input
from tests.api.test_catalog import AUDIT, CREATE_AGENCY, UPSERT_CONTRACT, contract_input, make_hotel
from tests.api.test_hardblocks import AMEND, CREATE_BLOCK
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


# --- release cut-offs at the hotel-local midnight, across DST -------------------------------------

ZONED_CALENDAR = """
query($id: ID!, $from: Date!, $to: Date!) {
  node(id: $id) { ... on Hotel { timeZone calendar(from: $from, to: $to) {
    rows { roomType { code } cells { date available releaseDate releaseAt } series { releaseAt } }
  } } }
}
"""


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


async def zoned_contract(gql, hotel_id, room_type_id, start: date, end: date, release_days: int, allotment=10,
                         external_id=None):
    result = data(await gql(UPSERT_CONTRACT, {"input": contract_input(
        hotel_id, room_type_id, externalId=external_id or f"C-{hotel_id[-6:]}-{room_type_id[-6:]}",
        allotment=allotment, releaseDays=release_days, **{"from": start.isoformat(), "to": end.isoformat()})}))
    assert result["upsertContract"]["__typename"] == "Contract", result


async def zoned_calendar(gql, hotel_id, start: date, end: date, code="STD"):
    node = data(await gql(ZONED_CALENDAR, {"id": hotel_id, "from": start.isoformat(),
                                           "to": end.isoformat()}))["node"]
    row = next(r for r in node["calendar"]["rows"] if r["roomType"]["code"] == code)
    return row


def local_midnight_of(day: date, zone: str) -> datetime:
    """Independent of the service: the wall-clock midnight in `zone`, as UTC (these midnights all exist)."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(zone)).astimezone(UTC)


@pytest.mark.parametrize(
    ("code", "zone", "nights", "expected"),
    [
        # New York springs forward on 2027-03-14 at 02:00 (EST -5 -> EDT -4): midnight of the 14th
        # is still EST, of the 15th EDT.
        ("NYS", "America/New_York", (date(2027, 3, 14), date(2027, 3, 15), date(2027, 3, 16)),
         [utc(2027, 3, 13, 5), utc(2027, 3, 14, 5), utc(2027, 3, 15, 4)]),
        # ... and falls back on 2027-11-07 at 02:00 (EDT -> EST).
        ("NYF", "America/New_York", (date(2027, 11, 7), date(2027, 11, 8), date(2027, 11, 9)),
         [utc(2027, 11, 6, 4), utc(2027, 11, 7, 4), utc(2027, 11, 8, 5)]),
        # Auckland falls back on 2027-04-04 at 03:00 (NZDT +13 -> NZST +12).
        ("AKF", "Pacific/Auckland", (date(2027, 4, 4), date(2027, 4, 5), date(2027, 4, 6)),
         [utc(2027, 4, 2, 11), utc(2027, 4, 3, 11), utc(2027, 4, 4, 12)]),
        # ... and springs forward on 2027-09-26 at 02:00 (NZST -> NZDT).
        ("AKS", "Pacific/Auckland", (date(2027, 9, 26), date(2027, 9, 27), date(2027, 9, 28)),
         [utc(2027, 9, 24, 12), utc(2027, 9, 25, 12), utc(2027, 9, 26, 11)]),
    ],
)
async def test_release_at_is_the_hotel_local_midnight_across_dst(gql, code, zone, nights, expected):
    hotel, ids = await zoned_hotel(gql, code, zone)
    first, after = nights[0], nights[-1] + timedelta(days=1)
    await zoned_contract(gql, hotel["id"], ids["STD"], first - timedelta(days=5), after + timedelta(days=5), 1)
    row = await zoned_calendar(gql, hotel["id"], first, after)
    cells = row["cells"]
    assert [c["releaseDate"] for c in cells] == [(n - timedelta(days=1)).isoformat() for n in nights]
    assert [datetime.fromisoformat(c["releaseAt"]) for c in cells] == expected
    assert expected == [local_midnight_of(n - timedelta(days=1), zone) for n in nights]
    assert [datetime.fromisoformat(at) for at in row["series"]["releaseAt"]] == expected
    assert [c["available"] for c in cells] == [10, 10, 10]  # far in the future: all on sale

    # A hardblock's nights release themselves at the same local midnights.
    agency = data(await gql(CREATE_AGENCY, {"input": {"code": f"AG{code}", "name": "Agency"}}))["createAgency"]["id"]
    block = data(await gql(CREATE_BLOCK, {"input": {
        "agencyId": agency, "roomTypeId": ids["STD"], "from": first.isoformat(), "to": after.isoformat(),
        "rooms": 2, "releaseDays": 1}}))["createHardblock"]
    assert block["__typename"] == "Hardblock", block
    assert [datetime.fromisoformat(s["releaseAt"]) for s in block["grid"]] == expected


def _offset_zone(now: datetime) -> tuple[str, date]:
    """A zone whose local date differs from UTC's right now, and that local date: Kiritimati
    (UTC+14) is a day ahead from 10:00 UTC, Pago Pago (UTC-11) a day behind before 11:00 UTC."""
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        local = now.astimezone(ZoneInfo(zone)).date()
        if local != now.date():
            return zone, local
    raise AssertionError("one of them always differs")


async def test_today_and_cut_offs_are_the_hotels_not_utcs(gql):
    now = datetime.now(UTC)
    zone, local_today = _offset_zone(now)
    utc_today = now.date()
    # Two hotels with the same contracts, one in UTC, one in a zone a day away from it.
    hotels = {}
    for code, tz in (("UTCZ", "UTC"), ("FARZ", zone)):
        hotel, ids = await zoned_hotel(gql, code, tz, room_types=("STD", "SUP"))
        # STD stops selling the local midnight before the night; SUP sells up to the night itself.
        await zoned_contract(gql, hotel["id"], ids["STD"], utc_today - timedelta(days=3),
                             utc_today + timedelta(days=10), 1, external_id=f"{code}-STD")
        await zoned_contract(gql, hotel["id"], ids["SUP"], utc_today - timedelta(days=3),
                             utc_today + timedelta(days=10), 0, external_id=f"{code}-SUP")
        hotels[tz] = (hotel, ids)

    window = [utc_today + timedelta(days=k) for k in (1, 2)]
    for tz, today in (("UTC", utc_today), (zone, local_today)):
        hotel, _ = hotels[tz]
        row = await zoned_calendar(gql, hotel["id"], window[0], window[-1] + timedelta(days=1))
        # A night sells until the hotel-local midnight of its release date (the night before).
        assert [c["available"] for c in row["cells"]] == [10 if n - timedelta(days=1) > today else 0
                                                          for n in window], (tz, today)
    # The zone makes a difference on one of those nights (that is the point of the test).
    utc_row = await zoned_calendar(gql, hotels["UTC"][0]["id"], window[0], window[-1] + timedelta(days=1))
    far_row = await zoned_calendar(gql, hotels[zone][0]["id"], window[0], window[-1] + timedelta(days=1))
    assert [c["available"] for c in utc_row["cells"]] != [c["available"] for c in far_row["cells"]]

    # "Past" is the hotel's: the earlier of the two todays is in the past for one hotel only.
    agency = data(await gql(CREATE_AGENCY, {"input": {"code": "FARAG", "name": "Far"}}))["createAgency"]["id"]
    earlier = min(utc_today, local_today)
    for tz, today in (("UTC", utc_today), (zone, local_today)):
        hotel, ids = hotels[tz]
        result = data(await gql(CREATE_BOOKING, {"input": booking_input(agency, {
            "roomTypeId": ids["SUP"], "checkIn": earlier.isoformat(),
            "checkOut": (earlier + timedelta(days=1)).isoformat(), "rooms": 1, "hardblockId": None})}))["createBooking"]
        if earlier < today:
            assert result["__typename"] == "InvalidInput", (tz, result)
            assert result["field"] == "items[0].checkIn"
            assert result["message"] == f"items[0].checkIn {earlier.isoformat()} is in the past"
        else:  # the hotel's today: not the past, though its night's cut-off (its own midnight) has passed
            assert result["__typename"] == "SoldOut", (tz, result)

        block = data(await gql(CREATE_BLOCK, {"input": {
            "agencyId": agency, "roomTypeId": ids["SUP"], "from": earlier.isoformat(),
            "to": (earlier + timedelta(days=2)).isoformat(), "rooms": 1, "releaseDays": 0}}))["createHardblock"]
        if earlier < today:
            assert block["__typename"] == "InvalidInput" and block["field"] == "from", (tz, block)
            assert block["message"] == f"from {earlier.isoformat()} is in the past"
        else:  # not the past: refused for its release time instead
            assert block["__typename"] == "InvalidInput" and block["field"] == "releaseDays", (tz, block)
        # An amendment of one of the hotel's blocks, from that day on: the same judgement.
        future = data(await gql(CREATE_BLOCK, {"input": {
            "agencyId": agency, "roomTypeId": ids["SUP"], "from": (utc_today + timedelta(days=5)).isoformat(),
            "to": (utc_today + timedelta(days=7)).isoformat(), "rooms": 1, "releaseDays": 0}}))["createHardblock"]
        amended = data(await gql(AMEND, {"input": {"hardblockId": future["id"], "changes": [{
            "from": earlier.isoformat(), "to": (earlier + timedelta(days=1)).isoformat(), "rooms": 1}]}}))
        amended = amended["amendHardblock"]
        if earlier < today:
            assert amended["__typename"] == "InvalidInput" and amended["field"] == "changes[0].from", (tz, amended)
            assert amended["message"] == f"changes[0].from {earlier.isoformat()} is in the past"
        else:  # not the past: that night is past its release time, so it cannot grow
            assert amended["__typename"] == "InvalidInput" and amended["field"] == "changes", (tz, amended)
    # Two days back is the past everywhere, refused before any read.
    hotel, ids = hotels[zone]
    result = data(await gql(CREATE_BOOKING, {"input": booking_input(agency, {
        "roomTypeId": ids["SUP"], "checkIn": (utc_today - timedelta(days=2)).isoformat(),
        "checkOut": utc_today.isoformat(), "rooms": 1, "hardblockId": None})}))["createBooking"]
    assert result["__typename"] == "InvalidInput" and result["field"] == "items[0].checkIn"


async def test_auckland_hardblock_nights_release_themselves_at_auckland_midnight(gql, app, sessions):
    hotel, ids = await zoned_hotel(gql, "AKLB", "Pacific/Auckland")
    now = datetime.now(UTC)
    today = now.astimezone(ZoneInfo("Pacific/Auckland")).date()
    await zoned_contract(gql, hotel["id"], ids["STD"], today - timedelta(days=5), today + timedelta(days=60), 0)
    agency = data(await gql(CREATE_AGENCY, {"input": {"code": "AKLAG", "name": "Kiwi"}}))["createAgency"]["id"]
    block = data(await gql(CREATE_BLOCK, {"input": {
        "agencyId": agency, "roomTypeId": ids["STD"], "from": (today + timedelta(days=30)).isoformat(),
        "to": (today + timedelta(days=35)).isoformat(), "rooms": 3, "releaseDays": 0}}))["createHardblock"]
    assert block["__typename"] == "Hardblock", block
    # Time travel as test_hardblocks does: the block starts yesterday (Auckland) with a 2-day cut-off.
    pk = decode_id(block["id"], "Hardblock", "id")
    async with sessions() as session, session.begin():
        row = await session.get(models.Hardblock, pk)
        row.start_date, row.end_date, row.release_days = today - timedelta(days=1), today + timedelta(days=4), 2
        row.base_start_date, row.base_end_date = row.start_date, row.end_date
    grid = data(await gql(ZONED_GRID, {"id": block["id"]}))["node"]["grid"]
    nights = [today + timedelta(days=k) for k in range(-1, 4)]
    assert [s["date"] for s in grid] == [n.isoformat() for n in nights]
    assert [datetime.fromisoformat(s["releaseAt"]) for s in grid] == [
        local_midnight_of(n - timedelta(days=2), "Pacific/Auckland") for n in nights]
    # Night n releases at Auckland's midnight of n - 2: yesterday's to the day after tomorrow's have.
    assert [(s["available"], s["released"]) for s in grid] == [(0, 3)] * 4 + [(3, 0)]
    services = app.state.runtime.services
    assert await record_releases(services) == 4
    assert await record_releases(services) == 0
    entry = (await audit_actions(gql, block["id"]))[0]
    assert entry["action"] == "hardblock.nights_released" and entry["after"]["cause"] == "AUTO"
    assert entry["after"]["nights"] == [n.isoformat() for n in nights[:4]]


async def test_existing_hotels_are_utc(gql, sessions):
    hotel, _ = await make_hotel(gql, code="OLD")
    async with sessions() as session:
        zone = (await session.execute(text("SELECT time_zone FROM hotel WHERE code = 'OLD'"))).scalar_one()
    assert zone == "UTC"
    node = data(await gql("query($id: ID!) { node(id: $id) { ... on Hotel { timeZone } } }", {"id": hotel["id"]}))
    assert node["node"]["timeZone"] == "UTC"


ZONED_GRID = """
query($id: ID!) { node(id: $id) { ... on Hardblock { grid { date available released releaseAt } } } }
"""


async def test_moving_a_hotel_to_another_zone_moves_its_cut_offs_and_its_version(gql, sessions):
    hotel, ids = await zoned_hotel(gql, "MOVE", "UTC")
    night = date(2027, 1, 15)
    await zoned_contract(gql, hotel["id"], ids["STD"], night, night + timedelta(days=1), 2)
    query = """query($id: ID!, $from: Date!, $to: Date!) { node(id: $id) { ... on Hotel {
      calendar(from: $from, to: $to) { version rows { cells { releaseAt } } } } } }"""
    variables = {"id": hotel["id"], "from": night.isoformat(), "to": (night + timedelta(days=1)).isoformat()}
    before = data(await gql(query, variables))["node"]["calendar"]
    assert before["rows"][0]["cells"][0]["releaseAt"] == "2027-01-13T00:00:00+00:00"
    await zoned_hotel(gql, "MOVE", "America/New_York")
    after = data(await gql(query, variables))["node"]["calendar"]
    assert after["rows"][0]["cells"][0]["releaseAt"] == "2027-01-13T05:00:00+00:00"  # EST midnight
    assert after["version"] > before["version"]
    async with sessions() as session:  # published like any inventory change (subscribers re-read)
        payloads = (await session.execute(select(models.OutboxMessage.payload).order_by(
            models.OutboxMessage.id.desc()).limit(1))).scalars().all()
    assert payloads[0]["version"] == after["version"] and payloads[0]["roomTypeIds"]


async def test_a_grid_overlay_refuses_changes_before_the_blocks_hotel_today(gql):
    now = datetime.now(UTC)
    zone, local_today = _offset_zone(now)
    hotel, ids = await zoned_hotel(gql, "OVLY", zone)
    await zoned_contract(gql, hotel["id"], ids["STD"], now.date() - timedelta(days=3),
                         now.date() + timedelta(days=20), 0)
    agency = data(await gql(CREATE_AGENCY, {"input": {"code": "OVAG", "name": "Overlay"}}))["createAgency"]["id"]
    block = data(await gql(CREATE_BLOCK, {"input": {
        "agencyId": agency, "roomTypeId": ids["STD"], "from": (now.date() + timedelta(days=5)).isoformat(),
        "to": (now.date() + timedelta(days=7)).isoformat(), "rooms": 1, "releaseDays": 0}}))["createHardblock"]
    earlier = min(now.date(), local_today)
    overlay = {"hardblockId": block["id"], "changes": [
        {"from": earlier.isoformat(), "to": (earlier + timedelta(days=1)).isoformat(), "rooms": 1}]}
    result = await gql("""query($id: ID!, $overlay: HardblockAmendmentInput) { node(id: $id) { ... on Hardblock {
      grid(overlay: $overlay) { date proposedSize } } } }""", {"id": block["id"], "overlay": overlay})
    if earlier < local_today:
        assert result["errors"][0]["message"] == f"overlay: changes[0].from {earlier.isoformat()} is in the past"
    else:
        assert "errors" not in result or not result["errors"], result
