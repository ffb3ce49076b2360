from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, localcontext

import pytest

from domain import (
    AgencyTerms,
    CancellationRule,
    CreditLimitExceeded,
    CurrencyMismatch,
    LedgerEntry,
    LedgerKind,
    PaymentRequired,
    PaymentStatus,
    PaymentTerms,
    amount_due_now,
    balance_due_date,
    balance_due_now,
    cancellation_entries,
    cancellation_fee,
    check_policy,
    check_refund,
    check_terms,
    confirmation_decision,
    credit_decision,
    from_minor,
    outstanding,
    paid,
    payment_status,
    received,
    refund_due,
    refunded,
    to_minor,
)
from domain import Money as M


def eur(amount: str) -> M:
    return M(Decimal(amount), "EUR")


def problem_of(problem):
    return (problem and problem.field, problem and problem.message)


# --- minor units ---------------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "currency", "minor"), [
    ("12.34", "EUR", 1234), ("12.3", "EUR", 1230), ("12", "EUR", 1200), ("12.340000", "EUR", 1234), ("0", "EUR", 0),
    ("1234", "JPY", 1234), ("1234.000", "JPY", 1234), ("1.2E+3", "JPY", 1200),
    ("1.234", "KWD", 1234), ("1.2", "KWD", 1200), ("-1.234", "KWD", -1234), ("0.0001", "CLF", 1),
    ("123456789012345678901234567890.12", "USD", 12345678901234567890123456789012),
])
def test_to_minor_is_the_integer_of_minor_units(amount, currency, minor):
    assert to_minor(M(Decimal(amount), currency)) == minor


def test_to_minor_is_exact_whatever_the_threads_precision():
    with localcontext() as ctx:
        ctx.prec = 3
        assert to_minor(eur("98765.43")) == 9876543
        assert from_minor(9876543, "EUR") == eur("98765.43")


@pytest.mark.parametrize(("amount", "currency"), [
    ("12.345", "EUR"), ("0.001", "EUR"), ("1234.5", "JPY"), ("1.2345", "KWD"), ("NaN", "EUR"), ("Infinity", "EUR"),
])
def test_to_minor_refuses_what_it_would_have_to_round(amount, currency):
    with pytest.raises(ValueError, match=currency):
        to_minor(M(Decimal(amount), currency))


@pytest.mark.parametrize(("minor", "currency", "amount"), [
    (1234, "EUR", "12.34"), (5, "EUR", "0.05"), (1234, "JPY", "1234"), (1234, "KWD", "1.234"), (-7, "KWD", "-0.007"),
])
def test_from_minor_carries_the_minor_units_places(minor, currency, amount):
    got = from_minor(minor, currency)
    assert got == M(Decimal(amount), currency)
    assert str(got.amount) == amount


# --- payment terms -------------------------------------------------------------------------

PREPAY = AgencyTerms(PaymentTerms.PREPAY)
DEPOSIT = AgencyTerms(PaymentTerms.DEPOSIT, deposit_percent=30, balance_due_days=14)
CREDIT = AgencyTerms(PaymentTerms.CREDIT, credit_limit=eur("5000"))


@pytest.mark.parametrize(("terms", "field", "message"), [
    (PREPAY, None, None),
    (DEPOSIT, None, None),
    (CREDIT, None, None),
    (AgencyTerms(PaymentTerms.CREDIT), None, None),
    (AgencyTerms(PaymentTerms.CREDIT, eur("0")), None, None),
    (AgencyTerms(PaymentTerms.DEPOSIT, None, 1, 0), None, None),
    (AgencyTerms(PaymentTerms.DEPOSIT, None, 99, 365), None, None),
    (AgencyTerms(PaymentTerms.PREPAY, eur("10")), "creditLimit",
     "must be left out for PREPAY terms (only CREDIT has a limit)"),
    (AgencyTerms(PaymentTerms.DEPOSIT, eur("10"), 30, 14), "creditLimit",
     "must be left out for DEPOSIT terms (only CREDIT has a limit)"),
    (AgencyTerms(PaymentTerms.PREPAY, deposit_percent=30), "depositPercent",
     "must be left out for PREPAY terms (only DEPOSIT has it)"),
    (AgencyTerms(PaymentTerms.CREDIT, balance_due_days=3), "balanceDueDays",
     "must be left out for CREDIT terms (only DEPOSIT has it)"),
    (AgencyTerms(PaymentTerms.DEPOSIT, balance_due_days=3), "depositPercent", "is required for DEPOSIT terms"),
    (AgencyTerms(PaymentTerms.DEPOSIT, deposit_percent=30), "balanceDueDays", "is required for DEPOSIT terms"),
    (AgencyTerms(PaymentTerms.DEPOSIT, None, 0, 14), "depositPercent",
     "must be 1 to 99 (PREPAY takes it all, CREDIT none)"),
    (AgencyTerms(PaymentTerms.DEPOSIT, None, 100, 14), "depositPercent",
     "must be 1 to 99 (PREPAY takes it all, CREDIT none)"),
    (AgencyTerms(PaymentTerms.DEPOSIT, None, 30, -1), "balanceDueDays", "must be 0 to 365"),
    (AgencyTerms(PaymentTerms.DEPOSIT, None, 30, 366), "balanceDueDays", "must be 0 to 365"),
    (AgencyTerms(PaymentTerms.CREDIT, eur("-0.01")), "creditLimit.amount", "must not be negative"),
    (AgencyTerms(PaymentTerms.CREDIT, eur("NaN")), "creditLimit.amount", "must be a finite decimal"),
    (AgencyTerms(PaymentTerms.CREDIT, M(Decimal(1), "eur")), "creditLimit.currency",
     "must be a 3-letter uppercase ISO currency code"),
    (AgencyTerms(PaymentTerms.CREDIT, eur("10000000000")), "creditLimit.amount", "must be below 10,000,000,000"),
    (AgencyTerms(PaymentTerms.CREDIT, eur("9999999999.99")), None, None),
    (AgencyTerms(PaymentTerms.CREDIT, eur("10.005")), "creditLimit.amount", "must be in EUR's minor unit (0.01)"),
    (AgencyTerms(PaymentTerms.CREDIT, M(Decimal("10.5"), "JPY")), "creditLimit.amount",
     "must be in JPY's minor unit (1)"),
])
def test_check_terms(terms, field, message):
    assert problem_of(check_terms(terms)) == (field, message)


@pytest.mark.parametrize(("terms", "total", "paid_", "due"), [
    (PREPAY, "1000", "0", "1000"),
    (PREPAY, "1000", "300", "700"),
    (PREPAY, "1000", "1000", "0"),
    (PREPAY, "1000", "1200", "0"),  # an overpayment is not a negative amount due
    (DEPOSIT, "1000", "0", "300.00"),
    (DEPOSIT, "1000", "100", "200.00"),
    (DEPOSIT, "1000", "300", "0"),
    (DEPOSIT, "1000", "500", "0"),  # the deposit is covered: the balance is due later
    (DEPOSIT, "333.35", "0", "100.00"),  # 100.005, half-even
    (DEPOSIT, "333.45", "0", "100.04"),  # 100.035, half-even
    (CREDIT, "1000", "0", "0"),
    (AgencyTerms(PaymentTerms.CREDIT), "1000", "50", "0"),
])
def test_amount_due_now(terms, total, paid_, due):
    got = amount_due_now(terms, eur(total), eur(paid_))
    assert got == eur(due)
    assert got.currency == "EUR"


def test_a_deposit_is_rounded_to_the_currencys_minor_unit():
    terms = AgencyTerms(PaymentTerms.DEPOSIT, deposit_percent=25, balance_due_days=7)
    assert amount_due_now(terms, M(Decimal(1002), "JPY"), M(Decimal(0), "JPY")) == M(Decimal(250), "JPY")  # 250.5
    assert amount_due_now(terms, M(Decimal(1006), "JPY"), M(Decimal(0), "JPY")) == M(Decimal(252), "JPY")  # 251.5
    assert amount_due_now(terms, M(Decimal("0.101"), "KWD"), M(Decimal(0), "KWD")) == M(Decimal("0.025"), "KWD")


CHECK_IN = date(2027, 3, 20)


@pytest.mark.parametrize(("today", "due"), [
    (CHECK_IN - timedelta(days=15), "300.00"),  # the day before the balance is due: the deposit
    (CHECK_IN - timedelta(days=14), "1000"),  # the balance is due today: everything
    (CHECK_IN - timedelta(days=2), "1000"),
])
def test_a_deposit_booking_inside_the_balance_period_pays_everything(today, due):
    assert amount_due_now(DEPOSIT, eur("1000"), eur("0"), check_in=CHECK_IN, today=today) == eur(due)


def test_the_balance_period_does_not_change_other_terms():
    for terms, due in ((PREPAY, "1000"), (CREDIT, "0")):
        assert amount_due_now(terms, eur("1000"), eur("0"), check_in=CHECK_IN, today=CHECK_IN) == eur(due)


def test_amount_due_now_takes_both_dates_or_neither():
    with pytest.raises(ValueError, match="both"):
        amount_due_now(DEPOSIT, eur("1"), eur("0"), check_in=CHECK_IN)
    with pytest.raises(ValueError, match="both"):
        amount_due_now(DEPOSIT, eur("1"), eur("0"), today=CHECK_IN)


def test_amount_due_now_refuses_mixed_currencies():
    with pytest.raises(CurrencyMismatch):
        amount_due_now(PREPAY, eur("1"), M(Decimal(0), "USD"))


def test_the_balance_is_due_balance_due_days_before_arrival():
    assert balance_due_date(DEPOSIT, CHECK_IN) == date(2027, 3, 6)
    assert balance_due_date(AgencyTerms(PaymentTerms.DEPOSIT, None, 10, 0), CHECK_IN) == CHECK_IN
    assert balance_due_date(PREPAY, CHECK_IN) is None
    assert balance_due_date(CREDIT, CHECK_IN) is None


def test_payment_required_carries_the_amount_due():
    error = PaymentRequired(eur("300.00"))
    assert error.amount_due == eur("300.00")
    assert str(error) == "300.00 EUR must be paid first"


# --- credit --------------------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "owed", "amount", "exceeds"), [
    ("5000", "0", "5000", False),  # reaching the limit exactly passes
    ("5000", "4000", "1000", False),
    ("5000", "4000", "1000.01", True),
    ("5000", "0", "5000.01", True),
    ("0", "0", "0.01", True),
    ("0", "0", "0", False),
    ("5000", "5200", "0", True),  # already above a lowered limit
    ("5000", "-300", "5300", False),  # paid ahead
    (None, "1000000", "1000000", False),
])
def test_credit_decision(limit, owed, amount, exceeds):
    got = credit_decision(None if limit is None else eur(limit), eur(owed), eur(amount))
    assert (got is not None) is exceeds
    if got is not None:
        assert (got.limit, got.outstanding, got.amount) == (eur(limit), eur(owed), eur(amount))
        assert str(got) == (f"a sale of {amount} EUR on top of {owed} EUR outstanding exceeds the credit limit of "
                            f"{limit} EUR")


@pytest.mark.parametrize(("limit", "owed", "amount"), [
    (M(Decimal(1), "USD"), eur("0"), eur("1")),
    (eur("1"), M(Decimal(0), "USD"), eur("1")),
    (eur("1"), eur("0"), M(Decimal(1), "USD")),
    (None, eur("0"), M(Decimal(1), "USD")),
])
def test_credit_decision_refuses_mixed_currencies(limit, owed, amount):
    with pytest.raises(CurrencyMismatch):
        credit_decision(limit, owed, amount)


# --- cancellation fees ---------------------------------------------------------------------

POLICY = (CancellationRule(30, 10), CancellationRule(7, 50), CancellationRule(0, 100))


@pytest.mark.parametrize(("rules", "field", "message"), [
    ((), None, None),
    (POLICY, None, None),
    ((CancellationRule(365, 0), CancellationRule(0, 100)), None, None),
    (tuple(CancellationRule(d, 5) for d in range(20)), None, None),
    (tuple(CancellationRule(d, 5) for d in range(21)), "rules", "must be at most 20"),
    ((CancellationRule(7, 50), CancellationRule(-1, 10)), "rules[1].daysBeforeArrival", "must be 0 to 365"),
    ((CancellationRule(366, 10),), "rules[0].daysBeforeArrival", "must be 0 to 365"),
    ((CancellationRule(3, -1),), "rules[0].feePercent", "must be 0 to 100"),
    ((CancellationRule(3, 101),), "rules[0].feePercent", "must be 0 to 100"),
    ((CancellationRule(7, 50), CancellationRule(3, 60), CancellationRule(7, 80)), "rules[2].daysBeforeArrival",
     "repeats the daysBeforeArrival of rules[0]"),
])
def test_check_policy(rules, field, message):
    assert problem_of(check_policy(rules)) == (field, message)


@pytest.mark.parametrize(("days_before", "fee"), [
    (60, "0.00"),
    (31, "0.00"),  # the day before the 30-day rule applies
    (30, "100.00"),  # exactly on its boundary
    (8, "100.00"),
    (7, "500.00"),
    (1, "500.00"),
    (0, "1000.00"),  # the arrival day
    (-1, "1000.00"),  # after arrival: every rule applies
    (-40, "1000.00"),
])
def test_cancellation_fee_at_the_policys_edges(days_before, fee):
    got = cancellation_fee(POLICY, eur("1000"), CHECK_IN, CHECK_IN - timedelta(days=days_before))
    assert got == eur(fee)
    assert str(got.amount) == fee


def test_no_policy_means_free_cancellation():
    assert cancellation_fee((), eur("1000"), CHECK_IN, CHECK_IN + timedelta(days=3)) == eur("0")


def test_the_highest_percent_that_applies_wins_whatever_the_order():
    rules = (CancellationRule(3, 20), CancellationRule(14, 60), CancellationRule(30, 10))
    assert cancellation_fee(rules, eur("100"), CHECK_IN, CHECK_IN - timedelta(days=20)) == eur("10")
    assert cancellation_fee(rules, eur("100"), CHECK_IN, CHECK_IN - timedelta(days=10)) == eur("60")
    assert cancellation_fee(rules, eur("100"), CHECK_IN, CHECK_IN - timedelta(days=2)) == eur("60")


def test_a_rule_without_fee_leaves_cancellation_free():
    assert cancellation_fee((CancellationRule(10, 0),), eur("100"), CHECK_IN, CHECK_IN) == eur("0")


@pytest.mark.parametrize(("total", "percent", "fee"), [
    (M(Decimal("0.05"), "EUR"), 50, M(Decimal("0.02"), "EUR")),  # 0.025
    (M(Decimal("0.07"), "EUR"), 50, M(Decimal("0.04"), "EUR")),  # 0.035
    (M(Decimal(15), "JPY"), 10, M(Decimal(2), "JPY")),  # 1.5
    (M(Decimal(25), "JPY"), 10, M(Decimal(2), "JPY")),  # 2.5
    (M(Decimal("1.005"), "KWD"), 50, M(Decimal("0.502"), "KWD")),  # 0.5025
])
def test_cancellation_fees_are_rounded_half_even(total, percent, fee):
    assert cancellation_fee((CancellationRule(5, percent),), total, CHECK_IN, CHECK_IN) == fee


# --- refunds and status --------------------------------------------------------------------


@pytest.mark.parametrize(("paid_", "fee", "refunded_", "due"), [
    ("1000", "100", "0", "900"),
    ("1000", "100", "400", "500"),
    ("1000", "100", "900", "0"),
    ("300", "500", "0", "0"),  # the fee is above what was paid: owed, not refunded
    ("0", "0", "0", "0"),
    ("1000", "0", "0", "1000"),
])
def test_refund_due(paid_, fee, refunded_, due):
    assert refund_due(eur(paid_), eur(fee), eur(refunded_)) == eur(due)


def test_refund_due_refuses_mixed_currencies():
    with pytest.raises(CurrencyMismatch):
        refund_due(eur("1"), eur("0"), M(Decimal(0), "USD"))


@pytest.mark.parametrize(("amount", "paid_", "refunded_", "field", "message"), [
    (eur("100"), eur("100"), eur("0"), None, None),
    (eur("40"), eur("100"), eur("60"), None, None),  # adds up to exactly what was paid
    (eur("0.01"), eur("100"), eur("0"), None, None),
    (eur("40.01"), eur("100"), eur("60"), "amount.amount",
     "must be at most 40.00 EUR, what is left to refund of the payment"),
    (eur("0.01"), eur("100"), eur("100"), "amount.amount",
     "must be at most 0.00 EUR, what is left to refund of the payment"),
    (eur("0"), eur("100"), eur("0"), "amount.amount", "must be positive"),
    (eur("-5"), eur("100"), eur("0"), "amount.amount", "must not be negative"),
    (eur("NaN"), eur("100"), eur("0"), "amount.amount", "must be a finite decimal"),
    (eur("1.001"), eur("100"), eur("0"), "amount.amount", "must be in EUR's minor unit (0.01)"),
    (eur("10000000000"), eur("100"), eur("0"), "amount.amount", "must be below 10,000,000,000"),
    (M(Decimal(5), "USD"), eur("100"), eur("0"), "amount.currency", "must be EUR, the payment's currency"),
    (M(Decimal(500), "JPY"), M(Decimal(1000), "JPY"), M(Decimal(600), "JPY"), "amount.amount",
     "must be at most 400 JPY, what is left to refund of the payment"),
])
def test_check_refund(amount, paid_, refunded_, field, message):
    assert problem_of(check_refund(amount, paid_, refunded_)) == (field, message)


def test_check_refund_refuses_refunds_in_another_currency_than_the_payment():
    with pytest.raises(CurrencyMismatch):
        check_refund(eur("1"), eur("10"), M(Decimal(0), "USD"))


@pytest.mark.parametrize(("total", "paid_", "refunded_", "status"), [
    ("1000", "0", "0", PaymentStatus.UNPAID),
    ("1000", "300", "0", PaymentStatus.PARTIALLY_PAID),
    ("1000", "999.99", "0", PaymentStatus.PARTIALLY_PAID),
    ("1000", "1000", "0", PaymentStatus.PAID),
    ("1000", "1100", "0", PaymentStatus.PAID),
    ("0", "0", "0", PaymentStatus.PAID),  # nothing to pay
    ("1000", "1000", "900", PaymentStatus.PARTIALLY_REFUNDED),
    ("1000", "300", "100", PaymentStatus.PARTIALLY_REFUNDED),
    ("1000", "1000", "1000", PaymentStatus.REFUNDED),
    ("1000", "300", "300", PaymentStatus.REFUNDED),
])
def test_payment_status(total, paid_, refunded_, status):
    assert payment_status(eur(total), eur(paid_), eur(refunded_)) is status


def test_payment_status_refuses_mixed_currencies():
    with pytest.raises(CurrencyMismatch):
        payment_status(eur("1"), eur("1"), M(Decimal(0), "USD"))


# --- the ledger ----------------------------------------------------------------------------


def entry(kind: LedgerKind, amount: str, sale_order_id: int | None = 1) -> LedgerEntry:
    return LedgerEntry(kind, eur(amount), sale_order_id)


LEDGER = (
    entry(LedgerKind.SALE, "1000"),
    entry(LedgerKind.PAYMENT, "300"),
    entry(LedgerKind.OFFLINE_PAYMENT, "200"),
    entry(LedgerKind.REFUND, "50"),
    entry(LedgerKind.SALE, "400", 2),
    entry(LedgerKind.CREDIT_NOTE, "400", 2),
    entry(LedgerKind.FEE, "40", 2),
    entry(LedgerKind.OFFLINE_PAYMENT, "100", None),  # on account
)


def test_outstanding_is_what_the_agency_owes_us():
    # 1000 + 400 + 40 + 50 - 300 - 200 - 100 - 400
    assert outstanding(LEDGER, "EUR") == eur("490")
    assert outstanding((), "EUR") == eur("0")
    assert outstanding((entry(LedgerKind.PAYMENT, "10"),), "EUR") == eur("-10")  # paid ahead


def test_paid_and_its_parts():
    order = [e for e in LEDGER if e.sale_order_id == 1]
    assert received(order, "EUR") == eur("500")
    assert refunded(order, "EUR") == eur("50")
    assert paid(order, "EUR") == eur("450")
    assert outstanding(order, "EUR") == eur("550")  # the order's balance due
    status = payment_status(eur("1000"), received(order, "EUR"), refunded(order, "EUR"))
    assert status is PaymentStatus.PARTIALLY_REFUNDED


def test_ledger_sums_refuse_entries_in_another_currency():
    with pytest.raises(CurrencyMismatch):
        outstanding((entry(LedgerKind.SALE, "1"), LedgerEntry(LedgerKind.SALE, M(Decimal(1), "USD"), 1)), "EUR")


def test_cancelling_a_paid_sale_then_refunding_leaves_nothing_owed():
    total, fee = eur("1000"), eur("200")
    ledger = [LedgerEntry(LedgerKind.SALE, total, 7), LedgerEntry(LedgerKind.PAYMENT, total, 7)]
    ledger += cancellation_entries(7, total, fee)
    refund = refund_due(received(ledger, "EUR"), fee, refunded(ledger, "EUR"))
    assert refund == eur("800")
    ledger.append(LedgerEntry(LedgerKind.REFUND, refund, 7))
    assert outstanding(ledger, "EUR") == eur("0")
    assert paid(ledger, "EUR") == fee
    assert refund_due(received(ledger, "EUR"), fee, refunded(ledger, "EUR")) == eur("0")


def test_cancelling_an_unpaid_credit_sale_leaves_the_fee_owed():
    total = eur("1000")
    ledger = [LedgerEntry(LedgerKind.SALE, total, 7), *cancellation_entries(7, total, eur("150"))]
    assert outstanding(ledger, "EUR") == eur("150")


def test_free_cancellation_posts_only_the_credit_note():
    assert cancellation_entries(3, eur("80"), eur("0.00")) == (LedgerEntry(LedgerKind.CREDIT_NOTE, eur("80"), 3),)
    with pytest.raises(CurrencyMismatch):
        cancellation_entries(3, eur("80"), M(Decimal(0), "USD"))


# --- confirmation ------------------------------------------------------------------------------

ARRIVAL = date(2027, 6, 10)


@pytest.mark.parametrize(("terms", "paid_", "owed", "today", "expected"), [
    # PREPAY: the whole total first, then nothing stands in the way
    (AgencyTerms(PaymentTerms.PREPAY), "0", "0", date(2027, 1, 1), ("due", "300.00")),
    (AgencyTerms(PaymentTerms.PREPAY), "100.00", "0", date(2027, 1, 1), ("due", "200.00")),
    (AgencyTerms(PaymentTerms.PREPAY), "300.00", "0", date(2027, 1, 1), None),
    # DEPOSIT 30 %, balance 14 days before arrival: the deposit, or the whole once the balance is due
    (AgencyTerms(PaymentTerms.DEPOSIT, deposit_percent=30, balance_due_days=14), "0", "0", date(2027, 1, 1),
     ("due", "90.00")),
    (AgencyTerms(PaymentTerms.DEPOSIT, deposit_percent=30, balance_due_days=14), "90.00", "0", date(2027, 1, 1), None),
    (AgencyTerms(PaymentTerms.DEPOSIT, deposit_percent=30, balance_due_days=14), "90.00", "0", date(2027, 5, 27),
     ("due", "210.00")),
    # CREDIT: no limit, under it, exactly at it, over it; what is paid already does not count
    (AgencyTerms(PaymentTerms.CREDIT), "0", "1000000", date(2027, 1, 1), None),
    (AgencyTerms(PaymentTerms.CREDIT, credit_limit=eur("1000.00")), "0", "699.99", date(2027, 1, 1), None),
    (AgencyTerms(PaymentTerms.CREDIT, credit_limit=eur("1000.00")), "0", "700.00", date(2027, 1, 1), None),
    (AgencyTerms(PaymentTerms.CREDIT, credit_limit=eur("1000.00")), "0", "700.01", date(2027, 1, 1),
     ("credit", "300.00")),
    (AgencyTerms(PaymentTerms.CREDIT, credit_limit=eur("1000.00")), "100.00", "800.00", date(2027, 1, 1), None),
])
def test_confirmation_needs_the_money_due_or_room_under_the_limit(terms, paid_, owed, today, expected):
    decision = confirmation_decision(terms, eur("300.00"), eur(paid_), eur(owed), ARRIVAL, today)
    if expected is None:
        assert decision is None
    elif expected[0] == "due":
        assert isinstance(decision, PaymentRequired) and decision.amount_due == eur(expected[1])
    else:
        assert isinstance(decision, CreditLimitExceeded) and decision.amount == eur(expected[1])
        assert decision.outstanding == eur(owed) and "exceeds the credit limit of 1000.00 EUR" in str(decision)


def test_a_credit_limit_in_another_currency_refuses_the_sale():
    terms = AgencyTerms(PaymentTerms.CREDIT, credit_limit=M(Decimal("5000"), "USD"))
    decision = confirmation_decision(terms, eur("300.00"), eur("0"), eur("0"), ARRIVAL, date(2027, 1, 1))
    assert isinstance(decision, CreditLimitExceeded)
    assert decision.outstanding == M(Decimal("0"), "USD") and decision.amount == eur("300.00")
    assert str(decision) == "the credit limit of 5000 USD bounds USD sales only: a sale of 300.00 EUR cannot go on credit"


def test_a_confirmed_sale_owes_its_balance_once_it_is_due():
    due_at = datetime(2027, 5, 27, 22, 0, tzinfo=timezone.utc)
    before, after = due_at - timedelta(seconds=1), due_at
    assert balance_due_now(eur("300.00"), eur("90.00"), due_at, before) == eur("0")
    assert balance_due_now(eur("300.00"), eur("90.00"), due_at, after) == eur("210.00")
    assert balance_due_now(eur("300.00"), eur("310.00"), due_at, after) == eur("0")  # overpaid: a refund, not due
    assert balance_due_now(eur("300.00"), eur("0"), None, after) == eur("0")  # no balance date: nothing due
    with pytest.raises(CurrencyMismatch):
        balance_due_now(eur("300.00"), M(Decimal("1"), "USD"), due_at, after)
