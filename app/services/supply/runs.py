"""Sync runs, first-class: a `sync_run` row exists from the moment a run starts to its end, and
every change of it is announced on the `sync_runs` channel (syncRunChanged).

One run at a time per supplier: the run holds the supplier's session-level advisory lock on a
connection of its own for its whole length. A worker that dies mid-run loses that connection,
and with it the lock; a RUNNING row whose lock is free therefore belongs to a dead worker, and
whoever takes the lock next marks it FAILED ("abandoned"). Nothing is ever RUNNING forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import select, update

from app.services.changes import SYNC_RUNS_CHANNEL, write
from app.services.context import Services
from app.services.errors import SyncAlreadyRunning
from app.services.pages import Page, paginate
from db import models
from db.fastpath import RawPool
from db.inventory import supplier_lock_key

log = logging.getLogger(__name__)

ABANDONED = "abandoned: the worker running it stopped before it finished"


@asynccontextmanager
async def supplier_lock(raw: RawPool, supplier_id: int) -> AsyncIterator[bool]:
    """Try the supplier's run lock (never waits); yields whether this worker got it. The lock is
    released when the block ends, or by PostgreSQL when the connection dies."""
    key = supplier_lock_key(supplier_id)
    async with raw.connection() as connection:
        got = bool(await connection.fetchval("SELECT pg_try_advisory_lock($1)", key))
        try:
            yield got
        finally:
            if got:
                try:
                    await connection.execute("SELECT pg_advisory_unlock($1)", key)
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    # The pool does not reset sessions: a connection that still holds the lock
                    # must not go back to it.
                    connection.terminate()


def announce(unit: Any, run: models.SyncRun) -> None:
    unit.announce(SYNC_RUNS_CHANNEL, {"syncRunId": run.id, "supplierId": run.supplier_id})


async def abandon_orphans(services: Services, supplier_id: int) -> int:
    """Mark the supplier's RUNNING runs FAILED; only call while holding its run lock (then no
    live worker is running them). Returns how many there were."""
    async with write(services) as unit:
        rows = (await unit.session.execute(
            update(models.SyncRun)
            .where(models.SyncRun.supplier_id == supplier_id, models.SyncRun.status == "RUNNING")
            .values(status="FAILED", error=ABANDONED, finished_at=models.utcnow())
            .returning(models.SyncRun)
        )).scalars().all()
        for run in rows:
            log.warning("sync run %s of supplier %s was abandoned by its worker", run.id, supplier_id)
            announce(unit, run)
    return len(rows)


async def running_run_id(services: Services, supplier_id: int) -> int | None:
    async with services.sessions() as session:
        return (await session.execute(
            select(models.SyncRun.id).where(models.SyncRun.supplier_id == supplier_id,
                                            models.SyncRun.status == "RUNNING")
            .order_by(models.SyncRun.id.desc()).limit(1)
        )).scalar_one_or_none()


async def refuse_while_running(services: Services, supplier: models.Supplier) -> None:
    """SyncAlreadyRunning, naming the run (the lock's holder may not have written its row yet:
    it is looked for a little while)."""
    for _ in range(20):
        if (run_id := await running_run_id(services, supplier.id)) is not None:
            raise SyncAlreadyRunning(supplier.code, run_id)
        await asyncio.sleep(0.05)
    raise SyncAlreadyRunning(supplier.code, None)


async def start_run(services: Services, supplier: models.Supplier, trigger: str) -> models.SyncRun:
    """A new RUNNING run (the caller holds the supplier's lock), announced."""
    await abandon_orphans(services, supplier.id)
    async with write(services) as unit:
        run = models.SyncRun(source=supplier.code, supplier_id=supplier.id, trigger=trigger, status="RUNNING")
        unit.session.add(run)
        await unit.session.flush()
        announce(unit, run)
    return run


async def save_run(services: Services, run: models.SyncRun, **values: Any) -> models.SyncRun:
    """Update the run (progress, or its end), announced."""
    async with write(services) as unit:
        merged = await unit.session.merge(run)
        for name, value in values.items():
            setattr(merged, name, value)
        await unit.session.flush()
        announce(unit, merged)
    for name, value in values.items():
        setattr(run, name, value)
    return run


async def sweep_abandoned(services: Services) -> int:
    """For every supplier with a RUNNING run whose lock is free, mark it FAILED. Safe from any
    number of workers (a supplier whose lock is held is running, or being swept, elsewhere)."""
    async with services.sessions() as session:
        supplier_ids = list((await session.execute(
            select(models.SyncRun.supplier_id).where(models.SyncRun.status == "RUNNING").distinct()
        )).scalars())
    swept = 0
    for supplier_id in supplier_ids:
        if supplier_id is None:
            continue
        with contextlib.suppress(Exception):
            async with supplier_lock(services.raw, supplier_id) as got:
                if got:
                    swept += await abandon_orphans(services, supplier_id)
    return swept


async def runs(services: Services, supplier_id: int | None, first: int | None, after: str | None) -> Page[models.SyncRun]:
    """Newest first; `supplier_id` 0 matches nothing."""
    statement = select(models.SyncRun)
    if supplier_id is not None:
        statement = statement.where(models.SyncRun.supplier_id == supplier_id)
    async with services.sessions() as session:
        return await paginate(session, statement, models.SyncRun.id, first=first, after=after, descending=True)


async def last_run(services: Services, supplier_id: int) -> models.SyncRun | None:
    async with services.sessions() as session:
        return (await session.execute(
            select(models.SyncRun).where(models.SyncRun.supplier_id == supplier_id)
            .order_by(models.SyncRun.id.desc()).limit(1))).scalar_one_or_none()
