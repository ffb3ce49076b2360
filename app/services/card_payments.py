"""Card payments through Stripe PaymentIntents (DESIGN "Money"): startPayment, Stripe's word on
a payment (its webhook, or the polling job when a webhook is lost), and the money given back when
the rooms are gone.

Every transition of a payment runs under its group's room-type locks (and its agency's ledger
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
from app.services.errors import InvalidTransition, LockTimeout
from app.services.payments import figures
from app.services.payments.gateway import Intent, StripeUnavailable, gateway
from app.services.payments.refunds import CancelRefund, refund_cancelled_sale
from db import audit, payments
from db.bookings import lock_group_raw, set_group_status
from db.fastpath import locked_transaction
from domain import BookingStatus, Money, effective_status

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
        failed = await payments.failed_intents(connection, group_id)
    for intent_id in failed:  # a declined PaymentIntent can still be paid: it is cancelled before another
        await _retire(services, intent_id)
    async with services.raw.connection() as connection:
        async with locked_transaction(connection, footprint[1], settings.lock_timeout_ms):
            locked = await lock_group_raw(connection, group_id)
            group, now = locked.group, locked.now
            status = effective_status(BookingStatus(group.status), group.expires_at, now)
            if status not in (BookingStatus.HELD, BookingStatus.CONFIRMED):
                raise InvalidTransition(f"the group is {status.value}: it takes no payment", status.value)
            total = group_total(locked)
            due = figures.due(locked.terms, total, locked.paid_in(total.currency), locked.check_in, locked.time_zone,
                              now, locked.sale_order if status is BookingStatus.CONFIRMED else None)
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
    if notice_id is not None:
        await services.relay.deliver([_notice(payment)], [notice_id])
    elif values[0] is not None and payment.provider_id != values[0]:
        await _retire(services, values[0])  # a concurrent call's PaymentIntent stands: this one goes
    return payment


async def _retire(services: Services, intent_id: str) -> None:
    """Cancel a PaymentIntent at Stripe, so that it can no longer take money, and record what it
    became: CANCELED, or SUCCEEDED if the payer paid it meanwhile (then the usual rules apply)."""
    stripe = gateway(services.settings)
    try:
        intent = await stripe.cancel(intent_id)
    except StripeUnavailable:  # already paid (or Stripe is down): what it is now decides
        try:
            intent = await stripe.retrieve(intent_id)
        except StripeUnavailable as error:
            log.warning("PaymentIntent %s could not be cancelled nor read: %s", intent_id, error)
            return
    await apply_intent(services, intent)


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
        refund: str | None = None  # why the payment goes back, if it does
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
    if payment.state == "SUCCEEDED":  # the rooms are gone, or the sale was paid already: it goes back
        await refund_unowed(services, payment.id, refund or "paid beyond the sale's total (another payment "
                                                            "succeeded too)")
    return Applied(payment)


async def _settle(connection: Any, locked: Any, footprint: Any, published: list[Any]) -> str | None:
    """After a success: confirm the group if it may be, or say why the payment goes back."""
    group, now = locked.group, locked.now
    status = effective_status(BookingStatus(group.status), group.expires_at, now)
    if status is BookingStatus.CONFIRMED:
        return None  # a DEPOSIT's balance: on the ledger (refund_unowed gives back any excess)
    if status is BookingStatus.CANCELLED:
        return f"group {group.reference} was cancelled before the payment succeeded"
    if status is BookingStatus.EXPIRED and await group_shortfalls(connection, locked, footprint):
        reason = (f"the hold of group {group.reference} lapsed at {group.expires_at.isoformat()} and its rooms were "
                  "sold meanwhile")
        if group.status == "HELD":  # lapsed, not yet swept: write down what time did
            version, change_id = await set_group_status(
                connection, group, "EXPIRED", now,
                [("booking_group.expired", "BookingGroup", group.id, {"status": "HELD"},
                  {"status": "EXPIRED", "reason": reason})], audit.STRIPE, footprint, reason)
            published.append((published_change(footprint, group, version), change_id))
        return reason
    if payment_failure(locked, group_total(locked)) is not None:
        return None  # more is due (a DEPOSIT paid in parts): the group stays held
    order, version, change_id = await confirm_locked(connection, locked, audit.STRIPE, footprint)
    published.append((published_change(footprint, group, version), change_id))
    return None


async def refund_unowed(services: Services, payment_id: int, reason: str) -> Decimal:
    """Give back what of a card payment the group does not owe, decided under the agency's ledger
    lock and the payment's row lock (held across Stripe's call, see the module's docstring): all
    that is left of it when the group holds no rooms (expired or cancelled, without a sale), or
    what its confirmed sale received above its total (a second payment that succeeded too). A
    cancelled sale's refunds are the cancellation's (payments.refunds). The REFUND on the ledger;
    returns the amount refunded. On Stripe's failure nothing is recorded, and the polling job tries
    again."""
    async with services.raw.connection() as connection:
        async with connection.transaction():
            # Its agency's ledger lock first, as every ledger writer takes them (then the row's).
            await payments.lock_ledger_of(connection, payment_id, services.settings.lock_timeout_ms)
            payment = await payments.lock(connection, payment_id)
            refunded = await payments.refunded(connection, payment_id)
            unowed = _unowed(payment, refunded, await payments.group_money(connection, payment.group_id, payment.currency))
            if unowed <= 0 or payment.provider_id is None:
                return Decimal(0)
            try:
                refund_id = await gateway(services.settings).refund(
                    payment.provider_id, Money(unowed, payment.currency),
                    f"staysync-payment-{payment.id}-unowed-after-{refunded}")
            except StripeUnavailable as error:
                log.warning("payment %s: refund of %s %s failed (the polling job retries): %s", payment.id, unowed,
                            payment.currency, error)
                return Decimal(0)
            now = await connection.fetchval("SELECT statement_timestamp()")
            notice_id = await payments.post_refund(
                connection, payment, unowed, reason, audit.STRIPE, now,
                [("payment.refunded", "Payment", payment.id, None,
                  {"amount": str(unowed), "currency": payment.currency, "refund": refund_id, "reason": reason})],
                PAYMENTS_CHANNEL)
    await services.relay.deliver([_notice(payment)], [notice_id])
    return unowed


def _unowed(payment: Any, refunded: Decimal, group: Any) -> Decimal:
    """What of `payment` (of which `refunded` went back) its group does not owe (see refund_unowed)."""
    if payment.state != "SUCCEEDED" or payment.method != "CARD":
        return Decimal(0)
    left = payment.amount - refunded
    if group["order_status"] is None:  # no sale: nothing is owed unless the group still holds its rooms
        return left if group["status"] in ("EXPIRED", "CANCELLED") else Decimal(0)
    if group["order_status"] != "CONFIRMED":
        return Decimal(0)  # cancelled: what goes back is the cancellation's to say (its fee)
    return max(Decimal(0), min(left, group["received"] - group["refunded"] - group["total"]))


async def poll(services: Services, *, limit: int = 100) -> int:
    """The polling job's round: card payments in flight past PAYMENT_POLL_AFTER_S are asked of
    Stripe and brought to its state (their webhook may be lost; each polled one goes to the back of
    the queue); money kept that is not owed is refunded, and so is what a cancellation had to give
    back and did not (Stripe was down, or the worker died after the commit). One failure (Stripe,
    a busy lock) is logged and the round goes on. Returns how many payments and sales it looked at."""
    settings = services.settings
    async with services.raw.connection() as connection:
        stale = await payments.stale_intents(connection, settings.payment_poll_after_s, limit)
        unrefunded = await payments.unrefunded(connection, limit)
        cancelled = await payments.cancelled_with_card_money(connection, limit)
    for intent_id in stale:
        await _logged(f"polling PaymentIntent {intent_id}",
                      lambda intent_id=intent_id: _poll_intent(services, intent_id))
    for payment_id in unrefunded:
        await _logged(f"refunding payment {payment_id}", lambda payment_id=payment_id: refund_unowed(
            services, payment_id, "the group holds no rooms: money is never kept for rooms not sold"))
    for row in cancelled:  # a cancellation's refund left undone: what was paid above the fee goes back
        await _logged(f"refunding cancelled sale order {row['id']}", lambda row=row: refund_cancelled_sale(
            services, audit.STRIPE, CancelRefund(row["id"], row["group_id"], Money(row["due"], row["currency"]))))
    return len(stale) + len(unrefunded) + len(cancelled)


async def _poll_intent(services: Services, intent_id: str) -> None:
    await apply_intent(services, await gateway(services.settings).retrieve(intent_id))
    async with services.raw.connection() as connection:
        await payments.polled(connection, intent_id)


async def _logged(what: str, step: Any) -> None:
    try:
        await step()
    except (StripeUnavailable, LockTimeout) as error:
        log.warning("%s failed (the next round retries): %s", what, error)
