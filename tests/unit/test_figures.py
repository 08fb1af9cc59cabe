"""Figures of an account at an instant (SPEC §3)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from arrears.domain.clock import at_local, local_date
from arrears.domain.figures import figures_at
from arrears.domain.model import Invoice, InvoiceStatus

from .oracles import ref_figures
from .strategies import days_2026, fast, instants_on, invoices, to_cents, zones

SYD = ZoneInfo("Australia/Sydney")
D = Decimal


def inv(
    id: str, due: date, balance: str, *, status: InvoiceStatus = InvoiceStatus.OPEN, disputed: str = "0"
) -> Invoice:
    return Invoice(
        id, at_local(due - timedelta(days=14), time(8), SYD), due, D(balance), D(balance), status, D(disputed)
    )


@given(data=st.data(), tz=zones, day=days_2026)
@fast(200)
def test_figures_sum_exactly_and_match_the_spec(data: st.DataObject, tz: ZoneInfo, day: date) -> None:
    now = data.draw(instants_on(day, tz))
    invs = data.draw(
        invoices(now + timedelta(days=data.draw(st.integers(-3, 3))), day, max_size=8, disputes=True)
    )
    unallocated = D(data.draw(st.integers(0, 10_000))).scaleb(-2)
    got = figures_at(invs, now, tz, unallocated)
    ref = ref_figures(invs, now, tz)
    assert got.total_owing == ref.total_owing
    assert got.overdue_balance == ref.overdue_balance
    assert got.days_overdue == ref.days_overdue
    assert got.disputed == ref.disputed
    assert got.unallocated == unallocated
    # Exact: the Decimal results carry no binary-float residue.
    assert to_cents(got.total_owing) == sum(to_cents(i.balance) for i in invs if i.is_open_at(now))
    assert D(0) <= got.overdue_balance <= got.total_owing
    assert (got.days_overdue == 0) == (got.overdue_balance == 0)


def test_ten_cents_ten_times_is_exactly_a_dollar() -> None:
    invs = [inv(f"I{i}", date(2026, 1, 1), "0.10") for i in range(10)]
    fig = figures_at(invs, at_local(date(2026, 2, 1), time(12), SYD), SYD)
    assert fig.total_owing == D("1.00") and fig.overdue_balance == D("1.00")
    assert str(fig.total_owing) == "1.00"


def test_an_invoice_due_today_is_not_overdue_and_is_one_day_overdue_tomorrow() -> None:
    i = inv("I1", date(2026, 1, 15), "120.00")
    last_second = at_local(date(2026, 1, 15), time(23, 59, 59), SYD)
    fig = figures_at([i], last_second, SYD)
    assert (fig.total_owing, fig.overdue_balance, fig.days_overdue) == (D("120.00"), D("0"), 0)
    midnight = at_local(date(2026, 1, 16), time(0), SYD)
    fig = figures_at([i], midnight, SYD)
    assert (fig.overdue_balance, fig.days_overdue) == (D("120.00"), 1)
    assert figures_at([i], at_local(date(2026, 1, 29), time(0), SYD), SYD).days_overdue == 14
    assert figures_at([i], at_local(date(2026, 1, 30), time(0), SYD), SYD).days_overdue == 15


def test_days_are_counted_in_the_provider_timezone() -> None:
    i = inv("I1", date(2026, 1, 15), "120.00")
    # 2026-01-15T14:00Z is 2026-01-16 01:00 in Sydney: overdue there, not in London.
    t = datetime(2026, 1, 15, 14, 0, tzinfo=UTC)
    assert figures_at([i], t, SYD).days_overdue == 1
    assert figures_at([i], t, ZoneInfo("Europe/London")).days_overdue == 0
    # A DST change day is one day, whatever its length.
    syd_change = at_local(date(2026, 4, 6), time(0), SYD)
    assert figures_at([inv("I2", date(2026, 4, 4), "1.00")], syd_change, SYD).days_overdue == 2


def test_days_overdue_count_from_the_next_oldest_once_the_oldest_is_paid() -> None:
    oldest = inv("I1", date(2026, 1, 15), "120.00")
    newer = inv("I2", date(2026, 2, 15), "80.00")
    t = at_local(date(2026, 2, 20), time(10), SYD)
    fig = figures_at([oldest, newer], t, SYD)
    assert (fig.overdue_balance, fig.days_overdue, fig.oldest_overdue_due) == (
        D("200.00"),
        36,
        date(2026, 1, 15),
    )
    paid = replace(oldest, balance=D("0"), status=InvoiceStatus.PAID)
    fig = figures_at([paid, newer], t, SYD)
    assert (fig.overdue_balance, fig.days_overdue, fig.oldest_overdue_due) == (
        D("80.00"),
        5,
        date(2026, 2, 15),
    )
    # A zero balance left open counts as paid too.
    fig = figures_at([replace(oldest, balance=D("0")), newer], t, SYD)
    assert fig.days_overdue == 5


def test_only_open_invoices_issued_by_t_with_a_balance_count() -> None:
    t = at_local(date(2026, 2, 20), time(10), SYD)
    counted = inv("I1", date(2026, 1, 15), "10.00", disputed="4.00")
    others = [
        inv("I2", date(2026, 1, 15), "20.00", status=InvoiceStatus.DRAFT),
        inv("I3", date(2026, 1, 15), "30.00", status=InvoiceStatus.VOID),
        inv("I4", date(2026, 1, 15), "40.00", status=InvoiceStatus.WRITTEN_OFF),
        inv("I5", date(2026, 1, 15), "50.00", status=InvoiceStatus.PAID),
        replace(inv("I6", date(2026, 1, 15), "60.00"), issued_at=t + timedelta(seconds=1)),
    ]
    fig = figures_at([counted, *others], t, SYD, D("7.00"))
    assert (fig.total_owing, fig.overdue_balance, fig.disputed, fig.unallocated) == (
        D("10.00"),
        D("10.00"),
        D("4.00"),
        D("7.00"),
    )
    assert figures_at([others[-1]], t + timedelta(seconds=1), SYD).total_owing == D("60.00")


def test_no_invoices_no_figures() -> None:
    fig = figures_at([], datetime(2026, 1, 1, tzinfo=UTC), SYD)
    assert (fig.total_owing, fig.overdue_balance, fig.days_overdue, fig.oldest_overdue_due) == (0, 0, 0, None)
    assert local_date(datetime(2026, 1, 1, tzinfo=UTC), SYD) == date(2026, 1, 1)
