"""Shared hypothesis strategies: providers, rule sets, mappings, accounts, instants.

Everything here builds domain objects directly (no database). Amounts are
Decimals with two places (AUD-like); instants are aware UTC datetimes built
from provider-local dates and wall times, biased towards DST change days.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cache
from typing import TypeVar
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from arrears.domain.clock import at_local, local_date
from arrears.domain.decisions import Action, Evaluation, ProviderContext, evaluate
from arrears.domain.events import EventKind, EventMapping, Mappings
from arrears.domain.model import (
    AccountSnapshot,
    AccountStatus,
    ChangedBy,
    Episode,
    Invoice,
    InvoiceStatus,
    OmitFlag,
    PaymentPlan,
    PlanStatus,
    Service,
    ServiceStatus,
    StatusReason,
)
from arrears.domain.rules import AMOUNT_BASES, HolidayCalendar, RuleSet, Schedule, Stage, Window

T = TypeVar("T")

# --------------------------------------------------------------------------- settings


def fast(max_examples: int, *, shrink: bool = True) -> settings:
    """Deterministic settings: same examples on every run, no example database, no deadline.

    `shrink=False` for the whole-scenario properties: shrinking one of their failures costs
    half a minute, and each bug they can find also has a minimal example-based test.
    ARREARS_HYPOTHESIS_SCALE=10 runs ten times as many examples (a longer bug hunt).
    """
    phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
    scale = float(os.environ.get("ARREARS_HYPOTHESIS_SCALE", "1"))
    return settings(
        max_examples=max(1, round(max_examples * scale)),
        deadline=None,
        derandomize=True,
        database=None,
        phases=[*phases, Phase.shrink] if shrink else phases,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


# --------------------------------------------------------------------------- time

DST_ZONES = ("Australia/Sydney", "Europe/London", "America/New_York")
ZONE_NAMES = (*DST_ZONES, "Asia/Kolkata", "UTC")
# The local dates on which the clocks change in 2026.
DST_DAYS: dict[str, tuple[date, date]] = {
    "Australia/Sydney": (date(2026, 4, 5), date(2026, 10, 4)),
    "Europe/London": (date(2026, 3, 29), date(2026, 10, 25)),
    "America/New_York": (date(2026, 3, 8), date(2026, 11, 1)),
}
ALL_DST_DAYS = tuple(sorted({d for pair in DST_DAYS.values() for d in pair}))
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)

zones = st.sampled_from(ZONE_NAMES).map(ZoneInfo)


def quarter(q: int) -> time:
    """The wall time of quarter-hour number q (0..95); 96 is midnight (end of day)."""
    q %= 96
    return time(q // 4, (q % 4) * 15)


# A local date in 2026, often on or next to a DST change day.
days_2026 = st.one_of(
    st.dates(date(2026, 1, 1), date(2026, 12, 31)),
    st.tuples(st.sampled_from(ALL_DST_DAYS), st.integers(-2, 2)).map(lambda p: p[0] + timedelta(days=p[1])),
)


SECONDS = (0, 0, 0, 1, 59)


@st.composite
def instants_on(draw: st.DrawFn, day: date, tz: ZoneInfo, *, whole_minutes: bool = False) -> datetime:
    minute = draw(ints(0, 24 * 60 - 1))
    second = 0 if whole_minutes else pick(draw, SECONDS)
    return at_local(day, time(minute // 60, minute % 60, second), tz)


# --------------------------------------------------------------------------- drawing helpers
# Strategies are built once and reused: building them inside composites costs more
# than the tests themselves.

BOOL = st.booleans()


@cache
def ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo, hi)


def pick(draw: st.DrawFn, options: Sequence[T]) -> T:
    return options[draw(ints(0, len(options) - 1))]


def some(draw: st.DrawFn, options: Sequence[T], max_size: int | None = None) -> list[T]:
    """A sub-list of options (in their order)."""
    out = [o for o in options if draw(BOOL)]
    return out[:max_size] if max_size is not None else out


def day_offsets(draw: st.DrawFn, base: date, lo: int, hi: int, max_size: int) -> frozenset[date]:
    return frozenset(base + timedelta(days=draw(ints(lo, hi))) for _ in range(draw(ints(0, max_size))))


# --------------------------------------------------------------------------- money


def cents(lo: int = 1, hi: int = 50_000) -> st.SearchStrategy[Decimal]:
    """A two-decimal amount between lo and hi cents."""
    return ints(lo, hi).map(as_money)


def as_money(c: int) -> Decimal:
    return Decimal(c).scaleb(-2)


def to_cents(amount: Decimal) -> int:
    scaled = amount.scaleb(2)
    assert scaled == scaled.to_integral_value(), amount
    return int(scaled)


# --------------------------------------------------------------------------- rules


@st.composite
def windows(draw: st.DrawFn) -> Window:
    days = frozenset(some(draw, range(7))) or frozenset({draw(ints(0, 6))})
    start = draw(ints(0, 95))
    end = draw(ints(start + 1, 96))  # 96: 00:00, the end of the day
    return Window(days, quarter(start), quarter(end))


STAGE_STATUSES = (ServiceStatus.RESTRICTED, ServiceStatus.SUSPENDED, ServiceStatus.DEACTIVATED)


def draw_ladder(draw: st.DrawFn, x: Decimal, monotone: bool = False) -> tuple[Stage, ...]:
    """() (the default single stage) or 1..3 stages with distinct days.

    `monotone`: a later stage never asks for a smaller amount than an earlier one.
    """
    if draw(BOOL):
        return ()
    days: list[int] = []
    for _ in range(draw(ints(1, 3))):
        d = draw(ints(0, 45))
        if d not in days:
            days.append(d)
    stages = []
    for i, d in enumerate(days):
        amount = as_money(draw(ints(0, 30_000))) if draw(ints(0, 2)) == 0 else None
        stages.append(Stage(f"stage{i}", d, pick(draw, STAGE_STATUSES), amount))
    if monotone:
        # Ladder order is by days; keep each stage's own amount only if it does not go down.
        stages.sort(key=lambda s: s.min_overdue_days)
        floor = Decimal("0")
        for i, s in enumerate(stages):
            amount = x if s.min_overdue_amount is None else s.min_overdue_amount
            if amount < floor:
                stages[i] = replace(s, min_overdue_amount=floor)
            floor = max(floor, amount)
    return tuple(stages)


EXCLUDED_GROUPS: tuple[dict[str, str], ...] = (
    {},
    {"VIP": "very important"},
    {"VIP": "", "staff": "staff account"},
)


@st.composite
def rule_sets(
    draw: st.DrawFn,
    today: date | None = None,
    *,
    name: str = "default",
    applies_to_groups: frozenset[str] = frozenset(),
    priority: int = 0,
    effective_at: datetime = EPOCH,
    version: int = 1,
    with_windows: bool | None = None,
    monotone: bool = False,
) -> RuleSet:
    today = today or date(2026, 6, 1)
    y = draw(ints(0, 30))
    if with_windows is None:
        with_windows = draw(BOOL)
    wins = tuple(draw(windows()) for _ in range(draw(ints(1, 3)))) if with_windows else ()
    x = as_money(draw(ints(0, 30_000)))
    return RuleSet(
        name=name,
        min_overdue_amount=x,
        min_overdue_days=y,
        restore_threshold=as_money(draw(ints(0, 6_000))),
        effective_at=effective_at,
        version=version,
        amount_basis=pick(draw, AMOUNT_BASES),
        resuspend_days=draw(ints(0, 10)),
        windows=wins,
        closure_dates=day_offsets(draw, today, -2, 20, 3),
        excluded_groups=dict(pick(draw, EXCLUDED_GROUPS)),
        applies_to_groups=applies_to_groups,
        priority=priority,
        stages=draw_ladder(draw, x, monotone),
        restore_when_excluded=draw(BOOL),
    )


@dataclass(frozen=True)
class FixedHolidays:
    """ProviderContext.calendars over a fixed set of local dates (readable in failure output)."""

    dates: frozenset[date]

    def __call__(self, rules: RuleSet) -> HolidayCalendar:
        return self.is_holiday

    def is_holiday(self, day: date) -> bool:
        return day in self.dates


# --------------------------------------------------------------------------- mappings

HOURS_BEFORE = (0, 1, 24, 48, 72, 100)


@st.composite
def mappings(
    draw: st.DrawFn,
    *,
    auto_suspend: bool | None = None,
    auto_unsuspend: bool | None = None,
    max_warnings: int = 2,
    invoice_notices: bool = True,
) -> Mappings:
    a_s = draw(BOOL) if auto_suspend is None else auto_suspend
    a_u = draw(BOOL) if auto_unsuspend is None else auto_unsuspend
    items = [
        EventMapping("auto_suspend", EventKind.AUTO_SUSPEND, enabled=a_s, channels=("email",)),
        EventMapping("auto_unsuspend", EventKind.AUTO_UNSUSPEND, enabled=a_u, channels=("email",)),
    ]
    for i in range(draw(ints(0, max_warnings))):
        items.append(
            EventMapping(
                f"suspension_warning#{i}",
                EventKind.SUSPENSION_WARNING,
                enabled=draw(ints(0, 2)) > 0,
                channels=("sms",),
                hours_before=pick(draw, HOURS_BEFORE),
                enforce=draw(BOOL),
            )
        )
    if invoice_notices and draw(BOOL):
        items.append(
            EventMapping(
                "invoice_due#0",
                EventKind.INVOICE_DUE,
                enabled=True,
                channels=("email",),
                days_before=draw(ints(0, 5)),
            )
        )
    if invoice_notices and draw(BOOL):
        items.append(
            EventMapping(
                "invoice_overdue#0",
                EventKind.INVOICE_OVERDUE,
                enabled=True,
                channels=("email",),
                days_after=draw(ints(0, 5)),
            )
        )
    return Mappings(tuple(items))


# --------------------------------------------------------------------------- accounts

INVOICE_STATUSES = (InvoiceStatus.OPEN,) * 6 + tuple(InvoiceStatus)


def draw_invoices(
    draw: st.DrawFn, now: datetime, today: date, *, max_size: int = 5, disputes: bool = False
) -> tuple[Invoice, ...]:
    out = []
    for i in range(draw(ints(0, max_size))):
        due = today + timedelta(days=draw(ints(-75, 25)))
        amount_c = draw(ints(1, 40_000))
        balance_c = amount_c if draw(BOOL) else draw(ints(0, amount_c))
        issued_at = now - timedelta(minutes=draw(ints(0, 90 * 24 * 60)))
        disputed_c = draw(ints(0, balance_c)) if disputes and draw(BOOL) else 0
        out.append(
            Invoice(
                f"I{i + 1}",
                issued_at,
                due,
                as_money(amount_c),
                as_money(balance_c),
                pick(draw, INVOICE_STATUSES),
                as_money(disputed_c),
            )
        )
    return tuple(out)


@st.composite
def invoices(
    draw: st.DrawFn, now: datetime, today: date, *, max_size: int = 5, disputes: bool = False
) -> tuple[Invoice, ...]:
    return draw_invoices(draw, now, today, max_size=max_size, disputes=disputes)


ACCOUNT_STATUSES = (AccountStatus.ACTIVE,) * 4 + tuple(AccountStatus)
CLEAN_SERVICE_STATUSES = (ServiceStatus.ACTIVE,)
NOISY_SERVICE_STATUSES = (ServiceStatus.ACTIVE,) * 3 + (ServiceStatus.RESTRICTED, ServiceStatus.PREACTIVE)
SENT_FRACTIONS = (0.0, 0.0, 0.5, 1.0)


@st.composite
def accounts(
    draw: st.DrawFn,
    rules: RuleSet,
    tz: ZoneInfo,
    now: datetime,
    *,
    episode: bool | None = None,
    clean: bool | None = None,
    owing: bool | None = None,
    pending: bool = False,
) -> AccountSnapshot:
    """An account of the provider.

    `clean`: no exclusion can hold (True), exclusions are likely (False), either (None).
    `episode`: in an episode (True), not (False), either (None).
    `owing`: the first invoice is open, past due and above both the minimum amount and k,
    so the account is on its way to suspension or there already (True), either (None).
    `pending`: one more open invoice above both, falling due within three weeks.
    """
    today = local_date(now, tz)
    in_episode = draw(BOOL) if episode is None else episode
    noisy = (not draw(BOOL)) if clean is None else not clean
    invs = draw_invoices(draw, now, today, disputes=noisy)
    if owing or (owing is None and draw(BOOL)):
        floor = to_cents(max(rules.min_overdue_amount, rules.restore_threshold))
        balance = as_money(floor + draw(ints(1, 20_000)))
        due = today - timedelta(days=draw(ints(1, 60)))
        issued = now - timedelta(minutes=draw(ints(0, 90 * 24 * 60)))
        invs = (Invoice("I0", issued, due, balance, balance, InvoiceStatus.OPEN), *invs)
    if pending:
        floor = to_cents(max(rules.min_overdue_amount, rules.restore_threshold))
        balance = as_money(floor + draw(ints(1, 20_000)))
        due = today + timedelta(days=draw(ints(0, 20)))
        issued = now - timedelta(minutes=draw(ints(0, 30 * 24 * 60)))
        invs = (*invs, Invoice("IP", issued, due, balance, balance, InvoiceStatus.OPEN))
    ladder = rules.ladder
    stage_names = [s.name for s in ladder]

    groups = frozenset(some(draw, ("VIP", "staff", "retail") if noisy else ("retail",)))
    omit = None
    plans: tuple[PaymentPlan, ...] = ()
    open_cases = 0
    unallocated = Decimal("0")
    operator_restored_at = None
    if noisy:
        if draw(BOOL):
            until = None if draw(BOOL) else today + timedelta(days=draw(ints(-3, 5)))
            omit = OmitFlag("asked nicely", until)
        if invs and draw(BOOL):
            linked = frozenset(some(draw, [i.id for i in invs]))
            plans = (PaymentPlan("PL1", pick(draw, tuple(PlanStatus)), linked),)
        open_cases = 1 if draw(ints(0, 2)) == 0 else 0
        unallocated = as_money(draw(ints(0, 5_000))) if draw(BOOL) else Decimal("0")
        if draw(BOOL):
            operator_restored_at = now - timedelta(hours=draw(ints(0, 15 * 24)))
    shadow_stage = pick(draw, stage_names) if draw(BOOL) else None

    if in_episode:
        stage = pick(draw, ladder)
        n = draw(ints(1, 3))
        services = tuple(
            Service(f"S{j + 1}", "mobile", stage.status, ChangedBy.EPISODE, True) for j in range(n)
        )
        status = AccountStatus.SUSPENDED
        reason: StatusReason | None = StatusReason.AUTO
        if noisy and draw(BOOL):
            services += (Service(f"S{n + 1}", "voip", ServiceStatus.ACTIVE),)
            status, reason = AccountStatus.ACTIVE, None
        started = now - timedelta(hours=draw(ints(0, 60 * 24)))
        return AccountSnapshot(
            id="A1",
            status=status,
            status_reason=reason,
            groups=groups,
            services=services,
            invoices=invs,
            unallocated=unallocated,
            plans=plans,
            open_cases=open_cases,
            omit=omit,
            episode=Episode(1, stage.name, started),
            operator_restored_at=operator_restored_at,
            path_started_at=started,
            shadow_stage=shadow_stage,
        )

    statuses = NOISY_SERVICE_STATUSES if noisy else CLEAN_SERVICE_STATUSES
    services = tuple(Service(f"S{j + 1}", "mobile", pick(draw, statuses)) for j in range(draw(ints(1, 3))))
    status = pick(draw, ACCOUNT_STATUSES) if noisy else AccountStatus.ACTIVE
    warnings_sent: dict[str, datetime] = {}
    path_started_at = None
    if draw(BOOL):
        path_started_at = now - timedelta(hours=draw(ints(0, 30 * 24)))
        if draw(BOOL):
            sent = path_started_at + (now - path_started_at) * pick(draw, SENT_FRACTIONS)
            warnings_sent["suspension_warning#0"] = sent
    return AccountSnapshot(
        id="A1",
        status=status,
        status_reason=StatusReason.MANUAL if status is AccountStatus.SUSPENDED else None,
        groups=groups,
        services=services,
        invoices=invs,
        unallocated=unallocated,
        plans=plans,
        open_cases=open_cases,
        omit=omit,
        operator_restored_at=operator_restored_at,
        path_started_at=path_started_at,
        warnings_sent=warnings_sent,
        shadow_stage=shadow_stage,
    )


# --------------------------------------------------------------------------- whole scenarios


@dataclass(frozen=True)
class Scenario:
    """One provider with one rule set, one account, one instant."""

    ctx: ProviderContext
    rules: RuleSet
    account: AccountSnapshot
    now: datetime
    holidays: frozenset[date]

    @property
    def tz(self) -> ZoneInfo:
        return self.ctx.tz

    @property
    def schedule(self) -> Schedule:
        return self.ctx.schedule(self.rules)


@st.composite
def scenarios(
    draw: st.DrawFn,
    *,
    episode: bool | None = None,
    clean: bool | None = None,
    auto_suspend: bool | None = None,
    auto_unsuspend: bool | None = None,
    with_windows: bool | None = None,
    monotone: bool = False,
    owing: bool | None = None,
    pending: bool = False,
) -> Scenario:
    tz = draw(zones)
    today = draw(days_2026)
    now = draw(instants_on(today, tz))
    holidays = day_offsets(draw, today, -2, 30, 3)
    rules = draw(rule_sets(today, with_windows=with_windows, monotone=monotone))
    maps = draw(mappings(auto_suspend=auto_suspend, auto_unsuspend=auto_unsuspend))
    ctx = ProviderContext(tz, (rules,), maps, calendars=FixedHolidays(holidays))
    account = draw(accounts(rules, tz, now, episode=episode, clean=clean, owing=owing, pending=pending))
    return Scenario(ctx, rules, account, now, holidays)


# --------------------------------------------------------------------------- the engine's memory


def remember(account: AccountSnapshot, ev: Evaluation, now: datetime) -> AccountSnapshot:
    """What the engine records after an evaluation that changed nothing else.

    Mirrors engine/applicator.py: notices due are recorded (warnings as sent
    now), the path to suspension starts or ends, and the memories of `excluded`
    lines and shadow decisions are kept.
    """
    path = account.path_started_at
    warnings = dict(account.warnings_sent)
    if ev.heading and path is None:
        path = now
        warnings = {}
    elif not ev.heading and account.episode is None:
        path = None
        warnings = {}
    recorded = set(account.notices_recorded)
    for notice in ev.notices:
        if notice.mapping.event is EventKind.SUSPENSION_WARNING:
            warnings.setdefault(notice.mapping.key, now)
        else:
            recorded.add(notice.key)
    return replace(
        account,
        path_started_at=path,
        warnings_sent=warnings,
        notices_recorded=frozenset(recorded),
        excluded_reasons=ev.excluded_memory,
        shadow_stage=ev.shadow_memory,
    )


def carry_out(account: AccountSnapshot, ev: Evaluation, now: datetime) -> AccountSnapshot:
    """A minimal applicator: what escalation, de-escalation and restoration do to the snapshot
    (SPEC §6), on top of what `remember` keeps."""
    account = remember(account, ev, now)
    if ev.action in (Action.ESCALATE, Action.DEESCALATE) and ev.stage is not None:
        status = ev.stage.status
        services = tuple(
            replace(s, status=status, changed_by=ChangedBy.EPISODE, in_episode=True)
            if s.status is ServiceStatus.ACTIVE or s.in_episode
            else s
            for s in account.services
        )
        started = account.episode.started_at if account.episode else now
        suspended = not any(s.status in (ServiceStatus.ACTIVE, ServiceStatus.PREACTIVE) for s in services)
        return replace(
            account,
            services=services,
            episode=Episode(1, ev.stage.name, started),
            status=AccountStatus.SUSPENDED
            if suspended and account.status is AccountStatus.ACTIVE
            else account.status,
            status_reason=StatusReason.AUTO
            if suspended and account.status is AccountStatus.ACTIVE
            else account.status_reason,
        )
    if ev.action is Action.RESTORE:
        services = tuple(
            replace(s, status=ServiceStatus.ACTIVE, in_episode=False) if s.in_episode else s
            for s in account.services
        )
        auto = account.status is AccountStatus.SUSPENDED and account.status_reason is StatusReason.AUTO
        return replace(
            account,
            services=services,
            episode=None,
            status=AccountStatus.ACTIVE if auto else account.status,
            status_reason=None if auto else account.status_reason,
            path_started_at=None,
            warnings_sent={},
            shadow_stage=None,
            excluded_reasons=None,
        )
    return account


def settle(
    account: AccountSnapshot, ctx: ProviderContext, now: datetime
) -> tuple[AccountSnapshot, Evaluation]:
    """Evaluate and carry out until nothing more happens at `now` (the engine's rounds).

    Returns the settled account and its evaluation at `now` (action NONE: would_suspend and
    would_restore are said once and remembered), whose wake-ups say when to look again.
    """
    for _ in range(6):
        ev = evaluate(account, ctx, now)
        account = carry_out(account, ev, now)
        if ev.action is Action.NONE and not ev.notices:
            return account, ev
    raise AssertionError(f"no settled state at {now} after 6 rounds: last {ev.action} {ev.stage}")
