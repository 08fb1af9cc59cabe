"""Events, their mappings and the notices they ask for (SPEC §7)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from arrears.domain.clock import at_local
from arrears.domain.model import AccountSnapshot, Contact, ContactRole, Invoice


class EventKind(StrEnum):
    INVOICE_DUE = "invoice_due"
    INVOICE_OVERDUE = "invoice_overdue"
    SUSPENSION_WARNING = "suspension_warning"
    AUTO_SUSPEND = "auto_suspend"
    AUTO_UNSUSPEND = "auto_unsuspend"


MULTI_EVENTS = (EventKind.INVOICE_DUE, EventKind.INVOICE_OVERDUE, EventKind.SUSPENSION_WARNING)
SERVICE_EVENTS = (EventKind.AUTO_SUSPEND, EventKind.AUTO_UNSUSPEND)
CHANNELS = ("email", "sms", "note")
# An invoice notice learnt of later than this is recorded as skipped (`late`).
LATE_LIMIT = timedelta(hours=24)


@dataclass(frozen=True)
class EventMapping:
    key: str  # stable per provider: "<event>" or "<event>#<n>"
    event: EventKind
    enabled: bool = False
    channels: tuple[str, ...] = ()
    recipients: tuple[ContactRole, ...] = ()  # empty: the event's default
    days_before: int = 0
    days_after: int = 0
    hours_before: int = 0
    enforce: bool = False
    after_provisioning: bool = False
    quiet_hours: bool = True  # SMS of this mapping waits out the provider's quiet hours
    since: datetime | None = None  # occurrences before this instant are not its business

    @property
    def roles(self) -> tuple[ContactRole, ...]:
        if self.recipients:
            return self.recipients
        if self.event in SERVICE_EVENTS:
            return (ContactRole.SERVICE,)
        return (ContactRole.PRIMARY,)


@dataclass(frozen=True)
class Mappings:
    """All of a provider's mappings, with the switches the engine asks about."""

    items: tuple[EventMapping, ...] = ()
    # The enabled mappings by event, found on first use: every decision asks.
    _of: dict[EventKind, tuple[EventMapping, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def of(self, event: EventKind) -> list[EventMapping]:
        found = self._of.get(event)
        if found is None:
            found = self._of[event] = tuple(m for m in self.items if m.event is event and m.enabled)
        return list(found)

    def enabled(self, event: EventKind) -> bool:
        return bool(self.of(event))

    @property
    def auto_suspend(self) -> bool:
        return self.enabled(EventKind.AUTO_SUSPEND)

    @property
    def auto_unsuspend(self) -> bool:
        return self.enabled(EventKind.AUTO_UNSUSPEND)


def invoice_notice_instant(m: EventMapping, inv: Invoice, send_time: time, tz: ZoneInfo) -> datetime:
    if m.event is EventKind.INVOICE_DUE:
        day = inv.due - timedelta(days=m.days_before)
    else:
        day = inv.due + timedelta(days=m.days_after)
    return at_local(day, send_time, tz)


@dataclass(frozen=True)
class QuietHours:
    """Local hours in which no SMS goes out (default 21:00 to 08:00).

    `start` after `end` spans midnight; `start` equal to `end` is never quiet.
    """

    start: time
    end: time

    def until(self, instant: datetime, tz: ZoneInfo) -> datetime | None:
        """When the quiet hours around `instant` end, or None when it is not quiet then."""
        if self.start == self.end:
            return None
        local = instant.astimezone(tz)
        day, wall = local.date(), local.time().replace(tzinfo=None)
        if self.start < self.end:
            quiet = self.start <= wall < self.end
            end_day = day
        else:
            quiet = wall >= self.start or wall < self.end
            end_day = day + timedelta(days=1) if wall >= self.start else day
        if not quiet:
            return None
        # at_local: an end time skipped by a DST change means the first instant after it.
        return at_local(end_day, self.end, tz)


def notice_key(m: EventMapping, subject: str, occurrence: str = "") -> str:
    """The idempotency key of a notice: mapping, subject, occurrence."""
    return f"{m.key}|{subject}|{occurrence}"


@dataclass(frozen=True)
class Recipient:
    role: ContactRole
    channel: str
    address: str | None  # None: nobody to send to (or the note channel)
    name: str = ""


def recipients(m: EventMapping, account: AccountSnapshot, service_id: str | None = None) -> list[Recipient]:
    """Who receives a notice of `m`, one entry per role and channel.

    A role with no contact, or a contact without an address for the channel, is
    returned with address None so the caller records it as `no_recipient`.
    The note channel writes one entry on the account whatever the roles.
    """
    out: list[Recipient] = []
    for channel in m.channels:
        if channel == "note":
            out.append(Recipient(ContactRole.PRIMARY, "note", None))
            continue
        seen: set[str] = set()
        for role in m.roles:
            for contact in _contacts_for(role, account.contacts, service_id):
                address = contact.email if channel == "email" else contact.phone
                if address is None:
                    out.append(Recipient(role, channel, None, contact.name))
                elif address not in seen:
                    seen.add(address)
                    out.append(Recipient(role, channel, address, contact.name))
            if not _contacts_for(role, account.contacts, service_id):
                out.append(Recipient(role, channel, None))
    return out


def _contacts_for(role: ContactRole, contacts: Iterable[Contact], service_id: str | None) -> list[Contact]:
    contacts = list(contacts)
    if role is ContactRole.SERVICE:
        own = [c for c in contacts if c.role is ContactRole.SERVICE and c.service == service_id]
        if own:
            return own
        role = ContactRole.PRIMARY  # a service without its own contact: the primary one
    return [c for c in contacts if c.role is role]
