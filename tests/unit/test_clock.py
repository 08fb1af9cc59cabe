"""clock.py: local calendar arithmetic across DST changes (SPEC §3: dates are provider-local)."""

from __future__ import annotations

import bisect
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arrears.domain.clock import (
    add_local_days,
    at_local,
    iso_local,
    local_date,
    next_midnight,
    parse_local,
    start_of_day,
    utc,
)

from .strategies import DST_DAYS, ZONE_NAMES, days_2026, fast, instants_on, quarter, zones


def wall(t: datetime, tz: ZoneInfo) -> datetime:
    return t.astimezone(tz).replace(tzinfo=None)


def _minute_walls(day: date, tz: ZoneInfo) -> tuple[list[datetime], list[datetime]]:
    """Every UTC minute around a local day, with the running maximum of the wall clock."""
    start = datetime.combine(day, time(0, 0), tzinfo=UTC) - timedelta(hours=16)
    instants = [start + timedelta(minutes=m) for m in range(0, 56 * 60)]
    running: list[datetime] = []
    for t in instants:
        w = wall(t, tz)
        running.append(w if not running or w > running[-1] else running[-1])
    return instants, running


@pytest.mark.parametrize(("zone", "day"), [(z, d) for z, days in DST_DAYS.items() for d in days])
def test_at_local_every_quarter_hour_of_dst_days_is_the_first_instant_showing_it(
    zone: str, day: date
) -> None:
    tz = ZoneInfo(zone)
    # The day really is a change day: midnight and the next midnight have different offsets.
    assert (
        datetime.combine(day, time(0), tzinfo=tz).utcoffset()
        != datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).utcoffset()
    )
    instants, running = _minute_walls(day, tz)
    gaps = 0
    for q in range(96):
        requested = datetime.combine(day, quarter(q))
        got = at_local(day, quarter(q), tz)
        assert got.utcoffset() == timedelta(0), "an instant is UTC"
        assert wall(got, tz) >= requested
        # Brute force: the first UTC minute at which the local clock shows `requested` or later.
        first = instants[bisect.bisect_left(running, requested)]
        assert got == first, (zone, day, quarter(q), got, first)
        # ... and no second before it qualifies.
        assert wall(got - timedelta(seconds=1), tz) < requested
        gaps += wall(got, tz) != requested
    # Spring-forward days skip an hour (4 quarter-hours), fall-back days skip none.
    assert gaps in (0, 4)


def test_at_local_in_a_gap_and_in_a_repeated_hour() -> None:
    ny = ZoneInfo("America/New_York")
    # 2026-03-08 02:30 does not exist in New York: the clock jumps 02:00 EST -> 03:00 EDT.
    assert at_local(date(2026, 3, 8), time(2, 30), ny) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    # 2026-11-01 01:30 happens twice: the first one (EDT) counts.
    assert at_local(date(2026, 11, 1), time(1, 30), ny) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    syd = ZoneInfo("Australia/Sydney")
    assert iso_local(at_local(date(2026, 10, 4), time(2, 15), syd), syd) == "2026-10-04T03:00:00+11:00"
    assert iso_local(at_local(date(2026, 4, 5), time(2, 15), syd), syd) == "2026-04-05T02:15:00+11:00"


@given(
    zone=st.sampled_from((*ZONE_NAMES, "America/Santiago", "America/Havana", "Asia/Beirut")), day=days_2026
)
@fast(200)
def test_start_of_day_is_the_first_instant_of_the_local_date(zone: str, day: date) -> None:
    tz = ZoneInfo(zone)
    s = start_of_day(day, tz)
    assert local_date(s, tz) == day
    assert local_date(s - timedelta(seconds=1), tz) == day - timedelta(days=1)
    assert next_midnight(s - timedelta(seconds=1), tz) == s


def test_start_of_day_where_midnight_does_not_exist() -> None:
    # Santiago springs forward at 24:00 on 2026-09-05: 2026-09-06 starts at 01:00.
    tz = ZoneInfo("America/Santiago")
    s = start_of_day(date(2026, 9, 6), tz)
    assert iso_local(s, tz) == "2026-09-06T01:00:00-03:00"
    assert local_date(s - timedelta(seconds=1), tz) == date(2026, 9, 5)


@given(data=st.data(), tz=zones, day=days_2026, days=st.integers(-400, 400))
@fast(200)
def test_add_local_days_keeps_the_wall_time(data: st.DataObject, tz: ZoneInfo, day: date, days: int) -> None:
    t = data.draw(instants_on(day, tz))
    got = add_local_days(t, days, tz)
    before, after = wall(t, tz), wall(got, tz)
    target = before + timedelta(days=days)
    if wall(target.replace(tzinfo=tz).astimezone(UTC), tz) == target:
        # The wall time exists on the target day: exactly it, and its first occurrence.
        assert after == target
        assert wall(got - timedelta(seconds=1), tz) < target
    else:
        # It falls in a gap: the first instant after the gap, at most an hour of wall time later.
        assert target < after <= target + timedelta(hours=1)
    if tz.key in ("UTC", "Asia/Kolkata"):
        assert got - t == timedelta(days=days)


def test_add_local_days_across_a_change_is_not_24_hours() -> None:
    tz = ZoneInfo("Europe/London")
    t = at_local(date(2026, 3, 28), time(10, 0), tz)
    later = add_local_days(t, 1, tz)
    assert iso_local(later, tz) == "2026-03-29T10:00:00+01:00"
    assert later - t == timedelta(hours=23)
    t = at_local(date(2026, 10, 24), time(10, 0), tz)
    assert add_local_days(t, 1, tz) - t == timedelta(hours=25)


@given(tz=zones, day=days_2026, data=st.data())
@fast(200)
def test_iso_local_has_seconds_and_the_provider_offset(tz: ZoneInfo, day: date, data: st.DataObject) -> None:
    t = data.draw(instants_on(day, tz)) + timedelta(microseconds=data.draw(st.integers(0, 999_999)))
    text = iso_local(t, tz)
    parsed = datetime.fromisoformat(text)
    assert parsed.utcoffset() == t.astimezone(tz).utcoffset()
    assert parsed == t.replace(microsecond=0)
    assert "." not in text and len(text) == len("2026-01-01T00:00:00+00:00")
    # parse_local reads it back as the same instant, and a naive text as local time.
    assert parse_local(text, tz) == t.replace(microsecond=0)
    # A naive local text names the first instant showing it (an hour earlier in a repeated hour).
    repeated = t.astimezone(tz).fold == 1
    assert parse_local(text[:19], tz) == t.replace(microsecond=0) - timedelta(hours=1 if repeated else 0)


def test_utc_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError):
        utc(datetime(2026, 1, 1))
    assert utc(datetime(2026, 1, 1, 11, tzinfo=ZoneInfo("Australia/Sydney"))) == datetime(
        2026, 1, 1, 0, tzinfo=UTC
    )
