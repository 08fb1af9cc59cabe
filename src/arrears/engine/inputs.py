"""Inputs from billing systems and operators, each followed by re-evaluation.

Every method changes the store inside the caller's transaction and marks the
account touched; `settle` re-evaluates the touched accounts before the
transaction commits, so an input and the decisions it causes land together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears.config import ConfigError, NoticeSettingsSpec, mapping_body, parse_rule_set
from arrears.domain.decisions import Action, Evaluation
from arrears.domain.events import EventKind, EventMapping
from arrears.domain.model import (
    AccountStatus,
    CaseStatus,
    ContactRole,
    InvoiceStatus,
    PlanStatus,
    ServiceStatus,
)
from arrears.domain.money import MoneyError, check_currency, parse_amount
from arrears.domain.payments import OpenItem, allocate
from arrears.engine.applicator import Applicator
from arrears.engine.journal import Journal, moved
from arrears.engine.service import reevaluate
from arrears.ops.wakeup import notify_work
from arrears.store.repository import ProviderView, load_accounts, load_provider, notice_memory, snapshot
from arrears.store.tables import (
    AccountRow,
    AllocationRow,
    CaseRow,
    ContactRow,
    EventMappingRow,
    GroupRow,
    InvoiceRow,
    OperatorActionRow,
    PaymentRow,
    PlanRow,
    ProviderRow,
    RuleSetRow,
    ServiceRow,
)

InvalidInput = ConfigError
# Records a provider addresses by its own ids.
_Owned = TypeVar("_Owned", AccountRow, ServiceRow, InvoiceRow, PaymentRow, PlanRow, CaseRow)


def _enum(enum: Any, value: Any, field: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise InvalidInput(field, f"{value!r} is not one of: {allowed}") from None


def create_provider(
    session: Session,
    *,
    key: str,
    timezone: str,
    currency: str,
    sms: bool = False,
    send_time: str = "09:00",
    name: str = "",
    notices: NoticeSettingsSpec | None = None,
    now: datetime,
) -> ProviderRow:
    from arrears.config import check_timezone

    check_timezone(timezone, "provider.timezone")
    try:
        check_currency(currency)
    except MoneyError as exc:
        raise InvalidInput("provider.currency", str(exc)) from None
    try:
        time.fromisoformat(send_time)
    except (TypeError, ValueError):
        raise InvalidInput("provider.send_time", f'{send_time!r} is not a time of day as "HH:MM"') from None
    row = ProviderRow(
        key=key,
        name=name or key,
        timezone=timezone,
        currency=currency,
        sms=sms,
        send_time=send_time,
        created_at=now,
    )
    apply_notice_settings(row, notices or NoticeSettingsSpec())
    session.add(row)
    session.flush()
    return row


def apply_notice_settings(row: ProviderRow, spec: NoticeSettingsSpec) -> None:
    row.locale = spec.locale
    row.quiet_start = spec.quiet_hours.start if spec.quiet_hours else None
    row.quiet_end = spec.quiet_hours.end if spec.quiet_hours else None
    row.email_from = spec.email_from
    row.sms_from = spec.sms_from
    row.payment_link = spec.payment_link
    row.operations_email = spec.operations_email


@dataclass
class Inputs:
    """The inputs of one transaction for one provider."""

    session: Session
    provider: ProviderView
    now: datetime
    actor: str = "billing"
    touched: set[int] = field(default_factory=set)

    @classmethod
    def open(cls, session: Session, provider_id: int, now: datetime, actor: str = "billing") -> Inputs:
        return cls(session, load_provider(session, provider_id), now, actor)

    @property
    def currency(self) -> str:
        return self.provider.currency

    def settle(self) -> list[Evaluation]:
        """Re-evaluate every account the inputs touched."""
        self.session.flush()
        ids = sorted(self.touched)
        self.touched.clear()
        evaluations = reevaluate(self.session, self.provider, ids, self.now, actor=self.actor)
        if any(ev.action is not Action.NONE or ev.notices for ev in evaluations):
            # The workers' dispatchers start on it when this commits, not at their next poll.
            notify_work(self.session)
        return evaluations

    def _amount(self, value: Any, field: str, *, allow_negative: bool = False) -> Decimal:
        try:
            return parse_amount(value, self.currency, allow_negative=allow_negative)
        except MoneyError as exc:
            raise InvalidInput(field, str(exc)) from None

    # -- lookups ---------------------------------------------------------------

    def _find(self, model: type[_Owned], ext_id: str) -> _Owned | None:
        """A provider's record by the provider's own id (ids are unique per provider)."""
        return self.session.scalar(
            select(model).where(model.provider_id == self.provider.id, model.ext_id == ext_id)
        )

    def account(self, ext_id: str, field: str = "account") -> AccountRow:
        row = self._find(AccountRow, ext_id)
        if row is None:
            raise InvalidInput(field, f"unknown account {ext_id!r}")
        return row

    def invoice(self, ext_id: str, field: str = "invoice") -> InvoiceRow:
        row = self._find(InvoiceRow, ext_id)
        if row is None:
            raise InvalidInput(field, f"unknown invoice {ext_id!r}")
        return row

    # -- configuration -------------------------------------------------------------

    def put_rule_set(
        self, raw: dict[str, Any], effective_at: datetime | None = None, prefix: str = "rules"
    ) -> RuleSetRow:
        """Append a new version of a rule set (versions are never edited)."""
        effective = effective_at or self.now
        rs = parse_rule_set(raw, currency=self.currency, effective_at=effective, prefix=prefix)
        latest = self.session.scalar(
            select(RuleSetRow.version)
            .where(RuleSetRow.provider_id == self.provider.id, RuleSetRow.name == rs.name)
            .order_by(RuleSetRow.version.desc())
            .limit(1)
        )
        row = RuleSetRow(
            provider_id=self.provider.id,
            name=rs.name,
            version=(latest or 0) + 1,
            effective_at=effective,
            body=dict(raw),
            created_at=self.now,
            created_by=self.actor,
        )
        self.session.add(row)
        self._config_changed()
        return row

    def put_mappings(self, mappings: dict[EventKind, list[EventMapping]]) -> None:
        """Replace the mappings of each given event."""
        for event, items in mappings.items():
            old = self.session.scalars(
                select(EventMappingRow).where(
                    EventMappingRow.provider_id == self.provider.id, EventMappingRow.event == event.value
                )
            ).all()
            by_key = {r.key: r for r in old}
            for m in items:
                row = by_key.pop(m.key, None)
                if row is None:
                    row = EventMappingRow(provider_id=self.provider.id, key=m.key, event=event.value)
                    self.session.add(row)
                if row.body != mapping_body(m) or row.enabled != m.enabled:
                    row.since = self.now
                row.enabled = m.enabled
                row.body = mapping_body(m)
            for row in by_key.values():
                row.enabled = False
                row.body = {**row.body, "enabled": False}
        self._config_changed()

    def _config_changed(self) -> None:
        """New rules or mappings: every account of the provider is looked at again now."""
        self.session.flush()
        from sqlalchemy import update

        self.session.execute(
            update(AccountRow)
            .where(AccountRow.provider_id == self.provider.id)
            .values(next_wakeup_at=self.now)
        )
        self.provider = load_provider(self.session, self.provider.id)

    # -- accounts and services -------------------------------------------------------

    def put_account(self, data: dict[str, Any], field: str = "account") -> AccountRow:
        ext_id = _required_str(data, "id", field)
        row = self._find(AccountRow, ext_id)
        status = _enum(AccountStatus, data.get("status", "active"), f"{field}.status")
        if row is None:
            row = AccountRow(
                provider_id=self.provider.id,
                ext_id=ext_id,
                status=status.value,
                created_at=self.now,
                next_wakeup_at=self.now,
            )
            self.session.add(row)
            self.session.flush()
        elif "status" in data:
            row.status = status.value
        if "groups" in data:
            groups = data["groups"] or []
            if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
                raise InvalidInput(f"{field}.groups", "must be a list of group names")
            self._set_groups(row, set(groups))
        if "contacts" in data:
            self._set_contacts(row, data["contacts"] or [], f"{field}.contacts")
        for i, svc in enumerate(data.get("services") or []):
            if not isinstance(svc, dict):
                raise InvalidInput(f"{field}.services[{i}]", "must be a mapping")
            self.put_service({**svc, "account": ext_id}, f"{field}.services[{i}]")
        self.touched.add(row.id)
        return row

    def _set_groups(self, row: AccountRow, groups: set[str]) -> None:
        existing = self.session.scalars(select(GroupRow).where(GroupRow.account_id == row.id)).all()
        have = {g.name for g in existing}
        for g in existing:
            if g.name not in groups:
                self.session.delete(g)
        for name in sorted(groups - have):
            self.session.add(GroupRow(account_id=row.id, name=name))

    def _set_contacts(self, row: AccountRow, contacts: Any, field: str) -> None:
        from arrears.contacts import normalise_phone

        if not isinstance(contacts, list):
            raise InvalidInput(field, "must be a list")
        for old in self.session.scalars(select(ContactRow).where(ContactRow.account_id == row.id)).all():
            self.session.delete(old)
        for i, c in enumerate(contacts):
            path = f"{field}[{i}]"
            if not isinstance(c, dict):
                raise InvalidInput(path, "must be a mapping")
            unknown = set(c) - {"role", "service", "name", "email", "phone"}
            if unknown:
                raise InvalidInput(f"{path}.{sorted(unknown)[0]}", "unknown field")
            role = _enum(ContactRole, c.get("role", "primary"), f"{path}.role")
            if role is ContactRole.SERVICE and not c.get("service"):
                raise InvalidInput(f"{path}.service", "a service contact names its service")
            email = c.get("email")
            if email is not None and (not isinstance(email, str) or "@" not in email):
                raise InvalidInput(f"{path}.email", f"{email!r} is not an email address")
            phone = c.get("phone")
            if phone is not None:
                try:
                    phone = normalise_phone(str(phone))
                except ValueError as exc:
                    raise InvalidInput(f"{path}.phone", str(exc)) from None
            self.session.add(
                ContactRow(
                    account_id=row.id,
                    role=role.value,
                    service_ext_id=c.get("service"),
                    name=str(c.get("name") or ""),
                    email=email,
                    phone=phone,
                )
            )

    def put_service(self, data: dict[str, Any], field: str = "service") -> ServiceRow:
        ext_id = _required_str(data, "id", field)
        account = self.account(_required_str(data, "account", field), f"{field}.account")
        status = _enum(ServiceStatus, data.get("status", "active"), f"{field}.status")
        row = self._find(ServiceRow, ext_id)
        if row is None:
            row = ServiceRow(
                provider_id=self.provider.id,
                account_id=account.id,
                ext_id=ext_id,
                type=str(data.get("type") or "service"),
                status=status.value,
                changed_by="external",
            )
            self.session.add(row)
        else:
            if row.account_id != account.id:
                raise InvalidInput(f"{field}.account", f"service {ext_id!r} belongs to another account")
            if "type" in data:
                row.type = str(data["type"])
            if "status" in data and row.status != status.value:
                row.status = status.value
                row.changed_by = "external"
                row.episode_id = None
        self.touched.add(account.id)
        return row

    # -- billing ---------------------------------------------------------------------

    def put_invoice(self, data: dict[str, Any], field: str = "invoice") -> InvoiceRow:
        ext_id = _required_str(data, "id", field)
        account = self.account(_required_str(data, "account", field), f"{field}.account")
        amount = self._amount(data.get("amount"), f"{field}.amount")
        due = _date(data.get("due"), f"{field}.due")
        status = _enum(InvoiceStatus, data.get("status", "open"), f"{field}.status")
        issued = data.get("issued_at") or self.now
        if not isinstance(issued, datetime):
            raise InvalidInput(f"{field}.issued_at", "must be an instant")
        row = self._find(InvoiceRow, ext_id)
        if row is None:
            row = InvoiceRow(
                provider_id=self.provider.id,
                account_id=account.id,
                ext_id=ext_id,
                issued_at=issued,
                due_date=due,
                amount=amount,
                balance=amount,
                disputed=Decimal("0"),
                status=status.value,
            )
            self.session.add(row)
        else:
            if row.account_id != account.id:
                raise InvalidInput(f"{field}.account", f"invoice {ext_id!r} belongs to another account")
            paid = row.amount - row.balance
            if amount < paid:
                raise InvalidInput(f"{field}.amount", f"less than the {paid} already allocated to it")
            row.amount, row.balance, row.due_date, row.status = amount, amount - paid, due, status.value
            row.issued_at = issued
            row.disputed = min(row.disputed, row.balance)
        self.touched.add(account.id)
        return row

    def set_invoice_status(self, ext_id: str, status: Any, field: str = "invoice_status") -> None:
        row = self.invoice(ext_id, f"{field}.invoice")
        row.status = _enum(InvoiceStatus, status, f"{field}.status").value
        self.touched.add(row.account_id)

    def set_dispute(self, ext_id: str, amount: Any, field: str = "dispute") -> None:
        row = self.invoice(ext_id, f"{field}.invoice")
        value = self._amount(amount, f"{field}.amount")
        if value > row.balance:
            raise InvalidInput(f"{field}.amount", f"{value} is more than the invoice's balance {row.balance}")
        row.disputed = value
        self.touched.add(row.account_id)

    def put_payment(self, data: dict[str, Any], field: str = "payment") -> PaymentRow:
        ext_id = _required_str(data, "id", field)
        account = self.account(_required_str(data, "account", field), f"{field}.account")
        amount = self._amount(data.get("amount"), f"{field}.amount")
        if amount <= 0:
            raise InvalidInput(f"{field}.amount", "must be more than zero")
        received = data.get("received_at") or self.now
        existing = self._find(PaymentRow, ext_id)
        if existing is not None:
            if existing.amount != amount or existing.account_id != account.id:
                raise InvalidInput(f"{field}.id", f"payment {ext_id!r} exists with other details")
            return existing  # a replayed feed changes nothing
        row = PaymentRow(
            provider_id=self.provider.id,
            account_id=account.id,
            ext_id=ext_id,
            amount=amount,
            unallocated=amount,
            received_at=received,
        )
        self.session.add(row)
        self.session.flush()
        allocate_to = data.get("allocate_to") or []
        if not isinstance(allocate_to, list):
            raise InvalidInput(f"{field}.allocate_to", "must be a list of invoice ids")
        for i, inv in enumerate(allocate_to):
            other = self.invoice(str(inv), f"{field}.allocate_to[{i}]")
            if other.account_id != account.id:
                raise InvalidInput(f"{field}.allocate_to[{i}]", f"invoice {inv!r} belongs to another account")
        if data.get("allocate", True):
            self.allocate(row, [str(x) for x in allocate_to])
        self.touched.add(account.id)
        return row

    def allocate_payment(self, ext_id: str, field: str = "allocate.payment") -> None:
        row = self._find(PaymentRow, ext_id)
        if row is None:
            raise InvalidInput(field, f"unknown payment {ext_id!r}")
        self.allocate(row, [])
        self.touched.add(row.account_id)

    def allocate(self, payment: PaymentRow, first: list[str]) -> None:
        invoices = self.session.scalars(
            select(InvoiceRow).where(
                InvoiceRow.account_id == payment.account_id,
                InvoiceRow.status == "open",
                InvoiceRow.balance > 0,
                InvoiceRow.issued_at <= self.now,
            )
        ).all()
        by_ext = {i.ext_id: i for i in invoices}
        items = [OpenItem(i.ext_id, i.due_date, i.issued_at, i.balance) for i in invoices]
        for ext, part in allocate(payment.unallocated, items, first):
            inv = by_ext[ext]
            inv.balance -= part
            inv.disputed = min(inv.disputed, inv.balance)
            if inv.balance == 0:
                inv.status = "paid"
            payment.unallocated -= part
            self.session.add(
                AllocationRow(payment_id=payment.id, invoice_id=inv.id, amount=part, at=self.now)
            )

    def put_plan(self, data: dict[str, Any], field: str = "plan") -> None:
        ext_id = _required_str(data, "id", field)
        account = self.account(_required_str(data, "account", field), f"{field}.account")
        status = _enum(PlanStatus, data.get("status", "in_progress"), f"{field}.status")
        invoices = data.get("invoices") or []
        if not isinstance(invoices, list):
            raise InvalidInput(f"{field}.invoices", "must be a list of invoice ids")
        for i, inv in enumerate(invoices):
            self.invoice(str(inv), f"{field}.invoices[{i}]")
        row = self._find(PlanRow, ext_id)
        if row is None:
            row = PlanRow(
                provider_id=self.provider.id, account_id=account.id, ext_id=ext_id, status=status.value
            )
            self.session.add(row)
        row.status = status.value
        row.invoice_ext_ids = [str(x) for x in invoices]
        self.touched.add(account.id)

    def put_case(self, data: dict[str, Any], field: str = "case") -> None:
        ext_id = _required_str(data, "id", field)
        account = self.account(_required_str(data, "account", field), f"{field}.account")
        status = _enum(CaseStatus, data.get("status", "open"), f"{field}.status")
        row = self._find(CaseRow, ext_id)
        if row is None:
            row = CaseRow(
                provider_id=self.provider.id, account_id=account.id, ext_id=ext_id, status=status.value
            )
            self.session.add(row)
        row.status = status.value
        self.touched.add(account.id)

    # -- operator actions -----------------------------------------------------------------

    def set_flag(
        self, account_id: str, omit: bool, until: date | None, reason: str, field: str = "flag"
    ) -> None:
        row = self.account(account_id, f"{field}.account")
        row.omit, row.omit_until, row.omit_reason = omit, until if omit else None, reason if omit else None
        self._operator(
            row,
            "omit_flag" if omit else "clear_omit_flag",
            reason,
            until=until.isoformat() if until else None,
        )

    def change_group(
        self, account_id: str, add: str | None, remove: str | None, field: str = "group", reason: str = ""
    ) -> None:
        row = self.account(account_id, f"{field}.account")
        groups = {g.name for g in self.session.scalars(select(GroupRow).where(GroupRow.account_id == row.id))}
        if add:
            groups.add(add)
        if remove:
            groups.discard(remove)
        self._set_groups(row, groups)
        self._operator(row, "group", reason, add=add, remove=remove)

    def manual(self, account_id: str, action: str, reason: str = "", field: str = "manual") -> None:
        """An operator suspends or restores an account by hand (SPEC §6, operator actions)."""
        if action not in ("suspend", "restore"):
            raise InvalidInput(f"{field}.action", f"{action!r} is not one of: suspend, restore")
        self.session.flush()
        row = load_accounts(self.session, [self.account(account_id, f"{field}.account").id], lock=True)[0]
        journal = Journal(self.session, self.provider.id, self.now, self.actor)
        applicator = Applicator(self.session, self.provider, self.now, journal)
        self._operator(row, f"manual_{action}", reason)
        if action == "suspend":
            self._manual_suspend(row, applicator)
        else:
            self._manual_restore(row, applicator)
        self.touched.add(row.id)

    def _manual_suspend(self, row: AccountRow, applicator: Applicator) -> None:
        episode = row.episode
        if episode is not None:
            # An operator takes over: arrears will not restore what it did not decide.
            episode.ended_at, episode.end_reason = self.now, "manual_suspend"
            applicator.journal.write(
                "stage",
                row.id,
                episode_id=episode.id,
                account=row.ext_id,
                **moved(episode.stage, "none"),
                reason="manual_suspend",
            )
            row.episode, row.episode_id = None, None
        for svc in row.services:
            ours = episode is not None and svc.episode_id == episode.id
            if svc.status == "active" or (ours and svc.status == "restricted"):
                applicator._service_status(row, svc, "suspended", None)
                applicator._provision(row, svc, "suspended", None)
            if svc.status == "suspended" and (ours or svc.changed_by != "operator"):
                svc.changed_by, svc.episode_id = "operator", None
        if row.status == "active" or (row.status == "suspended" and row.status_reason != "manual"):
            applicator._account_status(row, "suspended", "manual", None)
        row.path_started_at = None

    def _manual_restore(self, row: AccountRow, applicator: Applicator) -> None:
        # Any operator restore starts the re-suspend grace (SPEC §5 "an operator
        # restored it"): an operator who lifts a manual suspension of an account
        # still in arrears must not see arrears suspend it again a second later.
        if row.episode is not None or row.status == "suspended":
            row.operator_restored_at = self.now
        if row.episode is not None:
            snap = snapshot(row, notice_memory(self.session, [row])[row.id])
            applicator.restore(row, snap, reason="manual", notify=False)
        for svc in row.services:
            if svc.changed_by == "operator" and svc.status == "suspended":
                applicator._service_status(row, svc, "active", None)
                applicator._provision(row, svc, "restore", None)
                svc.changed_by = "operator"
        if row.status == "suspended":
            applicator._account_status(row, "active", None, None)

    def _operator(self, row: AccountRow, action: str, reason: str, **data: Any) -> None:
        self.session.add(
            OperatorActionRow(
                provider_id=self.provider.id,
                account_id=row.id,
                at=self.now,
                actor=self.actor,
                action=action,
                reason=reason,
                data=data,
            )
        )
        Journal(self.session, self.provider.id, self.now, self.actor).write(
            "operator_action",
            row.id,
            account=row.ext_id,
            action=action,
            actor=self.actor,
            reason=reason,
            **data,
        )
        self.touched.add(row.id)


def _required_str(data: dict[str, Any], key: str, field: str) -> str:
    value = data.get(key)
    if value is None or value == "":
        raise InvalidInput(f"{field}.{key}", "is required")
    if not isinstance(value, str | int):
        raise InvalidInput(f"{field}.{key}", "must be a string")
    return str(value)


def _date(value: Any, field: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidInput(field, f"{value!r} is not a date as YYYY-MM-DD")


__all__ = ["Inputs", "InvalidInput", "create_provider"]
