"""Rule sets: thresholds, the stage ladder, windows, holidays and targeting (SPEC §4)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import cached_property
from zoneinfo import ZoneInfo

from arrears.domain.clock import at_local, local_date
from arrears.domain.model import ServiceStatus

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
AMOUNT_BASES = ("total_owing", "overdue_balance")
# Exclusion kinds that, under restore_when_excluded, end an episode.
RESTORING_EXCLUSIONS = frozenset({"excluded_group", "omit_flag", "payment_plan", "dispute", "complaint_case"})


@dataclass(frozen=True)
class Stage:
    name: str
    min_overdue_days: int
    status: ServiceStatus = ServiceStatus.RESTRICTED
    min_overdue_amount: Decimal | None = None  # None: the rule set's
    action: str | None = None  # provisioning action; None: the status word

    @property
    def provisioning_action(self) -> str:
        return self.action or self.status.value


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time  # exclusive; 00:00 means the end of the day

    def end_on(self, day: date, tz: ZoneInfo) -> datetime:
        if self.end == time(0, 0):
            return at_local(day + timedelta(days=1), time(0, 0), tz)
        return at_local(day, self.end, tz)


# A holiday calendar answers "is this local date a public holiday?".
HolidayCalendar = Callable[[date], bool]


@dataclass(frozen=True)
class RuleSet:
    name: str
    min_overdue_amount: Decimal
    min_overdue_days: int
    restore_threshold: Decimal
    effective_at: datetime
    version: int = 1
    amount_basis: str = "total_owing"
    resuspend_days: int = 0
    windows: tuple[Window, ...] = ()  # empty: any time
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    closure_dates: frozenset[date] = frozenset()
    excluded_groups: dict[str, str] = field(default_factory=dict)  # group -> reason
    applies_to_groups: frozenset[str] = frozenset()
    priority: int = 0
    stages: tuple[Stage, ...] = ()
    restore_when_excluded: bool = True

    @cached_property
    def ladder(self) -> tuple[Stage, ...]:
        """Stages ordered by days; the default is one stage `suspend` → restricted."""
        if not self.stages:
            return (Stage("suspend", self.min_overdue_days, ServiceStatus.RESTRICTED),)
        return tuple(sorted(self.stages, key=lambda s: s.min_overdue_days))

    def stage_amount(self, stage: Stage) -> Decimal:
        return self.min_overdue_amount if stage.min_overdue_amount is None else stage.min_overdue_amount

    def stage_index(self, name: str | None) -> int:
        """Position of a stage in the ladder; -1 for none or a stage no longer in it."""
        for i, s in enumerate(self.ladder):
            if s.name == name:
                return i
        return -1


class Schedule:
    """When automatic suspension may act: windows minus holidays and closure dates.

    What it works out about a local day (closed or not, the day's window spans)
    is kept: a schedule serves every account governed by its rule set.
    """

    def __init__(self, rules: RuleSet, tz: ZoneInfo, is_holiday: HolidayCalendar | None = None):
        self.rules = rules
        self.tz = tz
        self._is_holiday = is_holiday or (lambda d: False)
        self._closed: dict[date, bool] = {}
        self._spans: dict[date, list[tuple[datetime, datetime]]] = {}
        # The last instant asked about and its answer: a pass asks about its `now` for every account.
        self._last_allowed: tuple[datetime, bool] | None = None

    def closed_on(self, day: date) -> bool:
        closed = self._closed.get(day)
        if closed is None:
            closed = self._closed[day] = day in self.rules.closure_dates or self._is_holiday(day)
        return closed

    def spans_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """(start, end) instants of the windows open on `day` (an empty one has start == end)."""
        spans = self._spans.get(day)
        if spans is None:
            spans = self._spans[day] = [
                (at_local(day, w.start, self.tz), w.end_on(day, self.tz))
                for w in self.rules.windows
                if day.weekday() in w.days
            ]
        return spans

    def allowed(self, t: datetime) -> bool:
        last = self._last_allowed
        if last is not None and last[0] == t:
            return last[1]
        answer = self._allowed(t)
        self._last_allowed = (t, answer)
        return answer

    def _allowed(self, t: datetime) -> bool:
        day = local_date(t, self.tz)
        if self.closed_on(day):
            return False
        if not self.rules.windows:
            return True
        return any(start <= t < end for start, end in self.spans_on(day))

    def _in_window(self, w: Window, day: date, t: datetime) -> bool:
        return day.weekday() in w.days and at_local(day, w.start, self.tz) <= t < w.end_on(day, self.tz)

    def next_allowed(self, t: datetime, horizon_days: int = 800) -> datetime | None:
        """The first allowed instant at or after t (None if none within the horizon)."""
        if self.allowed(t):
            return t
        first = local_date(t, self.tz)
        for offset in range(horizon_days):
            day = first + timedelta(days=offset)
            if self.closed_on(day):
                continue
            if not self.rules.windows:
                start = at_local(day, time(0, 0), self.tz)
                return max(start, t)
            # A window can be empty on a DST day (02:00-02:30 when clocks jump
            # from 02:00 to 03:00): its start and end are then the same instant.
            later = [max(start, t) for start, end in self.spans_on(day) if start < end and end > t]
            if later:
                return min(later)
        return None


def governing(rule_sets: Sequence[RuleSet], groups: Iterable[str], t: datetime) -> RuleSet | None:
    """The rule set governing an account at t.

    For each name the latest version effective at t counts; among those the
    highest-priority set whose groups match wins, and the set without groups
    governs the rest.
    """
    current: dict[str, RuleSet] = {}
    for rs in rule_sets:
        if rs.effective_at <= t:
            best = current.get(rs.name)
            if best is None or (rs.effective_at, rs.version) > (best.effective_at, best.version):
                current[rs.name] = rs
    member = set(groups)
    targeted = [rs for rs in current.values() if rs.applies_to_groups & member]
    if targeted:
        return max(targeted, key=lambda rs: (rs.priority, rs.name))
    general = [rs for rs in current.values() if not rs.applies_to_groups]
    if general:
        return max(general, key=lambda rs: (rs.priority, rs.name))
    return None


def next_version_instant(rule_sets: Sequence[RuleSet], t: datetime) -> datetime | None:
    later = [rs.effective_at for rs in rule_sets if rs.effective_at > t]
    return min(later) if later else None
