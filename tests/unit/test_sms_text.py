"""SMS length: GSM-7 septets or UCS-2 code units, and the segments a message takes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrears.notify.sms_text import GSM7_BASIC, GSM7_EXTENSION, SmsLength, sms_length


def test_empty_text_is_no_segment() -> None:
    assert sms_length("") == SmsLength("GSM-7", 0, 0, 160)


@pytest.mark.parametrize(
    ("n", "segments", "per_segment"),
    [(1, 1, 160), (160, 1, 160), (161, 2, 153), (306, 2, 153), (307, 3, 153), (1530, 10, 153)],
)
def test_gsm7_segment_boundaries(n: int, segments: int, per_segment: int) -> None:
    assert sms_length("a" * n) == SmsLength("GSM-7", n, segments, per_segment)


@pytest.mark.parametrize(
    ("n", "segments", "per_segment"),
    [(1, 1, 70), (70, 1, 70), (71, 2, 67), (134, 2, 67), (135, 3, 67)],
)
def test_ucs2_segment_boundaries(n: int, segments: int, per_segment: int) -> None:
    assert sms_length("й" * n) == SmsLength("UCS-2", n, segments, per_segment)


def test_whole_basic_table_is_one_septet_each() -> None:
    text = "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¡ÄÖÑÜ§¿äöñüà !\"#¤%&'()*+,-./:;<=>?\n\r"
    assert sms_length(text) == SmsLength("GSM-7", len(text), 1, 160)


def test_extension_characters_count_two() -> None:
    for c in "€[]{}^~|\\\f":
        assert sms_length(c).units == 2, c
    assert sms_length("€" * 80) == SmsLength("GSM-7", 160, 1, 160)
    assert sms_length("€" * 81) == SmsLength("GSM-7", 162, 2, 153)


def test_extension_pair_is_not_split_across_segments() -> None:
    # 306 septets would fit two segments if the 153rd/154th septets could split a pair.
    text = "a" * 152 + "€" * 77
    assert sms_length(text) == SmsLength("GSM-7", 306, 3, 153)


def test_one_character_outside_gsm7_makes_the_whole_message_ucs2() -> None:
    assert sms_length("a" * 100 + "ç").encoding == "UCS-2"  # only upper-case Ç is in GSM 03.38
    assert sms_length("a" * 100 + "ç") == SmsLength("UCS-2", 101, 2, 67)
    assert sms_length("don\u2019t").encoding == "UCS-2"  # a typographic apostrophe
    assert sms_length("\u00a0").encoding == "UCS-2"


def test_emoji_are_surrogate_pairs() -> None:
    assert sms_length("😀") == SmsLength("UCS-2", 2, 1, 70)
    assert sms_length("😀" * 35) == SmsLength("UCS-2", 70, 1, 70)
    assert sms_length("a" + "😀" * 35) == SmsLength("UCS-2", 71, 2, 67)


def test_surrogate_pair_is_not_split_across_segments() -> None:
    text = "й" * 66 + "😀" + "й" * 66  # 134 units: two segments only if the pair could split
    assert sms_length(text) == SmsLength("UCS-2", 134, 3, 67)


# --- property: the count equals an explicit split of the encoded message ---------


def _encoded(text: str) -> tuple[str, list[list[int]]]:
    """Each character as its code units: septets (ESC + code for the extension table) or UTF-16."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        return "GSM-7", [[0x1B, ord(c)] if c in GSM7_EXTENSION else [ord(c)] for c in text]
    units = []
    for c in text:
        raw = c.encode("utf-16-be")
        units.append([int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)])
    return "UCS-2", units


def _reference_segments(text: str) -> tuple[str, int, int]:
    encoding, chars = _encoded(text)
    stream = [u for units in chars for u in units]
    # Where a character starts in the unit stream: a segment may only end there.
    starts = set()
    pos = 0
    for units in chars:
        starts.add(pos)
        pos += len(units)
    starts.add(pos)
    single, multi = (160, 153) if encoding == "GSM-7" else (70, 67)
    if not stream:
        return encoding, 0, 0
    if len(stream) <= single:
        return encoding, len(stream), 1
    segments, begin = [], 0
    while begin < len(stream):
        end = min(begin + multi, len(stream))
        while end not in starts:
            end -= 1
        segments.append(stream[begin:end])
        begin = end
    assert all(len(s) <= multi for s in segments)
    return encoding, len(stream), len(segments)


_alphabet = st.sampled_from([*sorted(GSM7_BASIC | GSM7_EXTENSION), "й", "ç", "😀", "中", "\u202f"])
_gsm_only = st.sampled_from(sorted(GSM7_BASIC | GSM7_EXTENSION))


@settings(derandomize=True, max_examples=300)
@given(st.one_of(st.text(_gsm_only, max_size=700), st.text(_alphabet, max_size=400)))
def test_segments_equal_a_reference_split(text: str) -> None:
    got = sms_length(text)
    assert (got.encoding, got.units, got.segments) == _reference_segments(text)
    if got.segments > 1:
        assert got.per_segment == (153 if got.encoding == "GSM-7" else 67)
