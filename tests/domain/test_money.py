from decimal import Decimal

import pytest

from domain import CurrencyMismatch, Money, check_money, format_amount, is_currency_code, minor_unit, money_sum, round_money


def test_money_multiplies():
    rate = Money(Decimal("99.95"), "EUR")
    assert rate.times(3) == Money(Decimal("299.85"), "EUR")


def test_amounts_add_up_in_one_currency():
    assert money_sum([Money(Decimal("1.10"), "USD"), Money(Decimal("2.20"), "USD")], "USD") == Money(
        Decimal("3.30"), "USD"
    )


def test_an_empty_sum_is_zero_in_the_given_currency():
    assert money_sum([], "GBP") == Money(Decimal(0), "GBP")


def test_mixing_currencies_raises_with_both_currencies():
    with pytest.raises(CurrencyMismatch) as raised:
        money_sum([Money(Decimal(1), "EUR"), Money(Decimal(1), "USD")], "EUR")
    assert (raised.value.expected, raised.value.got) == ("EUR", "USD")


@pytest.mark.parametrize(
    ("code", "valid"),
    [("EUR", True), ("eur", False), ("EU", False), ("EURO", False), ("E1R", False), ("", False), ("EUR\n", False)],
)
def test_currency_codes_are_three_uppercase_letters(code, valid):
    assert is_currency_code(code) is valid


@pytest.mark.parametrize(
    ("money", "field", "message"),
    [
        (Money(Decimal("0"), "EUR"), None, None),
        (Money(Decimal("12.5"), "EUR"), None, None),
        (Money(Decimal("-0.01"), "EUR"), "rate.amount", "must not be negative"),
        (Money(Decimal("NaN"), "EUR"), "rate.amount", "must be a finite decimal"),
        (Money(Decimal("Infinity"), "EUR"), "rate.amount", "must be a finite decimal"),
        (Money(Decimal("10"), "eur"), "rate.currency", "must be a 3-letter uppercase ISO currency code"),
    ],
)
def test_check_money(money, field, message):
    problem = check_money(money, "rate")
    assert (problem and problem.field, problem and problem.message) == (field, message)


@pytest.mark.parametrize(
    ("amount", "currency", "rounded"),
    [
        ("10.125", "EUR", "10.12"),
        ("10.135", "EUR", "10.14"),
        ("-10.125", "EUR", "-10.12"),
        ("1234.5", "JPY", "1234"),
        ("1235.5", "JPY", "1236"),
        ("1.2345", "KWD", "1.234"),
        ("1.2355", "BHD", "1.236"),
        ("1.23456", "CLF", "1.2346"),
        ("7.005", "XYZ", "7.00"),
    ],
)
def test_round_money_is_half_even_to_the_currencys_minor_unit(amount, currency, rounded):
    got = round_money(Money(Decimal(amount), currency))
    assert got == Money(Decimal(rounded), currency)
    assert got.amount.as_tuple().exponent == -minor_unit(currency)


def test_minor_units_follow_iso_4217_with_two_by_default():
    assert [minor_unit(c) for c in ("JPY", "KRW", "EUR", "USD", "KWD", "BHD", "CLF", "XXY")] == [0, 0, 2, 2, 3, 3, 4, 2]


@pytest.mark.parametrize(("amount", "currency", "text"), [
    ("120", "EUR", "120.00"), ("120.5", "EUR", "120.50"), ("12000.00", "JPY", "12000"), ("12.375", "KWD", "12.375"),
    ("12.5", "KWD", "12.500"), ("120.125", "EUR", "120.125"), ("0.5", "JPY", "0.5"),
])
def test_an_amount_shows_its_currencys_places_and_never_rounds(amount, currency, text):
    assert format_amount(Decimal(amount), currency) == text
