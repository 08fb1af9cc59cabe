"""Schedule: when automatic suspension may act (SPEC §4 windows, holidays, closure dates)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from arrears.domain.calendars import holiday_calendar
from arrears.domain.clock import at_local, iso_local
from arrears.domain.rules import RuleSet, Schedule, Window

from .oracles import ref_allowed
from .strategies import EPOCH, FixedHolidays, days_2026, fast, instants_on, rule_sets, zones

SYD = ZoneInfo("Australia/Sydney")
NY = ZoneInfo("America/New_York")
WEEKDAYS = frozenset(range(5))
QUARTER = timedelta(minutes=15)


def rules_with(
    windows: tuple[Window, ...] = (), closures: frozenset[date] = frozenset(), **kw: object
) -> RuleSet:
    return RuleSet(
        "r",
        Decimal("50.00"),
        14,
        Decimal("10.00"),
        EPOCH,
        windows=windows,
        closure_dates=closures,
        **kw,  # type: ignore[arg-type]
    )


def brute_first_allowed(schedule: Schedule, t: datetime, horizon: timedelta) -> datetime | None:
    """The first allowed instant ≥ t, stepping a minute to the next UTC quarter-hour, then
    a quarter-hour at a time (every window edge, DST change and midnight of the zones we
    use is on a UTC quarter-hour, so nothing is stepped over)."""
    s, end = t, t + horizon
    while s <= end:
        if schedule.allowed(s):
            return s
        s = s + timedelta(minutes=1) if s.minute % 15 else s + QUARTER
    return None


schedules = st.tuples(zones, days_2026).flatmap(
    lambda zd: st.tuples(
        st.just(zd[0]),
        rule_sets(zd[1]),
        st.frozensets(st.integers(-1, 8).map(lambda d: zd[1] + timedelta(days=d)), max_size=3),
        instants_on(zd[1], zd[0], whole_minutes=True),
    )
)


@given(case=schedules)
@fast(100)
def test_next_allowed_is_the_first_allowed_instant_at_or_after_t(
    case: tuple[ZoneInfo, RuleSet, frozenset[date], datetime],
) -> None:
    tz, rules, holidays, t = case
    schedule = Schedule(rules, tz, FixedHolidays(holidays).is_holiday)
    horizon = timedelta(days=12)
    expected = brute_first_allowed(schedule, t, horizon)
    got = schedule.next_allowed(t)
    if expected is None:
        assert got is None or got > t + horizon
    else:
        assert got == expected, (iso_local(got, tz) if got else None, iso_local(expected, tz))
        assert schedule.allowed(got)


@given(case=schedules)
@fast(100)
def test_allowed_follows_the_windows_on_the_local_wall_clock(
    case: tuple[ZoneInfo, RuleSet, frozenset[date], datetime],
) -> None:
    tz, rules, holidays, t = case
    is_holiday = FixedHolidays(holidays).is_holiday
    schedule = Schedule(rules, tz, is_holiday)
    for s in (t, t + timedelta(minutes=7), t + timedelta(hours=5, seconds=1)):
        expected = ref_allowed(rules, is_holiday, tz, s)
        if expected is not None:
            assert schedule.allowed(s) is expected, iso_local(s, tz)


def test_business_hours_window_with_weekend_and_closure() -> None:
    rules = rules_with((Window(WEEKDAYS, time(9), time(17)),), frozenset({date(2026, 3, 9)}))
    s = Schedule(rules, SYD)
    fri_evening = at_local(date(2026, 3, 6), time(17, 0), SYD)  # end is exclusive
    assert not s.allowed(fri_evening)
    assert s.allowed(fri_evening - timedelta(seconds=1))
    # Saturday, Sunday, then Monday the 9th is a closure date: Tuesday 09:00.
    assert iso_local(s.next_allowed(fri_evening), SYD) == "2026-03-10T09:00:00+11:00"  # type: ignore[arg-type]
    inside = at_local(date(2026, 3, 10), time(12, 34, 56), SYD)
    assert s.next_allowed(inside) == inside


def test_window_ending_at_midnight_runs_to_the_end_of_the_day() -> None:
    s = Schedule(rules_with((Window(frozenset({0}), time(22), time(0)),)), SYD)
    assert s.allowed(at_local(date(2026, 3, 9), time(23, 59, 59), SYD))
    assert not s.allowed(at_local(date(2026, 3, 10), time(0, 0), SYD))
    assert not s.allowed(at_local(date(2026, 3, 9), time(21, 59, 59), SYD))


def test_public_holidays_close_the_day() -> None:
    rules = rules_with(holiday_country="AU", holiday_subdivision="NSW")
    s = Schedule(rules, SYD, holiday_calendar(rules))
    australia_day = at_local(date(2026, 1, 26), time(10), SYD)
    assert not s.allowed(australia_day)
    assert s.next_allowed(australia_day) == at_local(date(2026, 1, 27), time(0), SYD)
    assert s.allowed(at_local(date(2026, 1, 27), time(10), SYD))


def test_no_windows_means_any_time() -> None:
    s = Schedule(rules_with(), NY)
    t = datetime(2026, 3, 8, 7, 0, 1, tzinfo=UTC)
    assert s.allowed(t)
    assert s.next_allowed(t) == t


def test_next_allowed_is_allowed_when_a_window_lies_inside_a_dst_gap() -> None:
    """A nightly 02:00-02:30 window does not exist on the spring-forward day (02:00 -> 03:00).

    next_allowed must then skip to the next night's window. (Before 2e249b6 it returned
    03:00, the instant both ends of the empty window resolve to, which allowed() refuses.)
    """
    s = Schedule(rules_with((Window(frozenset(range(7)), time(2, 0), time(2, 30)),)), SYD)
    t = at_local(date(2026, 10, 4), time(1, 0), SYD)
    got = s.next_allowed(t)
    assert got is not None
    assert s.allowed(got), f"next_allowed returned {iso_local(got, SYD)}, which is not allowed"
    assert iso_local(got, SYD) == "2026-10-05T02:00:00+11:00"
