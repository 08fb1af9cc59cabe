"""Decisions and their timing (SPEC §6): what to do with one account at one instant.

`evaluate` is the single place the rules are applied. Production and the
simulation both call it; the engine only carries out what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from arrears.domain.clock import local_date, start_of_day
from arrears.domain.events import (
    LATE_LIMIT,
    EventKind,
    EventMapping,
    Mappings,
    invoice_notice_instant,
    notice_key,
)
from arrears.domain.exclusions import exclusions, grace_ends
from arrears.domain.figures import ZERO, Figures, figures_of_open
from arrears.domain.model import AccountSnapshot, Invoice
from arrears.domain.rules import (
    RESTORING_EXCLUSIONS,
    HolidayCalendar,
    RuleSet,
    Schedule,
    Stage,
    governing,
    next_version_instant,
)


class Action(StrEnum):
    NONE = "none"
    ESCALATE = "escalate"
    DEESCALATE = "deescalate"
    RESTORE = "restore"
    WOULD_SUSPEND = "would_suspend"  # shadow mode: auto_suspend is disabled
    WOULD_RESTORE = "would_restore"  # auto_unsuspend is disabled


def _no_calendar(rules: RuleSet) -> HolidayCalendar | None:
    return None


@dataclass(frozen=True)
class ProviderContext:
    """The provider-level inputs of every decision."""

    tz: ZoneInfo
    rule_sets: tuple[RuleSet, ...]
    mappings: Mappings
    send_time: time = time(9, 0)
    calendars: Callable[[RuleSet], HolidayCalendar | None] = _no_calendar
    # One Schedule per rule set (by identity), built on first use: it caches the
    # days it has looked at, which are the same for every account.
    _schedules: dict[int, tuple[RuleSet, Schedule]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    # The governing rule set by (instant, groups): a pass asks for the same few
    # pairs for every account. Emptied when it grows (instants move on).
    _governing: dict[tuple[datetime, frozenset[str]], RuleSet | None] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    # The local date and the next rule set version of the last instant asked about.
    _at: dict[datetime, tuple[date, datetime | None]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def at(self, t: datetime) -> tuple[date, datetime | None]:
        """The local date at `t`, and when the next rule set version takes effect after `t`."""
        found = self._at.get(t)
        if found is None:
            self._at.clear()
            found = self._at[t] = (local_date(t, self.tz), next_version_instant(self.rule_sets, t))
        return found

    def governing(self, groups: frozenset[str], t: datetime) -> RuleSet | None:
        """`rules.governing(self.rule_sets, groups, t)`, remembered."""
        key = (t, groups)
        try:
            return self._governing[key]
        except KeyError:
            pass
        if len(self._governing) >= 1024:
            self._governing.clear()
        found = self._governing[key] = governing(self.rule_sets, groups, t)
        return found

    def schedule(self, rules: RuleSet) -> Schedule:
        cached = self._schedules.get(id(rules))
        if cached is not None and cached[0] is rules:
            return cached[1]
        schedule = Schedule(rules, self.tz, self.calendars(rules))
        self._schedules[id(rules)] = (rules, schedule)
        return schedule


@dataclass(frozen=True)
class NoticeDue:
    """A notice whose instant has come: to be recorded now (sent, or skipped as late)."""

    mapping: EventMapping
    key: str
    due_at: datetime
    invoice: str | None = None
    late: bool = False


@dataclass(frozen=True)
class Evaluation:
    at: datetime
    rule_set: RuleSet | None
    figures: Figures
    target: Stage | None = None
    exclusions: tuple[str, ...] = ()
    action: Action = Action.NONE
    stage: Stage | None = None  # where ESCALATE / DEESCALATE / WOULD_SUSPEND go
    restore_reason: str | None = None  # "paid" or the exclusion code that releases it
    eligibility: datetime | None = None
    projected: datetime | None = None
    heading: bool = False
    notices: tuple[NoticeDue, ...] = ()
    # Reasons to write in an `excluded` history line now (None: nothing new to say).
    excluded_now: tuple[str, ...] | None = None
    # What the account remembers about being held back / shadow-suspended.
    excluded_memory: tuple[str, ...] | None = None
    shadow_memory: str | None = None
    # Why the account must be looked at again, and the earliest of those instants.
    wakeups: dict[str, datetime] = field(default_factory=dict)

    @property
    def next_wakeup(self) -> datetime | None:
        return min(self.wakeups.values()) if self.wakeups else None


def stage_holds(rules: RuleSet, stage: Stage, fig: Figures) -> bool:
    return (
        fig.basis(rules.amount_basis) >= rules.stage_amount(stage)
        and fig.days_overdue > stage.min_overdue_days
    )


def target_stage(rules: RuleSet, fig: Figures) -> Stage | None:
    """The last stage in the ladder whose amount and days both hold."""
    found = None
    for stage in rules.ladder:
        if stage_holds(rules, stage, fig):
            found = stage
    return found


def first_day(
    invoices: Sequence[Invoice],
    t: datetime,
    today: date,
    holds: Callable[[Figures], bool],
    day_offsets: Sequence[int] = (),
    figures_for: Callable[[date], Figures] | None = None,
) -> date | None:
    """The first local day ≥ today on which `holds(figures)` is true, if nothing else changes.

    Figures change only as invoices fall overdue (the day after their due date)
    and as days overdue grow past a stage's days, so only those days are looked at.
    `figures_for(day)`, when given, must equal `figures_on(invoices, t, day, 0)`
    (a caller asking about several stages computes each day's figures once).
    """
    open_invoices = [inv for inv in invoices if inv.is_open_at(t)]

    def figures(day: date) -> Figures:
        return figures_for(day) if figures_for is not None else figures_of_open(open_invoices, day, ZERO)

    return _first_of(_days_to_look_at(open_invoices, today, day_offsets), holds, figures)


_ONE_DAY = timedelta(days=1)


def _days_to_look_at(open_invoices: Sequence[Invoice], today: date, day_offsets: Sequence[int]) -> list[date]:
    """The days ≥ today on which the figures of these open invoices may change, in order."""
    if not open_invoices:
        return []
    oldest = open_invoices[0].due
    candidates = {today}
    for inv in open_invoices:
        due = inv.due
        if due < oldest:
            oldest = due
        candidates.add(due + _ONE_DAY)
    for d in day_offsets:
        candidates.add(oldest + timedelta(days=d + 1))
    return sorted(c for c in candidates if c >= today)


def _first_of(
    days: Sequence[date], holds: Callable[[Figures], bool], figures: Callable[[date], Figures]
) -> date | None:
    for day in days:
        if holds(figures(day)):
            return day
    return None


def _wake(wakeups: dict[str, datetime], why: str, at: datetime | None, now: datetime) -> None:
    if at is not None and at > now and (why not in wakeups or at < wakeups[why]):
        wakeups[why] = at


def evaluate(account: AccountSnapshot, ctx: ProviderContext, now: datetime) -> Evaluation:
    """Decide what happens to `account` at `now`, and when to look at it again."""
    tz = ctx.tz
    today, next_version = ctx.at(now)
    # Filtered once: every figure below is of the invoices open at `now`.
    open_invoices = [inv for inv in account.invoices if inv.is_open_at(now)]
    fig = figures_of_open(open_invoices, today, account.unallocated)
    wake: dict[str, datetime] = {}
    notices = _invoice_notices(account, open_invoices, ctx, now, wake)
    _wake(wake, "rule_set_version", next_version, now)
    rules = ctx.governing(account.groups, now)
    if rules is None:
        return Evaluation(now, None, fig, notices=tuple(notices), wakeups=wake)

    k = rules.restore_threshold
    ladder = rules.ladder
    schedule = ctx.schedule(rules)
    target = target_stage(rules, fig)
    excl = exclusions(account, rules, fig, now, today, tz)
    _wake(wake, "resuspend_grace_end", grace_ends(account, rules, tz), now)
    if account.omit is not None and account.omit.until is not None and account.omit.holds_on(today):
        _wake(wake, "omit_flag_end", start_of_day(account.omit.until + timedelta(days=1), tz), now)
    day_offsets = [s.min_overdue_days for s in ladder]
    day_figures: dict[date, Figures] = {}
    if account.unallocated == ZERO:
        # Today's figures are `fig`: the same invoices, the same day, nothing unallocated.
        day_figures[today] = fig

    def figures_for(day: date) -> Figures:
        found = day_figures.get(day)
        if found is None:
            found = day_figures[day] = figures_of_open(open_invoices, day, ZERO)
        return found

    # The same days for every stage (see `first_day`).
    stage_days = _days_to_look_at(open_invoices, today, day_offsets)

    def first_instant(stage: Stage) -> datetime | None:
        """When `stage` (and overdue > k) first holds, if nothing else changes."""
        day = _first_of(
            stage_days, lambda f: stage_holds(rules, stage, f) and f.overdue_balance > k, figures_for
        )
        if day is None:
            return None
        return now if day <= today else start_of_day(day, tz)

    # Every stage beyond the current one comes due at its own instant (stages may
    # carry their own amounts, so a later one can hold before an earlier one).
    current = rules.stage_index(account.episode.stage) if account.episode is not None else -1
    stage_due = {s.name: first_instant(s) for s in ladder[max(current, -1) + 1 :]}
    for name, at in stage_due.items():
        _wake(wake, f"stage:{name}", at, now)

    said_notices = tuple(notices)

    def decided(**changes: Any) -> Evaluation:
        """The evaluation, with what the branch below decided (built once, not copied)."""
        fields: dict[str, Any] = {"notices": said_notices, "wakeups": wake}
        fields.update(changes)
        return Evaluation(now, rules, fig, target, excl, **fields)

    if account.episode is not None:
        tgt = rules.stage_index(target.name) if target else -1
        releasing = [e for e in excl if e in RESTORING_EXCLUSIONS] if rules.restore_when_excluded else []
        if fig.overdue_balance <= k or releasing:
            reason = "paid" if fig.overdue_balance <= k else releasing[0]
            if ctx.mappings.auto_unsuspend:
                return decided(action=Action.RESTORE, restore_reason=reason)
            # Left in its episode: it must look again when the overdue balance
            # climbs back above k (an invoice falls overdue at a midnight).
            back = _first_of(
                _days_to_look_at(open_invoices, today, ()), lambda f: f.overdue_balance > k, figures_for
            )
            if back is not None and back > today:
                _wake(wake, "overdue_above_threshold", start_of_day(back, tz), now)
            # auto_unsuspend is off: say once what would have happened.
            said = f"restore:{reason}"
            if account.shadow_stage == said:
                return decided(restore_reason=reason, shadow_memory=said)
            return decided(action=Action.WOULD_RESTORE, restore_reason=reason, shadow_memory=said)
        down = max(tgt, 0)  # never below the first stage
        if down < current or current < 0:
            # Down the ladder at once, whatever the windows say.
            return decided(action=Action.DEESCALATE, stage=ladder[down])
        if tgt > current and target is not None:
            blocking = tuple(e for e in excl if e != "not_active")
            if blocking:
                news = blocking if account.excluded_reasons != blocking else None
                return decided(excluded_now=news, excluded_memory=blocking)
            if not ctx.mappings.auto_suspend:
                if schedule.allowed(now) and account.shadow_stage != target.name:
                    return decided(action=Action.WOULD_SUSPEND, stage=target, shadow_memory=target.name)
                _wake(wake, "window", schedule.next_allowed(now), now)
                return decided(shadow_memory=account.shadow_stage)
            if schedule.allowed(now):
                return decided(action=Action.ESCALATE, stage=target)
            _wake(wake, "window", schedule.next_allowed(now), now)
        return decided()

    # Not in an episode: heading for suspension, held back, or neither.
    # Eligibility: the first instant any stage holds (normally the first stage's).
    eligibility = min((at for at in stage_due.values() if at is not None), default=None)
    conditions = target is not None and fig.overdue_balance > k
    auto = ctx.mappings.auto_suspend

    excluded_now = excluded_memory = None
    if conditions and excl:
        excluded_memory = excl
        if account.excluded_reasons != excl:
            excluded_now = excl
    if excl or eligibility is None:
        return decided(eligibility=eligibility, excluded_now=excluded_now, excluded_memory=excluded_memory)

    if not auto:
        # Shadow mode: say once per path what would have happened, at the instant it would have.
        if conditions and target is not None and schedule.allowed(now):
            if account.shadow_stage != target.name:
                return decided(
                    eligibility=eligibility,
                    action=Action.WOULD_SUSPEND,
                    stage=target,
                    shadow_memory=target.name,
                )
            return decided(eligibility=eligibility, shadow_memory=account.shadow_stage)
        _wake(wake, "window", schedule.next_allowed(max(eligibility, now)), now)
        return decided(eligibility=eligibility, shadow_memory=account.shadow_stage)

    projected, warnings = _projection(account, ctx, schedule, max(eligibility, now), now, wake)
    notices.extend(warnings)
    action = Action.ESCALATE if conditions and projected is not None and projected <= now else Action.NONE
    return decided(
        action=action,
        stage=target if action is Action.ESCALATE else None,
        eligibility=eligibility,
        projected=projected,
        heading=True,
        notices=tuple(notices),
    )


def _projection(
    account: AccountSnapshot,
    ctx: ProviderContext,
    schedule: Schedule,
    earliest: datetime,
    now: datetime,
    wake: dict[str, datetime],
) -> tuple[datetime | None, list[NoticeDue]]:
    """The projected suspension, and the warnings whose instant has come.

    An enforced warning holds the suspension until `hours_before` after it went
    out; one not yet sent goes out no earlier than now, so the suspension waits
    at least that long from now.
    """
    lower = earliest
    warnings = ctx.mappings.of(EventKind.SUSPENSION_WARNING)
    for m in warnings:
        if m.enforce:
            sent = account.warnings_sent.get(m.key)
            lower = max(lower, (sent or now) + timedelta(hours=m.hours_before))
    projected = schedule.next_allowed(lower)
    _wake(wake, "projected_suspension", projected, now)
    due: list[NoticeDue] = []
    if projected is None:
        return None, due
    for m in warnings:
        if m.key in account.warnings_sent:
            continue
        at = projected - timedelta(hours=m.hours_before)
        if at <= now:
            # Never skipped for lateness: a warning whose instant passed goes out at once.
            path = (account.path_started_at or now).isoformat()
            due.append(NoticeDue(m, notice_key(m, account.id, path), at))
        else:
            _wake(wake, "suspension_warning", at, now)
    return projected, due


def _invoice_notices(
    account: AccountSnapshot,
    open_invoices: Sequence[Invoice],
    ctx: ProviderContext,
    now: datetime,
    wake: dict[str, datetime],
) -> list[NoticeDue]:
    due: list[NoticeDue] = []
    mappings = ctx.mappings.of(EventKind.INVOICE_DUE) + ctx.mappings.of(EventKind.INVOICE_OVERDUE)
    if not mappings:
        return due
    for inv in open_invoices:
        for m in mappings:
            key = notice_key(m, inv.id)
            if key in account.notices_recorded:
                continue
            at = invoice_notice_instant(m, inv, ctx.send_time, ctx.tz)
            if m.since is not None and at < m.since:
                continue  # before the mapping was switched on: not its business
            if at <= now:
                due.append(NoticeDue(m, key, at, inv.id, late=now - at > LATE_LIMIT))
            else:
                _wake(wake, "invoice_notice", at, now)
    return due


__all__ = [
    "Action",
    "Evaluation",
    "NoticeDue",
    "ProviderContext",
    "evaluate",
    "first_day",
    "stage_holds",
    "target_stage",
]
