"""A running console on a seeded database: a provider whose rules suspend after 14 days over
50.00, accounts in every interesting state, and a user of each role."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from api.harness import NO_LIMIT, PLATFORM_KEY, START, Clock, running
from arrears.api import create_app
from arrears.config import parse_mappings
from arrears.engine.inputs import Inputs, create_provider
from arrears.store.db import Database
from arrears.store.migrate import ensure_schema
from arrears.store.tables import AccountRow, NotificationRow, ProvisioningRequestRow
from arrears.web import install
from arrears.web.users import MIN_PASSWORD, create_user

PASSWORD = "correct horse battery staple"
# username -> (role, provider key or None for a platform user)
USERS = {
    "olivia": ("operator", "acme"),
    "vera": ("viewer", "acme"),
    "ada": ("admin", "acme"),
    "paula": ("operator", None),
}
OVERDUE = "A-1001"  # 120.00 ten days overdue: suspension projected within the week
SUSPENDED = "A-1004"  # suspended by arrears three days ago; its email failed
RESTORED = "A-1003"  # suspended 20 days ago, restored when it paid 6 days ago


def _at(days: float) -> datetime:
    return START + timedelta(days=days)


def seed(db: Database) -> int:
    """The provider `acme` (Sydney, AUD) with its accounts, as they stand at START."""
    with db.transaction() as s:
        provider = create_provider(
            s, key="acme", name="Acme Mobile", timezone="Australia/Sydney", currency="AUD", now=_at(-60)
        )
        pid = provider.id
        inputs = Inputs.open(s, pid, _at(-60))
        inputs.put_rule_set(
            {"min_overdue_amount": "50.00", "min_overdue_days": 14, "restore_threshold": "10.00"}
        )
        events = {"auto_suspend": {"channels": ["note", "email"]}, "auto_unsuspend": {"channels": ["note"]}}
        inputs.put_mappings(parse_mappings(events, sms=False, since=_at(-60)))
        people = [
            ("A-1001", "Alice Overdue", "alice@example.com"),
            ("A-1002", "Bob Paid", "bob@example.com"),
            ("A-1003", "Carol Restored", "carol@example.com"),
            ("A-1004", "Dan Suspended", "dan@example.com"),
        ]
        for ext, name, email in people:
            inputs.put_account(
                {
                    "id": ext,
                    "contacts": [{"role": "primary", "name": name, "email": email}],
                    "services": [{"id": f"S-{ext[2:]}", "type": "mobile"}],
                    "groups": ["VIP"] if ext == "A-1002" else [],
                }
            )
        inputs.put_invoice({"id": "INV-2", "account": "A-1002", "amount": "45.00", "due": _at(-20).date()})
        inputs.put_payment({"id": "PAY-2", "account": "A-1002", "amount": "45.00"})
        inputs.settle()
    # Carol: suspended 20 days ago, restored 6 days ago when she paid.
    _step(
        db,
        pid,
        -20,
        lambda i: i.put_invoice(
            {"id": "INV-3", "account": RESTORED, "amount": "80.00", "due": _at(-40).date()}
        ),
    )
    _step(db, pid, -6, lambda i: i.put_payment({"id": "PAY-3", "account": RESTORED, "amount": "80.00"}))
    # Dan: suspended 3 days ago.
    _step(
        db,
        pid,
        -3,
        lambda i: i.put_invoice(
            {"id": "INV-4", "account": SUSPENDED, "amount": "200.00", "due": _at(-30).date()}
        ),
    )
    # Alice: 120.00, ten days overdue now; the rules act after 14.
    _step(
        db,
        pid,
        0,
        lambda i: i.put_invoice(
            {"id": "INV-1", "account": OVERDUE, "amount": "120.00", "due": _at(-10).date()}
        ),
    )
    with db.transaction() as s:
        dan = s.scalar(select(AccountRow.id).where(AccountRow.ext_id == SUSPENDED))
        # What the dispatchers would have made of Dan's suspension: the email bounced, and the
        # network accepted the suspension but has not confirmed it yet.
        for n in s.scalars(select(NotificationRow).where(NotificationRow.account_id == dan)):
            if n.channel == "email":
                n.state, n.reason, n.attempts = "failed", "550 5.1.1 mailbox unavailable", 1
        for r in s.scalars(select(ProvisioningRequestRow).where(ProvisioningRequestRow.account_id == dan)):
            r.state, r.attempts = "sent", 1
        # One argon2 hash for everyone: hashing is slow on purpose, and the tests sign in often.
        first = None
        for username, (role, key) in USERS.items():
            row = create_user(
                s, username, "x" * MIN_PASSWORD if first else PASSWORD, role, pid if key else None, _at(-1)
            )
            first = first or row.password_hash
            row.password_hash = first
    return pid


def _step(db: Database, pid: int, days: float, change: Any) -> None:
    with db.transaction() as s:
        inputs = Inputs.open(s, pid, _at(days))
        change(inputs)
        inputs.settle()


@dataclass
class Console:
    url: str
    db: Database
    clock: Clock
    provider_id: int
    _clients: list[httpx.Client] = field(default_factory=list)

    def client(self) -> httpx.Client:
        c = httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)
        self._clients.append(c)
        return c

    def signed_in(self, username: str) -> tuple[httpx.Client, str]:
        """A client signed in as `username`, and its session's CSRF token."""
        c = self.client()
        form = c.get("/login")
        token = hidden(form.text, "csrf_token")
        r = c.post(
            "/login", data={"username": username, "password": PASSWORD, "csrf_token": token, "next": "/"}
        )
        assert r.status_code == 303, r.text
        page = c.get("/accounts")
        assert page.status_code == 200, page.text
        return c, hidden(page.text, "csrf_token")

    def close(self) -> None:
        for c in self._clients:
            c.close()


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no hidden {name} in the page"
    return found.group(1)


@contextmanager
def console_on(url: str) -> Iterator[Console]:
    ensure_schema(url)
    db = Database(url)
    pid = seed(db)
    clock = Clock(START)
    app = create_app(db, platform_key=PLATFORM_KEY, clock=clock, rate_limit=NO_LIMIT)
    install(app, db, clock)
    with running(app) as base:
        console = Console(base, db, clock, pid)
        try:
            yield console
        finally:
            console.close()
    db.dispose()


__all__ = ["PASSWORD", "UTC", "Console", "console_on", "hidden"]
