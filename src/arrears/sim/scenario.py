"""Reading and checking a scenario file (SPEC §9). Errors name the field."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from arrears.config import (
    NOTICE_SETTINGS,
    ConfigError,
    check_timezone,
    parse_mappings,
    parse_notice_settings,
    parse_rule_set,
)
from arrears.domain.clock import parse_local
from arrears.domain.exclusions import CODES as EXCLUSION_CODES
from arrears.domain.model import AccountStatus, ServiceStatus
from arrears.domain.money import MoneyError, check_currency

STEP_KINDS = (
    "invoice",
    "payment",
    "allocate",
    "invoice_status",
    "dispute",
    "plan",
    "case",
    "flag",
    "group",
    "service",
    "manual",
    "events",
    "expect",
    "account",
)
ACCOUNT_STATUSES = tuple(s.value for s in AccountStatus)
SERVICE_STATUSES = tuple(s.value for s in ServiceStatus)
EXPECT_FIELDS = {"account", "status", "stage", "services", "exclusions", "projected_suspension", "figures"}
FIGURE_FIELDS = {"total_owing", "overdue_balance", "days_overdue"}


class ScenarioError(ConfigError):
    pass


@dataclass
class Step:
    index: int
    at: datetime
    kind: str | None
    body: Any

    @property
    def path(self) -> str:
        return f"timeline[{self.index}]"


@dataclass
class Scenario:
    name: str
    tz: ZoneInfo
    provider: dict[str, Any]
    rule_sets: list[tuple[dict[str, Any], datetime]]
    events: Any
    accounts: list[dict[str, Any]]
    start: datetime
    steps: list[Step] = field(default_factory=list)


def load(path: str) -> Scenario:
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
    except OSError as exc:
        raise ScenarioError("", f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError("", f"not valid YAML: {exc}") from None
    return parse(raw)


def _instant(value: Any, tz: ZoneInfo, field: str) -> datetime:
    if isinstance(value, datetime):
        value = value.isoformat()
    if isinstance(value, date):
        value = value.isoformat()
    if not isinstance(value, str):
        raise ScenarioError(field, 'must be an instant such as "2026-01-01T09:00"')
    try:
        return parse_local(value, tz)
    except ValueError:
        raise ScenarioError(field, f"{value!r} is not an ISO 8601 instant") from None


def parse(raw: Any) -> Scenario:
    if not isinstance(raw, dict):
        raise ScenarioError("", "a scenario is a mapping with provider, rules, accounts, start and timeline")
    known = {
        "name",
        "provider",
        "rules",
        "rule_sets",
        "events",
        "accounts",
        "start",
        "timeline",
        "description",
    }
    for key in raw:
        if key not in known:
            raise ScenarioError(str(key), "unknown field")
    provider = raw.get("provider")
    if not isinstance(provider, dict):
        raise ScenarioError("provider", "is required: {timezone, currency, sms, send_time}")
    for key in provider:
        if key not in ("timezone", "currency", "sms", "send_time", "name", *NOTICE_SETTINGS):
            raise ScenarioError(f"provider.{key}", "unknown field")
    try:
        parse_notice_settings(provider)
    except ConfigError as exc:
        raise ScenarioError(exc.field, exc.message) from None
    if "timezone" not in provider:
        raise ScenarioError("provider.timezone", "is required")
    tz = check_timezone(provider["timezone"], "provider.timezone")
    currency = provider.get("currency")
    try:
        check_currency(str(currency))
    except MoneyError as exc:
        raise ScenarioError("provider.currency", str(exc)) from None
    if not isinstance(provider.get("sms", False), bool):
        raise ScenarioError("provider.sms", "must be true or false")
    if "start" not in raw:
        raise ScenarioError("start", "is required")
    start = _instant(raw["start"], tz, "start")

    rule_sets: list[tuple[dict[str, Any], datetime]] = []
    if "rules" in raw and "rule_sets" in raw:
        raise ScenarioError("rule_sets", "give either rules or rule_sets, not both")
    if "rules" in raw:
        entries = [("rules", raw["rules"])]
    else:
        items = raw.get("rule_sets") or []
        if not isinstance(items, list):
            raise ScenarioError("rule_sets", "must be a list")
        entries = [(f"rule_sets[{i}]", r) for i, r in enumerate(items)]
    for path, body in entries:
        if not isinstance(body, dict):
            raise ScenarioError(path, "must be a mapping")
        body = dict(body)
        effective = (
            _instant(body.pop("effective_at"), tz, f"{path}.effective_at")
            if "effective_at" in body
            else start
        )
        parse_rule_set(body, currency=str(currency), effective_at=effective, prefix=path)
        rule_sets.append((body, effective))
    # Checked now so an invalid file exits 2 before anything runs.
    parse_mappings(raw.get("events"), sms=bool(provider.get("sms", False)), since=start)

    accounts = raw.get("accounts") or []
    if not isinstance(accounts, list):
        raise ScenarioError("accounts", "must be a list")
    for i, a in enumerate(accounts):
        if not isinstance(a, dict):
            raise ScenarioError(f"accounts[{i}]", "must be a mapping")
        for key in a:
            if key not in ("id", "status", "groups", "contacts", "services"):
                raise ScenarioError(f"accounts[{i}].{key}", "unknown field")
    scenario = Scenario(
        name=str(raw.get("name") or ""),
        tz=tz,
        provider=provider,
        rule_sets=rule_sets,
        events=raw.get("events"),
        accounts=accounts,
        start=start,
    )
    timeline = raw.get("timeline") or []
    if not isinstance(timeline, list):
        raise ScenarioError("timeline", "must be a list of steps")
    last = start
    for i, step in enumerate(timeline):
        path = f"timeline[{i}]"
        if not isinstance(step, dict):
            raise ScenarioError(path, "must be a mapping with `at`")
        if "at" not in step:
            raise ScenarioError(f"{path}.at", "is required")
        at = _instant(step["at"], tz, f"{path}.at")
        if at < last:
            raise ScenarioError(f"{path}.at", "steps must be in time order (and not before start)")
        last = at
        kinds = [k for k in step if k != "at"]
        if len(kinds) > 1:
            raise ScenarioError(path, f"one input per step, found {', '.join(map(str, kinds))}")
        kind = kinds[0] if kinds else None
        if kind is not None and kind not in STEP_KINDS:
            raise ScenarioError(f"{path}.{kind}", f"unknown step (known: {', '.join(STEP_KINDS)})")
        body = step.get(kind) if kind else None
        if kind not in (None, "events") and not isinstance(body, dict):
            raise ScenarioError(f"{path}.{kind}", "must be a mapping")
        if kind == "expect":
            assert isinstance(body, dict)
            _check_expect(body, f"{path}.expect")
        if kind == "events":
            parse_mappings(body, sms=bool(provider.get("sms", False)), since=at, prefix=f"{path}.events")
        scenario.steps.append(Step(i, at, kind, body))
    return scenario


def _check_expect(body: dict[str, Any], path: str) -> None:
    for key in body:
        if key not in EXPECT_FIELDS:
            raise ScenarioError(f"{path}.{key}", f"unknown field (known: {', '.join(sorted(EXPECT_FIELDS))})")
    if "account" not in body:
        raise ScenarioError(f"{path}.account", "is required")
    if "status" in body and body["status"] not in ACCOUNT_STATUSES:
        allowed = ", ".join(ACCOUNT_STATUSES)
        raise ScenarioError(f"{path}.status", f"{body['status']!r} is not one of: {allowed}")
    if "services" in body:
        if not isinstance(body["services"], dict):
            raise ScenarioError(f"{path}.services", "must map service ids to statuses")
        for sid, status in body["services"].items():
            if status not in SERVICE_STATUSES:
                allowed = ", ".join(SERVICE_STATUSES)
                raise ScenarioError(f"{path}.services.{sid}", f"{status!r} is not one of: {allowed}")
    if "exclusions" in body:
        if not isinstance(body["exclusions"], list):
            raise ScenarioError(f"{path}.exclusions", "must be a list of reason codes")
        for i, code in enumerate(body["exclusions"]):
            if code not in EXCLUSION_CODES:
                allowed = ", ".join(EXCLUSION_CODES)
                raise ScenarioError(f"{path}.exclusions[{i}]", f"{code!r} is not one of: {allowed}")
    if "figures" in body:
        if not isinstance(body["figures"], dict):
            raise ScenarioError(f"{path}.figures", "must be a mapping")
        for key in body["figures"]:
            if key not in FIGURE_FIELDS:
                raise ScenarioError(f"{path}.figures.{key}", "unknown figure")
