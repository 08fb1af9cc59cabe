"""What a notification is about, read from storage when its turn to go out comes.

`still_true` is why a customer never hears of an invoice they paid in the
meantime: an occurrence is checked again against the current data just before
it is sent, not only when the engine recorded it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears.domain.figures import Figures, figures_at
from arrears.domain.model import Invoice, InvoiceStatus, ServiceStatus
from arrears.store.tables import AccountRow, ContactRow, InvoiceRow, NotificationRow, ProviderRow, ServiceRow

# Why a notice was not sent after all (`skipped` with this reason).
INVOICE_SETTLED = "invoice_settled"
NO_LONGER_HEADING = "no_longer_heading"
SERVICE_RESTORED = "service_restored"
SERVICE_NOT_ACTIVE = "service_not_active"


@dataclass
class NoticeData:
    account: AccountRow
    contact: ContactRow | None
    service: ServiceRow | None
    invoice: InvoiceRow | None
    figures: Figures


def _figures(
    session: Session, account_id: int, provider: ProviderRow, now: datetime
) -> tuple[Figures, list[InvoiceRow]]:
    invoices = list(
        session.scalars(
            select(InvoiceRow)
            .where(InvoiceRow.account_id == account_id, InvoiceRow.status == "open")
            .order_by(InvoiceRow.due_date, InvoiceRow.id)
        )
    )
    domain = [_domain_invoice(i) for i in invoices]
    return figures_at(domain, now, ZoneInfo(provider.timezone)), invoices


def load_account_data(
    session: Session, account: AccountRow, provider: ProviderRow, now: datetime
) -> NoticeData:
    """An account's data for a preview: its primary contact, first service and oldest open invoice."""
    figures, invoices = _figures(session, account.id, provider, now)
    contacts = session.scalars(
        select(ContactRow).where(ContactRow.account_id == account.id).order_by(ContactRow.id)
    ).all()
    contact = next((c for c in contacts if c.role == "primary"), contacts[0] if contacts else None)
    service = session.scalar(
        select(ServiceRow).where(ServiceRow.account_id == account.id).order_by(ServiceRow.id).limit(1)
    )
    return NoticeData(account, contact, service, invoices[0] if invoices else None, figures)


def load_notice_batch(
    session: Session, rows: Sequence[NotificationRow], providers: dict[int, ProviderRow], now: datetime
) -> dict[int, NoticeData]:
    """What each notification is about (account, contact, service, invoice, figures), for a
    whole claimed batch in five queries; keyed by notification id."""
    account_ids = {r.account_id for r in rows}
    if not account_ids:
        return {}
    accounts = {a.id: a for a in session.scalars(select(AccountRow).where(AccountRow.id.in_(account_ids)))}
    open_by_account: dict[int, list[InvoiceRow]] = defaultdict(list)
    for inv in session.scalars(
        select(InvoiceRow)
        .where(InvoiceRow.account_id.in_(account_ids), InvoiceRow.status == "open")
        .order_by(InvoiceRow.due_date, InvoiceRow.id)
    ):
        open_by_account[inv.account_id].append(inv)
    contacts_by_account: dict[int, list[ContactRow]] = defaultdict(list)
    for c in session.scalars(
        select(ContactRow).where(ContactRow.account_id.in_(account_ids)).order_by(ContactRow.id)
    ):
        contacts_by_account[c.account_id].append(c)
    service_ids = {r.service_ext_id for r in rows if r.service_ext_id is not None}
    services = {
        (s.provider_id, s.ext_id): s
        for s in session.scalars(select(ServiceRow).where(ServiceRow.account_id.in_(account_ids)))
        if s.ext_id in service_ids
    }
    invoice_ids = {r.invoice_ext_id for r in rows if r.invoice_ext_id is not None}
    invoices: dict[tuple[int, str], InvoiceRow] = {}
    if invoice_ids:
        invoices = {
            (i.provider_id, i.ext_id): i
            for i in session.scalars(
                select(InvoiceRow).where(
                    InvoiceRow.account_id.in_(account_ids), InvoiceRow.ext_id.in_(invoice_ids)
                )
            )
        }
    out: dict[int, NoticeData] = {}
    for r in rows:
        provider = providers[r.provider_id]
        domain = [_domain_invoice(i) for i in open_by_account[r.account_id]]
        out[r.id] = NoticeData(
            accounts[r.account_id],
            _pick_contact(contacts_by_account[r.account_id], r),
            services.get((r.provider_id, r.service_ext_id)) if r.service_ext_id is not None else None,
            invoices.get((r.provider_id, r.invoice_ext_id)) if r.invoice_ext_id is not None else None,
            figures_at(domain, now, ZoneInfo(provider.timezone)),
        )
    return out


def _domain_invoice(i: InvoiceRow) -> Invoice:
    return Invoice(
        i.ext_id, i.issued_at, i.due_date, i.amount, i.balance, InvoiceStatus(i.status), i.disputed
    )


def _pick_contact(contacts: Sequence[ContactRow], row: NotificationRow) -> ContactRow | None:
    for c in contacts:
        address = c.email if row.channel == "email" else c.phone
        if row.to_address is not None and address == row.to_address:
            return c
    # The note channel (or an address changed since): the primary contact speaks for the account.
    return next((c for c in contacts if c.role == "primary"), contacts[0] if contacts else None)


def still_true(row: NotificationRow, data: NoticeData) -> str | None:
    """None when the notice still holds now; otherwise the reason to skip it."""
    if row.event in ("invoice_due", "invoice_overdue"):
        inv = data.invoice
        if inv is None or inv.status != InvoiceStatus.OPEN or inv.balance <= 0:
            return INVOICE_SETTLED
    elif row.event == "suspension_warning":
        if data.account.projected_suspension is None or data.account.episode_id is not None:
            return NO_LONGER_HEADING
    elif row.event == "auto_suspend":
        if data.service is None or data.service.status == ServiceStatus.ACTIVE:
            return SERVICE_RESTORED
    elif row.event == "auto_unsuspend" and (
        data.service is None or data.service.status != ServiceStatus.ACTIVE
    ):
        return SERVICE_NOT_ACTIVE
    return None
