"""What the API shows of a group's or a sale order's money, computed from rows the loaders read
(the agency, the bookings, the hotel's zone, the ledger sums): the rules are domain.payments'."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from app.services.payments.ledger import owed, paid_towards, received_and_refunded
from app.services.payments.terms import current_terms
from domain import AgencyTerms, Money, PaymentStatus, amount_due_now, balance_due_now, hotel_today, payment_status


def bookings_total(bookings: Sequence[Any]) -> Money:
    """The frozen prices of a group's bookings, added up."""
    currency = bookings[0].currency if bookings else "EUR"
    return Money(sum((row.total_amount for row in bookings), Decimal(0)), currency)


def due(terms: AgencyTerms, total: Money, paid: Money, check_in: date, time_zone: str, now: datetime,
        sale_order: Any | None) -> Money:
    """What a group's agency must pay now: while held, before it can be confirmed (domain.payments
    `amount_due_now`, at the hotel's today; zero for a CREDIT agency); once confirmed (`sale_order`),
    its balance when the date frozen on the sale has come (`balance_due_now`)."""
    if sale_order is not None:
        return balance_due_now(total, paid, sale_order.balance_due_at, now)
    return amount_due_now(terms, total, paid, check_in=check_in, today=hotel_today(now, time_zone))


def due_now(agency: Any, bookings: Sequence[Any], ledger: Sequence[Any], time_zone: str, now: datetime,
            sale_order: Any | None) -> Money:
    """`due`, from the rows the API's loaders read."""
    total = bookings_total(bookings)
    return due(current_terms(agency), total, paid_towards(ledger, total.currency),
               min(row.check_in for row in bookings), time_zone, now, sale_order)


@dataclass(frozen=True, slots=True)
class SaleFigures:
    status: PaymentStatus
    paid: Money  # payments - refunds
    balance_due: Money  # what the agency still owes on the sale (negative: a refund is due to it)


def sale_figures(total: Money, ledger: Sequence[Any]) -> SaleFigures:
    received, refunded = received_and_refunded(ledger, total.currency)
    return SaleFigures(payment_status(total, received, refunded), paid_towards(ledger, total.currency),
                       owed(ledger, total.currency))
