"""`arrears notifications` end to end: what the engine recorded and the dispatcher did, as an
operator sees it through the real command line, and the operator's retry and cancel."""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from arrears.channels.email import SmtpChannel, SmtpSettings
from arrears.config import NoticeSettingsSpec, parse_mappings
from arrears.engine.clock import VirtualClock
from arrears.engine.inputs import Inputs, create_provider
from arrears.notify.dispatcher import NotificationDispatcher
from arrears.store.db import Database
from arrears.store.tables import HistoryRow
from peers.smtp_server import RecordingHandler, smtp_server

from .command import arrears

SYDNEY = ZoneInfo("Australia/Sydney")
START = datetime(2026, 2, 20, 0, 0, tzinfo=SYDNEY).astimezone(UTC)
# Invoices are due on 2 March: invoice_due goes out 3 days before, invoice_overdue 1 day after, at 09:00.
DUE_NOTICE_AT = datetime(2026, 2, 27, 9, 0, tzinfo=SYDNEY).astimezone(UTC)
OVERDUE_NOTICE_AT = datetime(2026, 3, 3, 9, 0, tzinfo=SYDNEY).astimezone(UTC)


def prepare(db: Database) -> None:
    """Three accounts; invoice_due by email, invoice_overdue by email and SMS."""
    with db.transaction() as s:
        p = create_provider(
            s,
            key="harbour",
            name="Harbour Telco",
            timezone="Australia/Sydney",
            currency="AUD",
            sms=True,
            notices=NoticeSettingsSpec(locale="en_AU", email_from="accounts@harbour.example"),
            now=START,
        )
        inputs = Inputs.open(s, p.id, START)
        inputs.put_rule_set({"min_overdue_amount": "50.00", "min_overdue_days": 30, "restore_threshold": "0"})
        events = {
            "invoice_due": [{"days_before": 3, "channels": ["email"]}],
            "invoice_overdue": [{"days_after": 1, "channels": ["email", "sms"]}],
        }
        inputs.put_mappings(parse_mappings(events, sms=True, since=START))
        for n in range(3):
            inputs.put_account(
                {
                    "id": f"A{n}",
                    "contacts": [
                        {
                            "role": "primary",
                            "name": f"Jo {n}",
                            "email": f"jo{n}@example.com",
                            "phone": "+61412345678",
                        }
                    ],
                    "services": [{"id": f"S{n}", "type": "mobile"}],
                }
            )
            inputs.put_invoice({"id": f"I{n}", "account": f"A{n}", "amount": "120.50", "due": "2026-03-02"})
        inputs.settle()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The engine's notices of one provider, after a delivery round on a real SMTP server:

    - invoice_due, email: A0 and A2 sent, A1 failed (the server refuses jo1@example.com);
    - invoice_overdue, email and SMS, for all three: pending (no delivery round since).
    """
    path = tmp_path_factory.mktemp("notifications") / "notifications.db"
    url = f"sqlite:///{path}"
    done = arrears("db", "upgrade", "--database-url", url)
    assert done.returncode == 0, done.stderr
    db = Database(url)
    try:
        prepare(db)
        clock = VirtualClock(db, START)
        clock.settle()
        clock.advance(DUE_NOTICE_AT)
        handler = RecordingHandler(rcpt_replies={"jo1@example.com": "550 5.1.1 no such user"})
        with smtp_server(handler) as server:
            channel = SmtpChannel(SmtpSettings(server.host, server.port, security="none", timeout=5))
            report = NotificationDispatcher(db, {"email": channel}, worker="test", rng=random.Random(1)).run(
                DUE_NOTICE_AT
            )
        assert (report.sent, report.failed) == (2, 1)
        clock.advance(OVERDUE_NOTICE_AT)
    finally:
        db.dispose()
    return path


@pytest.fixture
def url(prepared: Path, tmp_path: Path) -> Iterator[str]:
    copy = tmp_path / "notifications.db"
    copy.write_bytes(prepared.read_bytes())
    yield f"sqlite:///{copy}"


def listing(url: str, *filters: str) -> list[dict[str, Any]]:
    done = arrears("notifications", "--database-url", url, "--json", *filters)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def said(done: subprocess.CompletedProcess[str]) -> str:
    """stderr on one line (rich wraps it at 80 columns when it is not a terminal)."""
    return " ".join(done.stderr.split())


def one(rows: list[dict[str, Any]], **match: str) -> dict[str, Any]:
    [row] = [r for r in rows if all(r[k] == v for k, v in match.items())]
    return row


def test_the_list_shows_what_the_engine_recorded_and_the_filters_narrow_it(url: str) -> None:
    rows = listing(url)
    assert len(rows) == 9  # 3 invoice_due emails, 3 invoice_overdue emails, 3 invoice_overdue SMS
    assert [r["due_at"] for r in rows] == sorted((r["due_at"] for r in rows), reverse=True)  # newest first
    sent = one(rows, account="A0", event="invoice_due")
    assert (sent["state"], sent["to"], sent["attempts"]) == ("sent", "jo0@example.com", 1)
    assert sent["reference"] and sent["reference"].endswith("@harbour.example>")
    failed = one(rows, account="A1", event="invoice_due")
    assert failed["state"] == "failed" and "550" in failed["reason"]
    sms = one(rows, account="A2", event="invoice_overdue", channel="sms")
    assert (sms["state"], sms["to"]) == ("pending", "+61412345678")

    a1 = listing(url, "--account", "A1")
    assert len(a1) == 3 and {r["account"] for r in a1} == {"A1"}
    due = listing(url, "--event", "invoice_due")
    assert len(due) == 3 and {r["event"] for r in due} == {"invoice_due"}
    assert [r["account"] for r in listing(url, "--state", "failed")] == ["A1"]
    assert {r["account"] for r in listing(url, "--state", "sent")} == {"A0", "A2"}
    both = listing(url, "--account", "A0", "--event", "invoice_overdue", "--state", "pending")
    assert sorted(r["channel"] for r in both) == ["email", "sms"]
    assert len(listing(url, "--limit", "2")) == 2
    assert listing(url, "--provider", "elsewhere") == []

    bad = arrears("notifications", "--database-url", url, "--state", "lost")
    assert bad.returncode == 2
    assert "--state" in bad.stderr and "'lost' is not one of" in said(bad)


def test_the_table_prints(url: str) -> None:
    done = arrears("notifications", "--database-url", url, "--event", "invoice_due", columns=160)
    assert done.returncode == 0, done.stderr
    assert "Notifications (3, newest first)" in done.stdout
    rows = [ln for ln in done.stdout.splitlines() if "invoice_due" in ln]
    assert len(rows) == 3
    assert any("A1" in ln and "jo1@example.com" in ln and "failed" in ln and "550 5.1.1" in ln for ln in rows)
    assert sum(" sent " in ln for ln in rows) == 2

    narrow = arrears("notifications", "--database-url", url, "--event", "invoice_due")  # a pipe
    assert narrow.returncode == 0 and "Notifications (3, newest first)" in narrow.stdout


def test_retry_makes_a_failed_notice_pending_and_refuses_a_sent_one(url: str) -> None:
    failed = one(listing(url, "--state", "failed"))
    done = arrears(
        "notifications", "--database-url", url, "retry", str(failed["id"]), "--actor", "ops@harbour"
    )
    assert done.returncode == 0, done.stderr
    assert f"notification {failed['id']}: pending" in done.stdout
    again = one(listing(url, "--account", "A1", "--event", "invoice_due"))
    assert (again["state"], again["reason"], again["attempts"]) == ("pending", None, 0)

    sent = one(listing(url, "--account", "A0", "--event", "invoice_due"))
    refused = arrears("notifications", "--database-url", url, "retry", str(sent["id"]))
    assert refused.returncode == 2
    assert f"notification {sent['id']} is sent; only failed, uncertain can be retried" in said(refused)
    assert one(listing(url, "--account", "A0", "--event", "invoice_due"))["state"] == "sent"

    missing = arrears("notifications", "--database-url", url, "retry", "99999")
    assert missing.returncode == 2 and "no notification 99999" in said(missing)

    # The operator's retry is in the account's history.
    db = Database(url)
    try:
        with db.transaction() as s:
            notes = [
                (h.actor, h.data["detail"], h.data["state"])
                for h in s.scalars(select(HistoryRow).where(HistoryRow.kind == "delivery"))
                if h.data.get("notification") == failed["id"]
            ]
    finally:
        db.dispose()
    assert ("ops@harbour", "retry", "pending") in notes


def test_cancel_calls_off_a_pending_notice(url: str) -> None:
    rows = listing(url, "--account", "A2", "--event", "invoice_overdue", "--state", "pending")
    pending = one(rows, channel="sms")
    done = arrears("notifications", "--database-url", url, "cancel", str(pending["id"]), "--actor", "alice")
    assert done.returncode == 0, done.stderr
    assert f"notification {pending['id']}: cancelled" in done.stdout
    row = one(listing(url, "--state", "cancelled"))
    assert (row["id"], row["reason"]) == (pending["id"], "cancelled by alice")

    sent = one(listing(url, "--account", "A0", "--event", "invoice_due"))
    refused = arrears("notifications", "--database-url", url, "cancel", str(sent["id"]))
    assert refused.returncode == 2 and "only pending, waiting, failed, uncertain can be cancelled" in said(
        refused
    )
