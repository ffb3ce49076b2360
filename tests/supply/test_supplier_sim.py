"""The supplier simulator: the feed it serves, its switches, and the client reading it over loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app import seed
from app.services.supply.feed import build_snapshot, parse_drop_file
from app.services.supply.fetch import FetchPolicy, SupplierClient
from app.settings import PROJECT_ROOT
from app.supplier_sim import DEMO_DATA, Switches, create_app
from domain.supply import AllotmentUnit
from tests.supply.loopback import Loopback, closed_port
from tests.supply.test_feed import contract, hotel

API_KEY = "sim-key"


def demo() -> dict[str, Any]:
    return json.loads(DEMO_DATA.read_text())


def write(path: Path, document: Any) -> None:
    """Write `document` and move the file's mtime on, so even a same-size edit within one clock
    tick is seen as a change."""
    before = path.stat().st_mtime_ns if path.exists() else time.time_ns()
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "feed.json"
    write(path, {"hotels": [hotel()], "contracts": [contract(id=f"C{n}", allotment=10 + n) for n in range(5)]})
    return path


@pytest.fixture
async def sim(data_file: Path) -> AsyncIterator[Any]:
    """A client of a simulator over `data_file`, built by `sim(**options)`."""
    clients: list[httpx.AsyncClient] = []

    def make(**options: Any) -> httpx.AsyncClient:
        app = create_app(data_file, **options)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim.test")
        client.app = app  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def contracts_read(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """One whole read of /contracts, every page."""
    records, page = [], 1
    while page:
        body = (await client.get("/contracts", params={"page": page})).json()
        records += body["data"]
        page = body["next_page"]
    return records


# --- the demo data -------------------------------------------------------------------------------


def test_the_demo_data_passes_the_wall_whole():
    snapshot = parse_drop_file(demo())

    assert snapshot.issues == ()
    assert [h.code for h in snapshot.hotels] == ["LIS-RIVER", "FAO-MARINA"]
    assert len(snapshot.contracts) == 6
    assert {c.unit for c in snapshot.contracts} == {AllotmentUnit.ROOMS, AllotmentUnit.ROOM_NIGHTS}
    assert {c.status for c in snapshot.contracts} == {"CONFIRMED", "OK", "STOP_SALE"}
    assert all(c.start.year == 2027 for c in snapshot.contracts)


def test_the_demo_reuses_a_seeded_hotel_under_its_seeded_names_and_adds_a_new_one():
    # a sync after `staysync seed` lands contracts on the seeded Lisbon hotel and renames nothing
    seeded = {code: (name, {rt[0]: rt[1] for rt in room_types}) for code, name, room_types, _ in seed.HOTELS}
    for supplied in parse_drop_file(demo()).hotels:
        if supplied.code in seeded:
            name, room_types = seeded[supplied.code]
            assert supplied.name == name
            assert {rt.code: rt.name for rt in supplied.room_types}.items() <= room_types.items()
    assert "FAO-MARINA" not in seeded
    # contract ids cannot collide with the seed's external ids ({hotel}-{room type}-{yyyymmdd})
    assert all(c.external_id.startswith("MHG-C-") for c in parse_drop_file(demo()).contracts)


# --- the feed ------------------------------------------------------------------------------------


async def test_pages_hold_page_size_records_and_name_the_next_page(sim):
    client = sim(switches=Switches(page_size=2))

    pages = [(await client.get("/contracts", params={"page": n})).json() for n in (1, 2, 3, 4)]

    assert [[r["id"] for r in p["data"]] for p in pages] == [["C0", "C1"], ["C2", "C3"], ["C4"], []]
    assert [p["next_page"] for p in pages] == [2, 3, None, None]
    assert (await client.get("/hotels")).json() == {"data": [hotel()], "next_page": None}  # page 1 by default


@pytest.mark.parametrize("page", ["0", "-1", "x", "1.5", "", "²"])
async def test_a_page_that_is_not_a_whole_number_from_1_is_a_400(sim, page):
    response = await sim().get("/contracts", params={"page": page})

    assert response.status_code == 400


async def test_with_an_api_key_the_feed_wants_it_as_a_bearer_token(sim):
    client = sim(api_key=API_KEY)

    assert (await client.get("/hotels")).status_code == 401
    assert (await client.get("/hotels")).headers["www-authenticate"] == "Bearer"
    assert (await client.get("/contracts", headers={"Authorization": "Bearer nope"})).status_code == 401
    assert (await client.get("/contracts", headers={"Authorization": API_KEY})).status_code == 401
    assert (await client.get("/contracts", headers={"Authorization": f"Bearer {API_KEY}"})).status_code == 200


async def test_without_an_api_key_the_feed_is_open(sim):
    assert (await sim().get("/contracts")).status_code == 200


async def test_records_are_served_as_written_even_invalid_ones(sim, data_file):
    write(data_file, {"contracts": [{"id": "broken", "allotment": "5"}, 7]})

    assert (await sim().get("/contracts")).json()["data"] == [{"id": "broken", "allotment": "5"}, 7]


# --- the data file -------------------------------------------------------------------------------


async def test_the_data_file_is_read_again_when_it_changes(sim, data_file):
    client = sim()
    assert len((await client.get("/contracts")).json()["data"]) == 5

    write(data_file, {"hotels": [], "contracts": [contract(id="NEW")]})

    assert [r["id"] for r in (await client.get("/contracts")).json()["data"]] == ["NEW"]
    assert (await client.get("/hotels")).json()["data"] == []


@pytest.mark.parametrize("broken", ['{"contracts": [', '[]', '{"contracts": {}}', "\udcff"])
async def test_an_edit_that_does_not_parse_keeps_the_last_good_copy(sim, data_file, broken, caplog):
    client = sim()

    if broken == "\udcff":
        before = data_file.stat().st_mtime_ns
        data_file.write_bytes(b"\xff\xfe")
        os.utime(data_file, ns=(before + 10**9, before + 10**9))
    else:
        write(data_file, broken)

    assert len((await client.get("/contracts")).json()["data"]) == 5
    assert "still serving the last good copy" in caplog.text


async def test_a_data_file_that_goes_away_keeps_the_last_good_copy(sim, data_file):
    client = sim()
    data_file.unlink()

    assert len((await client.get("/contracts")).json()["data"]) == 5

    write(data_file, {"contracts": []})
    assert (await client.get("/contracts")).json()["data"] == []


def test_a_data_file_that_cannot_be_read_at_start_is_an_error(tmp_path):
    (tmp_path / "bad.json").write_text('{"hotels": 5}')

    with pytest.raises(ValueError, match="must be lists"):
        create_app(tmp_path / "bad.json")
    with pytest.raises(OSError):
        create_app(tmp_path / "missing.json")


# --- the bad habits ------------------------------------------------------------------------------


async def test_flicker_shows_one_room_fewer_on_every_other_contract_on_every_second_read(sim, data_file):
    write(data_file, {"contracts": [
        contract(id="A", allotment=10), contract(id="B", allotment=10),
        contract(id="C", allotment={"value": 10, "unit": "ROOMS"}), contract(id="D", allotment=0),
        contract(id="E", allotment={"value": 50, "unit": "ROOM_NIGHTS"}),  # 5 nights
    ]})
    client = sim(switches=Switches(flicker=True, page_size=2))

    reads = [[r["allotment"] for r in await contracts_read(client)] for _ in range(3)]

    untouched = [10, 10, {"value": 10, "unit": "ROOMS"}, 0, {"value": 50, "unit": "ROOM_NIGHTS"}]
    assert reads[0] == reads[2] == untouched
    assert reads[1] == [9, 10, {"value": 9, "unit": "ROOMS"}, 0, {"value": 45, "unit": "ROOM_NIGHTS"}]
    assert (await client.get("/_sim/stats")).json()["contractReads"] == 3


async def test_flicker_leaves_hotels_and_the_file_alone(sim, data_file):
    client = sim(switches=Switches(flicker=True))
    await contracts_read(client)
    await contracts_read(client)

    assert (await client.get("/hotels")).json()["data"] == [hotel()]
    assert [c["allotment"] for c in json.loads(data_file.read_text())["contracts"]] == [10, 11, 12, 13, 14]


async def test_unit_drift_shows_some_contracts_as_totals_and_some_as_plain_nights_times_rooms(sim):
    client = sim(switches=Switches(unit_drift=True))

    records = await contracts_read(client)

    # 5 nights (2027-01-05 to the 9th); allotments 10 to 14
    assert [r["allotment"] for r in records] == [10, {"value": 55, "unit": "ROOM_NIGHTS"}, 60, 13,
                                                 {"value": 70, "unit": "ROOM_NIGHTS"}]
    parsed = build_snapshot(contracts=records).contracts
    assert [(c.allotment, c.unit) for c in parsed] == [
        (10, AllotmentUnit.ROOMS), (55, AllotmentUnit.ROOM_NIGHTS), (60, AllotmentUnit.ROOMS),
        (13, AllotmentUnit.ROOMS), (70, AllotmentUnit.ROOM_NIGHTS)]


async def test_flicker_and_unit_drift_together_drift_the_dipped_count(sim):
    client = sim(switches=Switches(flicker=True, unit_drift=True))
    await contracts_read(client)

    second = [r["allotment"] for r in await contracts_read(client)]

    assert second == [9, {"value": 55, "unit": "ROOM_NIGHTS"}, 55, 13, {"value": 65, "unit": "ROOM_NIGHTS"}]


async def test_a_fail_rate_answers_that_share_of_feed_requests_with_500(sim):
    always = sim(switches=Switches(fail_rate=1.0))
    sometimes = sim(switches=Switches(fail_rate=0.5), seed=7)

    assert {(await always.get(path)).status_code for path in ("/hotels", "/contracts") * 5} == {500}
    statuses = [(await sometimes.get("/contracts")).status_code for _ in range(200)]
    assert 60 < statuses.count(500) < 140
    assert set(statuses) == {200, 500}
    assert (await sometimes.get("/_sim/stats")).json()["failed"] == statuses.count(500)


async def test_slow_pages_wait_before_answering(sim):
    client = sim(switches=Switches(slow_ms=150))

    started = time.monotonic()
    await client.get("/contracts")

    assert time.monotonic() - started >= 0.15


# --- switches at runtime -------------------------------------------------------------------------


async def test_switches_can_be_read_and_changed_at_runtime(sim):
    client = sim(switches=Switches(page_size=3))

    assert (await client.get("/_sim/switches")).json() == {
        "flicker": False, "unit_drift": False, "fail_rate": 0.0, "slow_ms": 0, "page_size": 3}
    changed = await client.post("/_sim/switches", json={"flicker": True, "fail_rate": 0.25})

    assert changed.json() == {"flicker": True, "unit_drift": False, "fail_rate": 0.25, "slow_ms": 0, "page_size": 3}
    assert (await client.get("/_sim/switches")).json() == changed.json()
    assert client.app.state.sim.switches == Switches(flicker=True, fail_rate=0.25, page_size=3)


async def test_a_runtime_switch_takes_effect_on_the_next_request(sim):
    client = sim()
    await client.post("/_sim/switches", json={"page_size": 1})

    assert (await client.get("/contracts")).json()["next_page"] == 2
    await client.post("/_sim/switches", json={"fail_rate": 1})
    assert (await client.get("/contracts")).status_code == 500


@pytest.mark.parametrize(("body", "problem"), [
    ({"fail_rate": 2}, "fail_rate: Input should be less than or equal to 1"),
    ({"flicker": "yes"}, "flicker: Input should be a valid boolean"),
    ({"page_size": 0}, "page_size: Input should be greater than or equal to 1"),
    ({"slow_ms": 1.5}, "slow_ms: Input should be a valid integer"),
    ({"chaos": True}, "chaos: Extra inputs are not permitted"),
    ([], "the body must be a JSON object of switches"),
    ("not json", "the body must be a JSON object of switches"),
])
async def test_a_bad_switch_is_a_400_and_changes_nothing(sim, body, problem):
    client = sim()

    response = await (client.post("/_sim/switches", content=body) if body == "not json"
                      else client.post("/_sim/switches", json=body))

    assert response.status_code == 400
    assert response.json() == {"error": problem}
    assert client.app.state.sim.switches == Switches()


# --- over loopback: the client reads the simulator -----------------------------------------------


async def test_the_client_reads_the_whole_demo_feed_through_paging_and_failures():
    app = create_app(api_key=API_KEY, switches=Switches(page_size=2, fail_rate=0.3), seed=3)
    sleeps: list[float] = []

    async def no_wait(seconds: float) -> None:
        sleeps.append(seconds)

    with Loopback(app) as url:
        async with SupplierClient(url, API_KEY, policy=FetchPolicy(attempts=8), sleep=no_wait) as client:
            snapshot = await client.snapshot()

    assert snapshot == parse_drop_file(demo())
    assert app.state.sim.failed == len(sleeps) > 0  # each failure was retried once more
    assert app.state.sim.served == 1 + 3  # hotels: 1 page; contracts: 3 pages of 2


async def test_a_flickering_feed_reads_differently_every_other_time():
    app = create_app(switches=Switches(flicker=True))

    with Loopback(app) as url:
        async with SupplierClient(url, None) as client:
            first, second, third = [await client.snapshot() for _ in range(3)]

    assert first == third != second
    assert [c.allotment for c in first.contracts] == [8, 5, 12, 180, 4, 6]
    assert [c.allotment for c in second.contracts] == [7, 5, 11, 180, 3, 6]  # the 1st, 3rd and 5th dip


def test_staysync_supplier_sim_serves_the_feed_as_a_process(tmp_path):
    port = closed_port()
    command = [sys.executable, "-m", "app.cli", "supplier-sim", "--port", str(port), "--api-key", API_KEY,
               "--page-size", "4", "--unit-drift", "--seed", "1"]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                response = httpx.get(f"{url}/contracts", headers={"Authorization": f"Bearer {API_KEY}"})
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("staysync supplier-sim did not start")
        switches = httpx.get(f"{url}/_sim/switches").json()
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)

    assert response.status_code == 200
    assert len(response.json()["data"]) == 4 and response.json()["next_page"] == 2
    assert switches == {"flicker": False, "unit_drift": True, "fail_rate": 0.0, "slow_ms": 0, "page_size": 4}
    assert f"Supplier feed simulator on http://127.0.0.1:{port}" in output
    assert str(DEMO_DATA) in output


@pytest.mark.parametrize(("args", "problem"), [
    (["--fail-rate", "1.5"], "staysync supplier-sim: --fail-rate: Input should be less than or equal to 1"),
    (["--page-size", "0"], "staysync supplier-sim: --page-size: Input should be greater than or equal to 1"),
    (["--data", "/nonexistent/feed.json"], "staysync supplier-sim: cannot serve /nonexistent/feed.json: "),
])
def test_staysync_supplier_sim_refuses_bad_options(args, problem):
    result = subprocess.run([sys.executable, "-m", "app.cli", "supplier-sim", *args], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=30)

    assert result.returncode == 2
    assert result.stderr.startswith(problem)
