"""Providers' templates in storage: saving (checked first), previewing, rendering a notice.

A provider without its own template for an event and channel gets the default
shipped in `defaults`. Saving renders the template against a sample of the
event first, so a typo is refused with its line when it is written, not found
at three in the morning when the first customer's notice fails.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears.config import ConfigError
from arrears.domain.events import EventKind
from arrears.notify.context import (
    AccountFacts,
    ContactFacts,
    InvoiceFacts,
    NoticeFacts,
    ProviderFacts,
    ServiceFacts,
    build_context,
    sample_facts,
)
from arrears.notify.facts import NoticeData
from arrears.notify.templates import (
    Rendered,
    TemplateError,
    TemplateSource,
    default_template,
    render,
    validate,
)
from arrears.store.tables import AccountRow, NotificationRow, ProviderRow, TemplateRow

TEMPLATE_CHANNELS = ("email", "sms")


def provider_facts(provider: ProviderRow) -> ProviderFacts:
    return ProviderFacts(
        name=provider.name,
        timezone=provider.timezone,
        currency=provider.currency,
        locale=provider.locale,
        payment_link=provider.payment_link,
    )


def template_for(session: Session, provider_id: int, event: str, channel: str) -> TemplateSource:
    row = session.scalar(
        select(TemplateRow).where(
            TemplateRow.provider_id == provider_id, TemplateRow.event == event, TemplateRow.channel == channel
        )
    )
    if row is None:
        return default_template(event, channel)
    return TemplateSource(event=event, channel=channel, subject=row.subject, text=row.text, html=row.html)


def check_target(event: str, channel: str) -> None:
    try:
        EventKind(event)
    except ValueError:
        known = ", ".join(e.value for e in EventKind)
        raise ConfigError("event", f"unknown event {event!r} (known: {known})") from None
    if channel not in TEMPLATE_CHANNELS:
        raise ConfigError("channel", f"templates are for email and sms, not {channel!r}")


def save_template(
    session: Session,
    provider: ProviderRow,
    source: TemplateSource,
    *,
    actor: str,
    now: datetime,
) -> Rendered:
    """Check `source` against a sample of its event, then store it; the sample as rendered."""
    check_target(source.event, source.channel)
    sample = sample_facts(source.event, provider=provider_facts(provider), now=now)
    try:
        rendered = validate(source, sample=build_context(sample))
    except TemplateError as exc:
        raise ConfigError(f"template.{exc.field}", str(exc)) from None
    row = session.scalar(
        select(TemplateRow).where(
            TemplateRow.provider_id == provider.id,
            TemplateRow.event == source.event,
            TemplateRow.channel == source.channel,
        )
    )
    if row is None:
        row = TemplateRow(provider_id=provider.id, event=source.event, channel=source.channel)
        session.add(row)
    row.subject, row.text, row.html = source.subject, source.text, source.html
    row.updated_at, row.updated_by = now, actor
    session.flush()
    return rendered


def preview(
    session: Session,
    provider: ProviderRow,
    event: str,
    channel: str,
    *,
    now: datetime,
    account: str | None = None,
    source: TemplateSource | None = None,
) -> Rendered:
    """Render the stored (or the given, unsaved) template for a real account, or a sample."""
    check_target(event, channel)
    source = source or template_for(session, provider.id, event, channel)
    facts = sample_facts(event, provider=provider_facts(provider), now=now)
    if account is not None:
        row = session.scalar(
            select(AccountRow).where(AccountRow.provider_id == provider.id, AccountRow.ext_id == account)
        )
        if row is None:
            raise ConfigError("account", f"no account {account!r}")
        facts = _with_account(session, facts, provider, row, now)
    try:
        return render(source, build_context(facts))
    except TemplateError as exc:
        raise ConfigError(f"template.{exc.field}", str(exc)) from None


def render_notice(
    session: Session,
    row: NotificationRow,
    data: NoticeData,
    provider: ProviderRow,
    now: datetime,
    cache: dict[tuple[int, str, str], TemplateSource] | None = None,
) -> Rendered:
    """The notice as the customer will read it; `cache` spares a lookup per notice in a batch."""
    key = (provider.id, row.event, row.channel)
    source = cache.get(key) if cache is not None else None
    if source is None:
        source = template_for(session, provider.id, row.event, row.channel)
        if cache is not None:
            cache[key] = source
    return render(source, build_context(notice_facts(row, data, provider, now)))


def notice_facts(row: NotificationRow, data: NoticeData, provider: ProviderRow, now: datetime) -> NoticeFacts:
    contact = data.contact
    service = data.service
    invoice = data.invoice
    projected = None
    if row.event == EventKind.SUSPENSION_WARNING:
        projected = data.account.projected_suspension
    return NoticeFacts(
        event=row.event,
        now=now,
        provider=provider_facts(provider),
        account=_account_facts(data, contact.name if contact else ""),
        contact=ContactFacts(contact.name, contact.email, contact.phone, contact.role) if contact else None,
        service=ServiceFacts(service.ext_id, service.type, service.status) if service else None,
        invoice=InvoiceFacts(
            invoice.ext_id, invoice.amount, invoice.balance, invoice.due_date, invoice.issued_at
        )
        if invoice
        else None,
        projected_suspension=projected,
    )


def _account_facts(data: NoticeData, name: str) -> AccountFacts:
    f = data.figures
    return AccountFacts(
        id=data.account.ext_id,
        name=name,
        status=data.account.status,
        total_owing=f.total_owing,
        overdue_balance=f.overdue_balance,
        days_overdue=f.days_overdue,
    )


def _with_account(
    session: Session, sample: NoticeFacts, provider: ProviderRow, account: AccountRow, now: datetime
) -> NoticeFacts:
    """The sample with the real account's figures and contact (service and invoice stay samples)."""
    from arrears.notify.facts import load_account_data

    data = load_account_data(session, account, provider, now)
    contact = data.contact
    values: dict[str, Any] = {
        "account": _account_facts(data, contact.name if contact else ""),
        "contact": ContactFacts(contact.name, contact.email, contact.phone, contact.role)
        if contact
        else None,
    }
    if sample.projected_suspension is not None and account.projected_suspension is not None:
        values["projected_suspension"] = account.projected_suspension
    if data.service is not None and sample.service is not None:
        s = data.service
        values["service"] = ServiceFacts(s.ext_id, s.type, s.status)
    if data.invoice is not None and sample.invoice is not None:
        i = data.invoice
        values["invoice"] = InvoiceFacts(i.ext_id, i.amount, i.balance, i.due_date, i.issued_at)
    from dataclasses import replace

    return replace(sample, **values)
