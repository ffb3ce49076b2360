"""Money after the sale: cancellation policies (setCancellationPolicy), refunds (refundPayment)
and offline payments (recordOfflinePayment), over app.services.payments (DESIGN "Money")."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.api.catalog import Hotel
from app.api.errors import InvalidInput, NotFound
from app.api.ids import decode_id, decode_optional, target_pk
from app.api.payments import Payment
from app.api.permissions import ADMIN, STAFF, Info
from app.api.pricing import RatePlan
from app.api.types import MoneyInput
from app.services import inventory
from app.services.payments import policies, refunds
from domain import CancellationRule


@strawberry.input(description="Cancelling `daysBeforeArrival` days or fewer before check-in costs `feePercent` % "
                  "of the sale's total (0 to 365 days, 0 to 100 percent, one rule per day).")
class CancellationRuleInput:
    days_before_arrival: int
    fee_percent: int


@strawberry.input(description="A hotel's default cancellation policy (no ratePlanId), or a rate plan's own.")
class SetCancellationPolicyInput:
    hotel_id: strawberry.ID
    rate_plan_id: strawberry.ID | None = None
    rules: list[CancellationRuleInput] = strawberry.field(description=(
        "The whole policy (it replaces the one before); empty: free cancellation, explicitly. The highest "
        "feePercent of the rules that apply on the hotel-local date of cancelling wins."))
    inherit: bool = strawberry.field(default=False, description=(
        "Rate plans only, with rules: []: drop the plan's own policy, so the hotel's default applies again "
        "(RatePlan.cancellationPolicy reads null)."))


SetCancellationPolicyResult = Annotated[Hotel | RatePlan | InvalidInput,
                                        strawberry.union("SetCancellationPolicyResult")]


@strawberry.input(description="Refund part or all of a SUCCEEDED payment.")
class RefundPaymentInput:
    payment_id: strawberry.ID
    amount: MoneyInput = strawberry.field(description="Positive, in the payment's currency and minor unit; the "
                                          "payment's refunds add up to at most its amount.")
    reason: str | None = None


@strawberry.input(description="Money received for a confirmed sale order outside Stripe (a bank transfer).")
class RecordOfflinePaymentInput:
    sale_order_id: strawberry.ID
    amount: MoneyInput = strawberry.field(description="Positive, in the sale order's currency and minor unit, at "
                                          "most its balance due.")
    reference: str = strawberry.field(description="The transfer's reference, 1 to 200 characters.")


RecordPaymentResult = Annotated[Payment | InvalidInput | NotFound, strawberry.union("RecordPaymentResult")]


@strawberry.type
class RefundMutation:
    @strawberry.mutation(permission_classes=ADMIN, description=(
        "Set a hotel's default cancellation policy (no ratePlanId: answers the Hotel) or a rate plan's own "
        "(answers the RatePlan; a plan of another hotel is InvalidInput). Sales confirmed after it commits "
        "freeze it; earlier sales keep theirs. Audited."))
    async def set_cancellation_policy(self, info: Info, input: SetCancellationPolicyInput
                                      ) -> SetCancellationPolicyResult:
        row = await policies.set_cancellation_policy(
            info.context.services, info.context.caller, decode_id(input.hotel_id, "Hotel", "hotelId"),
            decode_optional(input.rate_plan_id, "RatePlan", "ratePlanId"),
            [CancellationRule(rule.days_before_arrival, rule.fee_percent) for rule in input.rules], input.inherit)
        if input.rate_plan_id is None:
            return Hotel.from_row(row)
        return RatePlan.from_row(row)

    @strawberry.mutation(permission_classes=STAFF, description=(
        "Refund part or all of a SUCCEEDED payment: a card payment through Stripe, an offline one as a record "
        "(the money goes back by bank). Refunds of a payment add up and never exceed it. Audited."))
    async def refund_payment(self, info: Info, input: RefundPaymentInput) -> RecordPaymentResult:
        amount = inventory.money_input(input.amount.amount, input.amount.currency)
        row = await refunds.refund_payment(info.context.services, info.context.caller,
                                           target_pk(input.payment_id, "Payment"), amount, input.reason,
                                           input.payment_id)
        return Payment.from_row(row)

    @strawberry.mutation(permission_classes=STAFF, description=(
        "Record a payment received outside Stripe for a confirmed sale order: a SUCCEEDED OFFLINE payment and "
        "its ledger entry, at most what the sale still owes. Audited."))
    async def record_offline_payment(self, info: Info, input: RecordOfflinePaymentInput) -> RecordPaymentResult:
        amount = inventory.money_input(input.amount.amount, input.amount.currency)
        row = await refunds.record_offline_payment(info.context.services, info.context.caller,
                                                   target_pk(input.sale_order_id, "SaleOrder"), amount,
                                                   input.reference, input.sale_order_id)
        return Payment.from_row(row)
