"""Signed pushes from a supplier (`POST /webhooks/suppliers/{code}`): verified, parsed, deduplicated
by `webhook-id`, then reconciled like any other read.

A delivery's `webhook-id` is claimed before its run and tied to the run after it; a replay of a
claimed id answers with that run and applies nothing. A claim whose run never came (its worker
died mid-way) is taken over after CLAIM_STALE_S, so the sender's retries are not refused forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select, text, update

from app.services.context import Services
from app.services.errors import SyncAlreadyRunning
from app.services.supply.feed import FeedShapeError, load_json, parse_webhook
from app.services.supply.sources import sync_pushed
from app.services.webhook_signatures import SignatureInvalid, verify
from db import models

CLAIM_STALE_S = 600
# A push that arrives while a run of the supplier is under way waits for it this long, in steps.
BUSY_WAIT_S, BUSY_STEP_S = 10.0, 0.25


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to answer: `status` (HTTP), `run_id` once applied (or replayed), else `error`."""

    status: int
    run_id: int | None = None
    error: str | None = None
    retry_after_s: int | None = None


_CLAIM = text(
    "INSERT INTO inbound_webhook (supplier_id, webhook_id) VALUES (:supplier_id, :webhook_id) "
    "ON CONFLICT ON CONSTRAINT uq_inbound_webhook_message DO UPDATE SET received_at = now() "
    "WHERE inbound_webhook.sync_run_id IS NULL "
    "  AND inbound_webhook.received_at < now() - make_interval(secs => :stale_s) "
    "RETURNING id"
)


async def receive(services: Services, supplier_code: str, headers: Mapping[str, str], body: bytes) -> Outcome:
    async with services.sessions() as session:
        supplier = (await session.execute(
            select(models.Supplier).where(models.Supplier.code == supplier_code.upper()))).scalar_one_or_none()
    if supplier is None:
        return Outcome(404, error=f"no supplier {supplier_code}")
    if not supplier.webhook_secret:
        return Outcome(401, error=f"supplier {supplier.code} has no webhook secret: pushes cannot be verified")
    try:
        webhook_id = verify(supplier.webhook_secret, headers, body)
    except SignatureInvalid as invalid:
        return Outcome(401, error=invalid.reason)
    if len(webhook_id) > 200:
        return Outcome(400, error="webhook-id is longer than 200 characters")
    try:
        snapshot = parse_webhook(load_json(body, "webhook body"))
    except FeedShapeError as error:
        return Outcome(400, error=str(error))

    async with services.sessions() as session, session.begin():
        claimed = (await session.execute(_CLAIM, {"supplier_id": supplier.id, "webhook_id": webhook_id,
                                                  "stale_s": CLAIM_STALE_S})).scalar_one_or_none()
        if claimed is None:
            earlier = (await session.execute(select(models.InboundWebhook.sync_run_id).where(
                models.InboundWebhook.supplier_id == supplier.id,
                models.InboundWebhook.webhook_id == webhook_id))).scalar_one()
    if claimed is None:
        if earlier is None:
            return Outcome(409, error=f"webhook {webhook_id} is being applied; retry", retry_after_s=5)
        return Outcome(200, run_id=earlier)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUSY_WAIT_S
    while True:
        try:
            run = await sync_pushed(services, supplier, snapshot)
            break
        except SyncAlreadyRunning:
            if loop.time() >= deadline:
                await _unclaim(services, claimed)
                return Outcome(503, error=f"a sync of supplier {supplier.code} is running; retry",
                               retry_after_s=5)
            await asyncio.sleep(BUSY_STEP_S)
        except BaseException:
            await _unclaim(services, claimed)
            raise
    async with services.sessions() as session, session.begin():
        await session.execute(update(models.InboundWebhook).where(models.InboundWebhook.id == claimed)
                              .values(sync_run_id=run.id))
    return Outcome(200, run_id=run.id)


async def _unclaim(services: Services, claim_id: int) -> None:
    """Nothing was applied: the sender's retry must be taken as new."""
    async with services.sessions() as session, session.begin():
        await session.execute(text("DELETE FROM inbound_webhook WHERE id = :id AND sync_run_id IS NULL"),
                              {"id": claim_id})
