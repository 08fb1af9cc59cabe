"""`arrears webhooks` end to end: endpoints added and listed, bad options named, and the
deliveries of a suspension listed and a failed one retried."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, update

from arrears.config import parse_mappings
from arrears.engine.inputs import Inputs, create_provider
from arrears.store.db import Database
from arrears.store.migrate import ensure_schema
from arrears.store.tables import ProviderRow, WebhookDeliveryRow

from .command import arrears

NOW = datetime(2026, 4, 1, 0, 0, tzinfo=UTC)


def world(tmp_path: Path) -> tuple[str, Database]:
    url = f"sqlite:///{tmp_path}/hooks.db"
    ensure_schema(url)
    db = Database(url)
    with db.transaction() as s:
        p = create_provider(s, key="fibre", timezone="UTC", currency="GBP", now=NOW)
        inputs = Inputs.open(s, p.id, NOW)
        inputs.put_rule_set({"min_overdue_amount": "50.00", "min_overdue_days": 14, "restore_threshold": "0"})
        inputs.put_mappings(parse_mappings({"auto_suspend": {"channels": ["note"]}}, sms=False, since=NOW))
        inputs.put_account({"id": "A1", "services": [{"id": "S1", "type": "fttp"}]})
    return url, db


def test_endpoints_are_added_listed_and_bad_options_named(tmp_path: Path) -> None:
    url, db = world(tmp_path)
    added = arrears(
        "webhooks", "add", "--url", "https://crm.example/hook", "--event", "account.suspended",
        "--secret", "env:CRM_WEBHOOK_SECRET", "--database-url", url,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "posts account.suspended to https://crm.example/hook" in added.stdout
    generated = arrears("webhooks", "add", "--url", "https://audit.example/hook", "--database-url", url)
    assert generated.returncode == 0 and "signing secret (shown only now): whsec_" in generated.stdout

    listed = arrears("webhooks", "list", "--json", "--database-url", url)
    rows = json.loads(listed.stdout)
    assert [(r["url"], r["events"]) for r in rows] == [
        ("https://crm.example/hook", ["account.suspended"]),
        ("https://audit.example/hook", []),
    ]
    assert "secret" not in listed.stdout and "CRM_WEBHOOK_SECRET" not in listed.stdout

    bad = arrears("webhooks", "add", "--url", "mailto:noc@example.com", "--database-url", url)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --url: must start with http://")
    bad = arrears(
        "webhooks", "add", "--url", "https://a.example", "--event", "account.gone", "--database-url", url
    )
    assert bad.returncode == 2 and "error: --event: 'account.gone' is not an event type" in bad.stderr
    db.dispose()


def test_deliveries_are_listed_and_a_failed_one_retried(tmp_path: Path) -> None:
    url, db = world(tmp_path)
    assert (
        arrears("webhooks", "add", "--url", "https://crm.example/hook", "--database-url", url).returncode == 0
    )
    with db.transaction() as s:
        inputs = Inputs.open(s, s.scalars(select(ProviderRow.id)).one(), NOW)
        inputs.put_invoice(
            {"id": "I1", "account": "A1", "amount": "80.00", "due": "2026-03-01", "issued_at": NOW}
        )
        inputs.settle()
    listed = arrears("webhooks", "deliveries", "--json", "--database-url", url)
    rows = json.loads(listed.stdout)
    assert [r["event_type"] for r in rows] == ["account.suspended", "service.restricted", "episode.opened"]
    assert {r["status"] for r in rows} == {"pending"}
    table = arrears("webhooks", "deliveries", "--database-url", url)
    assert "account.suspended" in table.stdout and "newest first" in table.stdout

    pending = arrears("webhooks", "retry", str(rows[0]["id"]), "--database-url", url)
    assert pending.returncode == 2 and "only a failed delivery can be retried" in pending.stderr
    with db.transaction() as s:
        s.execute(
            update(WebhookDeliveryRow).where(WebhookDeliveryRow.id == rows[0]["id"]).values(status="failed")
        )
    retried = arrears("webhooks", "retry", str(rows[0]["id"]), "--database-url", url)
    assert retried.returncode == 0, retried.stderr
    failed = arrears("webhooks", "deliveries", "--status", "failed", "--json", "--database-url", url)
    assert json.loads(failed.stdout) == []
    bad = arrears("webhooks", "deliveries", "--status", "lost", "--database-url", url)
    assert bad.returncode == 2 and "error: --status: 'lost' is not one of" in bad.stderr
    db.dispose()
