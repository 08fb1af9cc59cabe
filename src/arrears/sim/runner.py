"""Running a scenario: a fresh in-memory store, a virtual clock, the production engine.

The clock stops at every instant a decision becomes due (the earliest wake-up
any account has) and at every step. What the engine records in its history is
what the simulation prints, so the output is the production record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TextIO

from sqlalchemy import select

from arrears.config import parse_mappings, parse_notice_settings
from arrears.domain.clock import iso_local, parse_local
from arrears.engine.clock import VirtualClock
from arrears.engine.inputs import Inputs, create_provider
from arrears.engine.service import reevaluate
from arrears.sim.scenario import Scenario, ScenarioError, Step
from arrears.store.db import Database
from arrears.store.repository import load_accounts, load_provider
from arrears.store.tables import AccountRow, HistoryRow

# Field order of each output line kind (SPEC §9); other fields follow.
LINE_FIELDS: dict[str, tuple[str, ...]] = {
    "stage": ("account", "from", "to"),
    "service_status": ("account", "service", "from", "to"),
    "account_status": ("account", "from", "to"),
    "provisioning": ("account", "service", "action", "state"),
    "notification": ("event", "channel", "account", "service", "invoice", "to"),
    "skipped": ("event", "account", "invoice", "reason"),
    "excluded": ("account", "reasons"),
    "would_suspend": ("account", "stage"),
}


@dataclass
class Simulation:
    scenario: Scenario
    out: TextIO
    db: Database = field(default_factory=lambda: Database("sqlite://"))
    failures: int = 0
    provider_id: int = 0
    clock: VirtualClock | None = None
    _last_history: int = 0
    on_line: Callable[[dict[str, Any]], None] | None = None

    def run(self) -> int:
        """Run the whole timeline; returns the number of failed expectations."""
        sc = self.scenario
        self.db.create_all()
        with self.db.transaction() as s:
            p = sc.provider
            provider = create_provider(
                s,
                key="scenario",
                timezone=str(p["timezone"]),
                currency=str(p["currency"]),
                sms=bool(p.get("sms", False)),
                send_time=str(p.get("send_time", "09:00")),
                name=str(p.get("name") or sc.name or "scenario"),
                notices=parse_notice_settings(p),
                now=sc.start,
            )
            self.provider_id = provider.id
            inputs = Inputs.open(s, provider.id, sc.start, actor="scenario")
            for body, effective in sc.rule_sets:
                inputs.put_rule_set(body, effective)
            inputs.put_mappings(parse_mappings(sc.events, sms=provider.sms, since=sc.start))
            for i, account in enumerate(sc.accounts):
                inputs.put_account(account, f"accounts[{i}]")
            inputs.settle()
        self.clock = VirtualClock(
            self.db, sc.start, provider_id=self.provider_id, after=lambda _now: self._emit_history()
        )
        self.clock.settle()
        for step in sc.steps:
            # Inputs at an instant come before the decisions due at that instant.
            self.clock.advance(step.at, inclusive=False)
            if step.kind not in (None, "expect"):
                self.apply(step)
            self.clock.advance(step.at, inclusive=True)
            if step.kind == "expect":
                self.check(step)
        return self.failures

    @property
    def now(self) -> datetime:
        assert self.clock is not None
        return self.clock.now

    # -- inputs -------------------------------------------------------------------

    def apply(self, step: Step) -> None:
        assert self.clock is not None
        with self.db.transaction() as s:
            inputs = Inputs.open(s, self.provider_id, self.now, actor="scenario")
            _APPLY[str(step.kind)](inputs, step, self.scenario)
            inputs.settle()
        self.clock.settle()

    # -- expectations ----------------------------------------------------------------

    def check(self, step: Step) -> None:
        body = step.body
        tz = self.scenario.tz
        with self.db.transaction() as s:
            provider = load_provider(s, self.provider_id)
            row = s.scalar(
                select(AccountRow).where(
                    AccountRow.provider_id == self.provider_id, AccountRow.ext_id == str(body["account"])
                )
            )
            if row is None:
                raise ScenarioError(f"{step.path}.expect.account", f"unknown account {body['account']!r}")
            (ev,) = reevaluate(s, provider, [row.id], self.now, dry_run=True)
            loaded = load_accounts(s, [row.id])[0]
            actual: dict[str, Any] = {
                "status": loaded.status,
                "stage": loaded.episode.stage if loaded.episode is not None else "none",
            }
            services = {svc.ext_id: svc.status for svc in loaded.services}
            currency = provider.currency
            s.rollback()
        account = str(body["account"])
        for key in ("status", "stage"):
            if key in body:
                self._compare(account, key, body[key], actual[key])
        for sid, expected in (body.get("services") or {}).items():
            self._compare(account, f"services.{sid}", expected, services.get(str(sid)))
        if "exclusions" in body:
            expected = sorted(str(x) for x in body["exclusions"])
            self._compare(account, "exclusions", expected, sorted(ev.exclusions), shown=list(ev.exclusions))
        if "projected_suspension" in body:
            exp = body["projected_suspension"]
            got = iso_local(ev.projected, tz) if ev.projected else None
            if exp is None or got is None:
                self._compare(account, "projected_suspension", exp, got)
            else:
                want = parse_local(exp.isoformat() if isinstance(exp, datetime) else str(exp), tz)
                self._compare(account, "projected_suspension", iso_local(want, tz), got)
        figures = body.get("figures") or {}
        for key, expected in figures.items():
            value = getattr(ev.figures, key)
            if key == "days_overdue":
                self._compare(account, f"figures.{key}", int(expected), value)
            else:
                try:
                    want_amount = Decimal(str(expected))
                except InvalidOperation:
                    raise ScenarioError(f"{step.path}.expect.figures.{key}", "is not an amount") from None
                from arrears.domain.money import fmt

                self._compare(account, f"figures.{key}", fmt(want_amount, currency), fmt(value, currency))

    def _compare(self, account: str, fieldname: str, expected: Any, actual: Any, shown: Any = None) -> None:
        if expected == actual:
            return
        self.failures += 1
        self._print(
            {
                "at": iso_local(self.now, self.scenario.tz),
                "kind": "expect_failed",
                "account": account,
                "field": fieldname,
                "expected": expected,
                "actual": shown if shown is not None else actual,
            }
        )

    # -- output -----------------------------------------------------------------------

    def _emit_history(self) -> None:
        with self.db.transaction() as s:
            rows = s.scalars(
                select(HistoryRow).where(HistoryRow.id > self._last_history).order_by(HistoryRow.id)
            ).all()
            for row in rows:
                self._last_history = row.id
                if row.kind == "operator_action":
                    continue
                self._print(line(row, self.scenario))

    def _print(self, obj: dict[str, Any]) -> None:
        if self.on_line is not None:
            self.on_line(obj)
        self.out.write(json.dumps(obj, default=str) + "\n")


def line(row: HistoryRow, scenario: Scenario) -> dict[str, Any]:
    data = {k: v for k, v in row.data.items() if k != "why"}
    out: dict[str, Any] = {"at": iso_local(row.at, scenario.tz), "kind": row.kind}
    for key in LINE_FIELDS.get(row.kind, ()):
        out[key] = data.pop(key, None)
    out.update(data)
    return out


def _apply_invoice(inputs: Inputs, step: Step, sc: Scenario) -> None:
    body = dict(step.body)
    if "issued_at" in body:
        body["issued_at"] = _at(body["issued_at"], sc, f"{step.path}.invoice.issued_at")
    inputs.put_invoice(body, f"{step.path}.invoice")


def _apply_payment(inputs: Inputs, step: Step, sc: Scenario) -> None:
    inputs.put_payment(dict(step.body), f"{step.path}.payment")


def _apply_flag(inputs: Inputs, step: Step, sc: Scenario) -> None:
    b = step.body
    until = b.get("until")
    if until is not None and not isinstance(until, date):
        try:
            until = date.fromisoformat(str(until))
        except ValueError:
            raise ScenarioError(f"{step.path}.flag.until", f"{until!r} is not a date") from None
    if "account" not in b:
        raise ScenarioError(f"{step.path}.flag.account", "is required")
    inputs.set_flag(
        str(b["account"]), bool(b.get("omit", True)), until, str(b.get("reason") or ""), f"{step.path}.flag"
    )


def _apply_group(inputs: Inputs, step: Step, sc: Scenario) -> None:
    b = step.body
    if "account" not in b:
        raise ScenarioError(f"{step.path}.group.account", "is required")
    if not b.get("add") and not b.get("remove"):
        raise ScenarioError(f"{step.path}.group", "needs add or remove")
    inputs.change_group(str(b["account"]), b.get("add"), b.get("remove"), f"{step.path}.group")


def _apply_manual(inputs: Inputs, step: Step, sc: Scenario) -> None:
    b = step.body
    if "account" not in b:
        raise ScenarioError(f"{step.path}.manual.account", "is required")
    inputs.manual(str(b["account"]), str(b.get("action")), str(b.get("reason") or ""), f"{step.path}.manual")


def _apply_events(inputs: Inputs, step: Step, sc: Scenario) -> None:
    inputs.put_mappings(
        parse_mappings(step.body, sms=inputs.provider.row.sms, since=step.at, prefix=f"{step.path}.events")
    )


def _at(value: Any, sc: Scenario, fieldname: str) -> datetime:
    try:
        return parse_local(value.isoformat() if isinstance(value, datetime) else str(value), sc.tz)
    except ValueError:
        raise ScenarioError(fieldname, f"{value!r} is not an ISO 8601 instant") from None


def _discard(_: object) -> None:
    return None


def _need(body: dict[str, Any], key: str, path: str) -> Any:
    if key not in body:
        raise ScenarioError(f"{path}.{key}", "is required")
    return body[key]


_APPLY: dict[str, Callable[[Inputs, Step, Scenario], None]] = {
    "invoice": _apply_invoice,
    "payment": _apply_payment,
    "allocate": lambda i, st, sc: i.allocate_payment(
        str(_need(st.body, "payment", f"{st.path}.allocate")), f"{st.path}.allocate.payment"
    ),
    "invoice_status": lambda i, st, sc: i.set_invoice_status(
        str(_need(st.body, "invoice", f"{st.path}.invoice_status")),
        _need(st.body, "status", f"{st.path}.invoice_status"),
        f"{st.path}.invoice_status",
    ),
    "dispute": lambda i, st, sc: i.set_dispute(
        str(_need(st.body, "invoice", f"{st.path}.dispute")),
        _need(st.body, "amount", f"{st.path}.dispute"),
        f"{st.path}.dispute",
    ),
    "plan": lambda i, st, sc: i.put_plan(dict(st.body), f"{st.path}.plan"),
    "case": lambda i, st, sc: i.put_case(dict(st.body), f"{st.path}.case"),
    "flag": _apply_flag,
    "group": _apply_group,
    "service": lambda i, st, sc: _discard(i.put_service(dict(st.body), f"{st.path}.service")),
    "account": lambda i, st, sc: _discard(i.put_account(dict(st.body), f"{st.path}.account")),
    "manual": _apply_manual,
    "events": _apply_events,
}
