"""What starts and follows runs on its own: syncRunChanged over a real websocket, the schedule, and
the drop-folder watch (real files, watchfiles)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.services.supply.sources import run_schedule, watch_drop_folders
from app.supplier_sim import create_app
from db import models
from tests.api.test_subscriptions import next_data, open_socket, receive, subscribe
from tests.supply.loopback import Loopback
from tests.supply.test_sync import API_KEY, UPSERT, contract, http_supplier, sync, write_feed
from tests.support import GraphQL, LiveServer, data, live_server

RUN_CHANGED = """subscription($id: ID) { syncRunChanged(supplierId: $id) { id status trigger
  stats { records contractsCreated } supplier { code } } }"""


@pytest.fixture(scope="module")
def server(settings) -> Iterator[LiveServer]:
    with live_server(settings) as live:
        yield live


async def test_sync_run_changed_streams_a_run_from_running_to_its_end(server, db, tmp_path):
    feed = tmp_path / "feed.json"
    write_feed(feed, [contract()])
    with Loopback(create_app(feed, api_key=API_KEY)) as url:
        async with httpx.AsyncClient(base_url=server.http_url, trust_env=False, timeout=30) as client:
            gql = GraphQL(client)
            supplier = await http_supplier(gql, url)
            ws = await subscribe(server, RUN_CHANGED, {"id": supplier["id"]}, role="operator")
            try:
                run = await sync(gql, supplier["id"])
                first = (await next_data(ws))["syncRunChanged"]
                last = (await next_data(ws))["syncRunChanged"]
            finally:
                await ws.close()
    assert first["id"] == last["id"] == run["id"]
    assert (first["status"], last["status"]) == ("RUNNING", "SUCCEEDED")
    assert last["stats"] == {"records": 1, "contractsCreated": 1} and last["supplier"]["code"] == "SIM"


async def test_agents_may_not_follow_sync_runs(server, db):
    ws = await open_socket(server, role="agent", agency="SUNTRAVEL")
    try:
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": RUN_CHANGED}}))
        message = await receive(ws)
    finally:
        await ws.close()
    assert message["type"] == "error" or message["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN", message


async def runs_of(sessions, trigger: str) -> list[Any]:
    async with sessions() as session:
        return list((await session.execute(select(models.SyncRun).where(models.SyncRun.trigger == trigger))).scalars())


async def test_the_schedule_runs_each_enabled_supplier(app, gql, sessions, tmp_path):
    feed = tmp_path / "feed.json"
    write_feed(feed, [contract()])
    with Loopback(create_app(feed, api_key=API_KEY)) as url:
        await http_supplier(gql, url)
        await http_supplier(gql, url, code="OFF", enabled=False)
        schedule = asyncio.create_task(run_schedule(app.state.runtime.services, 0.05))
        try:
            for _ in range(200):
                if await runs_of(sessions, "SCHEDULE"):
                    break
                await asyncio.sleep(0.05)
        finally:
            schedule.cancel()
            await asyncio.gather(schedule, return_exceptions=True)
    scheduled = await runs_of(sessions, "SCHEDULE")
    assert scheduled and {r.source for r in scheduled} == {"SIM"}, "disabled suppliers are not scheduled"


async def test_a_new_file_in_the_drop_folder_starts_a_file_run(app, gql, sessions, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    data(await gql(UPSERT, {"input": {"code": "DROP", "name": "Drop", "kind": "FILE", "dropDir": str(folder)}}))
    watch = asyncio.create_task(watch_drop_folders(app.state.runtime.services, debounce_ms=50, rescan_s=30))
    try:
        await asyncio.sleep(0.5)  # the watch is up (its first pass found nothing new)
        write_feed(folder / "today.json", [contract()])
        for _ in range(200):
            if any(r.stats.get("records") for r in await runs_of(sessions, "FILE")):
                break
            await asyncio.sleep(0.05)
    finally:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
    applied = [r for r in await runs_of(sessions, "FILE") if r.stats.get("records")]
    assert len(applied) == 1 and applied[0].status == "SUCCEEDED"
    async with sessions() as session:
        assert (await session.execute(select(models.Contract.external_id))).scalars().all() == ["SIM-C-1"]
