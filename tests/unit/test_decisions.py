"""evaluate() on hand-built accounts: the SPEC §6/§7 examples, and minimal reproductions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from arrears.domain.clock import at_local, iso_local, start_of_day
from arrears.domain.decisions import Action, ProviderContext, evaluate
from arrears.domain.events import EventKind, EventMapping, Mappings
from arrears.domain.model import (
    AccountSnapshot,
    AccountStatus,
    ChangedBy,
    Episode,
    Invoice,
    InvoiceStatus,
    OmitFlag,
    Service,
    ServiceStatus,
    StatusReason,
)
from arrears.domain.rules import RuleSet, Stage, Window

from .strategies import EPOCH, remember

SYD = ZoneInfo("Australia/Sydney")
D = Decimal


def local(day: date, hh: int = 0, mm: int = 0) -> datetime:
    return at_local(day, time(hh, mm), SYD)


def rules(**kw: object) -> RuleSet:
    base: dict[str, object] = {
        "name": "default",
        "min_overdue_amount": D("50.00"),
        "min_overdue_days": 14,
        "restore_threshold": D("10.00"),
        "effective_at": EPOCH,
    }
    base.update(kw)
    return RuleSet(**base)  # type: ignore[arg-type]


def ctx(
    r: RuleSet, *, suspend: bool = True, unsuspend: bool = True, extra: tuple[EventMapping, ...] = ()
) -> ProviderContext:
    items = (
        EventMapping("auto_suspend", EventKind.AUTO_SUSPEND, enabled=suspend),
        EventMapping("auto_unsuspend", EventKind.AUTO_UNSUSPEND, enabled=unsuspend),
        *extra,
    )
    return ProviderContext(SYD, (r,), Mappings(items))


def invoice(id: str, due: date, balance: str, *, issued: datetime | None = None) -> Invoice:
    amount = D(balance)
    return Invoice(id, issued or local(due - timedelta(days=14)), due, amount, amount, InvoiceStatus.OPEN)


def active(*invoices: Invoice, **kw: object) -> AccountSnapshot:
    return AccountSnapshot(
        "A1",
        AccountStatus.ACTIVE,
        services=(
            Service("S1", "mobile", ServiceStatus.ACTIVE),
            Service("S2", "broadband", ServiceStatus.ACTIVE),
        ),
        invoices=invoices,
        **kw,  # type: ignore[arg-type]
    )


def in_episode(
    stage: str, *invoices: Invoice, status: ServiceStatus = ServiceStatus.RESTRICTED, **kw: object
) -> AccountSnapshot:
    return AccountSnapshot(
        "A1",
        AccountStatus.SUSPENDED,
        StatusReason.AUTO,
        services=(Service("S1", "mobile", status, ChangedBy.EPISODE, True),),
        invoices=invoices,
        episode=Episode(1, stage, local(date(2026, 1, 30), 9)),
        path_started_at=local(date(2026, 1, 20), 9),
        **kw,  # type: ignore[arg-type]
    )


DUE = date(2026, 1, 15)
BUSINESS_HOURS = (Window(frozenset(range(5)), time(9), time(17)),)


# --------------------------------------------------------------------------- the reference behaviour


def test_the_spec_example_suspends_on_the_first_allowed_instant_after_day_14() -> None:
    r = rules(windows=BUSINESS_HOURS)
    acc = active(invoice("I1", DUE, "120.00"))
    # Days overdue must be > 14: on 2026-01-29 it is 14, on the 30th (a Friday) 15.
    ev = evaluate(acc, ctx(r), local(date(2026, 1, 29), 12))
    assert ev.action is Action.NONE
    assert ev.eligibility == start_of_day(date(2026, 1, 30), SYD)
    assert ev.projected == local(date(2026, 1, 30), 9)
    assert evaluate(acc, ctx(r), local(date(2026, 1, 30), 8, 59)).action is Action.NONE
    ev = evaluate(acc, ctx(r), local(date(2026, 1, 30), 9))
    assert ev.action is Action.ESCALATE
    assert ev.stage is not None and ev.stage.name == "suspend" and ev.stage.status is ServiceStatus.RESTRICTED


def test_total_owing_basis_never_suspends_an_account_that_restoration_would_release() -> None:
    # Total owing 200 ≥ 50 thanks to an invoice not yet due, but only 5.00 is overdue (≤ k).
    acc = active(
        invoice("I1", DUE, "5.00"), invoice("I2", date(2026, 3, 1), "195.00", issued=local(date(2026, 2, 1)))
    )
    ev = evaluate(acc, ctx(rules()), local(date(2026, 2, 10), 12))
    assert ev.target is not None  # the stage's own conditions hold...
    assert ev.action is Action.NONE  # ...but overdue ≤ k
    assert ev.projected == local(date(2026, 3, 2))  # when I2 falls overdue


def test_restoration_happens_at_night_outside_the_windows_and_on_a_holiday() -> None:
    r = rules(windows=BUSINESS_HOURS, closure_dates=frozenset({date(2026, 2, 8)}))
    acc = in_episode("suspend", replace(invoice("I1", DUE, "120.00"), balance=D("10.00")))
    ev = evaluate(acc, ctx(r), local(date(2026, 2, 8), 3))  # a Sunday, 03:00, closure date
    assert ev.action is Action.RESTORE and ev.restore_reason == "paid"
    ev = evaluate(acc, ctx(r, unsuspend=False), local(date(2026, 2, 8), 3))
    assert ev.action is Action.WOULD_RESTORE


def test_unallocated_money_does_not_restore_and_holds_back_a_new_suspension() -> None:
    inv = invoice("I1", DUE, "120.00")
    ev = evaluate(in_episode("suspend", inv, unallocated=D("200.00")), ctx(rules()), local(date(2026, 2, 10)))
    assert ev.action is Action.NONE
    ev = evaluate(active(inv, unallocated=D("200.00")), ctx(rules()), local(date(2026, 2, 10)))
    assert ev.exclusions == ("unallocated_payment",)
    assert ev.action is Action.NONE and ev.projected is None


def test_in_an_episode_not_active_does_not_hold_back_the_next_stage() -> None:
    r = rules(stages=(Stage("restrict", 14), Stage("suspend", 30, ServiceStatus.SUSPENDED)))
    acc = in_episode("restrict", invoice("I1", DUE, "120.00"))
    ev = evaluate(acc, ctx(r), local(date(2026, 2, 15), 10))  # 31 days overdue
    assert acc.status is AccountStatus.SUSPENDED
    assert ev.action is Action.ESCALATE and ev.stage is not None and ev.stage.name == "suspend"
    # ...while unallocated money does hold it back, and is said once.
    held = evaluate(replace(acc, unallocated=D("1.00")), ctx(r), local(date(2026, 2, 15), 10))
    assert held.action is Action.NONE
    assert held.excluded_now == ("unallocated_payment",)
    again = evaluate(
        replace(acc, unallocated=D("1.00"), excluded_reasons=("unallocated_payment",)),
        ctx(r),
        local(date(2026, 2, 15), 11),
    )
    assert again.action is Action.NONE and again.excluded_now is None
    # An open complaint case releases the account instead (restore_when_excluded).
    released = evaluate(replace(acc, open_cases=1), ctx(r), local(date(2026, 2, 15), 10))
    assert released.action is Action.RESTORE and released.restore_reason == "complaint_case"


def test_the_next_stage_waits_for_a_window_too() -> None:
    r = rules(
        windows=BUSINESS_HOURS, stages=(Stage("restrict", 14), Stage("suspend", 30, ServiceStatus.SUSPENDED))
    )
    acc = in_episode("restrict", invoice("I1", DUE, "120.00"))
    saturday = local(date(2026, 2, 21), 10)  # 37 days overdue
    ev = evaluate(acc, ctx(r), saturday)
    assert ev.action is Action.NONE
    assert ev.next_wakeup == local(date(2026, 2, 23), 9)
    ev = evaluate(acc, ctx(r), local(date(2026, 2, 23), 9))
    assert ev.action is Action.ESCALATE and ev.stage is not None and ev.stage.name == "suspend"


def test_deescalation_when_the_oldest_invoice_is_paid() -> None:
    r = rules(stages=(Stage("restrict", 14), Stage("suspend", 30, ServiceStatus.SUSPENDED)))
    old = replace(invoice("I1", DUE, "120.00"), balance=D("0"), status=InvoiceStatus.PAID)
    newer = invoice("I2", date(2026, 2, 1), "80.00")
    acc = in_episode("suspend", old, newer, status=ServiceStatus.SUSPENDED)
    ev = evaluate(acc, ctx(r, suspend=False), local(date(2026, 2, 20), 3))  # 19 days from I2, at night
    assert ev.action is Action.DEESCALATE and ev.stage is not None and ev.stage.name == "restrict"


def test_an_episode_at_the_first_stage_whose_stage_no_longer_holds_stays_put() -> None:
    """Paying the oldest invoice moves days overdue to the next oldest (9 days, not > 14) while
    the overdue balance stays > k: there is no stage below the first one to move down to.
    (Until a fix in the working tree, fixed before 2e249b6, this was DEESCALATE to the same
    stage, which writes a `suspend -> suspend` line on every evaluation.)"""
    old = replace(invoice("I1", DUE, "120.00"), balance=D("0"), status=InvoiceStatus.PAID)
    acc = in_episode("suspend", old, invoice("I2", date(2026, 2, 1), "80.00"))
    ev = evaluate(acc, ctx(rules()), local(date(2026, 2, 10), 10))
    assert ev.target is None
    assert ev.action is Action.NONE, f"{ev.action} to {ev.stage and ev.stage.name}"


# --------------------------------------------------------------------------- warnings and notices


def warning(hours: int, *, enforce: bool, n: int = 0) -> EventMapping:
    return EventMapping(
        f"suspension_warning#{n}",
        EventKind.SUSPENSION_WARNING,
        enabled=True,
        channels=("sms",),
        hours_before=hours,
        enforce=enforce,
    )


def test_an_enforced_warning_sent_late_pushes_the_suspension_to_the_end_of_its_notice() -> None:
    c = ctx(rules(windows=BUSINESS_HOURS), extra=(warning(24, enforce=True),))
    acc = active(invoice("I1", DUE, "120.00"))
    now = local(date(2026, 2, 2), 10)  # long eligible, warning never sent
    ev = evaluate(acc, c, now)
    assert ev.action is Action.NONE
    assert ev.projected == now + timedelta(hours=24)
    [notice] = ev.notices
    assert notice.mapping.key == "suspension_warning#0" and not notice.late
    after = remember(acc, ev, now)
    assert evaluate(after, c, now + timedelta(hours=24) - timedelta(seconds=1)).action is Action.NONE
    assert evaluate(after, c, now + timedelta(hours=24)).action is Action.ESCALATE


def test_an_enforced_warning_planned_ahead_does_not_delay_the_suspension() -> None:
    c = ctx(rules(), extra=(warning(24, enforce=True),))
    acc = active(invoice("I1", DUE, "120.00"))
    now = local(date(2026, 1, 25), 10)
    ev = evaluate(acc, c, now)
    assert ev.projected == local(date(2026, 1, 30))  # eligibility, the notice fits before it
    assert ev.wakeups["suspension_warning"] == local(date(2026, 1, 29))
    at = local(date(2026, 1, 29))
    ev = evaluate(acc, c, at)
    assert [n.mapping.key for n in ev.notices] == ["suspension_warning#0"]
    assert ev.projected == local(date(2026, 1, 30))
    assert evaluate(remember(acc, ev, at), c, local(date(2026, 1, 30))).action is Action.ESCALATE


def test_an_unenforced_warning_goes_out_hours_before_and_does_not_delay() -> None:
    c = ctx(rules(), extra=(warning(48, enforce=False),))
    acc = active(invoice("I1", DUE, "120.00"))
    ev = evaluate(acc, c, local(date(2026, 1, 27), 10))
    assert ev.projected == local(date(2026, 1, 30))
    assert ev.wakeups["suspension_warning"] == local(date(2026, 1, 28))
    assert not ev.notices


def test_invoice_notices_are_sent_when_at_most_24_hours_late_and_skipped_later() -> None:
    due_mapping = EventMapping(
        "invoice_due#0", EventKind.INVOICE_DUE, enabled=True, channels=("email",), days_before=3
    )
    c = ctx(rules(), extra=(due_mapping,))
    acc = active(invoice("I1", DUE, "120.00", issued=local(date(2026, 1, 1))))
    at = local(date(2026, 1, 12), 9)  # send_time 09:00, three days before the due date
    assert evaluate(acc, c, at - timedelta(minutes=1)).wakeups["invoice_notice"] == at
    [n] = evaluate(acc, c, at + timedelta(hours=24)).notices
    assert n.due_at == at and not n.late
    [n] = evaluate(acc, c, at + timedelta(hours=24, seconds=1)).notices
    assert n.late
    assert not evaluate(replace(acc, notices_recorded=frozenset({n.key})), c, at + timedelta(days=2)).notices


# --------------------------------------------------------------------------- shadow mode


def test_shadow_mode_says_would_suspend_once_per_stage_and_changes_nothing() -> None:
    acc = active(invoice("I1", DUE, "120.00"))
    now = local(date(2026, 2, 2), 10)
    ev = evaluate(acc, ctx(rules(), suspend=False), now)
    assert ev.action is Action.WOULD_SUSPEND and ev.shadow_memory == "suspend"
    assert ev.projected is None
    ev = evaluate(remember(acc, ev, now), ctx(rules(), suspend=False), now + timedelta(hours=1))
    assert ev.action is Action.NONE


# --------------------------------------------------------------------------- reproductions of bugs
# The first three were fixed in 2e249b6 ("Domain fixes found by the property tests"); the
# two would_restore ones after them still fail.


def test_shadow_mode_wakes_up_when_the_next_stage_comes_due() -> None:
    """SPEC §9: a decision can become due at a local midnight (days overdue grow), and the
    next wake-up is computed from that list. In shadow mode, after `would_suspend restrict`,
    `would_suspend suspend` becomes due at the midnight days overdue pass 30. (Before
    2e249b6 the `if not auto:` branch of decisions.py returned with no wake-up at all.)"""
    r = rules(stages=(Stage("restrict", 14), Stage("suspend", 30, ServiceStatus.SUSPENDED)))
    c = ctx(r, suspend=False)
    acc = active(invoice("I1", DUE, "120.00"))
    now = local(date(2026, 2, 2), 10)
    ev = evaluate(acc, c, now)
    assert ev.action is Action.WOULD_SUSPEND and ev.stage is not None and ev.stage.name == "restrict"
    acc = remember(acc, ev, now)
    due = start_of_day(date(2026, 2, 15), SYD)  # 31 days overdue
    later = evaluate(acc, c, due)
    assert later.action is Action.WOULD_SUSPEND and later.stage is not None and later.stage.name == "suspend"
    ev = evaluate(acc, c, now)
    assert ev.next_wakeup is not None and ev.next_wakeup <= due, ev.wakeups


def test_would_restore_wakes_up_when_the_next_invoice_falls_overdue() -> None:
    """With auto_unsuspend disabled an account paid down to ≤ k stays in its episode
    (WOULD_RESTORE). When another invoice falls overdue the balance is > k again and the
    next stage is due at that midnight. (Before 2e249b6 the restore branch of decisions.py
    returned with no wake-up, so the scanner never looked at the account again.)"""
    r = rules(stages=(Stage("restrict", 14), Stage("suspend", 30, ServiceStatus.SUSPENDED)))
    c = ctx(r, unsuspend=False)
    acc = in_episode(
        "restrict",
        replace(invoice("I1", DUE, "120.00"), balance=D("5.00")),
        invoice("I2", date(2026, 2, 20), "100.00"),
    )
    now = local(date(2026, 2, 20), 10)
    ev = evaluate(acc, c, now)
    assert ev.action is Action.WOULD_RESTORE
    due = start_of_day(date(2026, 2, 21), SYD)  # I2 overdue: 105 > k, 37 days from I1
    later = evaluate(acc, c, due)
    assert later.action is Action.ESCALATE and later.stage is not None and later.stage.name == "suspend"
    assert ev.next_wakeup is not None and ev.next_wakeup <= due, ev.wakeups


def test_would_restore_wakes_up_when_a_newer_invoice_falls_overdue_and_the_stage_must_come_down() -> None:
    """auto_unsuspend disabled, the account paid down to ≤ k: would_restore, said once. The next
    invoice then falls overdue (105 > k, 20 days from I1): SPEC §6 de-escalates at once to
    `restrict`. Since 2e249b6 the evaluation wakes up for the stages beyond the current one
    only, and the restore branch of decisions.py (`if fig.overdue_balance <= k or releasing:`)
    returns with no wake-up for the midnight the overdue balance passes k again, so
    next_wakeup is None and the de-escalation waits for some unrelated input."""
    r = rules(stages=(Stage("restrict", 14), Stage("suspend", 30, ServiceStatus.SUSPENDED)))
    c = ctx(r, unsuspend=False)
    paid_down = replace(invoice("I1", date(2026, 2, 1), "120.00"), balance=D("5.00"))
    acc = in_episode(
        "suspend", paid_down, invoice("I2", date(2026, 2, 20), "100.00"), status=ServiceStatus.SUSPENDED
    )
    now = local(date(2026, 2, 20), 10)
    ev = evaluate(acc, c, now)
    assert ev.action is Action.WOULD_RESTORE
    acc = remember(acc, ev, now)
    due = start_of_day(date(2026, 2, 21), SYD)
    later = evaluate(acc, c, due)
    assert later.action is Action.DEESCALATE and later.stage is not None and later.stage.name == "restrict"
    ev = evaluate(acc, c, now + timedelta(minutes=1))
    assert ev.action is Action.NONE
    assert ev.next_wakeup is not None and ev.next_wakeup <= due, ev.wakeups


def test_a_new_would_restore_reason_is_said_when_it_comes_due() -> None:
    """The same gap, without a state change: would_restore `paid`, then I2 falls overdue and
    the account is still released by its omit flag, so `would_restore omit_flag` becomes due at
    that midnight; nothing wakes the account up for it."""
    c = ctx(rules(), unsuspend=False)
    paid_down = replace(invoice("I1", DUE, "120.00"), balance=D("5.00"))
    acc = in_episode(
        "suspend", paid_down, invoice("I2", date(2026, 2, 20), "100.00"), omit=OmitFlag("hardship")
    )
    now = local(date(2026, 2, 20), 10)
    ev = evaluate(acc, c, now)
    assert (ev.action, ev.restore_reason) == (Action.WOULD_RESTORE, "paid")
    acc = remember(acc, ev, now)
    due = start_of_day(date(2026, 2, 21), SYD)
    later = evaluate(acc, c, due)
    assert (later.action, later.restore_reason) == (Action.WOULD_RESTORE, "omit_flag")
    ev = evaluate(acc, c, now + timedelta(minutes=1))
    assert ev.next_wakeup is not None and ev.next_wakeup <= due, ev.wakeups


def test_a_later_stage_with_a_lower_own_amount_is_escalated_to() -> None:
    """SPEC §6: target stage = the last stage whose conditions hold; escalate to it when no
    exclusion holds, auto_suspend is on, the instant is allowed and overdue > k. Here only the
    later stage holds (its own amount 20 is lower than the first stage's 500). (Before 2e249b6
    nothing happened: eligibility looked only at the first stage, found None and returned
    before escalating.)"""
    r = rules(
        stages=(
            Stage("restrict", 14, ServiceStatus.RESTRICTED, D("500.00")),
            Stage("deactivate", 60, ServiceStatus.DEACTIVATED, D("20.00")),
        )
    )
    acc = active(invoice("I1", DUE, "30.00"))
    ev = evaluate(acc, ctx(r), local(date(2026, 3, 20), 10))  # 64 days overdue, 30.00 > k
    assert ev.target is not None and ev.target.name == "deactivate"
    assert ev.action is Action.ESCALATE, f"action {ev.action}, eligibility {ev.eligibility}"
    assert ev.stage is not None and ev.stage.name == "deactivate"


def test_instants_are_reported_in_provider_time() -> None:
    ev = evaluate(active(invoice("I1", DUE, "120.00")), ctx(rules()), datetime(2026, 1, 20, tzinfo=UTC))
    assert ev.projected is not None
    assert iso_local(ev.projected, SYD) == "2026-01-30T00:00:00+11:00"
