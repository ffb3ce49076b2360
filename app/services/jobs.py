"""The background jobs: callers of the use cases like any other, on a timer. Every worker runs
them; the use cases are safe to run concurrently (SKIP LOCKED, unique indexes, advisory locks)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from app.services.bookings import sweep_expired_holds
from app.services.context import Services
from app.services.hardblocks import record_releases
from app.services.notify.alerts import announce_expiring_holds, announce_releases
from app.services.notify.deliveries import deliver_due, new_client
from app.services.notify.events import fan_out
from app.services.notify.mail import run_mail_dispatcher
from app.services.supply.sources import run_schedule, watch_drop_folders

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 5.0
RELEASE_JOB_INTERVAL_S = 60.0
ALERT_JOB_INTERVAL_S = 30.0


async def run_expiry_sweeper(services: Services, interval_s: float = SWEEP_INTERVAL_S, *, batch: int = 200) -> None:
    """Forever: sweep (again at once while batches come back full), then sleep. Cancel to stop."""
    while True:
        try:
            while len(await sweep_expired_holds(services, limit=batch)) >= batch:
                pass
        except Exception:
            log.exception("expiry sweep failed; retrying in %s s", interval_s)
        await asyncio.sleep(interval_s)


async def run_release_job(services: Services, interval_s: float = RELEASE_JOB_INTERVAL_S, *,
                          batch: int = 1000) -> None:
    """Forever: record due releases (again at once while batches come back full), then sleep."""
    while True:
        try:
            while await record_releases(services, limit=batch) >= batch:
                pass
        except Exception:
            log.exception("hardblock release job failed; retrying in %s s", interval_s)
        await asyncio.sleep(interval_s)


def supplier_jobs(services: Services) -> list[Coroutine[Any, Any, None]]:
    """The supply side's background work: the schedule (SUPPLIER_SYNC_INTERVAL_S; unset: off) and
    the drop-folder watch (SUPPLIER_WATCH_FOLDERS)."""
    settings = services.settings
    jobs: list[Coroutine[Any, Any, None]] = []
    if settings.supplier_sync_interval_s:
        jobs.append(run_schedule(services, settings.supplier_sync_interval_s))
    if settings.supplier_watch_folders:
        jobs.append(watch_drop_folders(services))
    return jobs


async def run_webhook_dispatcher(services: Services, interval_s: float | None = None, *, batch: int = 100) -> None:
    """Forever: fan committed partner events out, then send due deliveries (again at once while
    either comes back full), then sleep NOTIFY_INTERVAL_S."""
    interval_s = interval_s or services.settings.notify_interval_s
    async with new_client(services) as client:
        while True:
            try:
                while (await fan_out(services, limit=batch) >= batch) | (
                        await deliver_due(services, client, limit=batch) >= batch):
                    pass
            except Exception:
                log.exception("webhook dispatch failed; retrying in %s s", interval_s)
            await asyncio.sleep(interval_s)


async def run_alert_job(services: Services, interval_s: float = ALERT_JOB_INTERVAL_S) -> None:
    """Forever: record release alerts and expiring-hold notices that are due, then sleep."""
    while True:
        try:
            await announce_releases(services)
            await announce_expiring_holds(services)
        except Exception:
            log.exception("notification alert job failed; retrying in %s s", interval_s)
        await asyncio.sleep(interval_s)
