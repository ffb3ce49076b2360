"""A supplier's CANCELLED zeroes a contract's nights from the hotel's local today on (issue 14:
hotel time), and a sync keeps the zone set on the hotel (its feed names none)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.api.test_hotel_time import HOTEL_ZONE, _offset_zone
from tests.supply.test_sync import contract, feed, http_supplier, nights, simulator, sync, write_feed  # noqa: F401
from tests.support import data


async def test_cancelled_zeroes_nights_from_the_hotels_today(gql, sessions, simulator, feed):  # noqa: F811
    url, _ = simulator
    zone, local_today = _offset_zone(datetime.now(UTC))
    created = data(await gql(HOTEL_ZONE, {"input": {"code": "SIM-H", "name": "Hotel SIM-H", "timeZone": zone,
                                                    "roomTypes": [{"code": "STD", "name": "STD"}]}}))["upsertHotel"]
    assert created["timeZone"] == zone
    utc_today = datetime.now(UTC).date()
    first = min(utc_today, local_today) - timedelta(days=1)
    span = {"start_date": first.isoformat(), "end_date": (first + timedelta(days=4)).isoformat()}
    write_feed(feed, [contract(**span)])
    supplier = await http_supplier(gql, url)
    assert (await sync(gql, supplier["id"]))["status"] == "SUCCEEDED"
    write_feed(feed, [contract(**span, status="CANCELLED", updated_at="2026-11-02T00:00:00Z")])
    run = await sync(gql, supplier["id"])
    assert run["status"] == "SUCCEEDED", run
    allotments = await nights(sessions)
    assert min(allotments) == first.isoformat()
    # Nights before the hotel's today keep their rooms; from it on, none (the feed's end is inclusive).
    assert allotments == {night: 0 if night >= local_today.isoformat() else 10 for night in allotments}
    # The two todays differ, so one of the nights in between tells UTC's judgement from the hotel's.
    assert allotments[min(utc_today, local_today).isoformat()] == (10 if local_today > utc_today else 0)
    hotels = data(await gql("{ hotels { code timeZone } }"))["hotels"]
    assert {"code": "SIM-H", "timeZone": zone} in hotels  # the sync's upsert of the hotel kept it
