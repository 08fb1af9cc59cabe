"""How long an SMS is: GSM 03.38 septets or UCS-2 code units, and how many segments."""

from __future__ import annotations

from dataclasses import dataclass

# GSM 03.38 default alphabet. ESC (0x1B) is left out: it only introduces the extension table.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each costs ESC + the character, two septets.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

SINGLE_GSM7 = 160
MULTI_GSM7 = 153  # 7 septets go to the concatenation header
SINGLE_UCS2 = 70
MULTI_UCS2 = 67


@dataclass(frozen=True)
class SmsLength:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int
    per_segment: int  # capacity of one segment in units for this message


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def sms_length(text: str) -> SmsLength:
    """Encoding, length and segment count of `text` sent as one (possibly concatenated) SMS."""
    if is_gsm7(text):
        weights = [2 if c in GSM7_EXTENSION else 1 for c in text]
        encoding, single, multi = "GSM-7", SINGLE_GSM7, MULTI_GSM7
    else:
        weights = [2 if ord(c) > 0xFFFF else 1 for c in text]  # astral characters are surrogate pairs
        encoding, single, multi = "UCS-2", SINGLE_UCS2, MULTI_UCS2
    units = sum(weights)
    if units == 0:
        return SmsLength(encoding, 0, 0, single)
    if units <= single:
        return SmsLength(encoding, units, 1, single)
    return SmsLength(encoding, units, _segments(weights, multi), multi)


def _segments(weights: list[int], capacity: int) -> int:
    # Greedy fill; a character's units never straddle two segments, since a phone
    # cannot join an escape sequence or a surrogate pair split across parts.
    segments, used = 1, 0
    for w in weights:
        if used + w > capacity:
            segments += 1
            used = 0
        used += w
    return segments
