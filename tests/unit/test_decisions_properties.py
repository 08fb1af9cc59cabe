"""Properties of evaluate() (SPEC §5-§7), checked against spec-derived oracles."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from arrears.domain.clock import iso_local, local_date, start_of_day
from arrears.domain.decisions import Action, Evaluation, ProviderContext, evaluate
from arrears.domain.events import EventKind
from arrears.domain.rules import RESTORING_EXCLUSIONS

from .oracles import ref_allowed, ref_exclusions, ref_figures, ref_ladder, ref_target
from .strategies import Scenario, fast, remember, scenarios, settle

ESCALATING = (Action.ESCALATE, Action.WOULD_SUSPEND)
RESTORING = (Action.RESTORE, Action.WOULD_RESTORE)


def allowed(sc: Scenario, t: datetime) -> bool:
    """Allowed per the spec's wall-clock reading (the engine's own reading in a repeated hour)."""
    expected = ref_allowed(sc.rules, sc.ctx.calendars(sc.rules) or (lambda d: False), sc.tz, t)
    return sc.schedule.allowed(t) if expected is None else expected


def describe(sc: Scenario, ev: Evaluation) -> str:
    return (
        f"now={iso_local(sc.now, sc.tz)} action={ev.action} stage={ev.stage and ev.stage.name} "
        f"exclusions={ev.exclusions} projected={ev.projected and iso_local(ev.projected, sc.tz)}"
    )


def stage_index(sc: Scenario, name: str) -> int:
    return [s.name for s in ref_ladder(sc.rules)].index(name)


def enforced_warnings(ctx: ProviderContext) -> list[tuple[str, int]]:
    return [(m.key, m.hours_before) for m in ctx.mappings.of(EventKind.SUSPENSION_WARNING) if m.enforce]


# --------------------------------------------------------------------------- exclusions


@given(sc=scenarios(episode=False, clean=False, owing=True))
@fast(120, shrink=False)
def test_an_account_with_any_exclusion_outside_an_episode_is_never_escalated(sc: Scenario) -> None:
    ev = evaluate(sc.account, sc.ctx, sc.now)
    excl = ref_exclusions(sc.account, sc.rules, sc.now, sc.tz)
    if excl:
        assert ev.action is Action.NONE, describe(sc, ev)
        assert ev.stage is None
        assert ev.projected is None, "an account held back by an exclusion has no projected suspension"
        assert set(ev.exclusions) == excl


@given(sc=scenarios(episode=True))
@fast(120, shrink=False)
def test_inside_an_episode_only_exclusions_other_than_not_active_hold_back_escalation(sc: Scenario) -> None:
    ev = evaluate(sc.account, sc.ctx, sc.now)
    excl = ref_exclusions(sc.account, sc.rules, sc.now, sc.tz)
    assert "not_active" not in ev.exclusions
    if ev.action in ESCALATING:
        assert not excl, describe(sc, ev)
    # The account is suspended with no active service (what `not_active` looks at), yet
    # with nothing else holding it back a due escalation happens.
    fig = ref_figures(sc.account.invoices, sc.now, sc.tz)
    tgt = ref_target(sc.rules, fig)
    current = stage_index(sc, sc.account.episode.stage)  # type: ignore[union-attr]
    if (
        sc.ctx.mappings.auto_suspend
        and not excl
        and fig.overdue_balance > sc.rules.restore_threshold
        and tgt > current
        and allowed(sc, sc.now)
    ):
        assert ev.action is Action.ESCALATE, describe(sc, ev)
        assert ev.stage is not None and ev.stage.name == ref_ladder(sc.rules)[tgt].name


# --------------------------------------------------------------------------- restoration and de-escalation


@given(sc=scenarios())
@fast(120, shrink=False)
def test_restoration_for_payment_only_when_overdue_is_at_most_k_and_always_then(sc: Scenario) -> None:
    ev = evaluate(sc.account, sc.ctx, sc.now)
    fig = ref_figures(sc.account.invoices, sc.now, sc.tz)
    k = sc.rules.restore_threshold
    if ev.action in RESTORING:
        assert sc.account.episode is not None, "only an account in an episode is restored"
        if ev.restore_reason == "paid":
            assert fig.overdue_balance <= k, describe(sc, ev)
        else:
            assert sc.rules.restore_when_excluded
            assert ev.restore_reason in RESTORING_EXCLUSIONS
            assert ev.restore_reason in ref_exclusions(sc.account, sc.rules, sc.now, sc.tz)
        assert (ev.action is Action.RESTORE) == sc.ctx.mappings.auto_unsuspend
    if sc.account.episode is not None and fig.overdue_balance <= k:
        # At any time of day or week: the windows, holidays and exclusions do not matter.
        assert ev.action is (Action.RESTORE if sc.ctx.mappings.auto_unsuspend else Action.WOULD_RESTORE)
        assert ev.restore_reason == "paid"
    if sc.account.episode is not None:
        assert ev.projected is None, "an account already in an episode has no projected suspension"


@given(sc=scenarios(episode=True, with_windows=True))
@fast(120, shrink=False)
def test_deescalation_happens_at_once_whatever_the_windows_and_mappings(sc: Scenario) -> None:
    ev = evaluate(sc.account, sc.ctx, sc.now)
    fig = ref_figures(sc.account.invoices, sc.now, sc.tz)
    excl = ref_exclusions(sc.account, sc.rules, sc.now, sc.tz)
    releasing = sc.rules.restore_when_excluded and excl & RESTORING_EXCLUSIONS
    current = stage_index(sc, sc.account.episode.stage)  # type: ignore[union-attr]
    tgt = ref_target(sc.rules, fig)
    if fig.overdue_balance > sc.rules.restore_threshold and not releasing and current > 0 and tgt < current:
        assert ev.action is Action.DEESCALATE, describe(sc, ev)
        assert ev.stage is not None and ev.stage.name == ref_ladder(sc.rules)[max(tgt, 0)].name


@given(sc=scenarios(episode=True))
@fast(120, shrink=False)
def test_deescalation_always_moves_strictly_down_the_ladder(sc: Scenario) -> None:
    """SPEC §6: de-escalate "when the target stage is below the current one, move down to the
    target (or to the first stage when none holds)". An account already at the first stage
    has nowhere to move down to."""
    ev = evaluate(sc.account, sc.ctx, sc.now)
    if ev.action is Action.DEESCALATE:
        assert ev.stage is not None
        current = stage_index(sc, sc.account.episode.stage)  # type: ignore[union-attr]
        assert stage_index(sc, ev.stage.name) < current, (
            f"DEESCALATE from {sc.account.episode.stage!r} to the same stage {ev.stage.name!r}: {describe(sc, ev)}"  # type: ignore[union-attr]
        )


# --------------------------------------------------------------------------- escalation


@given(sc=scenarios(with_windows=True, clean=True, auto_suspend=True, owing=True))
@fast(150, shrink=False)
def test_no_escalation_at_an_instant_that_is_not_allowed(sc: Scenario) -> None:
    """In and out of episodes; every rule set has windows, and nothing else holds it back."""
    ev = evaluate(sc.account, sc.ctx, sc.now)
    if ev.action not in ESCALATING:
        return
    assert allowed(sc, sc.now), describe(sc, ev)
    fig = ref_figures(sc.account.invoices, sc.now, sc.tz)
    assert fig.overdue_balance > sc.rules.restore_threshold
    assert (ev.action is Action.ESCALATE) == sc.ctx.mappings.auto_suspend
    tgt = ref_target(sc.rules, fig)
    assert ev.stage is not None and tgt >= 0 and ev.stage.name == ref_ladder(sc.rules)[tgt].name
    excl = ref_exclusions(sc.account, sc.rules, sc.now, sc.tz)
    assert not excl, describe(sc, ev)


@given(sc=scenarios(episode=False, clean=True, auto_suspend=True, owing=True))
@fast(120, shrink=False)
def test_an_escalation_that_is_due_happens(sc: Scenario) -> None:
    """SPEC §6 Escalate: target stage held, no exclusion, auto_suspend on, allowed instant,
    overdue > k, and no enforced notice period still running -> escalate to the target."""
    fig = ref_figures(sc.account.invoices, sc.now, sc.tz)
    tgt = ref_target(sc.rules, fig)
    notice_running = any(
        (sc.account.warnings_sent.get(key) or sc.now) + timedelta(hours=h) > sc.now
        for key, h in enforced_warnings(sc.ctx)
    )
    if tgt < 0 or fig.overdue_balance <= sc.rules.restore_threshold or notice_running:
        return
    if not allowed(sc, sc.now) or ref_exclusions(sc.account, sc.rules, sc.now, sc.tz):
        return
    ev = evaluate(sc.account, sc.ctx, sc.now)
    assert ev.action is Action.ESCALATE, describe(sc, ev)
    assert ev.stage is not None and ev.stage.name == ref_ladder(sc.rules)[tgt].name


# --------------------------------------------------------------------------- eligibility and projection


@given(sc=scenarios(episode=False))
@fast(120, shrink=False)
def test_eligibility_is_the_first_instant_a_stage_and_overdue_above_k_hold(sc: Scenario) -> None:
    """SPEC §6 says "the first stage's conditions"; with stages carrying their own amounts a
    later stage can hold first, and escalation goes to it (§6 Escalate), so eligibility is the
    first instant any stage holds (the first stage's, for a ladder whose amounts never go down)."""
    ev = evaluate(sc.account, sc.ctx, sc.now)
    if ev.rule_set is None or ref_exclusions(sc.account, sc.rules, sc.now, sc.tz):
        return
    k = sc.rules.restore_threshold

    def holds(t: datetime) -> bool:
        f = ref_figures(sc.account.invoices, t, sc.tz)
        return ref_target(sc.rules, f) >= 0 and f.overdue_balance > k

    e = ev.eligibility
    if e is None:
        # Never, if nothing else changes: not now, and not in the next 120 days either.
        today = local_date(sc.now, sc.tz)
        assert not any(holds(start_of_day(today + timedelta(days=d), sc.tz)) for d in range(1, 121))
        assert not holds(sc.now)
        return
    assert e >= sc.now
    assert holds(e), describe(sc, ev)
    if e > sc.now:
        assert e == start_of_day(local_date(e, sc.tz), sc.tz), "a future eligibility is a local midnight"
        assert not holds(e - timedelta(seconds=1))
        assert not holds(sc.now)


@given(sc=scenarios(episode=False, clean=True, auto_suspend=True, owing=True))
@fast(150, shrink=False)
def test_projected_suspension_is_allowed_and_after_now_eligibility_and_notice(sc: Scenario) -> None:
    ev = evaluate(sc.account, sc.ctx, sc.now)
    p = ev.projected
    if p is None:
        return
    assert sc.schedule.allowed(p), describe(sc, ev)
    assert allowed(sc, p), describe(sc, ev)
    assert p >= sc.now
    assert ev.eligibility is not None and p >= ev.eligibility
    assert ev.heading
    assert not ref_exclusions(sc.account, sc.rules, sc.now, sc.tz)
    lower = max(ev.eligibility, sc.now)
    for key, hours in enforced_warnings(sc.ctx):
        sent = sc.account.warnings_sent.get(key)
        # Not yet sent: it goes out now at the earliest, so the suspension waits at least that long.
        assert p >= (sent or sc.now) + timedelta(hours=hours), (key, hours, describe(sc, ev))
        lower = max(lower, (sent or sc.now) + timedelta(hours=hours))
    # ...and no longer than that: the first allowed instant from there on.
    before = p - timedelta(seconds=1)
    assert p == lower or not sc.schedule.allowed(before) or before < lower, describe(sc, ev)


@given(sc=scenarios(episode=False, clean=True, auto_suspend=True, owing=True))
@fast(120, shrink=False)
def test_evaluating_at_the_projected_instant_escalates(sc: Scenario) -> None:
    """The projection is not a lie: follow the engine from wake-up to wake-up, recording the
    notices it sends, and it escalates exactly at the projected instant."""
    ev = evaluate(sc.account, sc.ctx, sc.now)
    projected = ev.projected
    if projected is None:
        return
    account, t = sc.account, sc.now
    for _ in range(80):
        if ev.action is Action.ESCALATE:
            break
        assert ev.action is Action.NONE, describe(sc, ev)
        assert ev.projected == projected, (iso_local(t, sc.tz), ev.projected, projected)
        account = remember(account, ev, t)
        nxt = ev.next_wakeup
        assert nxt is not None and nxt <= projected, (
            f"at {iso_local(t, sc.tz)} the next wake-up {nxt} misses the projected {iso_local(projected, sc.tz)}"
        )
        t = nxt
        ev = evaluate(account, sc.ctx, t)
    assert ev.action is Action.ESCALATE, (iso_local(t, sc.tz), describe(sc, ev))
    assert t == projected
    # Every warning went out before the suspension.
    for m in sc.ctx.mappings.of(EventKind.SUSPENSION_WARNING):
        sent = remember(account, ev, t).warnings_sent.get(m.key)
        assert sent is not None and sent <= t


# --------------------------------------------------------------------------- wake-ups


FRACTIONS = st.lists(st.floats(0.001, 0.999), min_size=2, max_size=2)


@given(sc=scenarios(), fractions=FRACTIONS)
@fast(150, shrink=False)
def test_next_wakeup_is_after_now_and_nothing_changes_before_it(sc: Scenario, fractions: list[float]) -> None:
    follow_wakeups(sc, fractions)


@given(sc=scenarios(auto_suspend=True, auto_unsuspend=True, monotone=True), fractions=FRACTIONS)
@fast(120, shrink=False)
def test_next_wakeup_with_automation_on_nothing_changes_before_it(
    sc: Scenario, fractions: list[float]
) -> None:
    """The same in the production configuration: auto_suspend and auto_unsuspend enabled
    (ladders whose amounts never go down)."""
    follow_wakeups(sc, fractions)


@given(
    sc=scenarios(auto_suspend=False, auto_unsuspend=True, monotone=True, owing=True, clean=True),
    fractions=FRACTIONS,
)
@fast(100, shrink=False)
def test_next_wakeup_in_shadow_mode_nothing_changes_before_it(sc: Scenario, fractions: list[float]) -> None:
    """The same, with automatic suspension switched off (shadow mode: would_suspend lines)
    and ladders whose amounts never go down, so it is not the bugs of the general case."""
    follow_wakeups(sc, fractions)


@given(sc=scenarios(episode=True, auto_unsuspend=False, owing=False, pending=True), fractions=FRACTIONS)
@fast(100, shrink=False)
def test_next_wakeup_with_restoration_switched_off_nothing_changes_before_it(
    sc: Scenario, fractions: list[float]
) -> None:
    """The same for accounts in an episode when auto_unsuspend is disabled (would_restore),
    with one more invoice still to fall due."""
    follow_wakeups(sc, fractions)


def follow_wakeups(sc: Scenario, fractions: list[float]) -> None:
    """Follow the engine over 75 days, from wake-up to wake-up, carrying out every decision:
    each wake-up is strictly later, and at instants sampled between two wake-ups evaluating
    the settled account decides nothing new (no action, notice, `excluded` line or new projection)."""
    horizon = sc.now + timedelta(days=75)
    account, ev = settle(sc.account, sc.ctx, sc.now)
    t = sc.now
    for _ in range(40):
        wake = ev.next_wakeup
        assert all(w > t for w in ev.wakeups.values()), (iso_local(t, sc.tz), ev.wakeups)
        until = min(wake, horizon) if wake is not None else horizon
        for s in [t + (until - t) * f for f in fractions] + [until - timedelta(seconds=1)]:
            if s <= t:
                continue
            later = evaluate(account, sc.ctx, s)
            assert later.action is ev.action, (
                f"the decision changed from {ev.action} to {later.action} "
                f"(stage {later.stage and later.stage.name}) by {iso_local(s, sc.tz)}, but the wake-ups "
                f"after {iso_local(t, sc.tz)} were {ev.wakeups}; first evaluation: {describe(sc, ev)}"
            )
            assert not later.notices, ([n.key for n in later.notices], iso_local(s, sc.tz), ev.wakeups)
            assert later.excluded_now is None, (later.excluded_now, iso_local(s, sc.tz), ev.wakeups)
            assert later.projected == ev.projected, (iso_local(s, sc.tz), later.projected, ev.projected)
        if wake is None or wake >= horizon:
            return
        t = wake
        account, ev = settle(account, sc.ctx, t)
