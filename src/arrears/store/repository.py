"""Reading domain snapshots out of the tables, a batch of accounts at a time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from arrears.config import mapping_from_body, parse_rule_set
from arrears.domain.calendars import holiday_calendar
from arrears.domain.decisions import ProviderContext
from arrears.domain.events import Mappings
from arrears.domain.model import (
    AccountSnapshot,
    AccountStatus,
    CaseStatus,
    ChangedBy,
    Contact,
    ContactRole,
    Episode,
    Invoice,
    InvoiceStatus,
    OmitFlag,
    PaymentPlan,
    PlanStatus,
    Service,
    ServiceStatus,
    StatusReason,
)
from arrears.domain.rules import RuleSet
from arrears.store.tables import (
    AccountRow,
    CaseRow,
    EventMappingRow,
    InvoiceRow,
    NotificationRow,
    PaymentRow,
    PlanRow,
    ProviderRow,
    RuleSetRow,
)


@dataclass
class ProviderView:
    """A provider row with its decision context and the ids rule sets have in storage."""

    row: ProviderRow
    context: ProviderContext
    rule_set_ids: dict[tuple[str, int], int]

    @property
    def id(self) -> int:
        return self.row.id

    @property
    def tz(self) -> ZoneInfo:
        return self.context.tz

    @property
    def currency(self) -> str:
        return self.row.currency


def load_provider(session: Session, provider_id: int) -> ProviderView:
    row = session.get_one(ProviderRow, provider_id)
    rule_rows = session.scalars(select(RuleSetRow).where(RuleSetRow.provider_id == provider_id)).all()
    rule_sets: list[RuleSet] = []
    ids: dict[tuple[str, int], int] = {}
    for r in rule_rows:
        rs = parse_rule_set(r.body, currency=row.currency, effective_at=r.effective_at, version=r.version)
        rule_sets.append(rs)
        ids[(rs.name, rs.version)] = r.id
    mapping_rows = session.scalars(
        select(EventMappingRow)
        .where(EventMappingRow.provider_id == provider_id)
        .order_by(EventMappingRow.key)
    ).all()
    mappings = Mappings(tuple(mapping_from_body(m.key, m.event, m.body, m.since) for m in mapping_rows))
    ctx = ProviderContext(
        tz=ZoneInfo(row.timezone),
        rule_sets=tuple(rule_sets),
        mappings=mappings,
        send_time=time.fromisoformat(row.send_time),
        calendars=holiday_calendar,
    )
    return ProviderView(row, ctx, ids)


def load_accounts(session: Session, account_ids: Sequence[int], *, lock: bool = False) -> list[AccountRow]:
    """Accounts with everything a decision reads, in a fixed number of queries."""
    if not account_ids:
        return []
    stmt = (
        select(AccountRow)
        .where(AccountRow.id.in_(account_ids))
        .options(
            selectinload(AccountRow.groups),
            selectinload(AccountRow.contacts),
            selectinload(AccountRow.services),
            # Only what decisions read: history grows, open items stay few.
            selectinload(AccountRow.invoices.and_(InvoiceRow.status == "open")),
            selectinload(AccountRow.payments.and_(PaymentRow.unallocated > 0)),
            selectinload(AccountRow.plans.and_(PlanRow.status == "in_progress")),
            selectinload(AccountRow.cases.and_(CaseRow.status == "open")),
            selectinload(AccountRow.episode),
        )
        .order_by(AccountRow.id)
        # Inputs written earlier in the same transaction must be seen.
        .execution_options(populate_existing=True)
    )
    if lock and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=AccountRow)
    return list(session.scalars(stmt).unique().all())


@dataclass
class NoticeMemory:
    """What an account's earlier evaluations already recorded about notices."""

    occurrences: set[str]
    warnings: dict[str, datetime]  # mapping key -> when it went out on the current path


def notice_memory(session: Session, accounts: Sequence[AccountRow]) -> dict[int, NoticeMemory]:
    """Recorded notice occurrences of a batch of accounts, in one query."""
    out = {a.id: NoticeMemory(set(), {}) for a in accounts}
    if not accounts:
        return out
    paths = {a.id: a.path_started_at.isoformat() for a in accounts if a.path_started_at is not None}
    rows = session.execute(
        select(
            NotificationRow.account_id,
            NotificationRow.key,
            NotificationRow.mapping_key,
            NotificationRow.event,
            NotificationRow.created_at,
        ).where(
            NotificationRow.account_id.in_([a.id for a in accounts]),
            NotificationRow.event.in_(("invoice_due", "invoice_overdue", "suspension_warning")),
        )
    ).all()
    for account_id, key, mapping_key, event, created in rows:
        occurrence = occurrence_of(key)
        memory = out[account_id]
        memory.occurrences.add(occurrence)
        path = paths.get(account_id)
        if event == "suspension_warning" and path is not None and occurrence.endswith(path):
            memory.warnings[mapping_key] = min(created, memory.warnings.get(mapping_key, created))
    return out


def occurrence_of(notification_key: str) -> str:
    """The occurrence part of a notification key (mapping|subject|occurrence[|channel|address])."""
    return "|".join(notification_key.split("|")[:3])


def snapshot(account: AccountRow, memory: NoticeMemory) -> AccountSnapshot:
    services = tuple(
        Service(
            id=s.ext_id,
            type=s.type,
            status=ServiceStatus(s.status),
            changed_by=ChangedBy(s.changed_by),
            in_episode=account.episode_id is not None and s.episode_id == account.episode_id,
        )
        for s in account.services
    )
    invoices = tuple(
        Invoice(
            id=i.ext_id,
            issued_at=i.issued_at,
            due=i.due_date,
            amount=i.amount,
            balance=i.balance,
            status=InvoiceStatus(i.status),
            disputed=i.disputed,
        )
        for i in account.invoices
        if i.status == InvoiceStatus.OPEN.value
    )
    contacts = tuple(
        Contact(ContactRole(c.role), c.name, c.email, c.phone, c.service_ext_id) for c in account.contacts
    )
    plans = tuple(
        PaymentPlan(p.ext_id, PlanStatus(p.status), frozenset(p.invoice_ext_ids)) for p in account.plans
    )
    unallocated = sum((p.unallocated for p in account.payments), Decimal("0"))
    episode = (
        Episode(account.episode.id, account.episode.stage, account.episode.started_at)
        if account.episode is not None
        else None
    )
    omit = OmitFlag(account.omit_reason or "", account.omit_until) if account.omit else None
    return AccountSnapshot(
        id=account.ext_id,
        status=AccountStatus(account.status),
        status_reason=StatusReason(account.status_reason) if account.status_reason else None,
        groups=frozenset(g.name for g in account.groups),
        contacts=contacts,
        services=services,
        invoices=invoices,
        unallocated=unallocated,
        plans=plans,
        open_cases=sum(1 for c in account.cases if c.status == CaseStatus.OPEN.value),
        omit=omit,
        episode=episode,
        operator_restored_at=account.operator_restored_at,
        path_started_at=account.path_started_at,
        warnings_sent=dict(memory.warnings),
        notices_recorded=frozenset(memory.occurrences),
        excluded_reasons=tuple(account.excluded_reasons.split(",")) if account.excluded_reasons else None,
        shadow_stage=account.shadow_stage,
    )


def unallocated_payments(account: AccountRow) -> list[PaymentRow]:
    return [p for p in account.payments if p.unallocated > 0]
