"""Rule sets: the ladder and which rule set governs an account (SPEC §4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from arrears.domain.model import ServiceStatus
from arrears.domain.rules import RuleSet, Stage, governing, next_version_instant

from .strategies import EPOCH, fast

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GROUPS = ("g1", "g2", "g3")


def rs(
    name: str, *, at: datetime = EPOCH, version: int = 1, groups: tuple[str, ...] = (), priority: int = 0
) -> RuleSet:
    return RuleSet(
        name,
        Decimal("50.00"),
        14,
        Decimal("10.00"),
        at,
        version=version,
        applies_to_groups=frozenset(groups),
        priority=priority,
    )


@st.composite
def histories(draw: st.DrawFn) -> list[RuleSet]:
    """Several named rule sets, each with 1..3 versions effective one after another.

    Priorities are all distinct, so "the highest priority" is never a tie.
    """
    names = draw(st.lists(st.sampled_from("abcde"), min_size=1, max_size=4, unique=True))
    out = []
    priorities = iter(draw(st.permutations(range(-6, 6))))
    for name in names:
        at = T0 + timedelta(days=draw(st.integers(-30, 30)))
        for version in range(1, draw(st.integers(1, 3)) + 1):
            groups = draw(st.frozensets(st.sampled_from(GROUPS), max_size=2))
            out.append(
                rs(name, at=at, version=version, groups=tuple(sorted(groups)), priority=next(priorities))
            )
            at += timedelta(days=draw(st.integers(1, 20)))
    return draw(st.permutations(out))


def spec_governing(rule_sets: list[RuleSet], groups: frozenset[str], t: datetime) -> RuleSet | None:
    # The version of each name that is in force at t: the one that took effect last.
    in_force: dict[str, RuleSet] = {}
    for r in sorted(rule_sets, key=lambda r: r.effective_at):
        if r.effective_at <= t:
            in_force[r.name] = r
    matching = [r for r in in_force.values() if r.applies_to_groups & groups]
    rest = [r for r in in_force.values() if not r.applies_to_groups]
    for candidates in (matching, rest):
        if candidates:
            return sorted(candidates, key=lambda r: r.priority)[-1]
    return None


@given(
    history=histories(),
    groups=st.frozensets(st.sampled_from(GROUPS)),
    offset=st.integers(-40, 100),
)
@fast(150)
def test_governing_is_the_highest_priority_matching_version_in_force(
    history: list[RuleSet], groups: frozenset[str], offset: int
) -> None:
    t = T0 + timedelta(days=offset, hours=12)
    got = governing(history, groups, t)
    assert got == spec_governing(history, groups, t)
    if got is not None:
        assert got.effective_at <= t
        assert not got.applies_to_groups or got.applies_to_groups & groups


def test_governing_examples() -> None:
    default = rs("default")
    vip = rs("vip", groups=("VIP",), priority=10)
    staff = rs("staff", groups=("staff", "VIP"), priority=5)
    sets = [default, vip, staff]
    assert governing(sets, {"VIP", "staff"}, T0) is vip
    assert governing(sets, {"staff"}, T0) is staff
    assert governing(sets, {"retail"}, T0) is default
    assert governing(sets, set(), T0) is default
    assert governing([vip, staff], {"retail"}, T0) is None


def test_latest_version_effective_at_t_counts() -> None:
    v1 = rs("default", at=T0, version=1)
    v2 = rs("default", at=T0 + timedelta(days=10), version=2)
    # v2 no longer targets anyone: from its effective instant the VIP set is gone.
    vip1 = rs("vip", at=T0, version=1, groups=("VIP",), priority=5)
    vip2 = rs("vip", at=T0 + timedelta(days=5), version=2, priority=-1)
    sets = [v2, vip2, v1, vip1]
    assert governing(sets, {"VIP"}, T0 + timedelta(days=1)) is vip1
    # vip v2 governs the rest with priority -1: the default (priority 0) wins for everyone.
    assert governing(sets, {"VIP"}, T0 + timedelta(days=9)) is v1
    assert governing([v2, vip2, vip1], {"VIP"}, T0 + timedelta(days=9)) is vip2
    assert governing([v1, v2], set(), T0 + timedelta(days=10)) is v2
    assert governing([v1, v2], set(), T0 + timedelta(days=10) - timedelta(microseconds=1)) is v1
    assert governing([v1, v2], set(), T0 - timedelta(seconds=1)) is None
    assert next_version_instant([v1, v2], T0) == T0 + timedelta(days=10)
    assert next_version_instant([v1, v2], T0 + timedelta(days=10)) is None


def test_default_ladder_is_one_suspend_stage_restricting_services() -> None:
    ladder = rs("r").ladder
    assert [(s.name, s.min_overdue_days, s.status, s.provisioning_action) for s in ladder] == [
        ("suspend", 14, ServiceStatus.RESTRICTED, "restricted")
    ]


def test_ladder_is_ordered_by_days_and_stage_amount_defaults_to_the_rule_sets() -> None:
    late = Stage("deactivate", 60, ServiceStatus.DEACTIVATED, Decimal("20.00"), action="disconnect")
    early = Stage("restrict", 14)
    r = RuleSet("r", Decimal("50.00"), 14, Decimal("10.00"), EPOCH, stages=(late, early))
    assert [s.name for s in r.ladder] == ["restrict", "deactivate"]
    assert r.stage_index("deactivate") == 1
    assert r.stage_index("gone") == -1
    assert r.stage_index(None) == -1
    assert r.stage_amount(early) == Decimal("50.00")
    assert r.stage_amount(late) == Decimal("20.00")
    assert late.provisioning_action == "disconnect"
    assert early.provisioning_action == "restricted"
