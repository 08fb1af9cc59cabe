"""The variables a notice template sees: which events have which, formatting, payment links."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from arrears.domain.events import EventKind
from arrears.notify.context import (
    AccountFacts,
    ContactFacts,
    InvoiceFacts,
    NoticeFacts,
    PaymentLinkError,
    ProviderFacts,
    ServiceFacts,
    build_context,
    check_payment_link,
    fill_payment_link,
    format_amount,
    format_day,
    format_instant,
    sample_facts,
)

SYDNEY = ProviderFacts(
    "Acme Internet", "Australia/Sydney", "AUD", "en_AU", "https://pay.example.com/{account}?invoice={invoice}"
)
NOW = datetime(2025, 4, 1, 23, 0, tzinfo=UTC)
EVENTS = [e.value for e in EventKind]


def _spaces(s: str) -> str:
    # CLDR puts a narrow no-break space before am/pm; which one is not the point here.
    return s.replace("\u202f", " ").replace("\u00a0", " ")


# --- money --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "locale", "amount", "expected"),
    [
        ("AUD", "en_AU", "1234.50", "$1,234.50"),
        ("AUD", "en_AU", "12345678901234.57", "$12,345,678,901,234.57"),  # beyond float's exact range
        ("AUD", "en_AU", "0.10", "$0.10"),
        ("JPY", "ja_JP", "1235", "￥1,235"),
        ("JPY", "en_AU", "1235", "JPY1,235"),
        ("BHD", "en_AU", "1234.567", "BHD1,234.567"),
        ("EUR", "de_DE", "1234.56", "1.234,56\u00a0€"),
        ("EUR", "de_DE", "-0.05", "-0,05\u00a0€"),
    ],
)
def test_amounts_are_formatted_exactly(currency: str, locale: str, amount: str, expected: str) -> None:
    provider = ProviderFacts("P", "UTC", currency, locale)
    assert format_amount(Decimal(amount), provider) == expected


@pytest.mark.parametrize(("currency", "amount"), [("JPY", "10.5"), ("AUD", "1.005"), ("BHD", "0.0001")])
def test_amount_finer_than_the_currency_is_refused_not_rounded(currency: str, amount: str) -> None:
    with pytest.raises(ValueError, match="decimal places"):
        format_amount(Decimal(amount), ProviderFacts("P", "UTC", currency, "en_AU"))


def test_float_amount_is_refused() -> None:
    with pytest.raises(ValueError, match="Decimal"):
        format_amount(0.1, SYDNEY)  # type: ignore[arg-type]


# --- dates --------------------------------------------------------------------


def test_instants_use_the_provider_zone_across_a_dst_change() -> None:
    # Sydney leaves daylight saving at 03:00 AEDT on 6 April 2025 (back to 02:00 AEST).
    before = datetime(2025, 4, 5, 14, 0, tzinfo=UTC)
    after = datetime(2025, 4, 6, 0, 0, tzinfo=UTC)
    assert _spaces(format_instant(before, SYDNEY)) == "6 Apr 2025, 1:00 am AEDT"
    assert _spaces(format_instant(after, SYDNEY)) == "6 Apr 2025, 10:00 am AEST"
    summer = datetime(2025, 1, 10, 3, 30, tzinfo=UTC)
    assert _spaces(format_instant(summer, SYDNEY)) == "10 Jan 2025, 2:30 pm AEDT"


def test_instants_in_another_locale() -> None:
    berlin = ProviderFacts("P", "Europe/Berlin", "EUR", "de_DE")
    assert format_instant(datetime(2025, 3, 30, 0, 30, tzinfo=UTC), berlin) == "30.03.2025, 01:30 CET"
    assert format_instant(datetime(2025, 3, 30, 1, 30, tzinfo=UTC), berlin) == "30.03.2025, 03:30 CEST"


def test_calendar_dates_are_not_shifted() -> None:
    assert format_day(date(2025, 4, 6), SYDNEY) == "6 Apr 2025"
    assert format_day(date(2025, 4, 6), ProviderFacts("P", "Europe/Berlin", "EUR", "de_DE")) == "06.04.2025"


def test_invoice_issued_date_is_the_local_date() -> None:
    facts = sample_facts("invoice_due", provider=SYDNEY, now=NOW)
    assert facts.invoice is not None
    # 13:30 UTC on the 5th is already the 6th in Sydney.
    inv = replace(facts.invoice, issued_at=datetime(2025, 4, 5, 13, 30, tzinfo=UTC))
    ctx = build_context(replace(facts, invoice=inv))
    assert ctx["invoice"]["issued"] == "6 Apr 2025"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        format_instant(datetime(2025, 1, 1), SYDNEY)
    with pytest.raises(ValueError, match="aware"):
        sample_facts("invoice_due", provider=SYDNEY, now=datetime(2025, 1, 1))


# --- which events have which variables -------------------------------------------


def _plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return value is None or type(value) in (str, int)


@pytest.mark.parametrize("event", EVENTS)
def test_sample_has_every_variable_of_its_event(event: str) -> None:
    ctx = build_context(sample_facts(event, provider=SYDNEY, now=NOW))
    assert set(ctx) == {
        "provider",
        "account",
        "contact",
        "service",
        "invoice",
        "projected_suspension",
        "payment_link",
        "now",
    }
    assert _plain(ctx)
    assert (ctx["invoice"] is not None) == (event in ("invoice_due", "invoice_overdue"))
    assert (ctx["service"] is not None) == (event in ("auto_suspend", "auto_unsuspend"))
    assert (ctx["projected_suspension"] is not None) == (event == "suspension_warning")
    assert ctx["provider"]["name"] == "Acme Internet"
    assert ctx["contact"] == {
        "name": "Jordan Example",
        "email": "jordan@example.com",
        "phone": "+61 400 000 000",
    }
    assert set(ctx["account"]) >= {"id", "name", "status", "total_owing", "overdue_balance", "days_overdue"}
    assert ctx["payment_link"].startswith("https://pay.example.com/ACME-10042?invoice=")
    assert _spaces(ctx["now"]) == "2 Apr 2025, 10:00 am AEDT"


def test_invoice_variables() -> None:
    ctx = build_context(sample_facts("invoice_overdue", provider=SYDNEY, now=NOW))
    assert ctx["invoice"] == {
        "id": "INV-3017",
        "amount": "$182.50",
        "balance": "$182.50",
        "amount_value": "182.50",
        "balance_value": "182.50",
        "due_date": "26 Mar 2025",
        "due_date_iso": "2025-03-26",
        "issued": "12 Mar 2025",
    }
    assert ctx["account"]["days_overdue"] == 7
    assert ctx["payment_link"] == "https://pay.example.com/ACME-10042?invoice=INV-3017"


def test_projected_suspension_is_formatted_in_the_provider_zone() -> None:
    ctx = build_context(sample_facts("suspension_warning", provider=SYDNEY, now=NOW))
    assert _spaces(ctx["projected_suspension"]) == "4 Apr 2025, 10:00 am AEDT"


def test_variables_an_event_does_not_have_are_none_even_when_known() -> None:
    facts = sample_facts("invoice_due", provider=SYDNEY, now=NOW)
    ctx = build_context(
        replace(
            facts,
            event="auto_suspend",
            service=ServiceFacts("S1", "voice", "suspended"),
            projected_suspension=NOW,
        )
    )
    assert ctx["invoice"] is None
    assert ctx["projected_suspension"] is None
    assert ctx["service"] == {"id": "S1", "type": "voice", "status": "suspended"}


def test_without_contact_the_account_is_addressed() -> None:
    facts = replace(sample_facts("auto_unsuspend", provider=SYDNEY, now=NOW), contact=None)
    assert build_context(facts)["contact"] == {"name": "Jordan Example", "email": None, "phone": None}


def test_sample_amounts_follow_the_currency_precision() -> None:
    yen = ProviderFacts("P", "Asia/Tokyo", "JPY", "ja_JP")
    ctx = build_context(sample_facts("invoice_due", provider=yen, now=NOW))
    assert ctx["invoice"]["amount_value"] == "182"
    assert ctx["payment_link"] is None


def test_unknown_event_is_refused() -> None:
    with pytest.raises(ValueError):
        sample_facts("invoice_paid", provider=SYDNEY, now=NOW)


# --- payment links ---------------------------------------------------------------


def _facts(account_id: str, invoice_id: str, link: str) -> NoticeFacts:
    return NoticeFacts(
        event="invoice_overdue",
        now=NOW,
        provider=replace(SYDNEY, payment_link=link),
        account=AccountFacts(account_id, "N", "active", Decimal("10.00"), Decimal("10.00"), 3),
        contact=ContactFacts("N", None, "+61400000000", "primary"),
        invoice=InvoiceFacts(invoice_id, Decimal("12.50"), Decimal("10.00"), date(2025, 3, 29), NOW),
    )


def test_payment_link_values_are_url_quoted() -> None:
    link = "https://pay.example.com/{account}?invoice={invoice}&amount={amount}&cur={currency}"
    ctx = build_context(_facts("ACME/1 2", "INV#3&x=y", link))
    assert ctx["payment_link"] == (
        "https://pay.example.com/ACME%2F1%202?invoice=INV%233%26x%3Dy&amount=10.00&cur=AUD"
    )


def test_payment_link_amount_is_the_account_total_outside_invoice_events() -> None:
    link = "https://pay.example.com/{account}?amount={amount}&invoice={invoice}"
    ctx = build_context(
        replace(_facts("A1", "I1", link), event="suspension_warning", projected_suspension=NOW)
    )
    assert ctx["payment_link"] == "https://pay.example.com/A1?amount=10.00&invoice="


def test_amounts_read_back_from_storage_keep_the_currency_precision() -> None:
    """Stored money comes back normalised (47.4, 100): links and *_value show 47.40, 100.00."""
    facts = replace(
        _facts("A1", "I1", "https://pay.example.com/{account}?amount={amount}"),
        account=AccountFacts("A1", "N", "active", Decimal("100"), Decimal("47.4"), 3),
        invoice=InvoiceFacts("I1", Decimal("100"), Decimal("47.4"), date(2025, 3, 29), NOW),
    )
    ctx = build_context(facts)
    assert ctx["payment_link"] == "https://pay.example.com/A1?amount=47.40"
    assert ctx["invoice"]["balance_value"] == "47.40"
    assert ctx["invoice"]["amount_value"] == "100.00"
    assert ctx["account"]["total_owing_value"] == "100.00"


def test_unknown_placeholder_is_named() -> None:
    with pytest.raises(PaymentLinkError, match=r"unknown placeholder \{acount\}"):
        check_payment_link("https://pay.example.com/{acount}")
    with pytest.raises(PaymentLinkError, match=r"\{account\.__class__\}"):
        ProviderFacts("P", "UTC", "AUD", payment_link="https://pay.example.com/{account.__class__}")


@pytest.mark.parametrize(
    "link",
    [
        "https://pay.example.com/{account",
        "https://pay.example.com/account}",
        "https://pay.example.com/{{account}}",
        "javascript:alert(1)//{account}",
        "https://pay.example.com/{account} x",
    ],
)
def test_bad_payment_links_are_refused(link: str) -> None:
    with pytest.raises(PaymentLinkError):
        check_payment_link(link)


def test_payment_link_is_not_str_format() -> None:
    # A format spec would be honoured by str.format; here it is just an unknown name.
    with pytest.raises(PaymentLinkError, match="unknown placeholder"):
        fill_payment_link(
            "https://x.example/{account:>99}", account="a", invoice=None, amount=Decimal(1), currency="AUD"
        )


def test_provider_facts_are_checked() -> None:
    with pytest.raises(ValueError):
        ProviderFacts("P", "Mars/Olympus", "AUD")
    with pytest.raises(ValueError):
        ProviderFacts("P", "UTC", "ABC")
    with pytest.raises(ValueError):
        ProviderFacts("P", "UTC", "AUD", locale="zz_ZZ")
