"""Contact details: phone numbers in E.164."""

from __future__ import annotations

import phonenumbers


def normalise_phone(text: str, region: str | None = None) -> str:
    """E.164 form of a phone number; raises ValueError naming what is wrong."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{text!r} is not a phone number ({exc})") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"{text!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
