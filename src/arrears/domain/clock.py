"""Local calendar arithmetic in a provider's timezone, safe across DST changes.

Instants are aware UTC datetimes; local dates and wall times belong to the
provider's timezone. A wall time that does not exist (skipped by a DST change)
resolves to the first instant whose local time is at or after it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError("naive datetime where an instant was expected")
    return dt.astimezone(UTC)


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date()


def _wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def at_local(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The first instant at which the local clock on `day` shows `wall` or later."""
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if _wall(first, tz) == naive:
        return first
    # `naive` falls in a gap. fold=1 reads it with the offset after the change
    # and lands before the gap; binary-search the first instant past it.
    lo = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    hi = first
    if lo > hi:
        lo, hi = hi, lo
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if _wall(mid, tz) >= naive:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0)


def start_of_day(day: date, tz: ZoneInfo) -> datetime:
    return at_local(day, time(0, 0), tz)


def next_midnight(instant: datetime, tz: ZoneInfo) -> datetime:
    return start_of_day(local_date(instant, tz) + timedelta(days=1), tz)


def add_local_days(instant: datetime, days: int, tz: ZoneInfo) -> datetime:
    """The same local wall time `days` later (a day is 23 or 25 hours across DST)."""
    wall = _wall(instant, tz)
    return at_local(wall.date() + timedelta(days=days), wall.time(), tz)


def iso_local(instant: datetime, tz: ZoneInfo) -> str:
    """ISO 8601 with the provider's UTC offset, seconds precision."""
    return instant.astimezone(tz).replace(microsecond=0).isoformat()


def parse_local(text: str, tz: ZoneInfo) -> datetime:
    """Parse an ISO instant; one without an offset is provider-local."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        return at_local(dt.date(), dt.time(), tz)
    return dt.astimezone(UTC)
