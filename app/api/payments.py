"""Payments: the Payment node, its enums, and the money fields of booking groups and sale orders
(DESIGN "Money")."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from app.api.errors import InvalidTransition, NotFound
from app.api.ids import target_pk
from app.api.permissions import AUTHENTICATED, Info
from app.api.types import LoadedNode, Money, agency_scoped
from app.services import card_payments as cards
from app.services.payments.ledger import received_and_refunded
from domain import PaymentStatus as DomainPaymentStatus

if TYPE_CHECKING:
    from db.models import Payment as PaymentRow
else:
    PaymentRow = Any

PaymentStatus = strawberry.enum(DomainPaymentStatus, name="PaymentStatus",
                                description="A sale's payments: UNPAID, PARTIALLY_PAID, PAID, PARTIALLY_REFUNDED or "
                                            "REFUNDED.")


@strawberry.enum(description="Where a payment stands (a card payment follows its Stripe PaymentIntent).")
class PaymentState(StrEnum):
    PENDING = "PENDING"
    REQUIRES_ACTION = "REQUIRES_ACTION"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


@strawberry.enum(description="CARD (Stripe) or OFFLINE (a bank transfer recorded by staff).")
class PaymentMethod(StrEnum):
    CARD = "CARD"
    OFFLINE = "OFFLINE"


OPEN_STATES = ("PENDING", "REQUIRES_ACTION")


@strawberry.type(description="Money received for a booking group, by card or offline. Agents see their own "
                 "agency's payments only.")
class Payment(LoadedNode, relay.Node):
    id: relay.NodeID[int]
    amount: Money
    state: PaymentState
    method: PaymentMethod
    provider_id: str | None = strawberry.field(description="The Stripe PaymentIntent's id (card payments).")
    reference: str | None = strawberry.field(description="The bank transfer's reference (offline payments).")
    failure: str | None = strawberry.field(description="Why the last attempt failed (card payments).")
    created_at: datetime
    row: strawberry.Private[PaymentRow]

    loader = "payment"
    visible = agency_scoped

    @staticmethod
    def from_row(row: PaymentRow) -> Payment:
        return Payment(id=row.id, amount=Money.of(row.amount, row.currency), state=PaymentState(row.state),
                       method=PaymentMethod(row.method), provider_id=row.provider_id, reference=row.reference,
                       failure=row.failure, created_at=row.created_at, row=row)

    @strawberry.field(description="The secret Stripe.js confirms the payment with: only to the payer (whoever "
                      "started it), and only while it is open (PENDING or REQUIRES_ACTION).")
    def client_secret(self, info: Info) -> str | None:
        principal = info.context.principal
        if self.row.state not in OPEN_STATES or principal is None or principal.uid != self.row.created_by:
            return None
        return self.row.client_secret

    @strawberry.field(description="What was refunded of it so far; refunds add up and never exceed the amount.")
    async def refunded(self, info: Info) -> Money:
        _, refunded = received_and_refunded(await info.context.loaders.ledger_by_payment.load(self.id), self.row.currency)
        return Money.of(refunded.amount, refunded.currency)


async def payments_of(info: Info, group_id: int) -> list[Payment]:
    return [Payment.from_row(row) for row in await info.context.loaders.payments_by_group.load(group_id)]


StartPaymentResult = Annotated[Payment | InvalidTransition | NotFound, strawberry.union("StartPaymentResult")]


@strawberry.type
class PaymentMutation:
    @strawberry.mutation(permission_classes=AUTHENTICATED, description=(
        "Pay what the group owes now by card: a Stripe PaymentIntent for the amount due (PREPAY: the total; DEPOSIT: "
        "the deposit, or the balance once due), or the open one. Its clientSecret (to the payer only) confirms it "
        "with Stripe.js, which runs 3-D Secure when the card needs it; the group is confirmed when Stripe reports "
        "success. While it is in flight the hold is extended once (PAYMENT_HOLD_EXTENSION_MINUTES)."))
    async def start_payment(self, info: Info, group_id: strawberry.ID) -> StartPaymentResult:
        row = await cards.start_payment(info.context.services, info.context.caller,
                                        target_pk(group_id, "BookingGroup"), group_id)
        return Payment.from_row(row)
