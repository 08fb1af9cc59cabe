"""Exclusions: what holds back an automatic suspension (SPEC §5)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from arrears.domain.clock import add_local_days
from arrears.domain.figures import Figures
from arrears.domain.model import AccountSnapshot, AccountStatus, PlanStatus, ServiceStatus
from arrears.domain.rules import RuleSet

# The fixed reason codes, in the order the history, the API and the UI list them.
CODES = (
    "not_active",
    "excluded_group",
    "omit_flag",
    "payment_plan",
    "dispute",
    "complaint_case",
    "unallocated_payment",
    "resuspend_grace",
)


def grace_ends(account: AccountSnapshot, rules: RuleSet, tz: ZoneInfo) -> datetime | None:
    if account.operator_restored_at is None or rules.resuspend_days <= 0:
        return None
    return add_local_days(account.operator_restored_at, rules.resuspend_days, tz)


def exclusions(
    account: AccountSnapshot,
    rules: RuleSet,
    fig: Figures,
    now: datetime,
    today: date,
    tz: ZoneInfo,
) -> tuple[str, ...]:
    """The exclusion codes that hold for the account now, in canonical order.

    `not_active` only concerns a new suspension: inside an episode the account
    is suspended by then.
    """
    k = rules.restore_threshold
    found: list[str] = []
    if account.episode is None and (
        account.status is not AccountStatus.ACTIVE
        or not any(s.status is ServiceStatus.ACTIVE for s in account.services)
    ):
        found.append("not_active")
    if account.groups & rules.excluded_groups.keys():
        found.append("excluded_group")
    if account.omit is not None and account.omit.holds_on(today):
        found.append("omit_flag")
    if _plan_covers(account, fig, k, now):
        found.append("payment_plan")
    if fig.disputed > 0 and fig.total_owing - fig.disputed <= k:
        found.append("dispute")
    if account.open_cases > 0:
        found.append("complaint_case")
    if account.unallocated > 0:
        found.append("unallocated_payment")
    ends = grace_ends(account, rules, tz)
    if ends is not None and now < ends:
        found.append("resuspend_grace")
    return tuple(found)


def _plan_covers(account: AccountSnapshot, fig: Figures, k: Decimal, now: datetime) -> bool:
    for plan in account.plans:
        if plan.status is not PlanStatus.IN_PROGRESS:
            continue
        covered = sum(
            (inv.balance for inv in account.invoices if inv.id in plan.invoices and inv.is_open_at(now)),
            Decimal("0"),
        )
        if fig.total_owing - covered <= k:
            return True
    return False
