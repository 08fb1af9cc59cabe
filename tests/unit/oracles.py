"""Reference computations written straight from SPEC §3-§6, independent of src/.

They use integer cents and plain wall-clock comparisons, so a property that
compares the engine with them is not the engine compared with itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from arrears.domain.model import (
    AccountSnapshot,
    AccountStatus,
    Invoice,
    InvoiceStatus,
    PlanStatus,
    ServiceStatus,
)
from arrears.domain.rules import RuleSet, Stage

from .strategies import to_cents


@dataclass(frozen=True)
class RefFigures:
    total_owing: Decimal
    overdue_balance: Decimal
    days_overdue: int
    disputed: Decimal


def ref_figures(invoices: tuple[Invoice, ...], t: datetime, tz: ZoneInfo) -> RefFigures:
    """SPEC §3, in integer cents."""
    today = t.astimezone(tz).date()
    open_ = [i for i in invoices if i.issued_at <= t and i.status is InvoiceStatus.OPEN and i.balance > 0]
    overdue = [i for i in open_ if i.due < today]
    return RefFigures(
        total_owing=Decimal(sum(to_cents(i.balance) for i in open_)).scaleb(-2),
        overdue_balance=Decimal(sum(to_cents(i.balance) for i in overdue)).scaleb(-2),
        days_overdue=(today - min(i.due for i in overdue)).days if overdue else 0,
        disputed=Decimal(sum(to_cents(i.disputed) for i in open_)).scaleb(-2),
    )


def ref_ladder(rules: RuleSet) -> list[Stage]:
    if not rules.stages:
        return [Stage("suspend", rules.min_overdue_days)]
    return sorted(rules.stages, key=lambda s: s.min_overdue_days)


def ref_target(rules: RuleSet, fig: RefFigures) -> int:
    """Index in the ladder of the last stage whose conditions hold; -1 for none."""
    basis = fig.total_owing if rules.amount_basis == "total_owing" else fig.overdue_balance
    found = -1
    for i, s in enumerate(ref_ladder(rules)):
        amount = rules.min_overdue_amount if s.min_overdue_amount is None else s.min_overdue_amount
        if basis >= amount and fig.days_overdue > s.min_overdue_days:
            found = i
    return found


def ref_exclusions(account: AccountSnapshot, rules: RuleSet, now: datetime, tz: ZoneInfo) -> set[str]:
    """SPEC §5. `not_active` concerns a new suspension only (outside an episode)."""
    local = now.astimezone(tz)
    today = local.date()
    fig = ref_figures(account.invoices, now, tz)
    k = rules.restore_threshold
    out: set[str] = set()
    if account.episode is None and (
        account.status != AccountStatus.ACTIVE
        or all(s.status != ServiceStatus.ACTIVE for s in account.services)
    ):
        out.add("not_active")
    if set(account.groups) & set(rules.excluded_groups):
        out.add("excluded_group")
    if account.omit is not None and (account.omit.until is None or today <= account.omit.until):
        out.add("omit_flag")
    for plan in account.plans:
        if plan.status == PlanStatus.IN_PROGRESS:
            linked = sum(
                to_cents(i.balance)
                for i in account.invoices
                if i.id in plan.invoices
                and i.issued_at <= now
                and i.status is InvoiceStatus.OPEN
                and i.balance > 0
            )
            if fig.total_owing - Decimal(linked).scaleb(-2) <= k:
                out.add("payment_plan")
    # Read as "a disputed amount exists and the undisputed rest is ≤ k".
    if fig.disputed > 0 and fig.total_owing - fig.disputed <= k:
        out.add("dispute")
    if account.open_cases > 0:
        out.add("complaint_case")
    if account.unallocated > 0:
        out.add("unallocated_payment")
    if account.operator_restored_at is not None and rules.resuspend_days > 0:
        # "less than resuspend_days ago", counted in local days at the same wall time.
        restored_wall = account.operator_restored_at.astimezone(tz).replace(tzinfo=None)
        if now < first_instant_showing(restored_wall + timedelta(days=rules.resuspend_days), tz):
            out.add("resuspend_grace")
    return out


def first_instant_showing(wall: datetime, tz: ZoneInfo) -> datetime:
    """The first instant whose local wall time is ≥ `wall`: minute steps, then second steps back."""
    t = wall.replace(tzinfo=tz, fold=0).astimezone(UTC) - timedelta(hours=3)
    while t.astimezone(tz).replace(tzinfo=None) < wall:
        t += timedelta(minutes=1)
    while (t - timedelta(seconds=1)).astimezone(tz).replace(tzinfo=None) >= wall:
        t -= timedelta(seconds=1)
    return t


def ref_allowed(rules: RuleSet, is_holiday: Callable[[date], bool], tz: ZoneInfo, t: datetime) -> bool | None:
    """SPEC §4 windows on the local wall clock (end exclusive, 00:00 = end of day).

    None in the second pass of a repeated (fall-back) hour, where "the wall
    clock shows 01:30" happens twice and either reading is defensible.
    """
    local = t.astimezone(tz)
    if local.fold == 1:
        return None
    day = local.date()
    if day in rules.closure_dates or is_holiday(day):
        return False
    if not rules.windows:
        return True
    wall = local.time().replace(tzinfo=None)
    for w in rules.windows:
        if day.weekday() in w.days and w.start <= wall and (w.end == time(0, 0) or wall < w.end):
            return True
    return False
