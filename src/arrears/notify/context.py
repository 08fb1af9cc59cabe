"""The variables a notice template sees (docs/templates.md), built from plain facts.

Every value handed to a template is a str, int, None or a dict of those: the
sandbox then has no object with methods worth reaching into, and formatting
(money, dates, time zones) is decided here, once, rather than in templates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, get_datetime_format
from babel.numbers import format_currency

from arrears.domain.events import EventKind
from arrears.domain.money import check_currency, fmt, quantize

INVOICE_EVENTS = frozenset({EventKind.INVOICE_DUE, EventKind.INVOICE_OVERDUE})
SERVICE_EVENTS = frozenset({EventKind.AUTO_SUSPEND, EventKind.AUTO_UNSUSPEND})
PAYMENT_LINK_PLACEHOLDERS = ("account", "invoice", "amount", "currency")

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class PaymentLinkError(ValueError):
    """A provider's payment link template that cannot be used."""


@dataclass(frozen=True)
class ProviderFacts:
    name: str
    timezone: str  # IANA name, e.g. "Australia/Sydney"
    currency: str  # ISO 4217
    locale: str = "en_AU"
    payment_link: str | None = None  # e.g. "https://pay.example.com/{account}?invoice={invoice}"

    def __post_init__(self) -> None:
        check_currency(self.currency)
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r}") from exc
        try:
            Locale.parse(self.locale)
        except (UnknownLocaleError, ValueError) as exc:
            raise ValueError(f"unknown locale {self.locale!r}") from exc
        if self.payment_link is not None:
            check_payment_link(self.payment_link)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class AccountFacts:
    id: str  # the provider's own account id
    name: str
    status: str
    total_owing: Decimal
    overdue_balance: Decimal
    days_overdue: int


@dataclass(frozen=True)
class ContactFacts:
    name: str
    email: str | None
    phone: str | None
    role: str  # primary / billing / service


@dataclass(frozen=True)
class ServiceFacts:
    id: str
    type: str
    status: str


@dataclass(frozen=True)
class InvoiceFacts:
    id: str
    amount: Decimal
    balance: Decimal
    due: date
    issued_at: datetime


@dataclass(frozen=True)
class NoticeFacts:
    """What is known about one notice when it is rendered."""

    event: str  # an EventKind value
    now: datetime
    provider: ProviderFacts
    account: AccountFacts
    contact: ContactFacts | None = None  # None: nobody in particular (the note channel)
    service: ServiceFacts | None = None  # service events
    invoice: InvoiceFacts | None = None  # invoice events
    projected_suspension: datetime | None = None  # suspension_warning

    def __post_init__(self) -> None:
        # A missing invoice/service/projection is not refused here: the template
        # then fails on it with a TemplateError, which senders already handle.
        EventKind(self.event)
        _aware("now", self.now)
        if self.projected_suspension is not None:
            _aware("projected_suspension", self.projected_suspension)
        if self.invoice is not None:
            _aware("invoice.issued_at", self.invoice.issued_at)


def _aware(name: str, t: datetime) -> None:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got {t!r}")


def format_amount(amount: Decimal, provider: ProviderFacts) -> str:
    """`amount` in the provider's currency and locale, exactly (never through float)."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise ValueError(f"amount {amount!r} must be a finite Decimal")
    if quantize(amount, provider.currency) != amount:
        # Babel would round it; a notice must not show a different sum than the books.
        raise ValueError(f"amount {amount} has more decimal places than {provider.currency} allows")
    return format_currency(amount, provider.currency, locale=provider.locale)


def format_day(day: date, provider: ProviderFacts) -> str:
    """A calendar date (no time zone involved), medium length, in the provider's locale."""
    return format_date(day, "medium", locale=provider.locale)


def format_instant(t: datetime, provider: ProviderFacts) -> str:
    """An instant as the provider's local date and time, with the zone's abbreviation (e.g. AEDT)."""
    _aware("instant", t)
    local = t.astimezone(provider.tz)
    day = format_date(local.date(), "medium", locale=provider.locale)
    clock = format_time(local, "short", locale=provider.locale)
    # CLDR's glue pattern ("{1}, {0}"), with any quoted literal unquoted; filled by
    # replace, not str.format, so nothing in locale data is interpreted.
    glue = re.sub(r"'([^']*)'", r"\1", str(get_datetime_format("medium", locale=provider.locale)))
    return f"{glue.replace('{1}', day).replace('{0}', clock)} {local.tzname()}"


def check_payment_link(template: str) -> None:
    """Refuse a payment link template that could not be filled in (call when it is saved)."""
    fill_payment_link(template, account="A", invoice="I", amount=Decimal("1"), currency="AUD")


def fill_payment_link(
    template: str, *, account: str, invoice: str | None, amount: Decimal, currency: str
) -> str:
    """The payment link with `{account}`, `{invoice}`, `{amount}`, `{currency}` URL-quoted in.

    Placeholders are found with a regular expression rather than str.format, so a
    provider's text can never reach attributes or format specs.
    """
    values = {
        "account": account,
        "invoice": invoice or "",
        "amount": fmt(amount, currency),  # 47.40, not the stored 47.4
        "currency": currency,
    }

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            known = ", ".join("{" + n + "}" for n in PAYMENT_LINK_PLACEHOLDERS)
            raise PaymentLinkError(f"payment link has an unknown placeholder {{{name}}} (known: {known})")
        return quote(values[name], safe="")

    link = _PLACEHOLDER.sub(substitute, template)
    if "{" in link or "}" in link:
        raise PaymentLinkError(f"payment link {template!r} has an unmatched brace")
    if not (template.startswith("https://") or template.startswith("http://")):
        raise PaymentLinkError(f"payment link {template!r} must start with https:// or http://")
    if any(c.isspace() for c in template):
        raise PaymentLinkError(f"payment link {template!r} must not contain whitespace")
    return link


def build_context(facts: NoticeFacts) -> dict[str, Any]:
    """The template variables for `facts` (docs/templates.md lists them)."""
    provider = facts.provider
    kind = EventKind(facts.event)
    account = facts.account
    invoice = facts.invoice if kind in INVOICE_EVENTS else None
    service = facts.service if kind in SERVICE_EVENTS else None
    projected = facts.projected_suspension if kind is EventKind.SUSPENSION_WARNING else None

    if facts.contact is not None:
        contact = {"name": facts.contact.name, "email": facts.contact.email, "phone": facts.contact.phone}
    else:
        # The note channel has no recipient: address the account itself.
        contact = {"name": account.name, "email": None, "phone": None}

    link: str | None = None
    if provider.payment_link is not None:
        link = fill_payment_link(
            provider.payment_link,
            account=account.id,
            invoice=invoice.id if invoice is not None else None,
            amount=invoice.balance if invoice is not None else account.total_owing,
            currency=provider.currency,
        )

    return {
        "provider": {"name": provider.name, "currency": provider.currency},
        "account": {
            "id": account.id,
            "name": account.name,
            "status": str(account.status),
            "total_owing": format_amount(account.total_owing, provider),
            "overdue_balance": format_amount(account.overdue_balance, provider),
            "total_owing_value": fmt(account.total_owing, provider.currency),
            "overdue_balance_value": fmt(account.overdue_balance, provider.currency),
            "days_overdue": int(account.days_overdue),
        },
        "contact": contact,
        "service": (
            None
            if service is None
            else {"id": service.id, "type": str(service.type), "status": str(service.status)}
        ),
        "invoice": (
            None
            if invoice is None
            else {
                "id": invoice.id,
                "amount": format_amount(invoice.amount, provider),
                "balance": format_amount(invoice.balance, provider),
                "amount_value": fmt(invoice.amount, provider.currency),
                "balance_value": fmt(invoice.balance, provider.currency),
                "due_date": format_day(invoice.due, provider),
                "due_date_iso": invoice.due.isoformat(),
                "issued": format_day(invoice.issued_at.astimezone(provider.tz).date(), provider),
            }
        ),
        "projected_suspension": None if projected is None else format_instant(projected, provider),
        "payment_link": link,
        "now": format_instant(facts.now, provider),
    }


def sample_facts(event: str, *, provider: ProviderFacts, now: datetime) -> NoticeFacts:
    """A realistic notice of `event`, with every variable the event can have, to validate templates."""
    kind = EventKind(event)
    _aware("now", now)
    tz = provider.tz
    today = now.astimezone(tz).date()

    def money(text: str) -> Decimal:
        return quantize(Decimal(text), provider.currency)

    invoice: InvoiceFacts | None = None
    service: ServiceFacts | None = None
    projected: datetime | None = None
    days_overdue = 0
    status = "active"
    owing = money("182.50")
    if kind in INVOICE_EVENTS:
        due = today + timedelta(days=7) if kind is EventKind.INVOICE_DUE else today - timedelta(days=7)
        days_overdue = 0 if kind is EventKind.INVOICE_DUE else 7
        issued = datetime.combine(due - timedelta(days=14), time(9), tzinfo=tz).astimezone(UTC)
        invoice = InvoiceFacts("INV-3017", money("182.50"), money("182.50"), due, issued)
    elif kind is EventKind.SUSPENSION_WARNING:
        days_overdue = 19
        projected = (now + timedelta(days=2)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    else:
        days_overdue = 21 if kind is EventKind.AUTO_SUSPEND else 0
        status = "suspended" if kind is EventKind.AUTO_SUSPEND else "active"
        owing = owing if kind is EventKind.AUTO_SUSPEND else money("0")
        service = ServiceFacts(
            "SVC-2001", "broadband", "suspended" if kind is EventKind.AUTO_SUSPEND else "active"
        )

    return NoticeFacts(
        event=kind.value,
        now=now,
        provider=provider,
        account=AccountFacts(
            id="ACME-10042",
            name="Jordan Example",
            status=status,
            total_owing=owing,
            overdue_balance=owing if days_overdue else money("0"),
            days_overdue=days_overdue,
        ),
        contact=ContactFacts("Jordan Example", "jordan@example.com", "+61 400 000 000", "primary"),
        service=service,
        invoice=invoice,
        projected_suspension=projected,
    )
