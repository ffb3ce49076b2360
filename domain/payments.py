"""Money that changes hands: payment terms, credit, cancellation fees, refunds and the ledger.

Every amount is a `Money` (an exact Decimal and its currency); nothing here uses a float. Amounts
of different currencies are never combined: that raises CurrencyMismatch, as `Money.__add__` does.
A percent of an amount (a deposit, a cancellation fee) is computed exactly and rounded half-even
to the currency's minor unit once, at the end.

- Minor units: Stripe takes the amount as an integer of the currency's minor unit (JPY 0
  places, EUR 2, KWD 3). `to_minor` refuses an amount finer than that rather than round it.
- Payment terms, per agency: PREPAY pays the whole sale before confirmation; DEPOSIT pays
  `deposit_percent` of it before confirmation and the balance `balance_due_days` before
  arrival; CREDIT pays nothing at confirmation, and its unpaid sales count against its
  `credit_limit` (None: no limit).
- Cancellation: the fee is the highest `fee_percent` among the policy's rules that apply on the
  hotel-local date of cancelling; what was paid above the fee is refunded.
- The ledger: every movement is an entry of a kind and a non-negative amount; the kind says
  which way the money goes. Sums over the entries are the agency's outstanding balance and a
  sale order's paid amount; nothing is kept as a separate counter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_HALF_EVEN, Context, Decimal
from enum import StrEnum

from domain.errors import CreditLimitExceeded, CurrencyMismatch, InvalidInput, PaymentRequired
from domain.money import Money, check_money, format_amount, minor_unit, quantum, round_money, zero

# What the database keeps of an amount: below 10^10 (the same bound as prices and sale totals).
MAX_MONEY = Decimal(10) ** 10
MAX_BALANCE_DUE_DAYS = 365
MAX_CANCELLATION_DAYS = 365
MAX_CANCELLATION_RULES = 20

# Sums and products of finite decimals, never rounded (whatever the caller's thread context).
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, rounding=ROUND_HALF_EVEN)


# --- minor units ---------------------------------------------------------------------------


def to_minor(money: Money) -> int:
    """`money` as an integer of its currency's minor unit, as Stripe takes it: 1234 for 12.34 EUR,
    1234 for 1234 JPY, 1234 for 1.234 KWD. Exact for any size of amount.

    Raises ValueError for an amount that is not finite, or finer than the minor unit (12.345 EUR):
    such an amount is a bug upstream, and rounding it here would charge another amount than the
    one shown.
    """
    amount = money.amount
    if not amount.is_finite():
        raise ValueError(f"{amount} {money.currency} is not a finite amount")
    sign, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite
    units = int("".join(map(str, digits)))
    shift = exponent + minor_unit(money.currency)
    if shift >= 0:
        units *= 10**shift
    else:
        units, rest = divmod(units, 10**-shift)
        if rest:
            unit = quantum(money.currency)
            raise ValueError(f"{amount} {money.currency} is finer than the currency's minor unit ({unit})")
    return -units if sign else units


def from_minor(amount: int, currency: str) -> Money:
    """The `Money` of `amount` minor units of `currency`, with the minor unit's places: 1234 EUR
    is 12.34, 1234 JPY is 1234, 1234 KWD is 1.234. `to_minor(from_minor(n, c)) == n`."""
    return Money(Decimal(amount).scaleb(-minor_unit(currency), _EXACT), currency)


# --- helpers -------------------------------------------------------------------------------


def _same(currency: str, *values: Money) -> None:
    for value in values:
        if value.currency != currency:
            raise CurrencyMismatch(currency, value.currency)


def _minus(a: Money, b: Money) -> Money:
    _same(a.currency, b)
    return Money(_EXACT.subtract(a.amount, b.amount), a.currency)


def _at_least_zero(value: Money) -> Money:
    return value if value.amount >= 0 else zero(value.currency)


def _percent_of(total: Money, percent: int) -> Money:
    """`percent` % of `total`, rounded half-even to the minor unit."""
    exact = _EXACT.multiply(total.amount, Decimal(percent).scaleb(-2, _EXACT))
    return round_money(Money(exact, total.currency))


def _in_minor_unit(amount: Decimal, currency: str) -> bool:
    return amount == amount.quantize(quantum(currency), context=_EXACT)


def _check_amount(value: Money, field: str) -> InvalidInput | None:
    """An amount the API may store: a valid, non-negative Money below MAX_MONEY, in the
    currency's minor unit."""
    if problem := check_money(value, field):
        return problem
    if value.amount >= MAX_MONEY:
        return InvalidInput(f"{field}.amount", f"must be below {MAX_MONEY:,.0f}")
    if not _in_minor_unit(value.amount, value.currency):
        return InvalidInput(f"{field}.amount", f"must be in {value.currency}'s minor unit ({quantum(value.currency)})")
    return None


def _check_positive(amount: Money, currency: str, whose: str) -> InvalidInput | None:
    """The API's `amount` of a refund or a payment: in `currency` (`whose` it is), storable, and
    above zero."""
    if amount.currency != currency:
        return InvalidInput("amount.currency", f"must be {currency}, {whose}")
    if problem := _check_amount(amount, "amount"):
        return problem
    if amount.amount == 0:
        return InvalidInput("amount.amount", "must be positive")
    return None


# --- payment terms -------------------------------------------------------------------------


class PaymentTerms(StrEnum):
    PREPAY = "PREPAY"
    DEPOSIT = "DEPOSIT"
    CREDIT = "CREDIT"


@dataclass(frozen=True, slots=True)
class AgencyTerms:
    """How an agency pays (see the module's docstring). `check_terms` says which of the other
    fields each kind of terms takes: DEPOSIT both `deposit_percent` and `balance_due_days`,
    CREDIT an optional `credit_limit`, PREPAY none."""

    terms: PaymentTerms
    credit_limit: Money | None = None
    deposit_percent: int | None = None
    balance_due_days: int | None = None


def check_terms(terms: AgencyTerms) -> InvalidInput | None:
    """The first problem of an agency's terms, or None. Field names are the API's
    (`creditLimit`, `depositPercent`, `balanceDueDays`).

    - DEPOSIT: `depositPercent` 1 to 99 and `balanceDueDays` 0 to 365, both required; no
      `creditLimit`.
    - CREDIT: `creditLimit` optional (None: no limit), else an amount of 0 or more (0: every
      credit sale is refused), below MAX_MONEY, in its currency's minor unit; neither deposit
      field.
    - PREPAY: none of the three.
    """
    kind = terms.terms
    if terms.credit_limit is not None:
        if kind is not PaymentTerms.CREDIT:
            return InvalidInput("creditLimit", f"must be left out for {kind} terms (only CREDIT has a limit)")
        if problem := _check_amount(terms.credit_limit, "creditLimit"):
            return problem
    for value, field in ((terms.deposit_percent, "depositPercent"), (terms.balance_due_days, "balanceDueDays")):
        if kind is PaymentTerms.DEPOSIT:
            if value is None:
                return InvalidInput(field, "is required for DEPOSIT terms")
        elif value is not None:
            return InvalidInput(field, f"must be left out for {kind} terms (only DEPOSIT has it)")
    if kind is PaymentTerms.DEPOSIT:
        assert terms.deposit_percent is not None and terms.balance_due_days is not None
        if not 1 <= terms.deposit_percent <= 99:
            return InvalidInput("depositPercent", "must be 1 to 99 (PREPAY takes it all, CREDIT none)")
        if not 0 <= terms.balance_due_days <= MAX_BALANCE_DUE_DAYS:
            return InvalidInput("balanceDueDays", f"must be 0 to {MAX_BALANCE_DUE_DAYS}")
    return None


def balance_due_date(terms: AgencyTerms, check_in: date) -> date | None:
    """The date the balance of a DEPOSIT sale is due: `balance_due_days` before `check_in` (it may
    be today or past when the booking is late). None for other terms: PREPAY has no balance after
    confirmation, and CREDIT is settled against its limit, not by a date."""
    if terms.terms is not PaymentTerms.DEPOSIT:
        return None
    assert terms.balance_due_days is not None
    return check_in - timedelta(days=terms.balance_due_days)


def amount_due_now(terms: AgencyTerms, total: Money, paid: Money, *, check_in: date | None = None,
                   today: date | None = None) -> Money:
    """What must be paid before a sale of `total`, of which `paid` is paid, can be confirmed;
    never below zero (an overpayment is refunded, not due).

    - PREPAY: total - paid.
    - DEPOSIT: the deposit (total x deposit_percent %, rounded half-even to the minor unit) -
      paid. Given the stay's `check_in` and the hotel-local `today` (both or neither), the whole
      total - paid once the balance is due (today on or after `balance_due_date`): a booking made
      inside the balance period pays everything up front.
    - CREDIT: zero (the credit limit decides instead: `credit_decision`).

    Raises CurrencyMismatch when `paid` is in another currency than `total`.
    """
    if (check_in is None) != (today is None):
        raise ValueError("give both check_in and today, or neither")
    _same(total.currency, paid)
    if terms.terms is PaymentTerms.CREDIT:
        return zero(total.currency)
    if terms.terms is PaymentTerms.DEPOSIT and not _balance_is_due(terms, check_in, today):
        assert terms.deposit_percent is not None
        return _at_least_zero(_minus(_percent_of(total, terms.deposit_percent), paid))
    return _at_least_zero(_minus(total, paid))


def balance_due_now(total: Money, paid: Money, balance_due_at: datetime | None, now: datetime) -> Money:
    """What a confirmed sale of `total`, of which `paid` is paid, owes now: the balance (never below
    zero) once `balance_due_at` has come, zero before it and when there is none. `balance_due_at`
    is frozen on the sale at confirmation (DEPOSIT terms; PREPAY sales are paid in full before,
    CREDIT sales are settled against the limit). Raises CurrencyMismatch for `paid` in another
    currency than `total`."""
    _same(total.currency, paid)
    if balance_due_at is None or now < balance_due_at:
        return zero(total.currency)
    return _at_least_zero(_minus(total, paid))


def _balance_is_due(terms: AgencyTerms, check_in: date | None, today: date | None) -> bool:
    if check_in is None or today is None:
        return False
    due_on = balance_due_date(terms, check_in)
    assert due_on is not None
    return today >= due_on


# --- credit --------------------------------------------------------------------------------


def credit_decision(limit: Money | None, outstanding: Money, amount: Money) -> CreditLimitExceeded | None:
    """Whether a credit sale of `amount` may go on an agency that owes `outstanding` (see
    `outstanding`): refused when outstanding + amount > limit, so a sale that reaches the limit
    exactly passes. No limit never refuses. An agency already above its limit (say, after the
    limit was lowered) gets no further sale, even of zero.

    Raises CurrencyMismatch unless the three are in one currency.
    """
    _same(outstanding.currency, amount, *(() if limit is None else (limit,)))
    if limit is None or _EXACT.add(outstanding.amount, amount.amount) <= limit.amount:
        return None
    return CreditLimitExceeded(limit, outstanding, amount)


def confirmation_decision(terms: AgencyTerms, total: Money, paid: Money, owed: Money, check_in: date,
                          today: date) -> PaymentRequired | CreditLimitExceeded | None:
    """Whether a sale of `total` may be confirmed now, for an agency on `terms` that has `paid`
    towards it (see `paid`) and owes `owed` in all (see `outstanding`, in the sale's currency),
    for a stay arriving `check_in`, on the hotel-local `today`: PaymentRequired while money is
    due (`amount_due_now`), CreditLimitExceeded when a CREDIT sale would pass the limit
    (`credit_decision`; the sale counts what is still unpaid of it), else None.

    A CREDIT limit in another currency than the sale's refuses it too (with `outstanding` zero in
    the limit's currency): a limit bounds one currency, and a sale it cannot measure is not let
    through unmeasured.
    """
    due = amount_due_now(terms, total, paid, check_in=check_in, today=today)
    if due.amount > 0:
        return PaymentRequired(due)
    if terms.terms is not PaymentTerms.CREDIT or terms.credit_limit is None:
        return None
    unpaid = _at_least_zero(_minus(total, paid))
    if terms.credit_limit.currency != total.currency:
        return CreditLimitExceeded(terms.credit_limit, zero(terms.credit_limit.currency), unpaid)
    return credit_decision(terms.credit_limit, owed, unpaid)


# --- cancellation fees ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CancellationRule:
    """Cancelling `days_before_arrival` days or fewer before check-in costs `fee_percent` % of the
    sale's total."""

    days_before_arrival: int
    fee_percent: int


def check_policy(rules: Sequence[CancellationRule]) -> InvalidInput | None:
    """The first problem of a cancellation policy, or None. Field names are the API's
    (`rules[1].feePercent`). At most MAX_CANCELLATION_RULES rules, each 0 to 365 days before
    arrival and 0 to 100 percent, no two on the same day. Their order does not matter, and the
    percents need not rise toward arrival: the highest that applies wins. No rules: free
    cancellation."""
    if len(rules) > MAX_CANCELLATION_RULES:
        return InvalidInput("rules", f"must be at most {MAX_CANCELLATION_RULES}")
    days: dict[int, int] = {}
    for i, rule in enumerate(rules):
        at = f"rules[{i}]"
        if not 0 <= rule.days_before_arrival <= MAX_CANCELLATION_DAYS:
            return InvalidInput(f"{at}.daysBeforeArrival", f"must be 0 to {MAX_CANCELLATION_DAYS}")
        if not 0 <= rule.fee_percent <= 100:
            return InvalidInput(f"{at}.feePercent", "must be 0 to 100")
        if rule.days_before_arrival in days:
            return InvalidInput(f"{at}.daysBeforeArrival",
                                f"repeats the daysBeforeArrival of rules[{days[rule.days_before_arrival]}]")
        days[rule.days_before_arrival] = i
    return None


def cancellation_fee(rules: Iterable[CancellationRule], total: Money, check_in: date, cancelled_on: date) -> Money:
    """The fee for cancelling a sale of `total` arriving `check_in`, on the hotel-local date
    `cancelled_on` (the caller passes `hotel_today` at the moment of cancelling).

    With days_before = check_in - cancelled_on (negative after arrival), a rule applies when
    days_before <= its days_before_arrival: a rule of 7 days applies from 7 days before arrival
    on, and a rule of 0 days on the arrival day and after. The fee is the highest fee_percent of
    the rules that apply (0 when none does, or the policy has no rules) of `total`, rounded
    half-even to the minor unit.
    """
    days_before = (check_in - cancelled_on).days
    percent = max((rule.fee_percent for rule in rules if days_before <= rule.days_before_arrival), default=0)
    return _percent_of(total, percent)


# --- refunds and status --------------------------------------------------------------------


def refund_due(paid: Money, fee: Money, refunded: Money) -> Money:
    """What is still to refund after a cancellation: what was paid (received, before refunds:
    `received`) above the fee, less what was refunded already (`refunded`); never below zero (a
    fee above what was paid is owed, not refunded). Raises CurrencyMismatch unless the three are
    in one currency."""
    _same(paid.currency, fee, refunded)
    return _at_least_zero(_minus(_minus(paid, fee), refunded))


def check_refund(amount: Money, paid: Money, refunded: Money) -> InvalidInput | None:
    """The problem of refunding `amount` of a payment of `paid` of which `refunded` is refunded
    already, or None. The field is the API's `amount`: a positive amount in the payment's
    currency and minor unit, and refunds add up and never exceed what was paid
    (refunded + amount <= paid)."""
    if problem := _check_positive(amount, paid.currency, "the payment's currency"):
        return problem
    _same(paid.currency, refunded)
    left = _minus(paid, refunded)
    if amount.amount > left.amount:
        return InvalidInput("amount.amount", f"must be at most {format_amount(left.amount, left.currency)} "
                                             f"{left.currency}, what is left to refund of the payment")
    return None


class PaymentStatus(StrEnum):
    UNPAID = "UNPAID"
    PARTIALLY_PAID = "PARTIALLY_PAID"
    PAID = "PAID"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"


def payment_status(total: Money, paid: Money, refunded: Money) -> PaymentStatus:
    """The status of a sale of `total` for which `paid` was received (payments and offline
    payments, before refunds: `received`) and `refunded` returned (`refunded`). In this order:

    - REFUNDED: something was refunded, and all of what was received (refunded >= paid > 0);
    - PARTIALLY_REFUNDED: something was refunded, less than what was received;
    - PAID: nothing refunded, and paid >= total (a sale of zero is PAID);
    - UNPAID: nothing refunded, nothing paid;
    - PARTIALLY_PAID: nothing refunded, 0 < paid < total.

    Raises CurrencyMismatch unless the three are in one currency.
    """
    _same(total.currency, paid, refunded)
    if refunded.amount > 0:
        return PaymentStatus.REFUNDED if refunded.amount >= paid.amount else PaymentStatus.PARTIALLY_REFUNDED
    if paid.amount >= total.amount:
        return PaymentStatus.PAID
    return PaymentStatus.UNPAID if paid.amount <= 0 else PaymentStatus.PARTIALLY_PAID


# --- the ledger ----------------------------------------------------------------------------


class LedgerKind(StrEnum):
    SALE = "SALE"  # a confirmed sale: the agency owes its total
    PAYMENT = "PAYMENT"  # a card payment received
    REFUND = "REFUND"  # money returned to the agency
    FEE = "FEE"  # a cancellation fee charged
    CREDIT_NOTE = "CREDIT_NOTE"  # a sale (or part of it) taken back: the agency owes it no more
    OFFLINE_PAYMENT = "OFFLINE_PAYMENT"  # a payment recorded by staff (a bank transfer)


# What each kind does to what the agency owes us.
_OWED_SIGN: dict[LedgerKind, int] = {
    LedgerKind.SALE: 1,
    LedgerKind.FEE: 1,
    LedgerKind.REFUND: 1,
    LedgerKind.PAYMENT: -1,
    LedgerKind.OFFLINE_PAYMENT: -1,
    LedgerKind.CREDIT_NOTE: -1,
}


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One money movement of an agency. `amount` is never negative: the kind says which way the
    money goes. `sale_order_id`: the sale it belongs to (None: the agency's, e.g. a payment on
    account)."""

    kind: LedgerKind
    amount: Money
    sale_order_id: int | None = None


def _signed_sum(entries: Iterable[LedgerEntry], currency: str, signs: dict[LedgerKind, int]) -> Money:
    total = Decimal(0)
    for entry in entries:
        _same(currency, entry.amount)
        sign = signs.get(entry.kind, 0)
        if sign > 0:
            total = _EXACT.add(total, entry.amount.amount)
        elif sign < 0:
            total = _EXACT.subtract(total, entry.amount.amount)
    return Money(total, currency)


_PAID_SIGN = {LedgerKind.PAYMENT: 1, LedgerKind.OFFLINE_PAYMENT: 1, LedgerKind.REFUND: -1}


def outstanding(entries: Iterable[LedgerEntry], currency: str) -> Money:
    """What the agency owes us on `entries`: sales + fees + refunds - payments - offline payments
    - credit notes. Positive: it owes us; negative: we owe it (it paid ahead). Over an agency's
    whole ledger this is `Agency.outstanding`, the credit limit's measure; over one sale order's
    entries it is the order's balance due. Sums add: outstanding(a + b) = outstanding(a) +
    outstanding(b).

    Cancelling a sale posts a CREDIT_NOTE of its total and a FEE (see `cancellation_entries`);
    refunding what was paid above the fee then brings it to zero.

    Raises CurrencyMismatch for an entry in another currency: a ledger is kept in one currency.
    """
    return _signed_sum(entries, currency, _OWED_SIGN)


def received(entries: Iterable[LedgerEntry], currency: str) -> Money:
    """Payments and offline payments of `entries`, before refunds (`payment_status`'s `paid`)."""
    return _signed_sum(entries, currency, {LedgerKind.PAYMENT: 1, LedgerKind.OFFLINE_PAYMENT: 1})


def refunded(entries: Iterable[LedgerEntry], currency: str) -> Money:
    """Refunds of `entries`."""
    return _signed_sum(entries, currency, {LedgerKind.REFUND: 1})


def paid(entries: Iterable[LedgerEntry], currency: str) -> Money:
    """What was paid and kept on `entries` (those of one sale order: `SaleOrder.paid`): payments
    + offline payments - refunds."""
    return _signed_sum(entries, currency, _PAID_SIGN)


def cancellation_entries(sale_order_id: int, total: Money, fee: Money) -> tuple[LedgerEntry, ...]:
    """The entries that cancel a sale of `total` with `fee`: a CREDIT_NOTE of the total (the sale
    is taken back) and a FEE (none when zero). Refunds follow as REFUND entries when the money
    goes back (`refund_due`); a CREDIT agency that paid nothing is left owing the fee."""
    _same(total.currency, fee)
    note = LedgerEntry(LedgerKind.CREDIT_NOTE, total, sale_order_id)
    if fee.amount == 0:
        return (note,)
    return (note, LedgerEntry(LedgerKind.FEE, fee, sale_order_id))


def check_offline_payment(amount: Money, balance_due: Money) -> InvalidInput | None:
    """The problem of recording an offline payment of `amount` towards a sale whose balance due is
    `balance_due` (`outstanding` over its entries), or None. The field is the API's `amount`: a
    positive amount in the sale's currency and minor unit, at most what the sale still owes (an
    overpayment would be money to refund, not a payment)."""
    if problem := _check_positive(amount, balance_due.currency, "the sale's currency"):
        return problem
    if amount.amount > balance_due.amount:
        owed = _at_least_zero(balance_due)
        return InvalidInput("amount.amount", f"must be at most {format_amount(owed.amount, owed.currency)} "
                                             f"{owed.currency}, what the sale still owes")
    return None
