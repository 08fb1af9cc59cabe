"""Event mappings, recipients and notice instants (SPEC §7)."""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from arrears.domain.clock import iso_local
from arrears.domain.events import (
    EventKind,
    EventMapping,
    Mappings,
    Recipient,
    invoice_notice_instant,
    notice_key,
    recipients,
)
from arrears.domain.model import AccountSnapshot, AccountStatus, Contact, ContactRole, Invoice, InvoiceStatus

from .strategies import EPOCH

SYD = ZoneInfo("Australia/Sydney")
NY = ZoneInfo("America/New_York")
P, B, S = ContactRole.PRIMARY, ContactRole.BILLING, ContactRole.SERVICE

PRIMARY = Contact(P, "Jo Citizen", "jo@example.com", "+61412345678")
BILLING = Contact(B, "Accounts", "ap@example.com", None)
S1_CONTACT = Contact(S, "Site S1", "s1@example.com", "+61400000001", service="S1")


def account(*contacts: Contact) -> AccountSnapshot:
    return AccountSnapshot("A1", AccountStatus.ACTIVE, contacts=contacts)


def mapping(
    event: EventKind, channels: tuple[str, ...], recipients: tuple[ContactRole, ...] = ()
) -> EventMapping:
    return EventMapping(event.value, event, enabled=True, channels=channels, recipients=recipients)


def addresses(rs: list[Recipient]) -> list[tuple[str, str, str | None]]:
    return [(r.role.value, r.channel, r.address) for r in rs]


def test_default_roles() -> None:
    assert mapping(EventKind.AUTO_SUSPEND, ("email",)).roles == (S,)
    assert mapping(EventKind.AUTO_UNSUSPEND, ("email",)).roles == (S,)
    for event in (EventKind.INVOICE_DUE, EventKind.INVOICE_OVERDUE, EventKind.SUSPENSION_WARNING):
        assert mapping(event, ("email",)).roles == (P,)
    assert mapping(EventKind.INVOICE_DUE, ("email",), (B, P)).roles == (B, P)


def test_service_event_goes_to_the_services_own_contact() -> None:
    m = mapping(EventKind.AUTO_SUSPEND, ("email", "sms"))
    got = recipients(m, account(PRIMARY, S1_CONTACT), "S1")
    assert addresses(got) == [("service", "email", "s1@example.com"), ("service", "sms", "+61400000001")]
    assert got[0].name == "Site S1"


def test_a_service_without_its_own_contact_falls_back_to_the_primary_contact() -> None:
    m = mapping(EventKind.AUTO_SUSPEND, ("email", "sms"))
    got = recipients(m, account(PRIMARY, S1_CONTACT), "S2")
    assert addresses(got) == [("service", "email", "jo@example.com"), ("service", "sms", "+61412345678")]


def test_a_recipient_without_an_address_is_returned_without_one() -> None:
    # The billing contact has no phone; nobody has the billing role for the SMS either way.
    m = mapping(EventKind.INVOICE_OVERDUE, ("email", "sms"), (B,))
    assert addresses(recipients(m, account(PRIMARY, BILLING), None)) == [
        ("billing", "email", "ap@example.com"),
        ("billing", "sms", None),
    ]
    # No contact of the role at all: one entry without an address, per channel.
    assert addresses(recipients(m, account(PRIMARY), None)) == [
        ("billing", "email", None),
        ("billing", "sms", None),
    ]
    # No contact at all for a service event: the primary fallback finds nobody either.
    assert addresses(recipients(mapping(EventKind.AUTO_SUSPEND, ("sms",)), account(), "S1")) == [
        ("service", "sms", None)
    ]


def test_the_same_address_is_used_once_per_channel() -> None:
    same = Contact(B, "Jo again", "jo@example.com", "+61412345678")
    m = mapping(EventKind.INVOICE_DUE, ("email", "sms"), (P, B))
    assert addresses(recipients(m, account(PRIMARY, same), None)) == [
        ("primary", "email", "jo@example.com"),
        ("primary", "sms", "+61412345678"),
    ]


def test_the_note_channel_is_one_entry_on_the_account_whatever_the_roles() -> None:
    m = mapping(EventKind.AUTO_SUSPEND, ("note", "email"), (S, P, B))
    got = recipients(m, account(PRIMARY, BILLING, S1_CONTACT), "S1")
    notes = [r for r in got if r.channel == "note"]
    assert len(notes) == 1 and notes[0].address is None
    assert [r.address for r in got if r.channel == "email"] == [
        "s1@example.com",
        "jo@example.com",
        "ap@example.com",
    ]
    assert addresses(recipients(mapping(EventKind.INVOICE_DUE, ("note",)), account(), None)) == [
        ("primary", "note", None)
    ]


def test_only_enabled_mappings_count_and_switch_automation_on() -> None:
    off = EventMapping("auto_suspend", EventKind.AUTO_SUSPEND, enabled=False)
    on = EventMapping("auto_unsuspend", EventKind.AUTO_UNSUSPEND, enabled=True)
    w0 = EventMapping("suspension_warning#0", EventKind.SUSPENSION_WARNING, enabled=True, hours_before=24)
    w1 = EventMapping("suspension_warning#1", EventKind.SUSPENSION_WARNING, enabled=False, hours_before=48)
    ms = Mappings((off, on, w0, w1))
    assert not ms.auto_suspend and ms.auto_unsuspend
    assert ms.of(EventKind.SUSPENSION_WARNING) == [w0]
    assert Mappings().of(EventKind.INVOICE_DUE) == [] and not Mappings().auto_suspend


def test_invoice_notice_instants_at_send_time_local() -> None:
    inv = Invoice("I1", EPOCH, date(2026, 1, 15), Decimal("1"), Decimal("1"), InvoiceStatus.OPEN)
    due = EventMapping("invoice_due#0", EventKind.INVOICE_DUE, enabled=True, days_before=3)
    overdue = EventMapping("invoice_overdue#0", EventKind.INVOICE_OVERDUE, enabled=True, days_after=1)
    on_day = EventMapping("invoice_due#1", EventKind.INVOICE_DUE, enabled=True)
    assert iso_local(invoice_notice_instant(due, inv, time(9), SYD), SYD) == "2026-01-12T09:00:00+11:00"
    assert iso_local(invoice_notice_instant(overdue, inv, time(9), SYD), SYD) == "2026-01-16T09:00:00+11:00"
    assert iso_local(invoice_notice_instant(on_day, inv, time(9), SYD), SYD) == "2026-01-15T09:00:00+11:00"
    # A send time inside the DST gap goes out at the first instant after it.
    spring = Invoice("I2", EPOCH, date(2026, 3, 8), Decimal("1"), Decimal("1"), InvoiceStatus.OPEN)
    assert (
        iso_local(invoice_notice_instant(on_day, spring, time(2, 30), NY), NY) == "2026-03-08T03:00:00-04:00"
    )


def test_notice_keys_name_mapping_subject_and_occurrence() -> None:
    m = EventMapping("suspension_warning#1", EventKind.SUSPENSION_WARNING)
    assert (
        notice_key(m, "A1", "2026-01-01T00:00:00+00:00")
        == "suspension_warning#1|A1|2026-01-01T00:00:00+00:00"
    )
    assert notice_key(m, "I1") != notice_key(m, "I2")
    assert notice_key(m, "A1", "x") != notice_key(
        EventMapping("suspension_warning#0", EventKind.SUSPENSION_WARNING), "A1", "x"
    )
