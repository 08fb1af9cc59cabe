"""Which history lines are webhook events, and what each event says (pure).

Every change the engine makes is a history line (`engine.journal.Journal.write`:
a kind and its data). `EVENT_RULES` is the one table that says which lines are
events: the first rule whose kind and test match a line names its event type;
a line no rule matches is no event. `event_data` turns a line into the event's
`data`, the same fields for every type (null where a type has none).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

STAGE_STATUSES = frozenset({"restricted", "suspended", "deactivated"})

Line = Mapping[str, Any]

# (history kind, test on the line's data, event type); the first match wins.
EVENT_RULES: tuple[tuple[str, Callable[[Line], bool], str], ...] = (
    # Also suspended -> suspended: an operator took over an automatic suspension (reason manual).
    ("account_status", lambda d: d["to"] == "suspended", "account.suspended"),
    ("account_status", lambda d: d["from"] == "suspended" and d["to"] == "active", "account.restored"),
    ("service_status", lambda d: d["to"] == "restricted", "service.restricted"),
    ("service_status", lambda d: d["to"] == "suspended", "service.suspended"),
    ("service_status", lambda d: d["to"] == "deactivated", "service.deactivated"),
    ("service_status", lambda d: d["from"] in STAGE_STATUSES and d["to"] == "active", "service.restored"),
    ("stage", lambda d: d["from"] == "none", "episode.opened"),
    ("stage", lambda d: d["to"] == "none", "episode.closed"),
    ("stage", lambda d: True, "episode.stage_changed"),
    ("provisioning", lambda d: d.get("state") == "failed", "provisioning.failed"),
)

# Every type, with what it means (the API validates subscriptions against these; docs list them).
EVENT_TYPES: dict[str, str] = {
    "account.suspended": "the account became suspended (reason auto: by arrears; manual: by an operator)",
    "account.restored": "a suspended account became active again",
    "service.restricted": "a service was restricted (a stage of an episode)",
    "service.suspended": "a service was suspended (a stage, or an operator's suspension)",
    "service.deactivated": "a service was deactivated (a stage)",
    "service.restored": "a restricted, suspended or deactivated service became active again",
    "episode.opened": "arrears started acting on the account: its first stage",
    "episode.stage_changed": "the episode moved to another stage (up or down the ladder)",
    "episode.closed": "the episode ended (reason: paid, excluded, manual, manual_suspend, ...)",
    "provisioning.failed": "a provisioning request failed for good: the network may not match",
}

# The history kinds some rule looks at: the journal asks nothing of any other line.
EVENT_KINDS = frozenset(kind for kind, _, _ in EVENT_RULES)


def event_type(kind: str, data: Line) -> str | None:
    """The event a history line of `kind` with `data` is, or None."""
    if kind not in EVENT_KINDS:
        return None
    for rule_kind, test, type_ in EVENT_RULES:
        if rule_kind == kind and test(data):
            return type_
    return None


def wants(subscribed: Sequence[str], type_: str) -> bool:
    """Whether an endpoint subscribed to `subscribed` (empty: everything) takes `type_`."""
    return not subscribed or type_ in subscribed


@dataclass(frozen=True)
class StageContext:
    """What the account's last stage line said: the lines after it (services, account) share it."""

    stage: str
    reason: str | None
    rule_set: str | None
    rule_set_version: int | None


def stage_context(data: Line) -> StageContext:
    """The context a `stage` line sets for the account's next lines."""
    why = data.get("why")
    why = why if isinstance(why, Mapping) else {}
    return StageContext(data["to"], data.get("reason"), why.get("rule_set"), why.get("version"))


def event_data(
    kind: str,
    data: Line,
    *,
    context: StageContext | None,
    episode_stage: str | None,
    at_local: str,
    actor: str,
) -> dict[str, Any]:
    """The event's `data`: the provider's own ids, the change, and why, as far as the line knows.

    `context` is the account's stage line written just before in the same
    change (None when there was none); `episode_stage` the stage of the episode
    the line belongs to, if any.
    """
    if kind == "stage":
        context = stage_context(data)
    stage = context.stage if context is not None else episode_stage
    reason = data.get("reason") if kind in ("stage", "account_status") else None
    if reason is None and context is not None:
        reason = context.reason
    return {
        "account": data.get("account"),
        "service": data.get("service"),
        "from": data.get("from"),
        "to": data.get("to"),
        "stage": stage,
        "reason": reason,
        "rule_set": context.rule_set if context is not None else None,
        "rule_set_version": context.rule_set_version if context is not None else None,
        "action": data.get("action") if kind == "provisioning" else None,
        "episode": None,  # filled in by the outbox once the episode has its id
        "actor": actor,
        "at": at_local,
    }


def iso_utc(instant: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, seconds precision."""
    return instant.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def payload(
    event_id: str, type_: str, created_at: datetime, provider: str, data: dict[str, Any]
) -> dict[str, Any]:
    """The JSON body every endpoint receives for one event (the same for every attempt)."""
    return {
        "id": event_id,
        "type": type_,
        "created_at": iso_utc(created_at),
        "provider": provider,
        "data": data,
    }
