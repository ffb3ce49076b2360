"""Where a run's snapshot comes from: the supplier's HTTP feed, its drop folder, or a webhook's
body; and what starts runs on their own: the schedule and the drop-folder watch.

Every source reads the whole snapshot before anything is applied (a read that fails fails the
run with FETCH_FAILED and applies nothing), then hands it to `sync.run_sync`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from app.services.context import Services
from app.services.errors import NotFound, SyncAlreadyRunning
from app.services.supply import runs
from app.services.supply.feed import FeedShapeError, load_json, parse_drop_file
from app.services.supply.fetch import FetchFailed, FetchPolicy, fetch_snapshot
from app.services.supply.sync import Read, ReadFailed, merged, run_sync
from db import models
from domain.supply import Snapshot

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_FILES = 1000


def _http(services: Services, supplier: models.Supplier) -> Read:
    async def read() -> Snapshot:
        if not supplier.base_url:
            raise ReadFailed(f"supplier {supplier.code} has no baseUrl")
        try:
            return await fetch_snapshot(supplier.base_url, supplier.api_key,
                                        policy=FetchPolicy.from_settings(services.settings))
        except FetchFailed as failure:
            raise ReadFailed(failure.message) from None

    return read


# --- the drop folder ---------------------------------------------------------------------------

_NewFiles = list[tuple[str, str]]  # (file name, sha256) read by this run


def _folder(services: Services, supplier: models.Supplier) -> tuple[Read, _NewFiles]:
    """The snapshot of the folder's files not reconciled yet (by content, so a file rewritten
    with the same bytes is not read again), and the list the run fills with what it read."""
    taken: _NewFiles = []

    async def read() -> Snapshot:
        folder = Path(supplier.drop_dir or "")
        if not supplier.drop_dir or not folder.is_dir():
            raise ReadFailed(f"drop folder {supplier.drop_dir!r} of supplier {supplier.code} does not exist")
        async with services.sessions() as session:
            known = set((await session.execute(select(models.SupplierFile.sha256).where(
                models.SupplierFile.supplier_id == supplier.id))).scalars())
        snapshots = []
        files = sorted(p for p in folder.glob("*.json") if p.is_file())[:MAX_FILES]
        for path in files:
            body = await asyncio.to_thread(_read_bytes, path)
            digest = hashlib.sha256(body).hexdigest()
            if digest in known:
                continue
            try:
                snapshots.append(parse_drop_file(load_json(body, path.name), path.name))
            except FeedShapeError as error:
                # A half-written file fails the run, and is read again on its next change (it is
                # remembered only once applied).
                raise ReadFailed(f"{path.name}: {error}") from None
            taken.append((path.name, digest))
        return merged(snapshots)

    return read, taken


def _read_bytes(path: Path) -> bytes:
    with path.open("rb") as file:
        body = file.read(MAX_FILE_BYTES + 1)
    if len(body) > MAX_FILE_BYTES:
        raise ReadFailed(f"{path.name} is larger than {MAX_FILE_BYTES} bytes")
    return body


async def sync_folder(services: Services, supplier: models.Supplier, trigger: str) -> models.SyncRun:
    """A run over the drop folder's new files; once applied, they are remembered."""
    read, taken = _folder(services, supplier)

    async def remember(run: models.SyncRun) -> None:
        if not taken:
            return
        async with services.sessions() as session, session.begin():
            await session.execute(insert(models.SupplierFile).values([
                {"supplier_id": supplier.id, "name": name, "sha256": digest, "sync_run_id": run.id}
                for name, digest in taken]).on_conflict_do_nothing(constraint="uq_supplier_file_content"))

    return await run_sync(services, supplier, trigger, read, on_applied=remember)


async def sync_now(services: Services, supplier_pk: int | None, trigger: str, id: str | None = None) -> models.SyncRun:
    """One run of the supplier's own source (syncSupplier, the schedule, the watch), to its end.
    NotFound for an unknown supplier; SyncAlreadyRunning when a run of it is under way."""
    async with services.sessions() as session:
        supplier = await session.get(models.Supplier, supplier_pk) if supplier_pk is not None else None
    if supplier is None:
        raise NotFound("no supplier with that id", id)
    if supplier.kind == "FILE":
        return await sync_folder(services, supplier, trigger)
    return await run_sync(services, supplier, trigger, _http(services, supplier))


async def sync_pushed(services: Services, supplier: models.Supplier, snapshot: Snapshot) -> models.SyncRun:
    """A WEBHOOK run over a pushed snapshot (already verified and parsed)."""

    async def read() -> Snapshot:
        return snapshot

    return await run_sync(services, supplier, "WEBHOOK", read)


# --- what starts runs on their own -------------------------------------------------------------


async def _enabled(services: Services, kind: str | None = None) -> list[models.Supplier]:
    async with services.sessions() as session:
        statement = select(models.Supplier).where(models.Supplier.enabled.is_(True)).order_by(models.Supplier.id)
        if kind is not None:
            statement = statement.where(models.Supplier.kind == kind)
        return list((await session.execute(statement)).scalars())


async def _quietly(run: Callable[[], Awaitable[object]], what: str) -> None:
    try:
        await run()
    except SyncAlreadyRunning:
        pass  # another worker has it: its run reads the same source
    except Exception:
        log.exception("%s failed", what)


async def run_schedule(services: Services, interval_s: float) -> None:
    """Every `interval_s`, a SCHEDULE run of each enabled supplier. Safe with several workers:
    the supplier's run lock lets one of them run it, the others skip (SyncAlreadyRunning). Each
    round also marks runs abandoned by dead workers FAILED."""
    while True:
        await asyncio.sleep(interval_s)
        await _quietly(lambda: runs.sweep_abandoned(services), "sweeping abandoned sync runs")
        for supplier in await _enabled(services):
            await _quietly(lambda s=supplier: sync_now(services, s.id, "SCHEDULE"), f"scheduled sync of {supplier.code}")


async def watch_drop_folders(services: Services, *, debounce_ms: int = 500, rescan_s: float = 30.0) -> None:
    """Watch the enabled FILE suppliers' folders (watchfiles); a change starts a FILE run after
    `debounce_ms` of quiet. The set of folders is re-read every `rescan_s` (suppliers change).
    The first pass reads what arrived while nobody watched."""
    from watchfiles import awatch

    while True:
        folders = {s.drop_dir: s for s in await _enabled(services, "FILE") if s.drop_dir and Path(s.drop_dir).is_dir()}
        for supplier in folders.values():
            await _quietly(lambda s=supplier: sync_folder(services, s, "FILE"), f"drop folder sync of {supplier.code}")
        if not folders:
            await asyncio.sleep(rescan_s)
            continue
        stop = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(rescan_s):
                async for changes in awatch(*folders, debounce=debounce_ms, stop_event=stop, recursive=False):
                    changed = {Path(path).parent for _, path in changes if path.endswith(".json")}
                    for folder, supplier in folders.items():
                        if Path(folder).resolve() in {c.resolve() for c in changed}:
                            await _quietly(lambda s=supplier: sync_folder(services, s, "FILE"),
                                           f"drop folder sync of {supplier.code}")
