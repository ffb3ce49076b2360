"""The background jobs: callers of the use cases like any other, on a timer. Every worker runs
them; the use cases are safe to run concurrently (SKIP LOCKED, unique indexes, leases, advisory
locks)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from app.services.bookings import sweep_expired_holds
from app.services.context import Services
from app.services.hardblocks import record_releases
from app.services.night_audit import catch_up
from app.services.card_payments import poll as poll_payments
from app.services.notify.alerts import announce_expiring_holds, announce_releases
from app.services.notify.deliveries import deliver_due, new_client
from app.services.notify.events import fan_out
from app.services.notify.mail import send_due_emails
from app.services.notify.reminders import remind_balances_due
from app.services.supply.sources import run_schedule, watch_drop_folders

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 5.0
RELEASE_JOB_INTERVAL_S = 60.0
ALERT_JOB_INTERVAL_S = 30.0
NIGHT_AUDIT_INTERVAL_S = 300.0


async def _forever(what: str, step: Callable[[], Awaitable[bool]], interval_s: float) -> None:
    """Run `step` again at once while it says there is more (a full batch), else every
    `interval_s`; a failure is logged and the loop goes on. Cancel to stop."""
    while True:
        try:
            while await step():
                pass
        except Exception:
            log.exception("%s failed; retrying in %s s", what, interval_s)
        await asyncio.sleep(interval_s)


async def run_expiry_sweeper(services: Services, interval_s: float = SWEEP_INTERVAL_S, *, batch: int = 200) -> None:
    async def step() -> bool:
        return len(await sweep_expired_holds(services, limit=batch)) >= batch

    await _forever("expiry sweep", step, interval_s)


async def run_release_job(services: Services, interval_s: float = RELEASE_JOB_INTERVAL_S, *,
                          batch: int = 1000) -> None:
    async def step() -> bool:
        return await record_releases(services, limit=batch) >= batch

    await _forever("hardblock release job", step, interval_s)


async def run_webhook_dispatcher(services: Services, interval_s: float | None = None, *, batch: int = 100) -> None:
    """Fan committed partner events out, then send the deliveries that are due."""
    async with new_client(services) as client:
        async def step() -> bool:
            # Deliver first: under a backlog, fanning out only what the senders keep up with keeps
            # the number of pending deliveries from growing endpoint-fold.
            sent = await deliver_due(services, client, limit=batch)
            fanned = await fan_out(services, limit=batch) if sent < batch else 0
            return fanned >= batch or sent >= batch

        await _forever("webhook dispatch", step, interval_s or services.settings.notify_interval_s)


async def run_mail_dispatcher(services: Services, interval_s: float | None = None, *, batch: int = 50) -> None:
    """Send (or, without SMTP_URL, record) the emails that are due."""
    async def step() -> bool:
        return await send_due_emails(services, limit=batch) >= batch

    await _forever("email dispatch", step, interval_s or services.settings.notify_interval_s)


async def run_alert_job(services: Services, interval_s: float = ALERT_JOB_INTERVAL_S) -> None:
    """Record the release alerts, expiring-hold notices and balance-due reminders that are due."""
    async def step() -> bool:
        await announce_releases(services)
        await announce_expiring_holds(services)
        await remind_balances_due(services)
        return False

    await _forever("notification alert job", step, interval_s)


async def run_night_audit_job(services: Services, interval_s: float = NIGHT_AUDIT_INTERVAL_S) -> None:
    """Close every hotel's business days that are due (NIGHT_AUDIT_HOUR), catching up missed ones."""
    async def step() -> bool:
        await catch_up(services)
        return False

    await _forever("night audit job", step, interval_s)


async def run_payment_poller(services: Services, interval_s: float | None = None, *, batch: int = 100) -> None:
    """Ask Stripe about card payments whose webhook has not come (PAYMENT_POLL_AFTER_S), and refund
    money kept that is not owed. Off without STRIPE_API_KEY (no card payments)."""
    if not services.settings.stripe_api_key:
        return

    async def step() -> bool:
        # One round per interval: what it leaves (more than a batch in flight) waits for the next,
        # its polled payments at the back of the queue, so none starves and Stripe is not hammered.
        await poll_payments(services, limit=batch)
        return False

    await _forever("payment poller", step, interval_s or services.settings.payment_poll_interval_s)


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
