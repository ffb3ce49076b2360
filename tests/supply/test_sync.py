"""Supplier syncs end to end: GraphQL over the app, the simulator's feed over real loopback HTTP,
a real drop folder and real signed webhook requests, against PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.services.webhook_signatures import signed_headers
from app.supplier_sim import create_app
from db import models
from tests.supply.loopback import Loopback
from tests.support import data

API_KEY = "feed-key-not-to-be-shown"
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()

SUPPLIER = """fragment S on Supplier { id code kind baseUrl dropDir enabled confirmIncreasesAfter apiKeySet
  webhookSecretSet statusTransforms { externalStatus action } }"""
UPSERT = SUPPLIER + """
mutation($input: UpsertSupplierInput!) { upsertSupplier(input: $input) {
  __typename ... on Supplier { ...S } ... on InvalidInput { field message } } }"""
RUN = """fragment R on SyncRun { id trigger status error finishedAt
  stats { records contractsCreated contractsUpdated unchanged eventsRecorded rejected held }
  issues { externalId kind message } }"""
SYNC = RUN + """
mutation($id: ID!) { syncSupplier(supplierId: $id) {
  __typename ... on SyncRun { ...R } ... on SyncAlreadyRunning { message run { id status } }
  ... on NotFound { message } } }"""


def hotel(code: str = "SIM-H", room_types: tuple[str, ...] = ("STD",)) -> dict[str, Any]:
    return {"code": code, "name": f"Hotel {code}", "room_types": [{"code": c, "name": c} for c in room_types]}


def contract(id: str = "SIM-C-1", allotment: Any = 10, **overrides: Any) -> dict[str, Any]:
    return {"id": id, "hotel_code": "SIM-H", "room_type_code": "STD", "start_date": "2027-03-01",
            "end_date": "2027-03-10", "allotment": allotment, "rate": {"amount": "100.00", "currency": "EUR"},
            "release_days": 0, "status": "CONFIRMED", "terms": "", "updated_at": "2026-11-01T00:00:00Z",
            **overrides}


def write_feed(path: Path, contracts: list[dict[str, Any]], hotels: list[dict[str, Any]] | None = None) -> None:
    path.write_text(json.dumps({"hotels": hotels if hotels is not None else [hotel()], "contracts": contracts}))


@pytest.fixture
def feed(tmp_path: Path) -> Path:
    path = tmp_path / "feed.json"
    write_feed(path, [contract()])
    return path


class _Switches:
    """The simulator's switches, set over its own HTTP API as a person would."""

    def __init__(self, url: str) -> None:
        self.url = url

    def set(self, **switches: Any) -> None:
        response = httpx.post(f"{self.url}/_sim/switches", json=switches)
        assert response.status_code == 200, response.text


@pytest.fixture
def simulator(feed: Path):
    with Loopback(create_app(feed, api_key=API_KEY)) as url:
        yield url, _Switches(url)


async def http_supplier(gql, base_url: str, **overrides: Any) -> dict[str, Any]:
    result = data(await gql(UPSERT, {"input": {"code": "SIM", "name": "Simulator", "kind": "HTTP",
                                               "baseUrl": base_url, "apiKey": API_KEY, "webhookSecret": SECRET,
                                               "confirmIncreasesAfter": 2, **overrides}}))
    supplier = result["upsertSupplier"]
    assert supplier["__typename"] == "Supplier", supplier
    return supplier


async def sync(gql, supplier_id: str, role: str = "operator") -> dict[str, Any]:
    return data(await gql(SYNC, {"id": supplier_id}, role=role))["syncSupplier"]


async def nights(sessions, external_id: str = "SIM-C-1") -> dict[str, int]:
    """The calendar's allotment per night of the contract's room type (through the domain)."""
    from db.calendar import load_inventory

    async with sessions() as session:
        contract_row = (await session.execute(
            select(models.Contract).where(models.Contract.external_id == external_id))).scalar_one()
        snapshot = await load_inventory(session, contract_row.hotel_id, contract_row.start_date,
                                        contract_row.end_date, [contract_row.room_type_id])
    row = snapshot.calendar(contract_row.start_date, contract_row.end_date,
                            datetime(2026, 12, 1, tzinfo=UTC))[contract_row.room_type_id]
    return {d.isoformat(): a for d, a in zip(row.dates, row.allotment)}


async def test_a_sync_creates_then_leaves_alone_then_reduces_at_once_and_increases_after_two_reads(
        gql, sessions, simulator, feed):
    url, _ = simulator
    supplier = await http_supplier(gql, url)
    assert supplier["apiKeySet"] and supplier["webhookSecretSet"]

    first = await sync(gql, supplier["id"])
    assert first["status"] == "SUCCEEDED", first
    assert first["stats"] | {} == {"records": 1, "contractsCreated": 1, "contractsUpdated": 0, "unchanged": 0,
                                   "eventsRecorded": 0, "rejected": 0, "held": 0}
    assert set((await nights(sessions)).values()) == {10}

    again = await sync(gql, supplier["id"])
    assert again["stats"]["unchanged"] == 1 and again["stats"]["eventsRecorded"] == 0

    write_feed(feed, [contract(allotment=7, updated_at="2026-11-02T00:00:00Z")])
    reduced = await sync(gql, supplier["id"])
    assert reduced["stats"]["contractsUpdated"] == 1 and reduced["stats"]["eventsRecorded"] == 1
    assert set((await nights(sessions)).values()) == {7}

    write_feed(feed, [contract(allotment=10, updated_at="2026-11-03T00:00:00Z")])
    held = await sync(gql, supplier["id"])
    assert held["stats"]["held"] == 1 and held["stats"]["eventsRecorded"] == 0
    assert [i["kind"] for i in held["issues"]] == ["HELD_INCREASE"]
    assert set((await nights(sessions)).values()) == {7}, "an increase waits for the confirming read"

    confirmed = await sync(gql, supplier["id"])
    assert confirmed["stats"]["eventsRecorded"] == 1
    assert set((await nights(sessions)).values()) == {10}

    async with sessions() as session:
        events = (await session.execute(select(models.AllotmentEvent).order_by(models.AllotmentEvent.id))).scalars().all()
        assert [(e.kind, e.quantity, e.source) for e in events] == [
            ("REDUCE_ALLOTMENT", 3, "SUPPLIER"), ("INCREASE_ALLOTMENT", 3, "SUPPLIER")]
        assert all(e.sync_run_id is not None and e.created_by == "supplier:SIM" for e in events)
        entries = (await session.execute(select(models.AuditEntry))).scalars().all()
    dumped = json.dumps([[e.before, e.after] for e in entries])
    assert API_KEY not in dumped and SECRET not in dumped
    assert any(e.actor_uid == "supplier:SIM" and e.action == "contract.created" for e in entries)


async def test_secrets_are_write_only(gql, simulator):
    url, _ = simulator
    supplier = await http_supplier(gql, url)
    result = await gql("query { suppliers { __typename } }", role="operator")
    assert API_KEY not in json.dumps(result)
    introspected = data(await gql('{ __type(name: "Supplier") { fields { name } } }'))
    names = {f["name"] for f in introspected["__type"]["fields"]}
    assert "apiKey" not in names and "webhookSecret" not in names
    kept = await http_supplier(gql, url, apiKey=None, webhookSecret=None)
    assert kept["apiKeySet"] and kept["webhookSecretSet"] and kept["id"] == supplier["id"]
    cleared = await http_supplier(gql, url, apiKey="", webhookSecret="")
    assert not cleared["apiKeySet"] and not cleared["webhookSecretSet"]


async def test_upsert_supplier_refuses_bad_input_and_agents(gql):
    bad = [({"kind": "HTTP"}, "baseUrl"), ({"kind": "FILE"}, "dropDir"),
           ({"kind": "HTTP", "baseUrl": "ftp://x"}, "baseUrl"),
           ({"kind": "HTTP", "baseUrl": "http://x", "webhookSecret": "nope"}, "webhookSecret"),
           ({"kind": "HTTP", "baseUrl": "http://x", "confirmIncreasesAfter": 0}, "confirmIncreasesAfter"),
           ({"kind": "HTTP", "baseUrl": "http://x",
             "statusTransforms": [{"externalStatus": "A", "action": "ACTIVE"},
                                  {"externalStatus": "a", "action": "IGNORE"}]}, "statusTransforms[1].externalStatus")]
    for fields, field in bad:
        result = data(await gql(UPSERT, {"input": {"code": "BAD", "name": "Bad", **fields}}))["upsertSupplier"]
        assert result["__typename"] == "InvalidInput" and result["field"] == field, (fields, result)
    assert data(await gql("{ suppliers { id } }"))["suppliers"] == []
    refused = await gql(UPSERT, {"input": {"code": "X1", "name": "X", "kind": "HTTP", "baseUrl": "http://x"}},
                        role="operator")
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_failed_fetch_fails_the_run_and_applies_nothing(gql, sessions, simulator):
    url, switches = simulator
    supplier = await http_supplier(gql, url)
    switches.set(fail_rate=1.0)
    run = await sync(gql, supplier["id"])
    assert run["status"] == "FAILED" and [i["kind"] for i in run["issues"]] == ["FETCH_FAILED"]
    assert API_KEY not in json.dumps(run)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(models.Contract)) == 0


async def test_rejected_records_make_a_partial_run_and_the_rest_applies(gql, sessions, simulator, feed):
    url, _ = simulator
    write_feed(feed, [contract(), contract(id="SIM-C-2", status="WHATEVER"),
                      contract(id="SIM-C-3", room_type_code="NOPE"), contract(id="SIM-C-4", allotment="ten")])
    supplier = await http_supplier(gql, url)
    run = await sync(gql, supplier["id"])
    assert run["status"] == "PARTIAL"
    kinds = {i["externalId"]: i["kind"] for i in run["issues"]}
    assert kinds == {"SIM-C-2": "UNKNOWN_STATUS", "SIM-C-3": "UNKNOWN_HOTEL", "SIM-C-4": "INVALID_RECORD"}
    assert run["stats"]["contractsCreated"] == 1 and run["stats"]["rejected"] == 3


async def test_concurrent_syncs_give_one_run_and_one_sync_already_running(gql, simulator):
    url, switches = simulator
    supplier = await http_supplier(gql, url)
    switches.set(slow_ms=400)
    first, second = await asyncio.gather(sync(gql, supplier["id"]), sync(gql, supplier["id"]))
    kinds = sorted([first["__typename"], second["__typename"]])
    assert kinds == ["SyncAlreadyRunning", "SyncRun"], (first, second)
    busy = first if first["__typename"] == "SyncAlreadyRunning" else second
    assert busy["run"]["status"] in ("RUNNING", "SUCCEEDED")


async def test_an_abandoned_run_is_marked_failed_by_the_next_one(gql, sessions, simulator):
    url, _ = simulator
    supplier = await http_supplier(gql, url)
    async with sessions() as session, session.begin():
        pk = await session.scalar(select(models.Supplier.id))
        session.add(models.SyncRun(source="SIM", supplier_id=pk, trigger="SCHEDULE", status="RUNNING"))
    run = await sync(gql, supplier["id"])
    assert run["status"] == "SUCCEEDED"
    async with sessions() as session:
        statuses = (await session.execute(select(models.SyncRun.status, models.SyncRun.error)
                                          .order_by(models.SyncRun.id))).all()
    assert tuple(statuses[0]) == ("FAILED", "abandoned: the worker running it stopped before it finished")


async def test_supplier_contracts_and_events_refuse_manual_edits(gql, sessions, simulator):
    url, _ = simulator
    supplier = await http_supplier(gql, url)
    await sync(gql, supplier["id"])
    listed = data(await gql("{ contracts { edges { node { id externalId source supplier { code } "
                            "hotel { id } roomType { id } } } } }"))["contracts"]["edges"]
    node = listed[0]["node"]
    assert node["source"] == "SUPPLIER" and node["supplier"]["code"] == "SIM"
    result = data(await gql("""mutation($input: UpsertContractInput!) { upsertContract(input: $input) {
      __typename ... on InvalidInput { field message } } }""", {"input": {
        "externalId": "SIM-C-1", "hotelId": node["hotel"]["id"], "roomTypeId": node["roomType"]["id"],
        "from": "2027-03-01", "to": "2027-03-10", "allotment": 99, "rate": {"amount": "1", "currency": "EUR"}}}))
    assert result["upsertContract"]["__typename"] == "InvalidInput"


async def test_drop_folder_applies_new_files_once_and_retries_a_half_written_one(gql, sessions, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    write_feed(folder / "a.json", [contract()])
    supplier = data(await gql(UPSERT, {"input": {"code": "DROP", "name": "Drop", "kind": "FILE",
                                                 "dropDir": str(folder)}}))["upsertSupplier"]
    run = await sync(gql, supplier["id"])
    assert run["status"] == "SUCCEEDED" and run["stats"]["contractsCreated"] == 1
    again = await sync(gql, supplier["id"])
    assert again["stats"]["records"] == 0, "a file already reconciled is recognised by its content"

    (folder / "b.json").write_text('{"contracts": [')  # half-written
    broken = await sync(gql, supplier["id"])
    assert broken["status"] == "FAILED" and broken["issues"][0]["kind"] == "FETCH_FAILED"
    assert "b.json" in broken["issues"][0]["message"]
    write_feed(folder / "b.json", [contract(allotment=6, updated_at="2026-11-05T00:00:00Z")])
    fixed = await sync(gql, supplier["id"])
    assert fixed["status"] == "SUCCEEDED" and fixed["stats"]["eventsRecorded"] == 1
    assert set((await nights(sessions)).values()) == {6}


async def test_signed_webhooks_apply_once_and_refuse_what_is_not_signed(gql, client, sessions, simulator):
    url, _ = simulator
    await http_supplier(gql, url)
    body = json.dumps({"type": "contracts.updated", "data": [contract()]}).encode()
    # The hotel is not known yet: the push names it only by code.
    async with sessions() as session, session.begin():
        pass
    await sync(gql, data(await gql("{ suppliers { id } }"))["suppliers"][0]["id"])
    headers = signed_headers(SECRET, "msg-1", body, datetime.now(UTC))
    pushed = json.dumps({"type": "contracts.updated", "data": [
        contract(allotment=4, updated_at="2026-11-09T00:00:00Z")]}).encode()
    headers = signed_headers(SECRET, "msg-1", pushed, datetime.now(UTC))
    first = await client.post("/webhooks/suppliers/SIM", content=pushed, headers=headers)
    assert first.status_code == 200, first.text
    replay = await client.post("/webhooks/suppliers/SIM", content=pushed, headers=headers)
    assert replay.status_code == 200 and replay.json() == first.json()
    assert set((await nights(sessions)).values()) == {4}
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(models.SyncRun)
                                    .where(models.SyncRun.trigger == "WEBHOOK")) == 1

    tampered = await client.post("/webhooks/suppliers/SIM", content=pushed + b" ", headers={
        **signed_headers(SECRET, "msg-2", pushed, datetime.now(UTC))})
    assert tampered.status_code == 401
    stale = await client.post("/webhooks/suppliers/SIM", content=pushed, headers=signed_headers(
        SECRET, "msg-3", pushed, datetime(2026, 1, 1, tzinfo=UTC)))
    assert stale.status_code == 401
    shapeless = b'{"type": "contracts.updated"}'
    bad = await client.post("/webhooks/suppliers/SIM", content=shapeless,
                            headers=signed_headers(SECRET, "msg-4", shapeless, datetime.now(UTC)))
    assert bad.status_code == 400
    unknown = await client.post("/webhooks/suppliers/NOPE", content=pushed, headers=headers)
    assert unknown.status_code == 404
    async with sessions() as session:
        stored = set((await session.execute(select(models.InboundWebhook.webhook_id))).scalars())
    assert stored == {"msg-1"}, "refused pushes store nothing"


async def test_the_demo_suppliers_sync_from_the_demo_simulator(gql, sessions, settings, database_url, tmp_path):
    from app.seed import DEMO_SUPPLIER_KEY, seed_demo
    from app.supplier_sim import DEMO_DATA

    with Loopback(create_app(DEMO_DATA, api_key=DEMO_SUPPLIER_KEY)) as url:
        demo_settings = settings.model_copy(update={"demo_supplier_url": url, "data_dir": tmp_path})
        assert await seed_demo(settings.database_url, settings=demo_settings)
        listed = {s["code"]: s for s in data(await gql("{ suppliers { id code kind dropDir } }"))["suppliers"]}
        assert listed["MHG"]["kind"] == "HTTP" and listed["DROP"]["dropDir"] == str(tmp_path / "supplier-drop")
        run = await sync(gql, listed["MHG"]["id"])
    assert run["status"] == "SUCCEEDED", run["issues"]
    assert run["stats"]["contractsCreated"] == 6


async def test_a_reduction_below_what_is_sold_is_shown_not_fixed(gql, sessions, simulator, feed):
    from tests.api.test_bookings import CREATE_AGENCY, book, item

    url, _ = simulator
    supplier = await http_supplier(gql, url)
    await sync(gql, supplier["id"])
    agency = data(await gql(CREATE_AGENCY, {"input": {"code": "SUNTRAVEL", "name": "Sun"}}))["createAgency"]["id"]
    hotels = data(await gql("{ hotels { code roomTypes { id } } }"))["hotels"]
    room_type = next(h for h in hotels if h["code"] == "SIM-H")["roomTypes"][0]["id"]
    held = await book(gql, agency, {**item(room_type, rooms=8), "checkIn": "2027-03-02", "checkOut": "2027-03-04"})
    assert held["__typename"] == "BookingGroup"

    write_feed(feed, [contract(allotment=5, updated_at="2026-11-02T00:00:00Z")])
    run = await sync(gql, supplier["id"])
    assert [(i["externalId"], i["kind"]) for i in run["issues"]] == [("SIM-C-1", "OVERCOMMITTED")]
    assert "2027-03-02" in run["issues"][0]["message"]
    assert (await nights(sessions))["2027-03-02"] == 5
    async with sessions() as session:
        assert await session.scalar(select(models.BookingGroup.status)) == "HELD", "nothing is cancelled"


async def test_stop_sale_closes_the_nights_and_active_reopens_them(gql, sessions, simulator, feed):
    url, _ = simulator
    supplier = await http_supplier(gql, url)
    await sync(gql, supplier["id"])
    write_feed(feed, [contract(status="STOP_SALE", updated_at="2026-11-02T00:00:00Z")])
    assert (await sync(gql, supplier["id"]))["stats"]["eventsRecorded"] == 1

    async def closed() -> set[bool]:
        hotel = next(h for h in data(await gql("{ hotels { id code } }"))["hotels"] if h["code"] == "SIM-H")
        cal = data(await gql("""query($id: ID!) { node(id: $id) { ... on Hotel {
          calendar(from: "2027-03-01", to: "2027-03-10") { rows { cells { closed } } } } } }""",
                             {"id": hotel["id"]}))["node"]["calendar"]["rows"]
        return {c["closed"] for row in cal for c in row["cells"]}

    assert await closed() == {True}
    write_feed(feed, [contract(status="CONFIRMED", updated_at="2026-11-03T00:00:00Z")])
    await sync(gql, supplier["id"])
    assert await closed() == {False}
