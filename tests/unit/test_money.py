"""Exact money (SPEC §2): Decimal amounts in an ISO 4217 currency, never floats."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arrears.domain.money import MoneyError, check_currency, fmt, minor_digits, parse_amount, quantize

from .strategies import fast

D = Decimal


@pytest.mark.parametrize("value", [12.5, 0.1, 50.0, float("nan"), True, False])
def test_floats_and_booleans_are_refused(value: object) -> None:
    with pytest.raises(MoneyError):
        parse_amount(value, "AUD")


@pytest.mark.parametrize(
    ("value", "currency"),
    [("12.505", "AUD"), ("0.001", "AUD"), ("100.5", "JPY"), ("1.01", "JPY"), ("1.0001", "KWD")],
)
def test_too_many_decimal_places_for_the_currency_are_refused(value: str, currency: str) -> None:
    with pytest.raises(MoneyError, match="decimal places"):
        parse_amount(value, currency)


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("12.5", "AUD", "12.50"),
        ("12.500", "AUD", "12.50"),  # trailing zeros are not extra precision
        (" 7 ", "AUD", "7.00"),
        (15, "AUD", "15.00"),
        (D("0.1"), "AUD", "0.10"),
        ("100", "JPY", "100"),
        ("100.0", "JPY", "100"),
        ("1.234", "KWD", "1.234"),
        ("1E+2", "AUD", "100.00"),
    ],
)
def test_valid_amounts_parse_exactly(value: object, currency: str, expected: str) -> None:
    got = parse_amount(value, currency)
    assert isinstance(got, Decimal)
    assert str(got) == expected
    assert fmt(got, currency) == expected


@pytest.mark.parametrize("value", ["abc", "", "12,50", "NaN", "Infinity", "-Infinity", None, [1], {"a": 1}])
def test_non_numbers_are_refused(value: object) -> None:
    with pytest.raises(MoneyError):
        parse_amount(value, "AUD")


def test_negative_amounts_only_where_allowed() -> None:
    with pytest.raises(MoneyError, match="negative"):
        parse_amount("-1.00", "AUD")
    assert parse_amount("-1.00", "AUD", allow_negative=True) == D("-1.00")


@pytest.mark.parametrize("value", ["1e30", "1" * 30, "123456789012345678901234567.5"])
def test_an_absurdly_large_amount_is_a_money_error_not_a_crash(value: str) -> None:
    """parse_amount quantizes with the default 28-digit context: an amount with more digits
    raises decimal.InvalidOperation (money.py, `quantize` at the end of parse_amount), which
    config._amount does not catch, so a scenario/API input "1e30" escaped as a crash (fixed in
    2e249b6 with an upper bound)."""
    with pytest.raises(MoneyError):
        parse_amount(value, "AUD")


def test_currencies() -> None:
    assert check_currency("AUD") == "AUD"
    for bad in ("XYZ", "aud", "", None, 36):
        with pytest.raises(MoneyError):
            check_currency(bad)  # type: ignore[arg-type]
    assert (minor_digits("AUD"), minor_digits("JPY"), minor_digits("KWD")) == (2, 0, 3)
    assert quantize(D("1"), "AUD") == D("1.00") and str(quantize(D("1"), "AUD")) == "1.00"


@given(cents=st.integers(-(10**12), 10**12))
@fast(200)
def test_every_two_place_amount_round_trips_exactly(cents: int) -> None:
    text = f"{'-' if cents < 0 else ''}{abs(cents) // 100}.{abs(cents) % 100:02d}"
    got = parse_amount(text, "AUD", allow_negative=True)
    assert got == D(cents) / 100
    assert fmt(got, "AUD") == text
    assert sum([got] * 10, D(0)) == D(cents * 10) / 100
