"""Refunds (refundPayment, and what a cancellation refunds) and offline payments
(recordOfflinePayment). Every one is a ledger row written under a row lock, so that refunds of a
payment never add up past what it brought in, and payments of a sale never past what it owes.

A card refund goes to Stripe inside the payment's locked transaction, then its REFUND row is
written: were the commit lost, the retry sends the same idempotency key and Stripe answers with
the refund it made, so money never goes back twice for one refund.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.services.context import Caller, Services
from app.services.errors import Forbidden, InvalidInput, NotFound
from app.services.payments.gateway import StripeUnavailable, gateway
from app.services.payments.ledger import owed, received_and_refunded
from db import audit, models
from db.audit import Actor
from db.engine import transaction
from db.refunds import card_payments, group_ledger, lock_payment, lock_sale_order, next_attempt, payment_ledger
from domain import Money, check_offline_payment, check_refund, format_amount, refund_due

log = logging.getLogger(__name__)

MAX_REFERENCE_CHARS = 200
MAX_REASON_CHARS = 500




def _staff(caller: Caller, what: str) -> None:
    if not caller.is_staff:
        raise Forbidden(f"only staff {what}")


def _shown(value: Money) -> str:
    return f"{format_amount(value.amount, value.currency)} {value.currency}"


def _snapshot(payment: models.Payment, refunded: Money) -> dict[str, str]:
    return {"amount": str(payment.amount), "currency": payment.currency, "state": payment.state,
            "method": payment.method, "refunded": str(refunded.amount)}


async def _sale_order_id(session: AsyncSession, group_id: int) -> int | None:
    return (await session.execute(
        select(models.SaleOrder.id).where(models.SaleOrder.group_id == group_id))).scalar_one_or_none()


async def _refund_locked(services: Services, session: AsyncSession, actor: Actor, payment: models.Payment, amount: Money,
                         key: str, note: str | None) -> Money:
    """Refund `amount` of a locked payment (checked by the caller): Stripe first for a card, then
    the REFUND row and the audit entry. Returns what is refunded of it now."""
    assert payment.id is not None
    _, before = received_and_refunded(await payment_ledger(session, payment.id), payment.currency)
    provider_refund = None
    if payment.method == "CARD":
        assert payment.provider_id is not None, "a succeeded card payment has its PaymentIntent"
        provider_refund = await gateway(services.settings).refund(payment.provider_id, amount, key)
    session.add(models.LedgerEntry(
        agency_id=payment.agency_id, kind="REFUND", amount=amount.amount, currency=amount.currency,
        group_id=payment.group_id, sale_order_id=await _sale_order_id(session, payment.group_id),
        payment_id=payment.id, note=note, created_by=actor.uid))
    after = Money(before.amount + amount.amount, before.currency)
    audit.record(session, actor, "payment.refunded", "Payment", payment.id,
                 before=_snapshot(payment, before),
                 after={**_snapshot(payment, after), "refund": str(amount.amount), "reason": note,
                        "provider_refund_id": provider_refund})
    return after


async def refund_payment(services: Services, caller: Caller, payment_id: int | None, amount: Money,
                         reason: str | None, id: str | None = None) -> models.Payment:
    """Refund part or all of a SUCCEEDED payment (staff): by Stripe for a card, as a record for an
    offline one (the money goes back by bank). Refunds of a payment add up and never exceed it:
    the payment's row is locked, so concurrent refunds decide one after the other."""
    _staff(caller, "refund payments")
    note = (reason or "").strip() or None
    if note is not None and len(note) > MAX_REASON_CHARS:
        raise InvalidInput("reason", f"reason must be at most {MAX_REASON_CHARS} characters")
    async with transaction(services.sessions) as session:
        payment = None if payment_id is None else await lock_payment(
            session, payment_id, timeout_ms=services.settings.lock_timeout_ms)
        if payment is None:
            raise NotFound("no payment with that id", id)
        if payment.state != "SUCCEEDED":
            raise InvalidInput("paymentId", f"payment {id} is {payment.state}: only a SUCCEEDED payment can be refunded")
        paid = Money(payment.amount, payment.currency)
        _, refunded = received_and_refunded(await payment_ledger(session, payment.id), payment.currency)
        if problem := check_refund(amount, paid, refunded):
            raise InvalidInput(problem.field, f"{problem.field} {problem.message}")
        # Refunded so far grows with every refund: the key names this one, and a retry of it.
        key = f"staysync-payment-{payment.id}-refund-after-{refunded.amount}"
        try:
            await _refund_locked(services, session, caller.actor, payment, amount, key, note)
        except StripeUnavailable as error:
            raise InvalidInput(None, f"Stripe did not refund the payment ({error}); nothing was recorded: "
                                     "retry later") from None
    return payment


async def record_offline_payment(services: Services, caller: Caller, sale_order_id: int | None, amount: Money,
                                 reference: str, id: str | None = None) -> models.Payment:
    """Record money received by bank for a confirmed sale order (staff): a SUCCEEDED OFFLINE payment
    and its OFFLINE_PAYMENT ledger row, at most what the sale still owes (its row locked, so two
    recordings cannot together pass that)."""
    _staff(caller, "record offline payments")
    reference = reference.strip()
    if not 1 <= len(reference) <= MAX_REFERENCE_CHARS:
        raise InvalidInput("reference", f"reference must be 1 to {MAX_REFERENCE_CHARS} characters")
    async with transaction(services.sessions) as session:
        order = None if sale_order_id is None else await lock_sale_order(
            session, sale_order_id, timeout_ms=services.settings.lock_timeout_ms)
        if order is None:
            raise NotFound("no sale order with that id", id)
        if order.status != "CONFIRMED":
            raise InvalidInput("saleOrderId", f"sale order {order.number} is {order.status}: payments are recorded "
                                              "against confirmed sales only")
        balance = owed(await group_ledger(session, order.group_id), order.currency)
        if problem := check_offline_payment(amount, balance):
            raise InvalidInput(problem.field, f"{problem.field} {problem.message}")
        actor = caller.actor
        payment = models.Payment(
            group_id=order.group_id, agency_id=order.agency_id, method="OFFLINE", state="SUCCEEDED",
            amount=amount.amount, currency=amount.currency, attempt=await next_attempt(session, order.group_id),
            reference=reference, created_by=actor.uid)
        session.add(payment)
        await session.flush()
        session.add(models.LedgerEntry(
            agency_id=order.agency_id, kind="OFFLINE_PAYMENT", amount=amount.amount, currency=amount.currency,
            group_id=order.group_id, sale_order_id=order.id, payment_id=payment.id, note=reference,
            created_by=actor.uid))
        assert payment.id is not None
        audit.record(session, actor, "payment.recorded", "Payment", payment.id, after={
            "method": "OFFLINE", "amount": str(amount.amount), "currency": amount.currency, "reference": reference,
            "sale_order": order.number, "balance_due_before": str(balance.amount)})
    return payment


# --- what a cancellation refunds -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CancelRefund:
    """What a cancellation owes back: `due` (domain refund_due) of the group's card payments."""

    sale_order_id: int
    group_id: int
    due: Money


async def refund_cancelled_sale(services: Services, actor: Actor, refund: CancelRefund) -> Money:
    """After a cancellation commits (and from the polling job, for what that left undone): give
    back what the sale received above its fee over the group's succeeded card payments, newest
    first, each in its own transaction under the agency's ledger lock and the payment's row lock,
    where what is still due is decided again (`refund.due` is what the caller saw: two runs at once
    never give it back twice). A Stripe failure is logged and written in the sale order's audit
    trail, and the polling job tries again; what the card payments cannot cover (money received
    offline) is written there for staff to pay back by bank. Returns what was refunded."""
    currency = refund.due.currency
    done = Money(Decimal(0), currency)
    async with services.sessions() as session:
        payments = [p for p in await card_payments(session, refund.group_id) if p.currency == currency]
    for candidate in payments:
        try:
            async with transaction(services.sessions) as session:
                payment = await lock_payment(session, candidate.id, timeout_ms=services.settings.lock_timeout_ms)
                assert payment is not None and payment.id is not None
                due = await _still_due(session, refund, currency)
                _, refunded = received_and_refunded(await payment_ledger(session, payment.id), currency)
                amount = Money(min(due.amount, payment.amount - refunded.amount), currency)
                if amount.amount > 0:
                    await _refund_locked(
                        services, session, actor, payment, amount,
                        f"staysync-sale-order-{refund.sale_order_id}-cancel-payment-{payment.id}-after-{refunded.amount}",
                        f"cancellation of sale order {refund.sale_order_id}")
                    done = Money(done.amount + amount.amount, currency)
            if due.amount <= amount.amount:
                return done  # all given back
        except StripeUnavailable as error:
            log.warning("cancellation refund of sale order %s failed at payment %s: %s (the polling job retries)",
                        refund.sale_order_id, candidate.id, error)
            async with transaction(services.sessions) as session:
                missing = await _still_due(session, refund, currency)
                audit.record(session, actor, "sale_order.refund_failed", "SaleOrder", refund.sale_order_id, after={
                    "payment_id": candidate.id, "left_to_refund": str(missing.amount), "currency": currency,
                    "error": str(error), "action": "the polling job refunds it once Stripe answers (or refundPayment)"})
            return done
    async with transaction(services.sessions) as session:
        missing = await _still_due(session, refund, currency)
        if missing.amount > 0:  # money received otherwise (offline): it goes back by bank
            audit.record(session, actor, "sale_order.refund_pending", "SaleOrder", refund.sale_order_id, after={
                "left_to_refund": str(missing.amount), "currency": currency,
                "action": "pay it back by bank, then record it with refundPayment on the offline payment"})
    return done


async def _still_due(session: AsyncSession, refund: CancelRefund, currency: str) -> Money:
    """What the cancelled sale still owes back: received above its fee, less what went back."""
    fee = (await session.execute(select(models.SaleOrder.cancellation_fee).where(
        models.SaleOrder.id == refund.sale_order_id))).scalar_one() or Decimal(0)
    received, refunded = received_and_refunded(await group_ledger(session, refund.group_id), currency)
    return refund_due(received, Money(fee, currency), refunded)
