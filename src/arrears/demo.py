"""`arrears demo`: two providers, a few hundred accounts and months of billing on a virtual clock.

The demo plays the billing system and the operators, nothing more: it feeds
invoices, payments, disputes, payment plans, complaint cases and operator
actions at the local times they would arrive, each batch in a transaction
followed by `Inputs.settle()`, and moves the virtual clock between them. Every
decision (who is warned, restricted, suspended, restored, notified) is the
engine's, through the same code the worker runs in production. The summary at
the end is read back from the database.
"""

from __future__ import annotations

import os
import random
import time as _time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import make_url

from arrears.channels.registry import channel_from_url, redact
from arrears.config import NoticeSettingsSpec, parse_mappings
from arrears.contacts import normalise_phone
from arrears.domain.clock import at_local, iso_local, local_date
from arrears.engine.clock import VirtualClock
from arrears.engine.inputs import Inputs, create_provider
from arrears.notify.dispatcher import DeliveryReport, NotificationDispatcher
from arrears.store.db import Database
from arrears.store.tables import (
    AccountRow,
    Base,
    EpisodeRow,
    HistoryRow,
    InvoiceRow,
    NotificationRow,
    PaymentRow,
    ProviderRow,
    ProvisioningRequestRow,
    ServiceRow,
)

DEMO_SQLITE = "sqlite:///arrears-demo.db"
# The first local day of the demo, in the first provider's timezone.
START_DAY = date(2026, 1, 1)
CENT = Decimal("0.01")
# Local hours at which billing pushes the payments received since its last run (the 06:00
# run is also the one that issues invoices): a batch file, as banks deliver them.
PAYMENT_RUNS = (6, 14)


class DemoError(Exception):
    """The demo cannot run as asked (the message says why)."""


# -- the two providers --------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceKind:
    type: str
    low: int  # monthly price range, whole currency units
    high: int


@dataclass(frozen=True)
class ProviderSpec:
    key: str
    name: str
    timezone: str
    currency: str
    sms: bool
    prefix: str  # of account, invoice and payment ids
    terms_days: int  # invoice due this many days after issue
    excluded_group: str
    other_group: str
    ombudsman: str
    email_domain: str
    locale: str  # how amounts and dates read in its notices
    phone_country: str  # "AU" or "GB": mobile numbers in E.164
    first_service: ServiceKind
    extra_services: tuple[ServiceKind, ...]
    rules: dict[str, Any]
    events: dict[str, Any]

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


KOALA = ProviderSpec(
    key="koala-mobile",
    name="Koala Mobile (AU MVNO)",
    timezone="Australia/Sydney",
    currency="AUD",
    sms=True,
    prefix="KM",
    terms_days=14,
    excluded_group="VIP",
    other_group="business",
    ombudsman="TIO",
    email_domain="example.com",
    locale="en_AU",
    phone_country="AU",
    first_service=ServiceKind("mobile", 25, 65),
    extra_services=(ServiceKind("mobile", 20, 55), ServiceKind("mobile_broadband", 30, 60)),
    rules={
        "name": "standard",
        "min_overdue_amount": "30.00",
        "amount_basis": "total_owing",
        "min_overdue_days": 14,
        "restore_threshold": "5.00",
        "resuspend_days": 7,
        "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}],
        "holidays": {"country": "AU", "subdivision": "NSW"},
        "excluded_groups": [{"group": "VIP", "reason": "VIP: the account manager handles arrears"}],
        # The reference behaviour: one stage, outbound calls and data barred.
        "stages": [{"name": "bar", "min_overdue_days": 14, "status": "restricted"}],
    },
    events={
        "invoice_due": [{"days_before": 3, "channels": ["email"]}],
        "invoice_overdue": [
            {"days_after": 1, "channels": ["email", "sms"]},
            {"days_after": 10, "channels": ["sms", "email"], "recipients": ["primary", "billing"]},
        ],
        "suspension_warning": [{"hours_before": 48, "channels": ["sms", "email"], "enforce": True}],
        "auto_suspend": {
            "channels": ["sms", "email", "note"],
            "recipients": ["service"],
            "after_provisioning": True,
        },
        "auto_unsuspend": {"channels": ["sms", "note"], "recipients": ["service"]},
    },
)

THAMES = ProviderSpec(
    key="thames-fibre",
    name="Thames Fibre (UK ISP)",
    timezone="Europe/London",
    currency="GBP",
    sms=False,
    prefix="TF",
    terms_days=14,
    excluded_group="hospital",
    other_group="business",
    ombudsman="Ombudsman Services",
    email_domain="example.org",
    locale="en_GB",
    phone_country="GB",
    first_service=ServiceKind("broadband", 25, 60),
    extra_services=(ServiceKind("voip", 6, 12), ServiceKind("tv", 10, 25)),
    rules={
        "name": "residential",
        "min_overdue_amount": "40.00",
        "amount_basis": "overdue_balance",
        "min_overdue_days": 14,
        "restore_threshold": "0.00",
        "resuspend_days": 14,
        "windows": [
            {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"},
            {"days": ["sat"], "start": "09:00", "end": "12:00"},
        ],
        "holidays": {"country": "GB", "subdivision": "ENG"},
        "excluded_groups": [{"group": "hospital", "reason": "NHS site: critical care connectivity"}],
        "stages": [
            {"name": "restrict", "min_overdue_days": 14, "status": "restricted"},
            {"name": "suspend", "min_overdue_days": 35, "status": "suspended"},
        ],
    },
    events={
        "invoice_due": [{"days_before": 5, "channels": ["email"]}],
        "invoice_overdue": [
            {"days_after": 3, "channels": ["email", "note"]},
            {"days_after": 14, "channels": ["email"]},
        ],
        "suspension_warning": [{"hours_before": 72, "channels": ["email", "note"], "enforce": False}],
        "auto_suspend": {"channels": ["email", "note"]},
        "auto_unsuspend": {"channels": ["email", "note"]},
    },
)

PROVIDERS: tuple[ProviderSpec, ...] = (KOALA, THAMES)

# -- customers and their behaviour ----------------------------------------------------------

BEHAVIOURS = (
    "on_time",
    "late",
    "part",
    "never",
    "dispute",
    "plan",
    "excluded",
    "omit",
    "complaint",
    "unallocated",
    "manual_restore",
)
WEIGHTS = (50, 14, 8, 5, 4, 4, 4, 3, 3, 3, 2)

FIRST_NAMES = (
    "Olivia", "Jack", "Charlotte", "Noah", "Amelia", "William", "Isla", "Oliver", "Mia", "Leo",
    "Ava", "Henry", "Grace", "Lucas", "Chloe", "Thomas", "Zoe", "James", "Ruby", "Harry",
    "Sophie", "Archie", "Ella", "Freddie", "Matilda", "Arjun", "Mei", "Priya", "Tariq", "Aroha",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Nguyen", "Johnson", "Martin", "White",
    "Anderson", "Walker", "Thompson", "Harris", "Ryan", "Robinson", "Kelly", "King", "Patel", "Khan",
    "Evans", "Davies", "Hughes", "Edwards", "Wright", "Green", "Chen", "Singh", "O'Brien", "Murphy",
)  # fmt: skip


@dataclass(order=True)
class Feed:
    """One input from billing, the CRM or an operator, at the instant it arrives."""

    at: datetime
    seq: int
    provider: int = field(compare=False)
    actor: str = field(compare=False)
    kind: str = field(compare=False)
    account: str = field(compare=False)
    body: dict[str, Any] = field(compare=False)
    text: str = field(compare=False)


@dataclass
class DemoAccount:
    provider: int
    ext_id: str
    name: str
    behaviour: str
    data: dict[str, Any]  # for Inputs.put_account


@dataclass
class World:
    """Everything the demo will feed, generated up front from the seed."""

    start: datetime
    end: datetime
    accounts: list[DemoAccount]
    feeds: list[Feed]

    def account(self, provider: int, ext_id: str) -> DemoAccount:
        for a in self.accounts:
            if a.provider == provider and a.ext_id == ext_id:
                return a
        raise KeyError(ext_id)


def day_boundary(n: int) -> datetime:
    """The local midnight that ends day `n` of the demo (0: the start), in the first provider's zone."""
    return at_local(START_DAY + timedelta(days=n), time(0, 0), PROVIDERS[0].tz)


def demo_start() -> datetime:
    return day_boundary(0)


def money(amount: Decimal, currency: str) -> str:
    from babel.numbers import format_currency

    return str(format_currency(amount, currency, locale="en_GB"))


class _Builder:
    def __init__(self, seed: int, per_provider: int, start: datetime, end: datetime):
        self.rng = random.Random(seed)
        self.per_provider = per_provider
        self.start = start
        self.end = end
        self.feeds: list[Feed] = []
        self.accounts: list[DemoAccount] = []
        self._seq = 0
        self._payments: Counter[int] = Counter()
        self._lag: dict[tuple[int, str], int] = {}  # a late payer's usual days after the due date

    def build(self) -> World:
        for p, spec in enumerate(PROVIDERS):
            for i, behaviour in enumerate(self._deck()):
                self._account(p, spec, 10001 + i, behaviour)
        kept = sorted(f for f in self.feeds if f.at < self.end)
        return World(self.start, self.end, self.accounts, kept)

    def _deck(self) -> list[str]:
        """Each behaviour at least once (when there are enough accounts), the rest weighted."""
        specials = list(BEHAVIOURS)
        self.rng.shuffle(specials)
        n = self.per_provider
        deck = specials[:n] + self.rng.choices(BEHAVIOURS, weights=WEIGHTS, k=max(0, n - len(specials)))
        self.rng.shuffle(deck)
        return deck

    # -- people -------------------------------------------------------------------------

    def _phone(self, spec: ProviderSpec) -> str:
        while True:
            if spec.phone_country == "AU":
                raw = f"+614{self.rng.randrange(10**8):08d}"
            else:
                raw = f"+447{self.rng.choice('45789')}{self.rng.randrange(10**8):08d}"
            try:
                return normalise_phone(raw)
            except ValueError:
                continue

    def _person(self, spec: ProviderSpec, n: int) -> tuple[str, str]:
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        handle = f"{first}.{last}".lower().replace("'", "")
        return f"{first} {last}", f"{handle}{n}@{spec.email_domain}"

    def _account(self, p: int, spec: ProviderSpec, number: int, behaviour: str) -> None:
        rng = self.rng
        ext_id = f"{spec.prefix}-{number}"
        name, email = self._person(spec, number)
        n_services = rng.choices((1, 2, 3), weights=(55, 30, 15))[0]
        kinds = [spec.first_service] + [rng.choice(spec.extra_services) for _ in range(n_services - 1)]
        services: list[dict[str, Any]] = []
        prices: list[tuple[str, Decimal]] = []
        contacts: list[dict[str, Any]] = []
        primary: dict[str, Any] = {"role": "primary", "name": name, "email": email}
        if rng.random() < 0.88:
            primary["phone"] = self._phone(spec)
        contacts.append(primary)
        if rng.random() < 0.3:
            bname, bemail = self._person(spec, number)
            contacts.append({"role": "billing", "name": bname, "email": bemail})
        for i, kind in enumerate(kinds, start=1):
            sid = f"{ext_id}-S{i}"
            services.append({"id": sid, "type": kind.type})
            prices.append((kind.type, Decimal(rng.randint(kind.low * 100, kind.high * 100)) / 100))
            if i > 1 and kind.type == "mobile" and rng.random() < 0.6:
                # A family member's phone on the account: service notices go to its user.
                uname, uemail = self._person(spec, number * 10 + i)
                contact: dict[str, Any] = {
                    "role": "service",
                    "service": sid,
                    "name": uname,
                    "phone": self._phone(spec),
                }
                if rng.random() < 0.3:
                    contact["email"] = uemail
                contacts.append(contact)
        groups: list[str] = []
        if behaviour == "excluded":
            groups.append(spec.excluded_group)
        if rng.random() < 0.12:
            groups.append(spec.other_group)
        data = {"id": ext_id, "groups": groups, "contacts": contacts, "services": services}
        self.accounts.append(DemoAccount(p, ext_id, name, behaviour, data))
        self._billing(p, spec, ext_id, behaviour, prices)

    # -- money --------------------------------------------------------------------------

    def _feed(
        self, at: datetime, p: int, kind: str, account: str, body: dict[str, Any], text: str, actor: str
    ) -> None:
        self._seq += 1
        self.feeds.append(Feed(at, self._seq, p, actor, kind, account, body, text))

    def _at(self, spec: ProviderSpec, day: date, wall: time | None = None) -> datetime:
        """An instant on a local day: at `wall`, or a random time a customer pays."""
        if wall is None:
            wall = time(self.rng.randint(7, 22), self.rng.randrange(0, 60))
        return at_local(day, wall, spec.tz)

    def _office(self, spec: ProviderSpec, day: date) -> datetime:
        """An instant in office hours on the first weekday from `day` (operators, billing staff)."""
        while day.weekday() >= 5:
            day += timedelta(days=1)
        return at_local(day, time(self.rng.randint(9, 15), self.rng.choice((0, 15, 30, 45))), spec.tz)

    def _first_day(self, spec: ProviderSpec) -> date:
        """The first whole local day of the demo for this provider."""
        return local_date(self.start, spec.tz) + timedelta(days=1)

    def _billing(
        self, p: int, spec: ProviderSpec, account: str, behaviour: str, prices: list[tuple[str, Decimal]]
    ) -> None:
        bills = self._bills(p, spec, account, prices)
        intents: list[_Pay] = []
        voids: list[tuple[datetime, str]] = []
        plan_id: str | None = None
        plan_until: datetime | None = None
        for k, bill in enumerate(bills):
            self._feed(
                bill.at,
                p,
                "invoice",
                account,
                {
                    "id": bill.id,
                    "account": account,
                    "amount": str(bill.amount),
                    "due": bill.due,
                    "issued_at": bill.at,
                },
                f"invoice {bill.id} {money(bill.amount, spec.currency)} due {bill.due.isoformat()}",
                "billing",
            )
            if plan_id is not None and plan_until is not None and bill.at < plan_until:
                # The arrangement is kept up to date: this month's invoice joins it.
                covered = [bills[0].id] + [b.id for b in bills[1 : k + 1]]
                self._feed(
                    bill.at,
                    p,
                    "plan",
                    account,
                    {"id": plan_id, "account": account, "invoices": covered},
                    f"payment plan {plan_id} now also covers {bill.id}",
                    "billing",
                )
            if k == 0 and behaviour == "plan":
                plan_id = f"{spec.prefix}-PLAN-{account.split('-')[1]}"
                plan_until = self._plan(p, spec, account, plan_id, bill, intents)
            else:
                self._behave(p, spec, account, behaviour, bill, k == 0, intents, voids)
        self._resolve(p, spec, account, bills, intents, voids)

    def _bills(
        self, p: int, spec: ProviderSpec, account: str, prices: list[tuple[str, Decimal]]
    ) -> list[_Bill]:
        """Monthly invoices from the month before the demo (the book it starts with) to its end."""
        rng = self.rng
        billing_day = rng.randint(1, 28)
        year, month = (
            (START_DAY.year, START_DAY.month - 1) if START_DAY.month > 1 else (START_DAY.year - 1, 12)
        )
        bills: list[_Bill] = []
        while True:
            issue_day = date(year, month, billing_day)
            issued = at_local(issue_day, time(6, 0), spec.tz)
            if issued >= self.end:
                return bills
            amount = sum((price for _, price in prices), Decimal("0"))
            if any(t == "mobile" for t, _ in prices) and rng.random() < 0.3:
                amount += Decimal(rng.randint(100, 1500)) / 100  # usage over the plan
            bills.append(
                _Bill(
                    issued,
                    f"{spec.prefix}-INV-{year}{month:02d}-{account.split('-')[1]}",
                    amount.quantize(CENT),
                    issue_day + timedelta(days=spec.terms_days),
                )
            )
            month += 1
            if month == 13:
                year, month = year + 1, 1

    def _behave(
        self,
        p: int,
        spec: ProviderSpec,
        account: str,
        b: str,
        bill: _Bill,
        opening: bool,
        intents: list[_Pay],
        voids: list[tuple[datetime, str]],
    ) -> None:
        """What the customer (and staff) do about one invoice."""
        rng = self.rng
        due = bill.due
        issue_day = local_date(bill.at, spec.tz)

        def on(days: int) -> datetime:
            return self._at(spec, due + timedelta(days=days))

        if b == "on_time" or (not opening and b in ("dispute", "complaint", "manual_restore", "plan")):
            day = max(issue_day + timedelta(days=1), due - timedelta(days=rng.randint(0, 6)))
            if b == "on_time" and rng.random() < 0.1:
                day = due + timedelta(days=rng.randint(2, 9))  # a little late, not enough to matter
            intents.append(_Pay(self._at(spec, day), "invoice", bill.id))
        elif b == "late":
            # Pays invoice by invoice, oldest first, about as late each month: often only the
            # oldest of two overdue (a part payment, which can take a stage back down).
            lag = self._lag.setdefault((p, account), rng.randint(17, 45))
            count = 1 if rng.random() < 0.6 else None
            intents.append(_Pay(on(lag + rng.randint(-4, 4)), "oldest", count=count))
        elif b == "part":
            part = (bill.amount * Decimal(rng.randint(30, 60)) / 100).quantize(CENT)
            intents.append(_Pay(on(rng.randint(-3, 2)), "part", bill.id, part, what="part payment"))
            intents.append(_Pay(on(rng.randint(18, 40)), "settle", what="balance payment"))
        elif b == "excluded":
            # A VIP / hospital account pays very late, if at all within the demo.
            intents.append(_Pay(on(rng.randint(40, 75)), "settle"))
        elif b == "omit":
            if opening:
                pay_day = self._omit(p, spec, account, due)
                intents.append(_Pay(self._at(spec, pay_day), "settle"))
            else:
                intents.append(_Pay(on(rng.randint(0, 8)), "invoice", bill.id))
        elif b == "unallocated":
            paid = on(rng.randint(16, 28))
            alloc = self._office(spec, local_date(paid, spec.tz) + timedelta(days=rng.randint(1, 4)))
            intents.append(_Pay(paid, "settle", allocate_at=alloc))
        elif b == "dispute":
            rejected = self._dispute(p, spec, account, bill, voids)
            if rejected is not None:
                intents.append(_Pay(self._at(spec, rejected), "settle"))
        elif b == "complaint":
            pay_day = self._complaint(p, spec, account, due)
            intents.append(_Pay(self._at(spec, pay_day), "settle"))
        elif b == "manual_restore":
            pay_day = self._manual(p, spec, account, due)
            intents.append(_Pay(self._at(spec, pay_day), "settle"))
        # "never" pays nothing.

    def _resolve(
        self,
        p: int,
        spec: ProviderSpec,
        account: str,
        bills: list[_Bill],
        intents: list[_Pay],
        voids: list[tuple[datetime, str]],
    ) -> None:
        """Turn payment intents into payments, in time order, against a running ledger.

        A customer settling up pays what is owing at that moment, and a bill
        already settled is not paid twice, so no payment leaves credit behind.
        """
        balance: dict[str, Decimal] = {}
        oldest_first = sorted(bills, key=lambda b: (b.due, b.at, b.id))
        timeline: list[tuple[datetime, int, int, Any]] = []
        for i, bill in enumerate(bills):
            timeline.append((bill.at, 0, i, bill))
        for i, (at, inv) in enumerate(voids):
            timeline.append((at, 1, i, inv))
        for i, intent in enumerate(intents):
            timeline.append((intent.at, 2, i, intent))
        for _, order, _, item in sorted(timeline, key=lambda e: (e[0], e[1], e[2])):
            if order == 0:
                balance[item.id] = item.amount
                continue
            if order == 1:
                balance[item] = Decimal("0")
                continue
            pay: _Pay = item
            if pay.kind == "oldest":
                self._pay_oldest(p, spec, account, pay, oldest_first, balance)
                continue
            if pay.kind == "settle":
                amount = sum(balance.values(), Decimal("0"))
            elif pay.invoice is not None:
                owing = balance.get(pay.invoice, Decimal("0"))
                amount = owing if pay.amount is None else min(pay.amount, owing)
            else:  # pragma: no cover - intents name an invoice unless they settle
                continue
            if amount <= 0:
                continue
            left = amount
            for bill in sorted(oldest_first, key=lambda b: 0 if b.id == pay.invoice else 1):
                part = min(left, balance.get(bill.id, Decimal("0")))
                if part > 0:
                    balance[bill.id] -= part
                    left -= part
            invoice = pay.invoice if pay.kind != "settle" else None
            pid = self._pay(
                p, spec, account, pay.at, amount, invoice, allocate=pay.allocate_at is None, what=pay.what
            )
            if pay.allocate_at is not None:
                self._feed(
                    pay.allocate_at,
                    p,
                    "allocate",
                    account,
                    {"payment": pid},
                    f"billing team matches payment {pid} to the account: allocated",
                    "billing",
                )

    def _pay_oldest(
        self,
        p: int,
        spec: ProviderSpec,
        account: str,
        pay: _Pay,
        oldest_first: list[_Bill],
        balance: dict[str, Decimal],
    ) -> None:
        """One payment per overdue invoice, oldest first, up to `count` of them (nothing if none is)."""
        today = local_date(pay.at, spec.tz)
        overdue = [b for b in oldest_first if balance.get(b.id, Decimal("0")) > 0 and b.due < today]
        for bill in overdue[: pay.count]:
            amount = balance[bill.id]
            balance[bill.id] = Decimal("0")
            self._pay(p, spec, account, pay.at, amount, bill.id, what=pay.what)

    def _pay(
        self,
        p: int,
        spec: ProviderSpec,
        account: str,
        at: datetime,
        amount: Decimal,
        invoice: str | None,
        *,
        allocate: bool = True,
        what: str = "payment",
    ) -> str:
        self._payments[p] += 1
        pid = f"{spec.prefix}-PAY-{self._payments[p]:06d}"
        body: dict[str, Any] = {"id": pid, "account": account, "amount": str(amount), "received_at": at}
        shown = money(amount, spec.currency)
        if not allocate:
            body["allocate"] = False
            note = f"{what} {pid} {shown} received without a reference: left unallocated"
        elif invoice is not None:
            body["allocate_to"] = [invoice]
            note = f"{what} {pid} {shown} for {invoice}"
        else:
            note = f"{what} {pid} {shown}: the whole balance"
        delivered = self._payment_run(spec, at)
        if delivered != at:
            note += f" (received {at.astimezone(spec.tz):%H:%M})"
        self._feed(delivered, p, "payment", account, body, note, "billing")
        return pid

    def _payment_run(self, spec: ProviderSpec, received: datetime) -> datetime:
        """Billing pushes the payments it has received in runs at fixed local times."""
        local = received.astimezone(spec.tz)
        for hour in PAYMENT_RUNS:
            run = at_local(local.date(), time(hour, 0), spec.tz)
            if run >= received:
                return run
        return at_local(local.date() + timedelta(days=1), time(PAYMENT_RUNS[0], 0), spec.tz)

    def _after_start(self, spec: ProviderSpec, day: date) -> date:
        return max(day, self._first_day(spec))

    def _omit(self, p: int, spec: ProviderSpec, account: str, due: date) -> date:
        rng = self.rng
        at = self._office(spec, self._after_start(spec, due + timedelta(days=rng.randint(5, 10))))
        until = local_date(at, spec.tz) + timedelta(days=rng.randint(14, 28))
        reason = rng.choice(
            ("bereavement in the family", "hardship assessment", "moving house, agreed pause")
        )
        self._feed(
            at,
            p,
            "flag",
            account,
            {"until": until, "reason": reason},
            f"omit flag set until {until.isoformat()}: {reason}",
            "operator:sam",
        )
        return until + timedelta(days=rng.randint(6, 20))

    def _dispute(
        self, p: int, spec: ProviderSpec, account: str, bill: _Bill, voids: list[tuple[datetime, str]]
    ) -> date | None:
        """A dispute in full; upheld (invoice voided) or rejected (then paid): the day it is paid."""
        rng = self.rng
        at = self._office(spec, self._after_start(spec, bill.due + timedelta(days=rng.randint(3, 18))))
        self._feed(
            at,
            p,
            "dispute",
            account,
            {"invoice": bill.id, "amount": str(bill.amount)},
            f"customer disputes {bill.id} in full ({money(bill.amount, spec.currency)})",
            "crm",
        )
        decided = self._office(spec, local_date(at, spec.tz) + timedelta(days=rng.randint(14, 30)))
        if rng.random() < 0.5:
            voids.append((decided, bill.id))
            self._feed(
                decided,
                p,
                "invoice_status",
                account,
                {"invoice": bill.id, "status": "void"},
                f"dispute upheld: {bill.id} voided",
                "billing",
            )
            return None
        self._feed(
            decided,
            p,
            "dispute",
            account,
            {"invoice": bill.id, "amount": "0"},
            f"dispute on {bill.id} rejected",
            "crm",
        )
        return local_date(decided, spec.tz) + timedelta(days=rng.randint(2, 8))

    def _plan(
        self, p: int, spec: ProviderSpec, account: str, plan: str, bill: _Bill, intents: list[_Pay]
    ) -> datetime:
        rng = self.rng
        at = self._office(spec, self._after_start(spec, bill.due + timedelta(days=rng.randint(6, 14))))
        self._feed(
            at,
            p,
            "plan",
            account,
            {"id": plan, "account": account, "invoices": [bill.id], "status": "in_progress"},
            f"payment plan {plan} agreed: {bill.id} in 3 fortnightly instalments",
            "operator:sam",
        )
        first = (bill.amount / 3).quantize(CENT)
        day = local_date(at, spec.tz)
        last = at
        for n in range(3):
            last = self._at(spec, day + timedelta(days=14 * n + rng.randint(0, 2)))
            amount = first if n < 2 else None  # the last instalment clears the invoice
            intents.append(
                _Pay(last, "part" if n < 2 else "invoice", bill.id, amount, what=f"instalment {n + 1}/3")
            )
        done = last + timedelta(minutes=1)
        self._feed(
            done,
            p,
            "plan",
            account,
            {"id": plan, "account": account, "status": "completed"},
            f"payment plan {plan} completed",
            "billing",
        )
        return done

    def _complaint(self, p: int, spec: ProviderSpec, account: str, due: date) -> date:
        rng = self.rng
        case = f"{spec.prefix}-CASE-{account.split('-')[1]}"
        opened = self._office(spec, self._after_start(spec, due + timedelta(days=rng.randint(4, 12))))
        self._feed(
            opened,
            p,
            "case",
            account,
            {"id": case, "account": account, "status": "open"},
            f"complaint case {case} opened with the {spec.ombudsman}",
            "crm",
        )
        closed = self._office(spec, local_date(opened, spec.tz) + timedelta(days=rng.randint(18, 35)))
        self._feed(
            closed,
            p,
            "case",
            account,
            {"id": case, "account": account, "status": "closed"},
            f"complaint case {case} closed",
            "crm",
        )
        return local_date(closed, spec.tz) + timedelta(days=rng.randint(1, 7))

    def _manual(self, p: int, spec: ProviderSpec, account: str, due: date) -> date:
        rng = self.rng
        at = self._office(spec, self._after_start(spec, due + timedelta(days=rng.randint(23, 27))))
        reason = "customer called, promised to pay"
        self._feed(
            at,
            p,
            "manual",
            account,
            {"action": "restore", "reason": reason},
            f"operator restores the account by hand: {reason}",
            "operator:sam",
        )
        return local_date(at, spec.tz) + timedelta(days=rng.randint(10, 18))


@dataclass(frozen=True)
class _Bill:
    at: datetime
    id: str
    amount: Decimal
    due: date


@dataclass(frozen=True)
class _Pay:
    """A payment the customer means to make: an invoice, part of one, the oldest ones, or all owing."""

    at: datetime
    kind: str  # "invoice", "part", "settle" or "oldest" (invoice by invoice, oldest first)
    invoice: str | None = None
    amount: Decimal | None = None
    count: int | None = None  # "oldest": at most this many invoices (None: all overdue)
    what: str = "payment"
    allocate_at: datetime | None = None  # paid without a reference, matched then


def build_world(seed: int, per_provider: int, days: int) -> World:
    start = demo_start()
    return _Builder(seed, per_provider, start, day_boundary(days)).build()


# -- feeding the engine ---------------------------------------------------------------------


def _apply(inputs: Inputs, feed: Feed) -> None:
    b = feed.body
    if feed.kind == "invoice":
        inputs.put_invoice(b)
    elif feed.kind == "payment":
        inputs.put_payment(b)
    elif feed.kind == "allocate":
        inputs.allocate_payment(str(b["payment"]))
    elif feed.kind == "dispute":
        inputs.set_dispute(str(b["invoice"]), b["amount"])
    elif feed.kind == "invoice_status":
        inputs.set_invoice_status(str(b["invoice"]), b["status"])
    elif feed.kind == "plan":
        inputs.put_plan(b)
    elif feed.kind == "case":
        inputs.put_case(b)
    elif feed.kind == "flag":
        inputs.set_flag(feed.account, True, b["until"], str(b["reason"]))
    elif feed.kind == "manual":
        inputs.manual(feed.account, str(b["action"]), str(b["reason"]))
    else:  # pragma: no cover - the builder makes only the kinds above
        raise ValueError(f"unknown feed kind {feed.kind!r}")


def _batches(feeds: Sequence[Feed]) -> Iterator[list[Feed]]:
    """Consecutive feeds of one source at one instant: one transaction each."""
    batch: list[Feed] = []
    for f in feeds:
        if batch and (f.at, f.provider, f.actor) != (batch[0].at, batch[0].provider, batch[0].actor):
            yield batch
            batch = []
        batch.append(f)
    if batch:
        yield batch


@dataclass
class Run:
    db: Database
    world: World
    provider_ids: list[int] = field(default_factory=list)

    def setup(self) -> None:
        """Providers, rules, mappings and accounts; what billing did before the demo starts."""
        start = self.world.start
        with self.db.transaction() as s:
            for spec in PROVIDERS:
                row = create_provider(
                    s,
                    key=spec.key,
                    name=spec.name,
                    timezone=spec.timezone,
                    currency=spec.currency,
                    sms=spec.sms,
                    send_time="09:00",
                    notices=NoticeSettingsSpec(
                        locale=spec.locale,
                        email_from=f"accounts@{spec.email_domain}",
                        sms_from=spec.key.split("-")[0].upper()[:11],
                        payment_link=f"https://pay.{spec.email_domain}/{{account}}?amount={{amount}}",
                        operations_email=f"noc@{spec.email_domain}",
                    ),
                    now=start,
                )
                self.provider_ids.append(row.id)
                inputs = Inputs.open(s, row.id, start, actor="demo-setup")
                inputs.put_rule_set(spec.rules, start)
                inputs.put_mappings(parse_mappings(spec.events, sms=spec.sms, since=start))
        for p in range(len(PROVIDERS)):
            with self.db.transaction() as s:
                inputs = Inputs.open(s, self.provider_ids[p], start, actor="billing")
                for acct in self.world.accounts:
                    if acct.provider == p:
                        inputs.put_account(acct.data)
                for f in self.world.feeds:
                    if f.provider == p and f.at < start:
                        _apply(inputs, f)
                inputs.settle()

    def simulate(
        self,
        on_day: Callable[[int, datetime], None] | None = None,
        deliver: Callable[[datetime], None] | None = None,
    ) -> None:
        """Run the days; `deliver` (the notification dispatcher) runs after each one."""
        start, end = self.world.start, self.world.end
        clock = VirtualClock(self.db, start)  # both providers: one clock, one engine
        clock.settle()
        feeds = [f for f in self.world.feeds if f.at >= start]
        i = 0
        days = (local_date(end, PROVIDERS[0].tz) - START_DAY).days
        for day in range(days):
            day_end = min(day_boundary(day + 1), end)
            todays: list[Feed] = []
            while i < len(feeds) and feeds[i].at < day_end:
                todays.append(feeds[i])
                i += 1
            for batch in _batches(todays):
                # Inputs at an instant come before the decisions due at that instant.
                clock.advance(batch[0].at, inclusive=False)
                with self.db.transaction() as s:
                    inputs = Inputs.open(s, self.provider_ids[batch[0].provider], clock.now, batch[0].actor)
                    for f in batch:
                        _apply(inputs, f)
                    inputs.settle()
                clock.settle()
            clock.advance(day_end, inclusive=day_end == end)
            if deliver is not None:
                deliver(clock.now)
            if on_day is not None:
                on_day(day + 1, clock.now)


# -- the database -----------------------------------------------------------------------------


def _sqlite_path(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def _has_data(url: str) -> bool:
    path = _sqlite_path(url)
    if path is not None and not path.exists():
        return False
    db = Database(url)
    try:
        if not inspect(db.engine).has_table(ProviderRow.__tablename__):
            return False
        with db.transaction() as s:
            return bool(s.scalar(select(func.count()).select_from(ProviderRow)))
    finally:
        db.dispose()


def _reset(url: str) -> None:
    """Start from an empty database: delete a SQLite file, drop arrears' tables elsewhere."""
    path = _sqlite_path(url)
    if path is not None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    if make_url(url).get_backend_name() == "sqlite":
        return  # in memory: empty by construction
    db = Database(url)
    try:
        Base.metadata.drop_all(db.engine)
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        db.dispose()


def choose_database(explicit: str | None) -> str:
    """The demo's database, emptied; never someone else's data unless named on the command line."""
    if explicit:
        _reset(explicit)
        return explicit
    from_env = os.environ.get("ARREARS_DATABASE_URL")
    if from_env:
        if _has_data(from_env):
            raise DemoError(
                "ARREARS_DATABASE_URL points at a database that already has providers; the demo "
                "starts from an empty database and will not wipe it. Pass --database-url to name "
                "the database the demo may reset (or unset ARREARS_DATABASE_URL to use "
                f"{DEMO_SQLITE.split('///')[1]})."
            )
        _reset(from_env)
        return from_env
    _reset(DEMO_SQLITE)
    return DEMO_SQLITE


def prepare_schema(db: Database) -> None:
    """The schema at the latest migration, as `arrears db upgrade` leaves it."""
    from arrears.store.migrate import ensure_schema

    ensure_schema(db.url)


# -- the summary --------------------------------------------------------------------------------

# The operator's actions appear as the inputs the demo fed, not again as history.
HISTORY_KINDS_SHOWN = (
    "stage",
    "service_status",
    "account_status",
    "provisioning",
    "notification",
    "delivery",
    "skipped",
    "excluded",
    "would_suspend",
    "would_restore",
)


def _counter_rows(rows: Sequence[Any]) -> dict[str, int]:
    return {str(k): int(n) for k, n in rows}


def summarise(db: Database, run: Run, *, elapsed: float, url: str) -> dict[str, Any]:
    world = run.world
    out: dict[str, Any] = {
        "seed": None,
        "database": _display_url(url),
        "start": None,
        "end": None,
        "elapsed_seconds": round(elapsed, 2),
        "providers": [],
        "histories": [],
    }
    with db.transaction() as s:
        for p, spec in enumerate(PROVIDERS):
            pid = run.provider_ids[p]
            acc = select(AccountRow.id).where(AccountRow.provider_id == pid).scalar_subquery()
            episodes = s.execute(
                select(EpisodeRow.ended_at, EpisodeRow.end_reason, EpisodeRow.account_id).where(
                    EpisodeRow.account_id.in_(acc)
                )
            ).all()
            ended = Counter(r for e, r, _ in episodes if e is not None)
            restorations = {r: n for r, n in ended.items() if r != "manual_suspend"}
            per_account = Counter(a for _, _, a in episodes)
            stage_rows = s.execute(
                select(HistoryRow.data).where(HistoryRow.provider_id == pid, HistoryRow.kind == "stage")
            ).all()
            reached: Counter[str] = Counter()
            moves_down = 0
            for (data,) in stage_rows:
                if data.get("to") not in ("none", data.get("from")):
                    reached[str(data.get("to"))] += 1
                if _stepped_down(p, data):
                    moves_down += 1
            excluded_rows = s.execute(
                select(HistoryRow.account_id, HistoryRow.data).where(
                    HistoryRow.provider_id == pid, HistoryRow.kind == "excluded"
                )
            ).all()
            excl_accounts: dict[str, set[int]] = defaultdict(set)
            for account_id, data in excluded_rows:
                for reason in data.get("reasons") or []:
                    excl_accounts[str(reason)].add(int(account_id))
            notifications = s.execute(
                select(NotificationRow.event, NotificationRow.channel, func.count())
                .where(
                    NotificationRow.provider_id == pid,
                    NotificationRow.channel != "none",
                    NotificationRow.state.in_(("pending", "sent", "waiting")),
                )
                .group_by(NotificationRow.event, NotificationRow.channel)
            ).all()
            skipped = s.execute(
                select(NotificationRow.reason, NotificationRow.event, func.count())
                .where(
                    NotificationRow.provider_id == pid,
                    NotificationRow.channel != "none",
                    NotificationRow.state == "skipped",
                )
                .group_by(NotificationRow.reason, NotificationRow.event)
            ).all()
            provisioning = s.execute(
                select(ProvisioningRequestRow.action, ProvisioningRequestRow.state, func.count())
                .where(ProvisioningRequestRow.provider_id == pid)
                .group_by(ProvisioningRequestRow.action, ProvisioningRequestRow.state)
            ).all()
            status_rows = s.execute(
                select(AccountRow.status, AccountRow.status_reason, func.count())
                .where(AccountRow.provider_id == pid)
                .group_by(AccountRow.status, AccountRow.status_reason)
            ).all()
            in_episode = s.execute(
                select(EpisodeRow.stage, func.count())
                .join(AccountRow, AccountRow.episode_id == EpisodeRow.id)
                .where(AccountRow.provider_id == pid)
                .group_by(EpisodeRow.stage)
            ).all()
            invoices = s.execute(
                select(func.count(), func.coalesce(func.sum(InvoiceRow.amount), 0)).where(
                    InvoiceRow.provider_id == pid
                )
            ).one()
            payments = s.execute(
                select(func.count(), func.coalesce(func.sum(PaymentRow.amount), 0)).where(
                    PaymentRow.provider_id == pid
                )
            ).one()
            services = s.scalar(
                select(func.count()).select_from(ServiceRow).where(ServiceRow.provider_id == pid)
            )
            behaviours = Counter(a.behaviour for a in world.accounts if a.provider == p)
            skipped_by: dict[str, dict[str, int]] = defaultdict(dict)
            for reason, event, n in skipped:
                skipped_by[str(reason)][str(event)] = int(n)
            prov: dict[str, dict[str, int]] = defaultdict(dict)
            for action, state, n in provisioning:
                prov[str(action)][str(state)] = int(n)
            notif: dict[str, dict[str, int]] = defaultdict(dict)
            for event, channel, n in notifications:
                notif[str(event)][str(channel)] = int(n)
            statuses: Counter[str] = Counter()
            for status, reason, n in status_rows:
                statuses[f"{status} ({reason})" if reason else str(status)] += int(n)
            out["providers"].append(
                {
                    "key": spec.key,
                    "name": spec.name,
                    "timezone": spec.timezone,
                    "currency": spec.currency,
                    "sms": spec.sms,
                    "accounts": sum(behaviours.values()),
                    "services": int(services or 0),
                    "behaviours": dict(sorted(behaviours.items())),
                    "invoices": {"count": int(invoices[0]), "amount": str(Decimal(str(invoices[1])))},
                    "payments": {"count": int(payments[0]), "amount": str(Decimal(str(payments[1])))},
                    "suspensions": len(episodes),
                    "stages_reached": dict(sorted(reached.items())),
                    "moves_down_a_stage": moves_down,
                    "restorations": sum(restorations.values()),
                    "restorations_by_reason": dict(sorted(restorations.items())),
                    "taken_over_by_operator": ended.get("manual_suspend", 0),
                    "accounts_suspended_more_than_once": sum(1 for n in per_account.values() if n > 1),
                    "currently_suspended": statuses.get("suspended (auto)", 0)
                    + statuses.get("suspended (manual)", 0),
                    "currently_in_episode": _counter_rows(in_episode),
                    "account_statuses": dict(sorted(statuses.items())),
                    "exclusions": {
                        r: len(a) for r, a in sorted(excl_accounts.items(), key=lambda kv: _code_order(kv[0]))
                    },
                    "notifications": {e: dict(sorted(c.items())) for e, c in sorted(notif.items())},
                    "notifications_total": sum(int(n) for _, _, n in notifications),
                    "skipped": {r: dict(sorted(e.items())) for r, e in sorted(skipped_by.items())},
                    "provisioning": {a: dict(sorted(st.items())) for a, st in sorted(prov.items())},
                }
            )
        out["histories"] = _histories(s, run)
    return out


def _code_order(code: str) -> tuple[int, str]:
    from arrears.domain.exclusions import CODES

    return (CODES.index(code) if code in CODES else len(CODES), code)


def _display_url(url: str) -> str:
    path = _sqlite_path(url)
    if path is not None:
        return f"sqlite:///{path.resolve()}"
    return make_url(url).render_as_string(hide_password=True)


def _histories(s: Any, run: Run) -> list[dict[str, Any]]:
    """Three accounts worth reading: restored after paying, held back, escalated twice."""
    world = run.world
    by_id: dict[int, tuple[int, str]] = {}
    for p, pid in enumerate(run.provider_ids):
        for account_id, ext in s.execute(
            select(AccountRow.id, AccountRow.ext_id).where(AccountRow.provider_id == pid)
        ).all():
            by_id[int(account_id)] = (p, str(ext))
    behaviour = {(a.provider, a.ext_id): a.behaviour for a in world.accounts}

    def pick(candidates: set[int], prefer: Sequence[str], provider: int | None = None) -> int | None:
        ranked = sorted(
            candidates,
            key=lambda a: (
                0 if provider is None or by_id[a][0] == provider else 1,
                prefer.index(behaviour[by_id[a]]) if behaviour[by_id[a]] in prefer else len(prefer),
                a,
            ),
        )
        return ranked[0] if ranked else None

    restored = {
        int(a)
        for (a,) in s.execute(select(EpisodeRow.account_id).where(EpisodeRow.end_reason == "paid")).all()
    }
    held = {
        int(a) for (a,) in s.execute(select(HistoryRow.account_id).where(HistoryRow.kind == "excluded")).all()
    }
    two_stage: set[int] = set()
    stepped_down: set[int] = set()
    back_up: set[int] = set()  # up the ladder again after a step down
    for a, data in s.execute(
        select(HistoryRow.account_id, HistoryRow.data)
        .where(HistoryRow.kind == "stage")
        .order_by(HistoryRow.id)
    ).all():
        provider = by_id[int(a)][0]
        if _stage_rank(provider, str(data.get("to"))) > _stage_rank(provider, str(data.get("from"))) >= 0:
            two_stage.add(int(a))
            if int(a) in stepped_down:
                back_up.add(int(a))
        if _stepped_down(provider, data):
            stepped_down.add(int(a))
    chosen: list[tuple[str, int]] = []
    first = pick(restored, ("late", "part", "unallocated"), provider=0)
    if first is not None:
        chosen.append(("suspended, then restored when the customer paid", first))
    second = pick(held - {a for _, a in chosen}, ("omit", "complaint", "dispute", "excluded", "plan"))
    if second is not None:
        chosen.append(("held back by an exclusion", second))
    # Down a stage after paying part of what is owing, and up again if one did.
    taken = {a for _, a in chosen}
    third = pick(back_up - taken, ("late", "part"))
    if third is not None:
        chosen.append(("two stages up, one down after a part payment, and up again", third))
    elif (third := pick(stepped_down - taken, ("late", "part"))) is not None:
        chosen.append(("escalated through two stages, down one after a part payment", third))
    else:
        third = pick(two_stage - taken, ("never", "late", "part"))
        if third is not None:
            chosen.append(("escalated through two stages", third))
    return [_timeline(s, run, title, account_id, by_id[account_id]) for title, account_id in chosen]


def _stepped_down(provider: int, data: dict[str, Any]) -> bool:
    """A `stage` history line that moves down the ladder (not out of it: that is a restoration)."""
    to = _stage_rank(provider, str(data.get("to")))
    return 0 <= to < _stage_rank(provider, str(data.get("from")))


def _stage_rank(provider: int, name: str) -> int:
    names = [st["name"] for st in PROVIDERS[provider].rules.get("stages", [])]
    return names.index(name) if name in names else -1


def _timeline(s: Any, run: Run, title: str, account_id: int, where: tuple[int, str]) -> dict[str, Any]:
    p, ext = where
    spec = PROVIDERS[p]
    tz = spec.tz
    account = run.world.account(p, ext)
    entries: list[tuple[datetime, int, int, str, str]] = []
    for f in run.world.feeds:
        if f.provider == p and f.account == ext:
            entries.append((f.at, 0, f.seq, "input", f"{f.actor}: {f.text}"))
    rows = s.scalars(
        select(HistoryRow).where(HistoryRow.account_id == account_id).order_by(HistoryRow.id)
    ).all()
    merged: list[tuple[datetime, int, int, str, str]] = []
    for row in rows:
        if row.kind not in HISTORY_KINDS_SHOWN:
            continue
        line = _describe(row, spec)
        key = _merge_key(row)
        last = merged[-1] if merged else None
        if last is not None and key is not None and last[3] == key and last[0] == row.at:
            merged[-1] = (last[0], last[1], last[2], key, f"{last[4]}; {_merge_tail(row, spec)}")
            continue
        merged.append((row.at, 1, row.id, key or row.kind, line))
    entries.extend(merged)
    entries.sort(key=lambda e: (e[0], e[1], e[2]))
    status = s.scalar(select(AccountRow.status).where(AccountRow.id == account_id))
    return {
        "title": title,
        "provider": spec.key,
        "timezone": spec.timezone,
        "account": ext,
        "behaviour": account.behaviour,
        "status_now": status,
        "lines": [
            {"at": iso_local(at, tz), "kind": kind.split(":")[0], "text": text_}
            for at, _, _, kind, text_ in entries
        ],
    }


def _merge_key(row: HistoryRow) -> str | None:
    d = row.data
    if row.kind == "notification":
        return f"notification:{d.get('event')}"
    if row.kind == "skipped":
        return f"skipped:{d.get('event')}:{d.get('reason')}"
    if row.kind == "service_status":
        return f"service_status:{d.get('from')}:{d.get('to')}"
    if row.kind == "provisioning":
        return f"provisioning:{d.get('action')}:{d.get('state')}"
    return None


def _merge_tail(row: HistoryRow, spec: ProviderSpec) -> str:
    d = row.data
    if row.kind == "notification":
        return _notice_target(d)
    if row.kind == "skipped":
        return f"{d.get('channel')}" + (f" ({d.get('service')})" if d.get("service") else "")
    return str(d.get("service"))


def _notice_target(d: dict[str, Any]) -> str:
    where = f"{d.get('channel')} → {d.get('to')}" if d.get("to") else f"{d.get('channel')}"
    if d.get("service"):
        where += f" ({d.get('service')})"
    return where


def _describe(row: HistoryRow, spec: ProviderSpec) -> str:
    d = row.data
    why = d.get("why") or {}
    fig = why.get("figures") or {}
    cur = spec.currency
    if row.kind == "stage":
        if d.get("to") == "none":
            return f"episode ends ({d.get('reason') or why.get('reason')}): stage {d.get('from')} → none"
        figures = ""
        if fig:
            figures = (
                f" — owing {money(Decimal(fig['total_owing']), cur)}, overdue "
                f"{money(Decimal(fig['overdue_balance']), cur)}, {fig['days_overdue']} days overdue"
            )
        return f"stage {d.get('from')} → {d.get('to')}{figures}"
    if row.kind == "service_status":
        return f"service {d.get('service')} {d.get('from')} → {d.get('to')}"
    if row.kind == "account_status":
        reason = f" ({d.get('reason')})" if d.get("reason") else ""
        return f"account {d.get('from')} → {d.get('to')}{reason}"
    if row.kind == "provisioning":
        return f"provisioning {d.get('action')} {d.get('state')}: {d.get('service')}"
    if row.kind == "notification":
        return f"notice {d.get('event')}: {_notice_target(d)}"
    if row.kind == "skipped":
        target = f"{d.get('channel')}" + (f" ({d.get('service')})" if d.get("service") else "")
        return f"notice {d.get('event')} skipped, {d.get('reason')}: {target}"
    if row.kind == "excluded":
        reasons = ", ".join(d.get("reasons") or []) or "none any more"
        return f"held back by exclusions: {reasons}"
    if row.kind == "operator_action":
        reason = f": {d.get('reason')}" if d.get("reason") else ""
        return f"recorded operator action {d.get('action')} by {d.get('actor')}{reason}"
    if row.kind == "delivery":
        return f"{d.get('channel')} {d.get('state')}: {d.get('event')} to {d.get('to')}"
    if row.kind == "would_suspend":
        return f"would suspend (shadow mode) to stage {d.get('stage')}"
    if row.kind == "would_restore":
        return f"would restore (auto_unsuspend off): {d.get('reason')}"
    return f"{row.kind} {d}"


# -- output ----------------------------------------------------------------------------------


def _print_summary(summary: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    providers = summary["providers"]
    names = [p["name"] for p in providers]

    def table(title: str, first: str) -> Table:
        t = Table(title=title, title_justify="left", title_style="bold")
        t.add_column(first)
        for n in names:
            t.add_column(n, justify="right")
        return t

    console.print(
        f"[bold]arrears demo[/bold]: seed {summary['seed']}, {summary['accounts_per_provider']} accounts "
        f"per provider, {summary['days']} simulated days ({summary['start']} → {summary['end']}), "
        f"ran in {summary['elapsed_seconds']:.1f} s"
    )
    t = table("Providers", "")
    t.add_row("timezone / currency", *[f"{p['timezone']} / {p['currency']}" for p in providers])
    t.add_row("accounts / services", *[f"{p['accounts']} / {p['services']}" for p in providers])
    t.add_row(
        "invoices issued",
        *[
            f"{p['invoices']['count']} ({money(Decimal(p['invoices']['amount']), p['currency'])})"
            for p in providers
        ],
    )
    t.add_row(
        "payments received",
        *[
            f"{p['payments']['count']} ({money(Decimal(p['payments']['amount']), p['currency'])})"
            for p in providers
        ],
    )
    t.add_row("[bold]suspensions (episodes started)", *[str(p["suspensions"]) for p in providers])
    stages = sorted({s for p in providers for s in p["stages_reached"]})
    for st in stages:
        t.add_row(f"  moves to stage {st}", *[str(p["stages_reached"].get(st, 0)) for p in providers])
    t.add_row("  moves down a stage", *[str(p["moves_down_a_stage"]) for p in providers])
    t.add_row("[bold]restorations", *[str(p["restorations"]) for p in providers])
    reasons = sorted({r for p in providers for r in p["restorations_by_reason"]})
    for r in reasons:
        t.add_row(f"  because: {r}", *[str(p["restorations_by_reason"].get(r, 0)) for p in providers])
    t.add_row(
        "accounts suspended more than once", *[str(p["accounts_suspended_more_than_once"]) for p in providers]
    )
    t.add_row("[bold]accounts suspended now", *[str(p["currently_suspended"]) for p in providers])
    in_ep = sorted({s for p in providers for s in p["currently_in_episode"]})
    for st in in_ep:
        t.add_row(
            f"  in an episode at stage {st}", *[str(p["currently_in_episode"].get(st, 0)) for p in providers]
        )
    console.print(t)

    t = table("Exclusions (accounts held back at least once, by reason)", "reason")
    codes = sorted({r for p in providers for r in p["exclusions"]}, key=_code_order)
    for c in codes:
        t.add_row(c, *[str(p["exclusions"].get(c, 0)) for p in providers])
    console.print(t)

    t = table("Notifications recorded for delivery", "event / channel")
    pairs = sorted({(e, c) for p in providers for e, cs in p["notifications"].items() for c in cs})
    for e, c in pairs:
        t.add_row(f"{e} / {c}", *[str(p["notifications"].get(e, {}).get(c, 0)) for p in providers])
    t.add_row("[bold]total", *[str(p["notifications_total"]) for p in providers])
    console.print(t)

    t = table("Skipped notices", "reason / event")
    pairs = sorted({(r, e) for p in providers for r, es in p["skipped"].items() for e in es})
    for r, e in pairs:
        t.add_row(f"{r} / {e}", *[str(p["skipped"].get(r, {}).get(e, 0)) for p in providers])
    console.print(t)

    t = table("Provisioning requests", "action / state")
    pairs = sorted({(a, st) for p in providers for a, sts in p["provisioning"].items() for st in sts})
    for a, st in pairs:
        t.add_row(f"{a} / {st}", *[str(p["provisioning"].get(a, {}).get(st, 0)) for p in providers])
    console.print(t)

    for h in summary["histories"]:
        t = Table(
            title=f"{h['account']} ({h['provider']}, {h['behaviour']}): {h['title']} — times in {h['timezone']}",
            title_justify="left",
            title_style="bold",
        )
        t.add_column("local time", no_wrap=True)
        t.add_column("what happened")
        tz = ZoneInfo(h["timezone"])
        for line in h["lines"]:
            at = datetime.fromisoformat(line["at"]).astimezone(tz)
            style = "dim" if line["kind"] == "input" else ""
            t.add_row(at.strftime("%a %d %b %H:%M %Z"), line["text"], style=style)
        console.print(t)

    if "delivery" in summary:
        d = summary["delivery"]
        console.print(
            f"\nEmails delivered through [bold]{d['smtp']}[/bold]: {d['sent']} sent, "
            f"{d['skipped']} no longer true when their turn came, {d['retried']} retried, {d['failed']} failed"
        )
    console.print(f"\nDatabase: [bold]{summary['database']}[/bold]")
    console.print(f"Look around: [bold]{summary['hint']}[/bold]")


@contextmanager
def _progress(days: int, enabled: bool) -> Iterator[Callable[[int, datetime], None]]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not enabled:
        yield lambda _d, _t: None
        return
    with Progress(
        TextColumn("[bold]simulating[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        refresh_per_second=4,
    ) as progress:
        task = progress.add_task("", total=days)

        def on_day(n: int, now: datetime) -> None:
            local = now.astimezone(PROVIDERS[0].tz).date().isoformat()
            progress.update(task, completed=n, description=local)

        yield on_day


def run_demo(
    *,
    database_url: str | None,
    accounts: int = 150,
    days: int = 120,
    seed: int = 7,
    as_json: bool = False,
    smtp: str | None = None,
) -> int:
    """Build a fresh demo database, run `days` simulated days, print a summary; the exit status.

    With `smtp` (an smtp:// or smtps:// URL), the demo's emails are delivered
    through that server day by day, as the worker would, so they can be watched
    arriving.
    """
    import json
    import sys

    from rich.console import Console

    err = Console(stderr=True)
    if accounts < 1 or days < 1:
        err.print("[red]--accounts and --days must be at least 1[/red]")
        return 2
    try:
        # Checked before anything is built or reset: a typo must cost nothing.
        smtp_channel = channel_from_url(smtp) if smtp else None
        if smtp_channel is not None and smtp_channel.name != "email":
            raise ValueError(f"{redact(smtp or '')} is not an smtp:// or smtps:// URL")
    except ValueError as exc:
        err.print(f"--smtp: {exc}", markup=False)
        return 2
    try:
        url = choose_database(database_url)
    except DemoError as exc:
        err.print(f"[red]{exc}[/red]")
        return 2
    started = _time.perf_counter()
    db = Database(url)
    try:
        prepare_schema(db)
        world = build_world(seed, accounts, days)
        run = Run(db, world)
        if not as_json:
            err.print(
                f"Building the demo: {len(PROVIDERS)} providers, {len(world.accounts)} accounts, "
                f"{len(world.feeds)} billing and operator inputs over {days} days"
            )
        run.setup()
        # The demo's emails through a real SMTP server; SMS stay recorded (no gateway here).
        delivery = (
            _Delivery(NotificationDispatcher(db, {"email": smtp_channel}, worker="demo"))
            if smtp_channel
            else None
        )
        with _progress(days, enabled=True) as on_day:
            run.simulate(on_day, deliver=delivery.deliver if delivery else None)
        elapsed = _time.perf_counter() - started
        summary = summarise(db, run, elapsed=elapsed, url=url)
        if delivery is not None:
            delivery.dispatcher.close()
            summary["delivery"] = {"smtp": redact(smtp or ""), **delivery.report.as_dict()}
    finally:
        db.dispose()
    summary["seed"] = seed
    summary["accounts_per_provider"] = accounts
    summary["days"] = days
    summary["start"] = iso_local(world.start, PROVIDERS[0].tz)
    summary["end"] = iso_local(world.end, PROVIDERS[0].tz)
    shown = summary["database"]
    summary["hint"] = f"arrears scan --dry-run --database-url {shown} --at {summary['end']}"
    if as_json:
        sys.stdout.write(json.dumps(summary, default=str) + "\n")
    else:
        _print_summary(summary, Console())
    return 0


@dataclass
class _Delivery:
    dispatcher: NotificationDispatcher
    report: DeliveryReport = field(default_factory=DeliveryReport)

    def deliver(self, now: datetime) -> None:
        self.report.add(self.dispatcher.run(now))


__all__ = ["build_world", "run_demo"]
