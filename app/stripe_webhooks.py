"""`POST /webhooks/stripe`: Stripe's events about our PaymentIntents. The `Stripe-Signature` is
verified by the SDK's own `construct_event` (5 minutes of tolerance); each event is applied once
(its id is recorded in the transaction that applies it, so a replay applies nothing).

400: a bad signature, or no webhook secret configured (nothing is stored); 200: applied, a replay,
an event type we do not act on, or a PaymentIntent that is not ours; 503 with Retry-After when it
could not be applied now (Stripe delivers it again).
"""

from __future__ import annotations

import logging

import stripe
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.services.errors import LockTimeout
from app.services.card_payments import apply_intent
from app.services.payments.gateway import intent_of, verify_event

log = logging.getLogger(__name__)

# What the PaymentIntent's state tells; other types (charges, customers...) are acknowledged.
APPLIED_TYPES = ("payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled",
                 "payment_intent.requires_action", "payment_intent.processing")


async def stripe_webhook(request: Request) -> JSONResponse:
    services = request.app.state.runtime.services
    secret = services.settings.stripe_webhook_secret
    if not secret:
        return JSONResponse({"error": "STRIPE_WEBHOOK_SECRET is not set: events cannot be verified"}, status_code=400)
    body = await request.body()
    try:
        event = verify_event(body, request.headers.get("stripe-signature"), secret)
    except (ValueError, stripe.SignatureVerificationError) as error:
        log.warning("refused a Stripe webhook: %s", error)
        return JSONResponse({"error": f"invalid signature or payload: {error}"}, status_code=400)
    if event.type not in APPLIED_TYPES:
        return JSONResponse({"received": event.id, "applied": False})
    try:
        applied = await apply_intent(services, intent_of(event.data.object.to_dict()), (event.id, event.type))
    except LockTimeout:
        return JSONResponse({"error": "busy: deliver again"}, status_code=503, headers={"Retry-After": "5"})
    return JSONResponse({"received": event.id, "applied": applied.payment is not None and not applied.duplicate,
                         "duplicate": applied.duplicate})
