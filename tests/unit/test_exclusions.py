"""Exclusions: what holds back an automatic suspension (SPEC §5)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given

from arrears.domain.clock import at_local
from arrears.domain.decisions import evaluate
from arrears.domain.exclusions import CODES, exclusions, grace_ends
from arrears.domain.figures import figures_at
from arrears.domain.model import (
    AccountSnapshot,
    AccountStatus,
    Episode,
    Invoice,
    InvoiceStatus,
    OmitFlag,
    PaymentPlan,
    PlanStatus,
    Service,
    ServiceStatus,
)
from arrears.domain.rules import RuleSet

from .oracles import ref_exclusions
from .strategies import EPOCH, Scenario, fast, scenarios

SYD = ZoneInfo("Australia/Sydney")
D = Decimal
NOW = at_local(date(2026, 2, 10), time(10), SYD)
RULES = RuleSet(
    "r", D("50.00"), 14, D("10.00"), EPOCH, resuspend_days=7, excluded_groups={"VIP": "very important"}
)


def invoice(id: str, balance: str, disputed: str = "0") -> Invoice:
    return Invoice(
        id,
        NOW - timedelta(days=40),
        date(2026, 1, 15),
        D(balance),
        D(balance),
        InvoiceStatus.OPEN,
        D(disputed),
    )


ACCOUNT = AccountSnapshot(
    "A1",
    AccountStatus.ACTIVE,
    services=(Service("S1", "mobile", ServiceStatus.ACTIVE),),
    invoices=(invoice("I1", "100.00"), invoice("I2", "50.00")),
)


def codes(account: AccountSnapshot, now: datetime = NOW, rules: RuleSet = RULES) -> tuple[str, ...]:
    fig = figures_at(account.invoices, now, SYD, account.unallocated)
    return exclusions(account, rules, fig, now, now.astimezone(SYD).date(), SYD)


@given(sc=scenarios())
@fast(150, shrink=False)
def test_exclusions_are_the_spec_ones_in_canonical_order(sc: Scenario) -> None:
    ev = evaluate(sc.account, sc.ctx, sc.now)
    assert set(ev.exclusions) == ref_exclusions(sc.account, sc.rules, sc.now, sc.tz)
    assert list(ev.exclusions) == sorted(ev.exclusions, key=CODES.index)


def test_a_clean_account_has_none() -> None:
    assert codes(ACCOUNT) == ()


def test_not_active() -> None:
    assert codes(replace(ACCOUNT, status=AccountStatus.PREACTIVE)) == ("not_active",)
    barred = (
        Service("S1", "mobile", ServiceStatus.RESTRICTED),
        Service("S2", "voip", ServiceStatus.PREACTIVE),
    )
    assert codes(replace(ACCOUNT, services=barred)) == ("not_active",)
    assert codes(replace(ACCOUNT, services=())) == ("not_active",)
    # Inside an episode the account is suspended by then: not a reason.
    in_episode = replace(
        ACCOUNT, status=AccountStatus.SUSPENDED, services=barred, episode=Episode(1, "suspend", NOW)
    )
    assert codes(in_episode) == ()


def test_excluded_group() -> None:
    assert codes(replace(ACCOUNT, groups=frozenset({"VIP", "retail"}))) == ("excluded_group",)
    assert codes(replace(ACCOUNT, groups=frozenset({"retail"}))) == ()


def test_omit_flag_holds_through_the_end_of_its_date() -> None:
    flagged = replace(ACCOUNT, omit=OmitFlag("hardship", until=date(2026, 2, 10)))
    assert codes(flagged, at_local(date(2026, 2, 10), time(23, 59, 59), SYD)) == ("omit_flag",)
    assert codes(flagged, at_local(date(2026, 2, 11), time(0), SYD)) == ()
    assert codes(replace(ACCOUNT, omit=OmitFlag("forever"))) == ("omit_flag",)


def test_payment_plan_covering_all_but_k() -> None:
    # Owing 150; the plan covers I1 (100): 50 left > k=10, so not excluded.
    plan = PaymentPlan("PL1", PlanStatus.IN_PROGRESS, frozenset({"I1"}))
    assert codes(replace(ACCOUNT, plans=(plan,))) == ()
    covering = replace(plan, invoices=frozenset({"I1", "I2"}))
    assert codes(replace(ACCOUNT, plans=(covering,))) == ("payment_plan",)
    assert codes(replace(ACCOUNT, plans=(replace(covering, status=PlanStatus.BROKEN),))) == ()
    assert codes(replace(ACCOUNT, plans=(replace(covering, status=PlanStatus.COMPLETED),))) == ()
    # Exactly k left over still counts (≤ k).
    small = replace(ACCOUNT, invoices=(invoice("I1", "100.00"), invoice("I2", "10.00")))
    assert codes(replace(small, plans=(plan,))) == ("payment_plan",)


def test_dispute_leaving_at_most_k_undisputed() -> None:
    disputed = replace(
        ACCOUNT, invoices=(invoice("I1", "100.00", disputed="100.00"), invoice("I2", "50.00", "40.00"))
    )
    assert codes(disputed) == ("dispute",)  # 150 - 140 = 10 ≤ k
    partly = replace(
        ACCOUNT, invoices=(invoice("I1", "100.00", disputed="100.00"), invoice("I2", "50.00", "39.99"))
    )
    assert codes(partly) == ()


def test_complaint_case_and_unallocated_payment() -> None:
    assert codes(replace(ACCOUNT, open_cases=1)) == ("complaint_case",)
    assert codes(replace(ACCOUNT, unallocated=D("0.01"))) == ("unallocated_payment",)


def test_resuspend_grace_counts_local_days_across_a_dst_change() -> None:
    # Restored by an operator on 2026-04-01 10:00 AEDT; Sydney falls back on 2026-04-05.
    restored = at_local(date(2026, 4, 1), time(10), SYD)
    acc = replace(ACCOUNT, operator_restored_at=restored)
    ends = grace_ends(acc, RULES, SYD)
    assert ends == at_local(date(2026, 4, 8), time(10), SYD)
    assert ends - restored == timedelta(days=7, hours=1)
    assert codes(acc, ends - timedelta(seconds=1)) == ("resuspend_grace",)
    assert codes(acc, ends) == ()
    assert grace_ends(acc, replace(RULES, resuspend_days=0), SYD) is None


def test_several_reasons_in_canonical_order() -> None:
    acc = replace(
        ACCOUNT,
        status=AccountStatus.INACTIVE,
        groups=frozenset({"VIP"}),
        omit=OmitFlag("x"),
        open_cases=2,
        unallocated=D("5.00"),
        operator_restored_at=NOW - timedelta(days=1),
    )
    assert codes(acc) == (
        "not_active",
        "excluded_group",
        "omit_flag",
        "complaint_case",
        "unallocated_payment",
        "resuspend_grace",
    )
