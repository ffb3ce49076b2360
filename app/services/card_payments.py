"""Card payments through Stripe PaymentIntents (DESIGN "Money"): startPayment, Stripe's word on
a payment (its webhook, or the polling job when a webhook is lost), and the money given back when
the rooms are gone.

Every transition of a payment runs under its group's room-type locks (and its agency's credit
lock: a payment may confirm the group), on the payment's row locked FOR UPDATE: a webhook and the
poller applying the same success race for that row, and the second finds the work done. Stripe is
called outside those transactions, except for a refund, which holds the payment's row across the
call so that two workers never refund the same money twice (a fake Stripe ignores idempotency
keys, and a real one would still leave two ledger rows).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from app.services.bookings import (
    confirm_locked,
    group_shortfalls,
    group_total,
    payment_failure,
    published_change,
    visible_group,
)
from app.services.changes import PAYMENTS_CHANNEL, Notice
from app.services.context import Caller, Services
from app.services.errors import InvalidTransition
from app.services.payments.gateway import Intent, StripeUnavailable, gateway
from app.services.payments.refunds import CancelRefund, refund_cancelled_sale
from db import audit, payments
from db.bookings import lock_group_raw, set_group_status
from db.fastpath import locked_transaction
from domain import (
    BookingStatus,
    Money,
    amount_due_now,
    balance_due_now,
    effective_status,
    hotel_today,
    paid,
    refund_due,
)

log = logging.getLogger(__name__)

TERMINAL = ("SUCCEEDED", "CANCELED")


def _notice(payment: Any) -> Notice:
    return Notice(PAYMENTS_CHANNEL, {"paymentId": payment.id, "groupId": payment.group_id,
                                     "agencyId": payment.agency_id})


def _snapshot(payment: Any) -> dict[str, Any]:
    return audit.snapshot(payment, "state", "failure", "provider_id")


# --- startPayment ------------------------------------------------------------------------------


async def start_payment(services: Services, caller: Caller, group_id: int | None, id: str | None = None) -> Any:
    """A card payment of what the group owes now (the whole total for PREPAY, the deposit for
    DEPOSIT, the balance once it is due), as a Stripe PaymentIntent; the open one if there is
    one. While the first is in flight the hold is extended once, by PAYMENT_HOLD_EXTENSION_MINUTES.
    InvalidTransition when the group is not held or confirmed, or nothing is due."""
    settings = services.settings
    async with services.raw.connection() as connection:
        _, footprint = await visible_group(connection, caller, group_id, id)
        async with locked_transaction(connection, footprint[1], settings.lock_timeout_ms):
            locked = await lock_group_raw(connection, group_id)
            group, now = locked.group, locked.now
            status = effective_status(BookingStatus(group.status), group.expires_at, now)
            if status not in (BookingStatus.HELD, BookingStatus.CONFIRMED):
                raise InvalidTransition(f"the group is {status.value}: it takes no payment", status.value)
            total = group_total(locked)
            paid_so_far = paid((e for e in locked.group_ledger if e.amount.currency == total.currency), total.currency)
            if status is BookingStatus.CONFIRMED:  # the balance, once due by the date frozen on the sale
                due = balance_due_now(total, paid_so_far, locked.sale_order.balance_due_at, now)
            else:
                due = amount_due_now(locked.terms, total, paid_so_far, check_in=locked.check_in,
                                     today=hotel_today(now, locked.time_zone))
            open_payments, attempt = await payments.open_payments(connection, group.id)
            if open_payments and open_payments[-1].provider_id is not None:
                return open_payments[-1]  # in flight: the payer goes on with it
            if open_payments:  # begun, but its PaymentIntent was never made: make it now (same key)
                payment, notice_id = open_payments[-1], None
            else:
                if due.amount <= 0:
                    raise InvalidTransition(f"nothing is due on group {group.reference} ({locked.terms.terms.value} "
                                            "terms)", status.value)
                extend = (status is BookingStatus.HELD and group.hold_extended_at is None
                          and group.expires_at is not None and settings.payment_hold_extension_minutes > 0)
                expires_at = group.expires_at + timedelta(minutes=settings.payment_hold_extension_minutes) \
                    if extend else None
                entries = [("booking_group.hold_extended", "BookingGroup", group.id,
                            {"expires_at": group.expires_at.isoformat()}, {"expires_at": expires_at.isoformat(),
                                                                           "reason": "a card payment started"})
                           ] if expires_at else []
                payment, notice_id = await payments.start(
                    connection, caller.actor, now, group, (due.amount, due.currency), attempt, expires_at,
                    PAYMENTS_CHANNEL, entries)
    if notice_id is not None:
        await services.relay.deliver([_notice(payment)], [notice_id])
    try:
        intent = await gateway(settings).create_intent(Money(payment.amount, payment.currency), payment.group_id,
                                                       payment.attempt, group.reference)
        values = (intent.id, intent.client_secret, intent.state, intent.failure)
    except StripeUnavailable as error:
        log.warning("payment %s: no PaymentIntent: %s", payment.id, error)
        values = (None, None, "FAILED", str(error))
    async with services.raw.connection() as connection:
        async with connection.transaction():
            payment, notice_id = await payments.set_intent(connection, payment.id, *values, PAYMENTS_CHANNEL)
    await services.relay.deliver([_notice(payment)], [notice_id])
    return payment


# --- Stripe's word -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Applied:
    payment: Any | None  # None: no payment of ours has that PaymentIntent
    duplicate: bool = False  # the event was applied before


async def apply_intent(services: Services, intent: Intent, event: tuple[str, str] | None = None) -> Applied:
    """Bring our payment of `intent` to the state Stripe reports, exactly once (`event`: the id and
    type of the webhook event that says so, recorded in the same transaction so a replay applies
    nothing). A success puts the money on the ledger and, while the group is held, confirms it
    once nothing more is due; after its hold lapsed, confirms it if the rooms are still free and
    refunds the whole payment otherwise; a group cancelled meanwhile gets it all back too."""
    async with services.raw.connection() as connection:
        found = await payments.by_intent(connection, intent.id)
        if found is None or found[1] is None:
            return Applied(None)
        payment, footprint = found
        refund: tuple[Any, str] | None = None
        published: list[Any] = []
        async with locked_transaction(connection, footprint[1], services.settings.lock_timeout_ms,
                                      agency_id=payment.agency_id):
            if event is not None and not await payments.record_event(connection, event[0], event[1], payment.id):
                return Applied(payment, duplicate=True)
            payment = await payments.lock(connection, payment.id)
            if payment.state in TERMINAL or (payment.state, payment.failure) == (intent.state, intent.failure):
                return Applied(payment)  # nothing new (an earlier event, the poller or a replay applied it)
            locked = await lock_group_raw(connection, payment.group_id)
            before = _snapshot(payment)
            after = {**before, "state": intent.state, "failure": intent.failure}
            payment, notice_id = await payments.transition(
                connection, payment, intent.state, intent.failure, intent.amount.amount, audit.STRIPE, locked.now,
                [(f"payment.{intent.state.lower()}", "Payment", payment.id, before, after)], PAYMENTS_CHANNEL)
            published.append((_notice(payment), notice_id))
            if payment.state == "SUCCEEDED":
                locked = await lock_group_raw(connection, payment.group_id)  # its ledger now holds the payment
                refund = await _settle(connection, locked, footprint, published)
    for change, outbox_id in published:
        await services.relay.deliver([change], [outbox_id])
    if refund is not None:
        await refund_in_full(services, payment.id, refund[1])
    return Applied(payment)


async def _settle(connection: Any, locked: Any, footprint: Any, published: list[Any]) -> tuple[Any, str] | None:
    """After a success: confirm the group if it may be, or say why the payment goes back."""
    group, now = locked.group, locked.now
    status = effective_status(BookingStatus(group.status), group.expires_at, now)
    if status is BookingStatus.CONFIRMED:
        return None  # a DEPOSIT's balance: on the ledger, nothing else to do
    if status is BookingStatus.CANCELLED:
        return group, f"group {group.reference} was cancelled before the payment succeeded"
    if status is BookingStatus.EXPIRED and await group_shortfalls(connection, locked, footprint):
        reason = (f"the hold of group {group.reference} lapsed at {group.expires_at.isoformat()} and its rooms were "
                  "sold meanwhile")
        if group.status == "HELD":  # lapsed, not yet swept: write down what time did
            version, change_id = await set_group_status(
                connection, group, "EXPIRED", now,
                [("booking_group.expired", "BookingGroup", group.id, {"status": "HELD"},
                  {"status": "EXPIRED", "reason": reason})], audit.STRIPE, footprint, reason)
            published.append((published_change(footprint, group, version), change_id))
        return group, reason
    if payment_failure(locked, group_total(locked)) is not None:
        return None  # more is due (a DEPOSIT paid in parts): the group stays held
    order, version, change_id = await confirm_locked(connection, locked, audit.STRIPE, footprint)
    published.append((published_change(footprint, group, version), change_id))
    return None


async def refund_in_full(services: Services, payment_id: int, reason: str) -> Decimal:
    """Give back what is left of a card payment, through Stripe, with the payment's row held across
    the call (see the module's docstring); the REFUND on the ledger. Returns the amount refunded
    (0 when nothing was left). On Stripe's failure nothing is recorded, and the polling job tries
    again."""
    async with services.raw.connection() as connection:
        async with connection.transaction():
            # Its agency's ledger lock first, as every ledger writer takes them (then the row's).
            await payments.lock_ledger_of(connection, payment_id, services.settings.lock_timeout_ms)
            payment = await payments.lock(connection, payment_id)
            left = payment.amount - await payments.refunded(connection, payment_id)
            if left <= 0 or payment.provider_id is None:
                return Decimal(0)
            try:
                refund_id = await gateway(services.settings).refund(
                    payment.provider_id, Money(left, payment.currency), f"staysync-refund-{payment.id}-in-full")
            except StripeUnavailable as error:
                log.warning("payment %s: refund of %s %s failed (the polling job retries): %s", payment.id, left,
                            payment.currency, error)
                return Decimal(0)
            now = await connection.fetchval("SELECT statement_timestamp()")
            notice_id = await payments.post_refund(
                connection, payment, left, reason, audit.STRIPE, now,
                [("payment.refunded", "Payment", payment.id, None,
                  {"amount": str(left), "currency": payment.currency, "refund": refund_id, "reason": reason})],
                PAYMENTS_CHANNEL)
    await services.relay.deliver([_notice(payment)], [notice_id])
    return left


async def poll(services: Services, *, limit: int = 100) -> int:
    """The polling job's round: card payments in flight past PAYMENT_POLL_AFTER_S are asked of
    Stripe and brought to its state (their webhook may be lost); money kept for groups that hold
    no rooms is refunded, and so is what a cancellation had to give back and did not (Stripe was
    down, or the worker died after the commit). Returns how many payments and sales it looked at."""
    settings = services.settings
    async with services.raw.connection() as connection:
        stale = await payments.stale_intents(connection, settings.payment_poll_after_s, limit)
        unrefunded = await payments.unrefunded(connection, limit)
    for intent_id in stale:
        try:
            await apply_intent(services, await gateway(settings).retrieve(intent_id))
        except StripeUnavailable as error:
            log.warning("polling PaymentIntent %s failed: %s", intent_id, error)
    for payment_id in unrefunded:
        await refund_in_full(services, payment_id, "the group holds no rooms: money is never kept for rooms not sold")
    async with services.raw.connection() as connection:
        cancelled = await payments.cancelled_with_card_money(connection, limit)
    for row in cancelled:  # a cancellation's refund left undone: what was paid above the fee goes back
        due = refund_due(Money(row["received"], row["currency"]), Money(row["fee"], row["currency"]),
                         Money(row["refunded"], row["currency"]))
        if due.amount > 0:
            await refund_cancelled_sale(services, audit.STRIPE, CancelRefund(row["id"], row["group_id"], due))
    return len(stale) + len(unrefunded) + len(cancelled)
