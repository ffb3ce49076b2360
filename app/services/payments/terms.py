"""An agency's payment terms as the API sets them (createAgency, updateAgency)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.services.errors import InvalidInput
from app.services.inventory import money_input
from db import models
from domain import AgencyTerms, Money, PaymentTerms, check_terms


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()  # a field left out of an update: as it is (or cleared, when the terms change)


@dataclass(frozen=True, slots=True)
class TermsChange:
    """What createAgency or updateAgency was given; KEEP where a field was left out. A credit
    limit is (amount text, currency) or None for no limit."""

    terms: str | None = None
    credit_limit: tuple[str, str] | None = KEEP
    deposit_percent: int | None = KEEP
    balance_due_days: int | None = KEEP


def _limit(value: tuple[str, str] | None) -> Money | None:
    return None if value is None else money_input(*value, field="creditLimit")


def current_terms(agency: models.Agency) -> AgencyTerms:
    limit = None if agency.credit_limit is None else Money(agency.credit_limit, agency.credit_currency or "")
    return AgencyTerms(PaymentTerms(agency.payment_terms), limit, agency.deposit_percent, agency.balance_due_days)


def changed_terms(current: AgencyTerms, change: TermsChange) -> AgencyTerms:
    """The terms after `change`, checked (InvalidInput names the API's field). When the kind of
    terms changes, the fields left out are cleared: a DEPOSIT's percent means nothing on CREDIT."""
    kind = current.terms
    if change.terms is not None:
        try:
            kind = PaymentTerms(change.terms.strip().upper())
        except ValueError:
            raise InvalidInput("paymentTerms", f"paymentTerms must be PREPAY, DEPOSIT or CREDIT, got {change.terms!r}") \
                from None
    base = current if kind is current.terms else AgencyTerms(kind)
    terms = AgencyTerms(
        kind,
        base.credit_limit if change.credit_limit is KEEP else _limit(change.credit_limit),
        base.deposit_percent if change.deposit_percent is KEEP else change.deposit_percent,
        base.balance_due_days if change.balance_due_days is KEEP else change.balance_due_days,
    )
    if problem := check_terms(terms):
        raise InvalidInput(problem.field, f"{problem.field} {problem.message}")
    return terms


def store_terms(agency: models.Agency, terms: AgencyTerms) -> None:
    agency.payment_terms = terms.terms.value
    agency.credit_limit = None if terms.credit_limit is None else terms.credit_limit.amount
    agency.credit_currency = None if terms.credit_limit is None else terms.credit_limit.currency
    agency.deposit_percent = terms.deposit_percent
    agency.balance_due_days = terms.balance_due_days
