"""Which history lines are webhook events, what each says, and when a failed one is tried again."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from arrears.webhooks.dispatcher import WebhookPolicy
from arrears.webhooks.events import (
    EVENT_KINDS,
    EVENT_RULES,
    EVENT_TYPES,
    event_data,
    event_type,
    iso_utc,
    payload,
    stage_context,
    wants,
)

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        ("account_status", {"from": "active", "to": "suspended", "reason": "auto"}, "account.suspended"),
        # An operator taking over an automatic suspension is a suspension too (reason manual).
        ("account_status", {"from": "suspended", "to": "suspended", "reason": "manual"}, "account.suspended"),
        ("account_status", {"from": "suspended", "to": "active", "reason": None}, "account.restored"),
        ("account_status", {"from": "active", "to": "cancelled", "reason": None}, None),
        ("service_status", {"from": "active", "to": "restricted"}, "service.restricted"),
        ("service_status", {"from": "restricted", "to": "suspended"}, "service.suspended"),
        ("service_status", {"from": "suspended", "to": "deactivated"}, "service.deactivated"),
        ("service_status", {"from": "deactivated", "to": "active"}, "service.restored"),
        ("service_status", {"from": "preactive", "to": "active"}, None),
        ("stage", {"from": "none", "to": "suspend"}, "episode.opened"),
        ("stage", {"from": "bar", "to": "none", "reason": "paid"}, "episode.closed"),
        ("stage", {"from": "bar", "to": "disconnect"}, "episode.stage_changed"),
        ("provisioning", {"action": "restricted", "state": "failed"}, "provisioning.failed"),
        ("provisioning", {"action": "restricted", "state": "confirmed"}, None),
        ("notification", {"event": "auto_suspend", "channel": "email"}, None),
        ("would_suspend", {"stage": "suspend"}, None),
        ("excluded", {"reasons": ["dispute"]}, None),
    ],
)
def test_history_lines_map_to_event_types(kind: str, data: dict[str, object], expected: str | None) -> None:
    assert event_type(kind, data) == expected


def test_every_event_type_has_a_rule_and_a_description() -> None:
    assert {t for _, _, t in EVENT_RULES} == set(EVENT_TYPES)
    assert all(EVENT_TYPES.values())
    assert {"account_status", "service_status", "stage", "provisioning"} == EVENT_KINDS


def test_an_empty_subscription_takes_every_type() -> None:
    assert wants([], "account.suspended")
    assert wants(["account.suspended"], "account.suspended")
    assert not wants(["account.restored"], "account.suspended")


STAGE_LINE = {
    "account": "A1",
    "from": "none",
    "to": "bar",
    "why": {"rule_set": "default", "version": 3, "figures": {}},
}


def test_a_stage_line_says_its_stage_reason_and_rule_set() -> None:
    data = event_data(
        "stage",
        STAGE_LINE,
        context=None,
        episode_stage=None,
        at_local="2026-03-02T12:00:00+11:00",
        actor="arrears",
    )
    assert data == {
        "account": "A1",
        "service": None,
        "from": "none",
        "to": "bar",
        "stage": "bar",
        "reason": None,
        "rule_set": "default",
        "rule_set_version": 3,
        "action": None,
        "episode": None,
        "actor": "arrears",
        "at": "2026-03-02T12:00:00+11:00",
    }


def test_service_and_account_lines_share_the_stage_line_before_them() -> None:
    context = stage_context(STAGE_LINE)
    service = event_data(
        "service_status",
        {"account": "A1", "service": "S1", "from": "active", "to": "restricted"},
        context=context,
        episode_stage="bar",
        at_local="x",
        actor="arrears",
    )
    assert (service["service"], service["stage"], service["rule_set"], service["rule_set_version"]) == (
        "S1",
        "bar",
        "default",
        3,
    )
    account = event_data(
        "account_status",
        {"account": "A1", "from": "active", "to": "suspended", "reason": "auto"},
        context=context,
        episode_stage="bar",
        at_local="x",
        actor="arrears",
    )
    assert (account["reason"], account["stage"]) == ("auto", "bar")


def test_a_restore_carries_the_reason_of_the_closing_stage_line() -> None:
    closing = stage_context({"account": "A1", "from": "bar", "to": "none", "reason": "paid", "why": {}})
    restored = event_data(
        "account_status",
        {"account": "A1", "from": "suspended", "to": "active", "reason": None},
        context=closing,
        episode_stage="bar",
        at_local="x",
        actor="arrears",
    )
    assert (restored["reason"], restored["stage"]) == ("paid", "none")


def test_without_a_stage_line_the_episode_says_the_stage() -> None:
    data = event_data(
        "service_status",
        {"account": "A1", "service": "S1", "from": "active", "to": "suspended"},
        context=None,
        episode_stage=None,
        at_local="x",
        actor="api:abc",
    )
    assert (data["stage"], data["reason"], data["rule_set"], data["actor"]) == (None, None, None, "api:abc")
    failed = event_data(
        "provisioning",
        {"account": "A1", "service": "S1", "action": "restricted", "state": "failed"},
        context=None,
        episode_stage="bar",
        at_local="x",
        actor="arrears",
    )
    assert (failed["action"], failed["stage"], failed["from"]) == ("restricted", "bar", None)


def test_the_payload_names_the_event_and_the_provider() -> None:
    body = payload("evt_1", "account.suspended", T0.replace(microsecond=123), "isp", {"account": "A1"})
    assert body == {
        "id": "evt_1",
        "type": "account.suspended",
        "created_at": "2026-03-02T01:00:00Z",
        "provider": "isp",
        "data": {"account": "A1"},
    }
    assert iso_utc(datetime(2026, 3, 2, 23, 0, tzinfo=ZoneInfo("Australia/Sydney"))) == "2026-03-02T12:00:00Z"


def test_retries_double_from_thirty_seconds_up_to_an_hour_with_jitter() -> None:
    policy = WebhookPolicy()
    rng = random.Random(7)
    for attempts, ceiling in [(1, 30), (2, 60), (3, 120), (7, 1920), (8, 3600), (20, 3600)]:
        for _ in range(20):
            delay = policy.retry_delay(attempts, rng).total_seconds()
            assert ceiling / 2 <= delay <= ceiling


def test_the_last_attempt_is_made_at_three_days_then_none() -> None:
    policy = WebhookPolicy()
    rng = random.Random(1)
    deadline = T0 + timedelta(days=3)
    assert policy.next_attempt(T0, 1, T0, rng) is not None
    # Near the end, the next attempt is pulled in to the three-day mark, not beyond it.
    assert policy.next_attempt(T0, 30, deadline - timedelta(seconds=10), rng) == deadline
    assert policy.next_attempt(T0, 31, deadline, rng) is None
