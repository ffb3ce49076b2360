"""The SQL of refunds and offline payments: the row locks that serialise them, and the ledger
reads they decide on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.inventory import lock_agency_ledger
from db.models import Payment, SaleOrder
from db.ledger import Sums
from db.queries import ledger_by_group, ledger_by_payment



async def _lock_ledger_of(session: AsyncSession, model: Any, pk: int, timeout_ms: int) -> None:
    """The ledger lock of the row's agency (before the row's own lock: the order every ledger writer
    takes them in)."""
    agency_id = (await session.execute(select(model.agency_id).where(model.id == pk))).scalar_one_or_none()
    if agency_id is not None:
        await lock_agency_ledger(session, agency_id, timeout_ms)


async def lock_payment(session: AsyncSession, payment_id: int, *, timeout_ms: int = 2000) -> Payment | None:
    """The payment, locked FOR UPDATE after its agency's ledger lock: refunds of one payment run
    one at a time, so the refunds read under the lock are all there are."""
    await _lock_ledger_of(session, Payment, payment_id, timeout_ms)
    return (await session.execute(select(Payment).where(Payment.id == payment_id).with_for_update())
            ).scalar_one_or_none()


async def lock_sale_order(session: AsyncSession, sale_order_id: int, *, timeout_ms: int = 2000) -> SaleOrder | None:
    """The sale order, locked FOR UPDATE after its agency's ledger lock: payments recorded against
    it run one at a time."""
    await _lock_ledger_of(session, SaleOrder, sale_order_id, timeout_ms)
    return (await session.execute(select(SaleOrder).where(SaleOrder.id == sale_order_id).with_for_update())
            ).scalar_one_or_none()


async def payment_ledger(session: AsyncSession, payment_id: int) -> Sums:
    return (await ledger_by_payment(session, [payment_id])).get(payment_id, [])


async def group_ledger(session: AsyncSession, group_id: int) -> Sums:
    return (await ledger_by_group(session, [group_id])).get(group_id, [])


async def card_payments(session: AsyncSession, group_id: int) -> Sequence[Payment]:
    """The group's succeeded card payments, newest first (a cancellation refunds them in that order)."""
    return list((await session.execute(
        select(Payment).where(Payment.group_id == group_id, Payment.method == "CARD", Payment.state == "SUCCEEDED")
        .order_by(Payment.created_at.desc(), Payment.id.desc()))).scalars())


async def next_attempt(session: AsyncSession, group_id: int) -> int:
    """The group's next payment number (payment.attempt is unique per group)."""
    return int((await session.execute(
        select(func.coalesce(func.max(Payment.attempt), 0) + 1).where(Payment.group_id == group_id))).scalar_one())
