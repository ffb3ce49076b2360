"""Stripe through its official SDK: PaymentIntents and refunds, amounts in minor units, every
request with an idempotency key derived from our ids (so a retry after a lost answer returns the
first result instead of charging twice).

STRIPE_API_BASE points the SDK at another server: localstripe in development and tests. It
ignores idempotency keys and takes only the core parameters of a PaymentIntent, so nothing else
is sent; and it answers 500 for what it does not implement, so the SDK retries only against
Stripe itself.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from typing import Any

import stripe

from app.settings import Settings
from domain import Money, from_minor, to_minor

# A PaymentIntent's status as a payment's state. requires_payment_method after an attempt is a
# failure (a decline, a failed authentication); before any, the payer has not paid yet.
_STATES = {
    "requires_payment_method": "PENDING",
    "requires_confirmation": "PENDING",
    "processing": "PENDING",
    "requires_capture": "PENDING",
    "requires_action": "REQUIRES_ACTION",
    "succeeded": "SUCCEEDED",
    "canceled": "CANCELED",
}


TIMEOUT_S = 10.0


class StripeUnavailable(Exception):
    """Stripe (or the server at STRIPE_API_BASE) could not be reached or refused the request."""


@dataclass(frozen=True, slots=True)
class Intent:
    """What we keep of a PaymentIntent."""

    id: str
    state: str  # PENDING, REQUIRES_ACTION, SUCCEEDED, FAILED or CANCELED
    amount: Money
    client_secret: str | None
    failure: str | None  # the last attempt's error, if it failed
    group_id: int | None  # from its metadata


def intent_of(obj: Any) -> Intent:
    """A PaymentIntent (the SDK's object, or an event's data.object as a dict) as an Intent."""
    get = obj.get if isinstance(obj, dict) else (lambda name: getattr(obj, name, None))
    error = get("last_payment_error")
    failure = None
    if error:
        failure = (error.get("message") if isinstance(error, dict) else getattr(error, "message", None)) or "failed"
    state = _STATES.get(get("status") or "", "PENDING")
    if state == "PENDING" and failure:
        state = "FAILED"
    metadata = get("metadata") or {}
    group = metadata.get("group_id") if isinstance(metadata, dict) else getattr(metadata, "group_id", None)
    currency = str(get("currency") or "").upper()
    return Intent(id=get("id"), state=state, amount=from_minor(int(get("amount") or 0), currency),
                  client_secret=get("client_secret"), failure=failure,
                  group_id=int(group) if group and str(group).isdigit() else None)


class CardGateway:
    def __init__(self, api_key: str, api_base: str | None) -> None:
        # A refund holds the payment's row and its agency's ledger lock across the call: bounded at
        # TIMEOUT_S a try (the SDK's default is 80 s).
        self._client = stripe.StripeClient(
            api_key, base_addresses={"api": api_base} if api_base else None,
            max_network_retries=0 if api_base else 2, http_client=stripe.HTTPXClient(timeout=TIMEOUT_S))

    async def _call(self, method: Any, *args: Any) -> Any:
        try:
            return await method(*args)
        except stripe.StripeError as error:
            raise StripeUnavailable(f"Stripe refused or failed: {error.user_message or error}") from error

    async def create_intent(self, amount: Money, group_id: int, attempt: int, reference: str) -> Intent:
        params = {"amount": to_minor(amount), "currency": amount.currency.lower(),
                  "metadata": {"group_id": str(group_id), "reference": reference, "attempt": str(attempt)}}
        options = {"idempotency_key": f"staysync-group-{group_id}-attempt-{attempt}"}
        return intent_of(await self._call(self._client.v1.payment_intents.create_async, params, options))

    async def retrieve(self, intent_id: str) -> Intent:
        return intent_of(await self._call(self._client.v1.payment_intents.retrieve_async, intent_id))

    async def cancel(self, intent_id: str) -> Intent:
        return intent_of(await self._call(self._client.v1.payment_intents.cancel_async, intent_id))

    async def refund(self, intent_id: str, amount: Money, key: str) -> str:
        """Refund `amount` of the PaymentIntent (always explicit: without one, a fake Stripe refunds
        the whole charge again); `key` makes a retry of the same refund return it. Its id."""
        refund = await self._call(self._client.v1.refunds.create_async,
                                  {"payment_intent": intent_id, "amount": to_minor(amount)},
                                  {"idempotency_key": key})
        return refund.id


# Per event loop: the SDK's async HTTP client (httpx) belongs to the loop it was first used in.
_GATEWAYS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str | None], CardGateway]] = \
    weakref.WeakKeyDictionary()


def gateway(settings: Settings) -> CardGateway:
    """The running loop's gateway for these settings. Card payments need STRIPE_API_KEY."""
    if not settings.stripe_api_key:
        raise StripeUnavailable("card payments are not configured: set STRIPE_API_KEY (in development, leave it "
                                "unset and `staysync serve` starts localstripe)")
    made = _GATEWAYS.setdefault(asyncio.get_running_loop(), {})
    key = (settings.stripe_api_key, settings.stripe_api_base)
    if key not in made:
        made[key] = CardGateway(*key)
    return made[key]


def verify_event(payload: bytes, signature: str | None, secret: str) -> Any:
    """The event of a webhook request, if its Stripe-Signature is valid for `secret` within 5
    minutes (the SDK's own check). Raises ValueError (bad body) or stripe.SignatureVerificationError."""
    return stripe.Webhook.construct_event(payload, signature, secret, tolerance=300)
