"""A sync killed mid-apply (SIGKILL, a real process): every contract is either fully applied or
untouched, and the next run marks the dead one FAILED and finishes the job."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter

from sqlalchemy import func, select

from app.settings import PROJECT_ROOT
from app.supplier_sim import create_app
from db import models
from tests.supply.loopback import Loopback
from tests.supply.test_sync import API_KEY, contract, http_supplier, sync, write_feed
from tests.support import data

CONTRACTS = 300


def feed_of(allotment: int, amount: str, updated_at: str) -> list[dict]:
    return [contract(id=f"K-{n:04d}", allotment=allotment, rate={"amount": amount, "currency": "EUR"},
                     updated_at=updated_at) for n in range(CONTRACTS)]


async def test_a_killed_run_leaves_each_contract_applied_or_untouched(gql, sessions, settings, tmp_path):
    feed = tmp_path / "feed.json"
    write_feed(feed, feed_of(10, "100.00", "2026-11-01T00:00:00Z"))
    with Loopback(create_app(feed, api_key=API_KEY)) as url:
        supplier = await http_supplier(gql, url)
        assert (await sync(gql, supplier["id"]))["stats"]["contractsCreated"] == CONTRACTS
        # Each contract's plan is now two events: a reduction and a rate change.
        write_feed(feed, feed_of(6, "110.00", "2026-11-02T00:00:00Z"))
        child = subprocess.Popen([sys.executable, "-m", "app.cli", "sync", "SIM"], cwd=PROJECT_ROOT,
                                 env={**os.environ, "DATABASE_URL": settings.database_url, "APP_ENV": "development"},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                async with sessions() as session:
                    applied = await session.scalar(select(func.count()).select_from(models.AllotmentEvent))
                if applied >= 20:
                    break
                await asyncio.sleep(0.005)
            child.send_signal(signal.SIGKILL)
            child.wait()
        finally:
            if child.poll() is None:
                child.kill()

        async with sessions() as session:
            killed = (await session.execute(select(models.SyncRun).order_by(models.SyncRun.id.desc()))).scalars().first()
            assert killed.status == "RUNNING", "killed mid-run: nobody could mark it"
            per_contract = Counter((await session.execute(
                select(models.AllotmentEvent.contract_id).where(models.AllotmentEvent.sync_run_id == killed.id)
            )).scalars())
            rows = (await session.execute(select(models.Contract))).scalars().all()
        applied = {row.id for row in rows if per_contract[row.id]}
        assert 0 < len(applied) < CONTRACTS, "the kill landed mid-apply"
        assert set(per_contract.values()) == {2}, "no contract is half applied"
        hashes = Counter(row.supplier_updated_at.isoformat() for row in rows)
        assert hashes == {"2026-11-02T00:00:00+00:00": len(applied), "2026-11-01T00:00:00+00:00": CONTRACTS - len(applied)}

        after = await sync(gql, supplier["id"])
        assert after["status"] == "SUCCEEDED"
        assert after["stats"]["contractsUpdated"] == CONTRACTS - len(applied)
        assert after["stats"]["unchanged"] == len(applied)
    runs = data(await gql("{ syncRuns { edges { node { status error } } } }"))["syncRuns"]["edges"]
    assert runs[1]["node"] == {"status": "FAILED", "error": "abandoned: the worker running it stopped before it finished"}
