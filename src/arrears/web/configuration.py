"""Rules: every rule set with its versions side by side and, for admins, an editor that checks
a new version as it is typed, shows what it would change on today's data, and adds it.

A new version goes the API's way (`api.configuration.add_rule_set_version`): the same checks,
the same stored body, `created_by` the person (`console:<username>`). "What would change"
evaluates the provider's accounts twice with the pure domain `evaluate` (SPEC §6), under the
rules in force and with the candidate in force, over snapshots read without locks; nothing is
written (the reading transaction is rolled back).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import yaml
from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears.api.configuration import add_rule_set_version, rule_set_input
from arrears.config import ConfigError, RuleSetSpec, parse_rule_set
from arrears.domain.decisions import Action, Evaluation, evaluate
from arrears.domain.money import fmt
from arrears.domain.rules import RuleSet
from arrears.store.repository import StoredAccount, load_provider, load_snapshots
from arrears.store.tables import AccountRow, RuleSetRow
from arrears.web.context import AdminForm, Page, ViewerPage, exclusion, is_htmx, see_other

router = APIRouter()
SIDE_BY_SIDE = 4  # versions of a rule set shown next to each other
MAX_DIFFERENCES = 200  # accounts listed by "what would change" (all are counted)
READ_BATCH = 2000
# The rows of the side-by-side table, in the order the spec lists them.
FIELDS = tuple(f for f in RuleSetSpec.model_fields if f not in ("name", "effective_at"))
STARTER = (
    'min_overdue_amount: "50.00"\n'
    "min_overdue_days: 14\n"
    'restore_threshold: "10.00"\n'
    '# windows: [{days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00"}]\n'
)
SUSPENDING = (Action.ESCALATE, Action.WOULD_SUSPEND)
RESTORING = (Action.RESTORE, Action.WOULD_RESTORE, Action.DEESCALATE)


# -- the versions, side by side ---------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "default"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _rule_sets(session: Session, page: Page) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(RuleSetRow)
        .where(RuleSetRow.provider_id == page.provider.id)
        .order_by(RuleSetRow.name, RuleSetRow.version.desc())
    ).all()
    by_name: dict[str, list[RuleSetRow]] = {}
    for r in rows:
        by_name.setdefault(r.name, []).append(r)
    out = []
    for name, versions in by_name.items():
        shown = versions[:SIDE_BY_SIDE]
        table = []
        for f in FIELDS:
            cells = []
            for i, v in enumerate(shown):
                older = versions[i + 1] if i + 1 < len(versions) else None
                changed = older is not None and v.body.get(f) != older.body.get(f)
                cells.append({"value": _cell(v.body.get(f)), "changed": changed})
            if any(v.body.get(f) is not None for v in versions):
                table.append({"field": f, "cells": cells})
        out.append(
            {
                "name": name,
                "versions": [
                    {
                        "version": v.version,
                        "effective_at": v.effective_at,
                        "created_at": v.created_at,
                        "created_by": v.created_by,
                    }
                    for v in shown
                ],
                "older": [v.version for v in versions[SIDE_BY_SIDE:]],
                "rows": table,
            }
        )
    return out


def _as_yaml(body: dict[str, Any]) -> str:
    rest = {k: v for k, v in body.items() if k not in ("name", "effective_at")}
    return yaml.safe_dump(rest, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100)


class RuleDraft(BaseModel):
    """The editor's form: a rule set version as typed (YAML body)."""

    name: str = ""
    effective_at: str = ""
    body: str = ""


def _draft(session: Session, page: Page, start_from: str) -> RuleDraft:
    """The editor's first text: the latest version of `start_from` (or of the first rule set)."""
    stmt = select(RuleSetRow).where(RuleSetRow.provider_id == page.provider.id)
    if start_from:
        stmt = stmt.where(RuleSetRow.name == start_from)
    row = session.scalars(stmt.order_by(RuleSetRow.name, RuleSetRow.version.desc()).limit(1)).first()
    if row is None:
        return RuleDraft(name=start_from or "default", body=STARTER)
    return RuleDraft(name=row.name, body=_as_yaml(row.body))


# -- reading the editor's form ----------------------------------------------------------------


def _plain(value: Any) -> Any:
    """YAML's dates and times as the ISO strings the API takes (and JSON can store)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _body(text: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be read"
        raise ConfigError("rule_set", f"is not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError("rule_set", 'must be a mapping of fields, e.g. min_overdue_amount: "50.00"')
    body: dict[str, Any] = _plain(raw)
    return body


@dataclass(frozen=True)
class Candidate:
    name: str
    body: dict[str, Any]  # as the API's PUT takes it
    rule_set: RuleSet


def _candidate(session: Session, page: Page, draft: RuleDraft) -> Candidate:
    """The version the form describes, checked as the API checks it; nothing is stored."""
    name = draft.name.strip()
    if not name:
        raise ConfigError("name", "is required (e.g. default)")
    body = _body(draft.body)
    if draft.effective_at.strip():
        body["effective_at"] = draft.effective_at.strip()
    raw, effective = rule_set_input(name, body, page.tenant, page.now)
    latest = session.scalar(
        select(RuleSetRow.version)
        .where(RuleSetRow.provider_id == page.provider.id, RuleSetRow.name == name)
        .order_by(RuleSetRow.version.desc())
        .limit(1)
    )
    rs = parse_rule_set(
        raw,
        currency=page.provider.currency,
        effective_at=effective,
        version=(latest or 0) + 1,
        prefix="rule_set",
    )
    return Candidate(name, body, rs)


def _when(t: datetime, tz: ZoneInfo) -> str:
    """An instant as the console shows it: `2026-03-07 00:00 AEDT`."""
    return t.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def _summary(rs: RuleSet, tz: ZoneInfo, currency: str) -> str:
    stages = ", ".join(f"{s.name} after {s.min_overdue_days} days ({s.status.value})" for s in rs.ladder)
    basis = "total owing" if rs.amount_basis == "total_owing" else "overdue balance"
    return (
        f"Version {rs.version} of {rs.name}, in force from {_when(rs.effective_at, tz)}: "
        f"acts when the {basis} is at least {fmt(rs.min_overdue_amount, currency)} {currency} "
        f"and more than {rs.min_overdue_days} days overdue; stages: {stages}; "
        f"restores at an overdue balance of {fmt(rs.restore_threshold, currency)} {currency} or less."
    )


# -- what would change ------------------------------------------------------------------------


@dataclass
class Comparison:
    version: int
    name: str
    looked_at: int = 0
    suspend: int = 0  # would be suspended, or move up a stage
    restore: int = 0  # would be restored, or move down a stage
    other: int = 0  # another difference: projected suspension, exclusions, stage called for
    differences: list[dict[str, str]] = field(default_factory=list)

    @property
    def unchanged(self) -> int:
        return self.looked_at - self.suspend - self.restore - self.other

    @property
    def truncated(self) -> bool:
        return self.suspend + self.restore + self.other > len(self.differences)


def _outcome(stored: StoredAccount, ev: Evaluation, tz: ZoneInfo) -> str:
    """A decision in words, as an operator compares two of them."""
    stage = ev.stage.name if ev.stage is not None else ""
    if ev.action is Action.ESCALATE:
        return f"suspend now (stage {stage})"
    if ev.action is Action.WOULD_SUSPEND:
        return f"would suspend (stage {stage}) but auto_suspend is off"
    if ev.action is Action.DEESCALATE:
        return f"move down to stage {stage}"
    if ev.action is Action.RESTORE:
        return "restore now"
    if ev.action is Action.WOULD_RESTORE:
        return "would restore but auto_unsuspend is off"
    if ev.rule_set is None:
        return "no rule set governs it"
    if stored.episode_stage:
        return f"stays at stage {stored.episode_stage}"
    if ev.target is not None and ev.exclusions:
        return "held back by " + ", ".join(exclusion(code) for code in ev.exclusions)
    if ev.projected is not None:
        return f"suspension projected {_when(ev.projected, tz)}"
    return "nothing to do"


def what_would_change(session: Session, provider_id: int, candidate: RuleSet, now: datetime) -> Comparison:
    """Every account of the provider evaluated at `now` under the rules in force and with
    `candidate` in force (from now at the latest). Reads only; the caller rolls back."""
    provider = load_provider(session, provider_id)
    current = provider.context
    in_force = replace(candidate, effective_at=min(candidate.effective_at, now))
    proposed = replace(current, rule_sets=(*current.rule_sets, in_force))
    result = Comparison(candidate.version, candidate.name)
    ids = list(
        session.scalars(
            select(AccountRow.id).where(AccountRow.provider_id == provider_id).order_by(AccountRow.id)
        )
    )
    for start in range(0, len(ids), READ_BATCH):
        for stored, snap in load_snapshots(session, ids[start : start + READ_BATCH]):
            result.looked_at += 1
            before, after = evaluate(snap, current, now), evaluate(snap, proposed, now)
            was, will = _outcome(stored, before, current.tz), _outcome(stored, after, current.tz)
            if was == will:
                continue
            if after.action in SUSPENDING and before.action not in SUSPENDING:
                result.suspend += 1
            elif after.action in RESTORING and before.action not in RESTORING:
                result.restore += 1
            else:
                result.other += 1
            if len(result.differences) < MAX_DIFFERENCES:
                result.differences.append(
                    {"account": stored.ext_id, "status": stored.status, "now": was, "then": will}
                )
    return result


# -- pages ------------------------------------------------------------------------------------


def _render(
    page: Page,
    *,
    status: int = 200,
    message: str | None = None,
    draft: RuleDraft | None = None,
    start_from: str = "",
    check: dict[str, str] | None = None,
    comparison: Comparison | None = None,
) -> Response:
    with page.read() as s:
        rule_sets = _rule_sets(s, page)
        draft = draft or _draft(s, page, start_from)
    return page.render(
        "rules.html",
        status=status,
        title="Rules",
        nav="rules",
        rule_sets=rule_sets,
        message=message,
        draft=draft,
        check=check,
        comparison=comparison,
    )


@router.get("/rules")
def rules(page: ViewerPage, start: str = "", done: str = "") -> Response:
    """The versions; `start` names the rule set the editor starts from."""
    message = None
    if done.isdigit():
        message = (
            f"Version {done} added. The worker looks at every account again at its next pass "
            "(within a minute)."
        )
    return _render(page, message=message, start_from=start)


def _check(page: Page, draft: RuleDraft) -> tuple[Candidate | None, dict[str, str]]:
    with page.read() as s:
        try:
            candidate = _candidate(s, page, draft)
        except ConfigError as exc:
            return None, {"error": f"{exc.field}: {exc.message}"}
    rs = candidate.rule_set
    return candidate, {"ok": _summary(rs, page.tz, page.provider.currency)}


@router.post("/rules/check")
def check_rules(page: AdminForm, draft: Annotated[RuleDraft, Form()]) -> Response:
    """The editor's check as you type: the version's summary, or the field at fault (422)."""
    candidate, check = _check(page, draft)
    return page.render("_rule_check.html", status=200 if candidate else 422, check=check)


@router.post("/rules/preview")
def preview_rules(request: Request, page: AdminForm, draft: Annotated[RuleDraft, Form()]) -> Response:
    candidate, check = _check(page, draft)
    comparison = None
    if candidate is not None:
        with page.read() as s:
            comparison = what_would_change(s, page.provider.id, candidate.rule_set, page.now)
            s.rollback()  # a preview never writes, even by accident
    status = 200 if candidate else 422
    if is_htmx(request):
        return page.render("_rule_preview.html", status=status, check=check, comparison=comparison)
    return _render(page, status=status, draft=draft, check=check, comparison=comparison)


@router.post("/rules")
def save_rules(request: Request, page: AdminForm, draft: Annotated[RuleDraft, Form()]) -> Response:
    """Add the version: the API's path, as the signed-in person, in one transaction."""
    try:
        with page.inputs() as inputs:
            candidate = _candidate(inputs.session, page, draft)
            row = add_rule_set_version(inputs, page.tenant, candidate.name, candidate.body, page.now)
            version = row.version
    except ConfigError as exc:
        return _render(page, status=422, draft=draft, check={"error": f"{exc.field}: {exc.message}"})
    return see_other(request, f"/rules?done={version}")


__all__ = ["Comparison", "router", "what_would_change"]
