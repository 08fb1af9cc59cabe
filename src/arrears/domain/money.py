"""Exact money: Decimal amounts in one ISO 4217 currency per provider."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from babel.numbers import get_currency_precision, is_currency

ZERO = Decimal("0")
# Stored as an integer count of ten-thousandths in a signed 64-bit column.
MAX_AMOUNT = Decimal("100000000000000")


class MoneyError(ValueError):
    """An amount that is not a valid sum of money in the provider's currency."""


def check_currency(code: str) -> str:
    if not isinstance(code, str) or not is_currency(code):
        raise MoneyError(f"unknown ISO 4217 currency {code!r}")
    return code


def minor_digits(currency: str) -> int:
    return int(get_currency_precision(currency))


def parse_amount(value: object, currency: str, *, allow_negative: bool = False) -> Decimal:
    """Parse a string (or int/Decimal) into an exact amount of `currency`.

    Floats are refused: a float cannot say 0.10 exactly.
    """
    if isinstance(value, (bool, float)):
        raise MoneyError(f'amount {value!r} must be a string such as "12.50", not a float')
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation as exc:
            raise MoneyError(f"amount {value!r} is not a number") from exc
    else:
        raise MoneyError(f'amount {value!r} must be a string such as "12.50"')
    if not amount.is_finite():
        raise MoneyError(f"amount {value!r} is not a finite number")
    if abs(amount) >= MAX_AMOUNT:
        raise MoneyError(f"amount {value!r} is too large (at most {MAX_AMOUNT - 1})")
    digits = minor_digits(currency)
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > digits and amount != amount.quantize(Decimal(1).scaleb(-digits)):
        raise MoneyError(f"amount {value!r} has more than {digits} decimal places for {currency}")
    if amount < 0 and not allow_negative:
        raise MoneyError(f"amount {value!r} must not be negative")
    return quantize(amount, currency)


def quantize(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-minor_digits(currency)))


def fmt(amount: Decimal, currency: str) -> str:
    """The canonical string form used in the API and the simulation output."""
    return str(quantize(amount, currency))
