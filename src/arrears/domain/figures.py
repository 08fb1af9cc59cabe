"""The figures of an account at an instant (SPEC §3)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from arrears.domain.clock import local_date
from arrears.domain.model import Invoice

ZERO = Decimal("0")


@dataclass(frozen=True)
class Figures:
    total_owing: Decimal
    overdue_balance: Decimal
    days_overdue: int
    disputed: Decimal
    unallocated: Decimal
    oldest_overdue_due: date | None

    def basis(self, amount_basis: str) -> Decimal:
        return self.overdue_balance if amount_basis == "overdue_balance" else self.total_owing


def figures_on(invoices: Iterable[Invoice], t: datetime, today: date, unallocated: Decimal) -> Figures:
    """Figures with `today` given explicitly, so projections can ask about future days."""
    return figures_of_open([inv for inv in invoices if inv.is_open_at(t)], today, unallocated)


def figures_of_open(open_invoices: Iterable[Invoice], today: date, unallocated: Decimal) -> Figures:
    """`figures_on` of invoices already known to be open at the instant asked about.

    A decision asks about several days at one instant: it filters the open
    invoices once.
    """
    total = overdue = disputed = ZERO
    oldest: date | None = None
    for inv in open_invoices:
        total += inv.balance
        disputed += inv.disputed
        if inv.due < today:
            overdue += inv.balance
            if oldest is None or inv.due < oldest:
                oldest = inv.due
    days = (today - oldest).days if oldest is not None else 0
    return Figures(total, overdue, days, disputed, unallocated, oldest)


def figures_at(
    invoices: Iterable[Invoice], t: datetime, tz: ZoneInfo, unallocated: Decimal = ZERO
) -> Figures:
    return figures_on(invoices, t, local_date(t, tz), unallocated)
