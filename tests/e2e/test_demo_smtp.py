"""`arrears demo --smtp`: the demo's emails delivered to a real SMTP server (aiosmtpd, in this
process) by the real command line, and checked against what the demo database says was sent."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from arrears.store.tables import NotificationRow, ProviderRow
from peers.smtp_server import Received, smtp_server

# A whole amount as each provider's locale writes it: en_AU for AUD, en_GB for GBP.
AUD = re.compile(r"\$\d{1,3}(,\d{3})*\.\d\d\b")
GBP = re.compile(r"£\d{1,3}(,\d{3})*\.\d\d\b")
# Events whose default email states an amount.
WITH_AMOUNTS = ("invoice_due", "invoice_overdue", "suspension_warning")


def run_demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ARREARS_DATABASE_URL", "ARREARS_SMTP_URL")}
    return subprocess.run(
        [sys.executable, "-m", "arrears", "demo", "--database-url", f"sqlite:///{tmp_path}/demo.db", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )


def sent_emails(db_path: Path) -> dict[str, tuple[str, str, str | None]]:
    """The demo database's sent emails: {Message-ID: (provider key, event, to)}."""
    engine = create_engine(f"sqlite:///{db_path}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    NotificationRow.reference,
                    ProviderRow.key,
                    NotificationRow.event,
                    NotificationRow.to_address,
                )
                .join(ProviderRow, ProviderRow.id == NotificationRow.provider_id)
                .where(NotificationRow.channel == "email", NotificationRow.state == "sent")
            ).all()
    finally:
        engine.dispose()
    out = {str(ref): (key, event, to) for ref, key, event, to in rows}
    assert len(out) == len(rows), "two sent notifications share a Message-ID"
    return out


def test_the_demo_delivers_each_sent_email_once_from_its_providers_address(tmp_path: Path) -> None:
    with smtp_server() as server:
        done = run_demo(
            tmp_path,
            "--accounts",
            "15",
            "--days",
            "40",
            "--json",
            "--smtp",
            f"smtp://{server.host}:{server.port}?starttls=false",
        )
        received: list[Received] = list(server.handler.received)
    assert done.returncode == 0, done.stderr[-3000:]
    summary: dict[str, Any] = json.loads(done.stdout)
    delivery = summary["delivery"]
    assert delivery["smtp"] == f"smtp://{server.host}:{server.port}?starttls=false"
    assert delivery["failed"] == 0

    in_db = sent_emails(tmp_path / "demo.db")
    assert len(received) == len(in_db) == delivery["sent"]
    assert len(received) >= 20, "too few emails to say much"

    messages = [r.parsed() for r in received]
    ids = [m["Message-ID"] for m in messages]
    assert len(set(ids)) == len(ids), "a Message-ID arrived twice"
    assert set(ids) == set(in_db)  # each arrived message is a notification recorded as sent

    sender = {"koala-mobile": "accounts@example.com", "thames-fibre": "accounts@example.org"}
    amount = {"koala-mobile": AUD, "thames-fibre": GBP}
    other = {"koala-mobile": "£", "thames-fibre": "$"}
    seen: dict[str, int] = {"koala-mobile": 0, "thames-fibre": 0}
    for got, msg in zip(received, messages, strict=True):
        provider, event, to = in_db[msg["Message-ID"]]
        seen[provider] += 1
        assert msg["From"] == sender[provider]
        assert got.mail_from == sender[provider]  # the envelope too, so bounces go to the provider
        assert got.rcpt_tos == [to] and msg["To"] == to
        body = msg.get_body(("plain",))
        assert body is not None
        text = body.get_content()
        if event in WITH_AMOUNTS:
            assert amount[provider].search(text), f"{event} email of {provider} without an amount:\n{text}"
        assert other[provider] not in text
    assert all(seen.values()), f"not both providers' emails arrived: {seen}"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1025",  # not an SMTP URL
        "smtp://127.0.0.1:notaport?starttls=false",
        "smtp://127.0.0.1:1025?starttls=maybe",
    ],
)
def test_a_bad_smtp_url_is_refused_naming_the_option(tmp_path: Path, url: str) -> None:
    done = run_demo(tmp_path, "--accounts", "2", "--days", "2", "--json", "--smtp", url)
    assert done.returncode == 2
    assert "--smtp" in done.stderr
    assert done.stdout == ""
