"""Public holiday calendars from the `holidays` package (data, no I/O)."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import holidays

from arrears.domain.rules import HolidayCalendar, RuleSet


class UnknownCalendar(ValueError):
    pass


@lru_cache(maxsize=256)
def _calendar(country: str, subdivision: str | None) -> holidays.HolidayBase:
    try:
        return holidays.country_holidays(country, subdiv=subdivision)
    except NotImplementedError as exc:
        raise UnknownCalendar(f"no public holiday calendar: {exc}") from exc


def check_calendar(country: str, subdivision: str | None) -> None:
    """Raise UnknownCalendar naming what is wrong with a country/subdivision pair."""
    _calendar(country, subdivision)


def holiday_calendar(rules: RuleSet) -> HolidayCalendar | None:
    if not rules.holiday_country:
        return None
    cal = _calendar(rules.holiday_country, rules.holiday_subdivision)

    def is_holiday(day: date) -> bool:
        return day in cal

    return is_holiday
