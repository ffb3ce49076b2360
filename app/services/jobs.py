"""The background jobs: callers of the use cases like any other, on a timer. Every worker runs
them; the use cases are safe to run concurrently (SKIP LOCKED, unique indexes, advisory locks)."""

from __future__ import annotations

import asyncio
import logging

from app.services.bookings import sweep_expired_holds
from app.services.context import Services
from app.services.hardblocks import record_releases

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 5.0
RELEASE_JOB_INTERVAL_S = 60.0


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
