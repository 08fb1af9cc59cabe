"""The read side: rows into the API's response shapes, and the queries behind them.

No HTTP here, so the web console can show the same things. Money is a string in
the provider's currency ("12.50"); instants are ISO 8601 with the provider's
UTC offset, seconds precision (as in the simulation's output).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from arrears.domain.clock import iso_local
from arrears.domain.money import fmt
from arrears.engine.service import assess
from arrears.store.repository import load_provider
from arrears.store.tables import (
    AccountRow,
    AllocationRow,
    ApiKeyRow,
    CaseRow,
    ContactRow,
    EpisodeRow,
    GroupRow,
    HistoryRow,
    InvoiceRow,
    PaymentRow,
    PlanRow,
    ProviderRow,
    ProvisioningRequestRow,
    RuleSetRow,
    ServiceRow,
)

Owned = TypeVar("Owned", AccountRow, ServiceRow, InvoiceRow, PaymentRow, PlanRow, CaseRow)

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
# The largest id an INTEGER column holds on PostgreSQL: a larger one names no row (and must
# not reach the database, which would refuse the query).
MAX_ID = 2**31 - 1
# Provisioning requests still on their way to the network.
PENDING_STATES = ("pending", "sent")


class BadCursor(ValueError):
    pass


def owned(session: Session, model: type[Owned], provider_id: int, ext_id: str) -> Owned | None:
    """A provider's record by its own id; another provider's record is simply not found."""
    return session.scalar(select(model).where(model.provider_id == provider_id, model.ext_id == ext_id))


def find_provider(session: Session, ref: str) -> ProviderRow | None:
    """A provider by its numeric id or its key."""
    if ref.isascii() and ref.isdigit():  # not "²": str.isdigit takes any script's digits
        return session.get(ProviderRow, int(ref)) if int(ref) <= MAX_ID else None
    return session.scalar(select(ProviderRow).where(ProviderRow.key == ref))


# -- pagination ------------------------------------------------------------------------------


def encode_cursor(after: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        after = json.loads(raw)["after"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise BadCursor("is not a cursor this API gave out") from exc
    if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after <= MAX_ID:
        raise BadCursor("is not a cursor this API gave out")
    return after


class HasId(Protocol):
    @property
    def id(self) -> int: ...


Row = TypeVar("Row", bound=HasId)


def page_rows(
    session: Session, stmt: Select[Row], id_column: Any, limit: int, cursor: str | None
) -> tuple[list[Row], str | None]:
    """One page of `stmt` in id order, and the cursor of the next (keyset pagination: stable
    while rows are added, and each row is seen once)."""
    if cursor:
        stmt = stmt.where(id_column > decode_cursor(cursor))
    rows = list(session.scalars(stmt.order_by(id_column).limit(limit + 1)).all())
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].id)
    return rows, None


# -- small pieces --------------------------------------------------------------------------------


def instant(t: datetime | None, tz: ZoneInfo) -> str | None:
    return iso_local(t, tz) if t is not None else None


def day(d: date | None) -> str | None:
    return d.isoformat() if d is not None else None


def money(amount: Decimal, currency: str) -> str:
    return fmt(amount, currency)


# -- providers and keys -----------------------------------------------------------------------


def provider_view(row: ProviderRow) -> dict[str, Any]:
    tz = ZoneInfo(row.timezone)
    quiet = {"start": row.quiet_start, "end": row.quiet_end} if row.quiet_start and row.quiet_end else None
    return {
        "id": row.id,
        "key": row.key,
        "name": row.name,
        "timezone": row.timezone,
        "currency": row.currency,
        "sms": row.sms,
        "send_time": row.send_time,
        "locale": row.locale,
        "quiet_hours": quiet,
        "email_from": row.email_from,
        "sms_from": row.sms_from,
        "payment_link": row.payment_link,
        "operations_email": row.operations_email,
        "created_at": instant(row.created_at, tz),
    }


def key_view(row: ApiKeyRow) -> dict[str, Any]:
    return {
        "prefix": row.prefix,
        "name": row.name,
        "provider_id": row.provider_id,
        "created_at": row.created_at.isoformat(),
        "created_by": row.created_by,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


# -- billing records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    """What every view of a provider's records needs: its id, timezone and currency."""

    id: int
    tz: ZoneInfo
    currency: str

    @classmethod
    def of(cls, row: ProviderRow) -> Tenant:
        return cls(row.id, ZoneInfo(row.timezone), row.currency)


def account_ext_ids(session: Session, ids: Sequence[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(select(AccountRow.id, AccountRow.ext_id).where(AccountRow.id.in_(set(ids))))
    return {i: e for i, e in rows.all()}


def account_summary(row: AccountRow, t: Tenant) -> dict[str, Any]:
    """An account in a list: its stage and projection as of its last evaluation."""
    return {
        "id": row.ext_id,
        "status": row.status,
        "status_reason": row.status_reason,
        "stage": row.stage or "none",
        "projected_suspension": instant(row.projected_suspension, t.tz),
        "omit": row.omit,
    }


def service_view(
    row: ServiceRow, account: str, pending: list[ProvisioningRequestRow], t: Tenant
) -> dict[str, Any]:
    return {
        "id": row.ext_id,
        "account": account,
        "type": row.type,
        "status": row.status,
        "changed_by": row.changed_by,
        "pending_provisioning": [
            {
                "id": p.id,
                "action": p.action,
                "state": p.state,
                "adapter": p.adapter,
                "attempts": p.attempts,
                "last_error": p.last_error,
                "created_at": instant(p.created_at, t.tz),
            }
            for p in pending
        ],
    }


def pending_provisioning(
    session: Session, service_ids: Sequence[int]
) -> dict[int, list[ProvisioningRequestRow]]:
    out: dict[int, list[ProvisioningRequestRow]] = {i: [] for i in service_ids}
    if not service_ids:
        return out
    rows = session.scalars(
        select(ProvisioningRequestRow)
        .where(
            ProvisioningRequestRow.service_id.in_(list(service_ids)),
            ProvisioningRequestRow.state.in_(PENDING_STATES),
        )
        .order_by(ProvisioningRequestRow.id)
    ).all()
    for r in rows:
        out[r.service_id].append(r)
    return out


def service_detail(session: Session, row: ServiceRow, t: Tenant) -> dict[str, Any]:
    account = account_ext_ids(session, [row.account_id])[row.account_id]
    return service_view(row, account, pending_provisioning(session, [row.id])[row.id], t)


def invoice_view(row: InvoiceRow, account: str, t: Tenant) -> dict[str, Any]:
    return {
        "id": row.ext_id,
        "account": account,
        "amount": money(row.amount, t.currency),
        "balance": money(row.balance, t.currency),
        "disputed": money(row.disputed, t.currency),
        "due": day(row.due_date),
        "issued_at": instant(row.issued_at, t.tz),
        "status": row.status,
    }


def dispute_view(row: InvoiceRow, t: Tenant) -> dict[str, Any]:
    return {
        "invoice": row.ext_id,
        "amount": money(row.disputed, t.currency),
        "balance": money(row.balance, t.currency),
    }


def payment_views(session: Session, rows: Sequence[PaymentRow], t: Tenant) -> list[dict[str, Any]]:
    ids = [r.id for r in rows]
    allocations: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        found = session.execute(
            select(AllocationRow.payment_id, InvoiceRow.ext_id, AllocationRow.amount, AllocationRow.at)
            .join(InvoiceRow, InvoiceRow.id == AllocationRow.invoice_id)
            .where(AllocationRow.payment_id.in_(ids))
            .order_by(AllocationRow.id)
        ).all()
        for payment_id, invoice, amount, at in found:
            allocations[payment_id].append(
                {"invoice": invoice, "amount": money(amount, t.currency), "at": instant(at, t.tz)}
            )
    accounts = account_ext_ids(session, [r.account_id for r in rows])
    return [
        {
            "id": r.ext_id,
            "account": accounts[r.account_id],
            "amount": money(r.amount, t.currency),
            "unallocated": money(r.unallocated, t.currency),
            "received_at": instant(r.received_at, t.tz),
            "allocations": allocations[r.id],
        }
        for r in rows
    ]


def plan_view(row: PlanRow, account: str) -> dict[str, Any]:
    return {"id": row.ext_id, "account": account, "status": row.status, "invoices": list(row.invoice_ext_ids)}


def case_view(row: CaseRow, account: str) -> dict[str, Any]:
    return {"id": row.ext_id, "account": account, "status": row.status}


def flag_view(row: AccountRow) -> dict[str, Any]:
    return {"account": row.ext_id, "omit": row.omit, "until": day(row.omit_until), "reason": row.omit_reason}


def with_accounts(
    session: Session, rows: Sequence[Any], view: Callable[[Any, str], dict[str, Any]]
) -> list[dict[str, Any]]:
    """`view(row, account ext id)` for rows that point at an account, in one query for the ids."""
    accounts = account_ext_ids(session, [r.account_id for r in rows])
    return [view(r, accounts[r.account_id]) for r in rows]


# -- an account as it stands -------------------------------------------------------------------


def account_detail(session: Session, row: AccountRow, now: datetime) -> dict[str, Any]:
    """Everything about an account now: evaluated at `now`, as the engine would decide."""
    provider = load_provider(session, row.provider_id)
    t = Tenant(provider.id, provider.tz, provider.currency)
    [(stored, ev)] = assess(session, provider, [row.id], now)
    services = list(
        session.scalars(select(ServiceRow).where(ServiceRow.account_id == row.id).order_by(ServiceRow.id))
    )
    pending = pending_provisioning(session, [s.id for s in services])
    groups = sorted(session.scalars(select(GroupRow.name).where(GroupRow.account_id == row.id)))
    contacts = session.scalars(
        select(ContactRow).where(ContactRow.account_id == row.id).order_by(ContactRow.id)
    ).all()
    episode = session.get(EpisodeRow, row.episode_id) if row.episode_id is not None else None
    fig = ev.figures
    return {
        "id": row.ext_id,
        "status": stored.status,
        "status_reason": row.status_reason,
        "stage": stored.episode_stage or "none",
        "groups": groups,
        "contacts": [
            {"role": c.role, "service": c.service_ext_id, "name": c.name, "email": c.email, "phone": c.phone}
            for c in contacts
        ],
        "services": [service_view(s, row.ext_id, pending[s.id], t) for s in services],
        "flag": {"omit": row.omit, "until": day(row.omit_until), "reason": row.omit_reason},
        "figures": {
            "total_owing": money(fig.total_owing, t.currency),
            "overdue_balance": money(fig.overdue_balance, t.currency),
            "days_overdue": fig.days_overdue,
            "disputed": money(fig.disputed, t.currency),
            "unallocated": money(fig.unallocated, t.currency),
        },
        "exclusions": list(ev.exclusions),
        "rule_set": _rule_set_ref(ev.rule_set.name, ev.rule_set.version) if ev.rule_set else None,
        "target_stage": ev.target.name if ev.target is not None else None,
        "projected_suspension": instant(ev.projected, t.tz),
        "episode": _episode(episode, t) if episode is not None else None,
        "as_of": instant(now, t.tz),
    }


def _rule_set_ref(name: str, version: int) -> dict[str, Any]:
    return {"name": name, "version": version}


def _episode(row: EpisodeRow, t: Tenant) -> dict[str, Any]:
    return {
        "id": row.id,
        "stage": row.stage,
        "started_at": instant(row.started_at, t.tz),
        "ended_at": instant(row.ended_at, t.tz),
        "end_reason": row.end_reason,
        "rule_set_id": row.rule_set_id,
    }


def rule_set_names(session: Session, ids: Sequence[int | None]) -> dict[int, dict[str, Any]]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(
        select(RuleSetRow.id, RuleSetRow.name, RuleSetRow.version).where(RuleSetRow.id.in_(wanted))
    ).all()
    return {i: _rule_set_ref(n, v) for i, n, v in rows}


def episodes(session: Session, account: AccountRow, t: Tenant) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(EpisodeRow).where(EpisodeRow.account_id == account.id).order_by(EpisodeRow.id)
    ).all()
    names = rule_set_names(session, [r.rule_set_id for r in rows])
    out = []
    for r in rows:
        item = _episode(r, t)
        item["rule_set"] = names.get(r.rule_set_id) if r.rule_set_id is not None else None
        del item["rule_set_id"]
        out.append(item)
    return out


def history_page(
    session: Session, account: AccountRow, t: Tenant, limit: int, cursor: str | None
) -> dict[str, Any]:
    """The account's episodes, and a page of its history lines (oldest first) with their reasons."""
    stmt = select(HistoryRow).where(HistoryRow.account_id == account.id)
    rows, next_cursor = page_rows(session, stmt, HistoryRow.id, limit, cursor)
    names = rule_set_names(session, [r.rule_set_id for r in rows])
    items = []
    for r in rows:
        item: dict[str, Any] = {
            "id": r.id,
            "at": instant(r.at, t.tz),
            "kind": r.kind,
            "actor": r.actor,
            "episode": r.episode_id,
            "rule_set": names.get(r.rule_set_id) if r.rule_set_id is not None else None,
        }
        # The line's own fields (from, to, reason, reasons, service, ...) as the engine wrote them.
        item.update({k: v for k, v in r.data.items() if k not in item})
        items.append(item)
    return {
        "account": account.ext_id,
        "episodes": episodes(session, account, t),
        "items": items,
        "next_cursor": next_cursor,
    }
