"""Properties of the money rules on random amounts, ledgers and policies."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import (
    CancellationRule,
    LedgerEntry,
    LedgerKind,
    Money,
    cancellation_entries,
    cancellation_fee,
    check_policy,
    check_refund,
    credit_decision,
    from_minor,
    minor_unit,
    outstanding,
    paid,
    received,
    refund_due,
    refunded,
    to_minor,
)

SETTINGS = settings(max_examples=200, deadline=None)
CURRENCIES = st.sampled_from(("JPY", "EUR", "KWD"))


def money(currency: str, hi: int = 10**9) -> st.SearchStrategy[Money]:
    return st.integers(0, hi).map(lambda n: from_minor(n, currency))


def ledger(currency: str) -> st.SearchStrategy[list[LedgerEntry]]:
    return st.lists(st.builds(LedgerEntry, st.sampled_from(LedgerKind), money(currency, 10**6),
                              st.sampled_from((None, 1, 2))), max_size=12)


@SETTINGS
@given(currency=CURRENCIES, minor=st.integers(-(10**15), 10**15))
def test_minor_units_round_trip(currency, minor):
    m = from_minor(minor, currency)
    assert m.amount.as_tuple().exponent == -minor_unit(currency)
    assert to_minor(m) == minor


@SETTINGS
@given(currency=CURRENCIES, minor=st.integers(-(10**15), 10**15), extra=st.integers(0, 4))
def test_an_amount_in_the_minor_unit_round_trips_whatever_its_trailing_zeros(currency, minor, extra):
    m = from_minor(minor, currency)
    padded = Money(m.amount.quantize(Decimal(1).scaleb(-minor_unit(currency) - extra)), currency)
    assert to_minor(padded) == minor
    assert from_minor(to_minor(padded), currency) == padded


@SETTINGS
@given(data=st.data(), currency=CURRENCIES)
def test_outstanding_is_additive(data, currency):
    a, b = data.draw(ledger(currency)), data.draw(ledger(currency))
    both = outstanding(a + b, currency)
    assert both.amount == outstanding(a, currency).amount + outstanding(b, currency).amount
    assert paid(a + b, currency).amount == paid(a, currency).amount + paid(b, currency).amount


@SETTINGS
@given(data=st.data(), currency=CURRENCIES)
def test_the_agencys_outstanding_is_the_sum_over_its_sale_orders(data, currency):
    entries = data.draw(ledger(currency))
    by_order = sum((outstanding([e for e in entries if e.sale_order_id == k], currency).amount for k in (None, 1, 2)),
                   Decimal(0))
    assert outstanding(entries, currency).amount == by_order
    assert paid(entries, currency).amount == received(entries, currency).amount - refunded(entries, currency).amount


@SETTINGS
@given(data=st.data(), currency=CURRENCIES)
def test_accepted_refunds_never_sum_above_what_was_paid(data, currency):
    payment = data.draw(money(currency, 10**5))
    done = from_minor(0, currency)
    for asked in data.draw(st.lists(money(currency, 10**5), max_size=8)):
        if check_refund(asked, payment, done) is None:
            done = done + asked
        assert done.amount <= payment.amount
    # and what is left can always be refunded in one go
    left = Money(payment.amount - done.amount, currency)
    assert left.amount == 0 or check_refund(left, payment, done) is None


@SETTINGS
@given(data=st.data(), currency=CURRENCIES)
def test_cancelling_and_refunding_what_is_due_leaves_the_fee_or_the_unpaid_part_owed(data, currency):
    total = data.draw(money(currency, 10**6))
    payment = data.draw(money(currency, to_minor(total)))  # at most the total
    rules = data.draw(st.lists(st.builds(CancellationRule, st.integers(0, 365), st.integers(0, 100)), max_size=5,
                               unique_by=lambda r: r.days_before_arrival))
    assert check_policy(rules) is None
    check_in = date(2027, 6, 1)
    fee = cancellation_fee(rules, total, check_in, check_in - timedelta(days=data.draw(st.integers(-5, 400))))
    assert 0 <= fee.amount <= total.amount
    entries = [LedgerEntry(LedgerKind.SALE, total, 1), LedgerEntry(LedgerKind.PAYMENT, payment, 1)]
    entries += cancellation_entries(1, total, fee)
    refund = refund_due(received(entries, currency), fee, refunded(entries, currency))
    if refund.amount:
        entries.append(LedgerEntry(LedgerKind.REFUND, refund, 1))
    assert outstanding(entries, currency).amount == max(fee.amount - payment.amount, Decimal(0))
    assert paid(entries, currency).amount == min(payment.amount, fee.amount)


@SETTINGS
@given(data=st.data(), currency=CURRENCIES)
def test_a_fee_never_falls_as_arrival_nears(data, currency):
    total = data.draw(money(currency, 10**6))
    rules = data.draw(st.lists(st.builds(CancellationRule, st.integers(0, 60), st.integers(0, 100)), max_size=5))
    check_in = date(2027, 6, 1)
    fees = [cancellation_fee(rules, total, check_in, check_in - timedelta(days=n)).amount for n in range(70, -3, -1)]
    assert fees == sorted(fees)


@SETTINGS
@given(data=st.data(), currency=CURRENCIES)
def test_credit_sales_accepted_one_by_one_never_pass_the_limit(data, currency):
    limit = data.draw(money(currency, 10**5))
    owed = from_minor(0, currency)
    for amount in data.draw(st.lists(money(currency, 10**4), max_size=10)):
        if credit_decision(limit, owed, amount) is None:
            owed = owed + amount
        assert owed.amount <= limit.amount
