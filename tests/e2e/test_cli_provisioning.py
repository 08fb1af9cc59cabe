"""`arrears provisioning` end to end: routes checked before they are saved, the request
queue as an operator sees it, and a request waiting for its peer confirmed by hand
(which releases the notice that waited for the network)."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, update

from arrears.config import parse_mappings
from arrears.engine.inputs import Inputs, create_provider
from arrears.store.db import Database
from arrears.store.migrate import ensure_schema
from arrears.store.tables import NotificationRow, ProvisioningRequestRow

from .command import arrears

NOW = datetime(2026, 4, 1, 0, 0, tzinfo=UTC)


def world(tmp_path: Path) -> tuple[str, Database]:
    url = f"sqlite:///{tmp_path}/prov.db"
    ensure_schema(url)
    db = Database(url)
    with db.transaction() as s:
        p = create_provider(s, key="fibre", timezone="UTC", currency="GBP", now=NOW)
        inputs = Inputs.open(s, p.id, NOW)
        inputs.put_rule_set({"min_overdue_amount": "50.00", "min_overdue_days": 14, "restore_threshold": "0"})
        events = {"auto_suspend": {"channels": ["note"], "after_provisioning": True}}
        inputs.put_mappings(parse_mappings(events, sms=False, since=NOW))
        inputs.put_account({"id": "A1", "services": [{"id": "S1", "type": "fttp"}]})
        inputs.put_invoice(
            {"id": "I1", "account": "A1", "amount": "90.00", "due": "2026-03-01", "issued_at": NOW}
        )
        inputs.settle()
    return url, db


def set_route(url: str, service_type: str, config: str) -> subprocess.CompletedProcess[str]:
    """`arrears provisioning routes set` to the webhook adapter with these settings."""
    return arrears(
        "provisioning", "routes", "set", "--service-type", service_type, "--adapter", "webhook",
        "--config", config, "--database-url", url,
    )  # fmt: skip


def test_routes_are_checked_listed_and_removed(tmp_path: Path) -> None:
    url, db = world(tmp_path)
    db.dispose()
    bad = set_route(url, "fttp", '{"url": "ftp://x", "secret": "0123456789abcdef"}')
    assert bad.returncode == 2 and "url" in bad.stderr
    short = set_route(url, "fttp", '{"url": "https://noc.example/hook", "secret": "short"}')
    assert short.returncode == 2 and "secret" in short.stderr
    missing_env = set_route(
        url, "*", '{"url": "https://noc.example/hook", "secret": "env:NO_SUCH_SECRET_HERE"}'
    )
    assert missing_env.returncode == 2 and "NO_SUCH_SECRET_HERE" in missing_env.stderr
    good = set_route(url, "fttp", '{"url": "https://noc.example/hook", "secret": "0123456789abcdef"}')
    assert good.returncode == 0, good.stderr
    listed = arrears("provisioning", "routes", "list", "--json", "--database-url", url)
    [route] = json.loads(listed.stdout)
    assert route["adapter"] == "webhook" and route["settings"] == ["secret", "url"]  # names, never values
    assert "0123456789abcdef" not in listed.stdout
    assert (
        arrears(
            "provisioning", "routes", "remove", "--service-type", "fttp", "--database-url", url
        ).returncode
        == 0
    )
    assert json.loads(arrears("provisioning", "routes", "list", "--json", "--database-url", url).stdout) == []


def test_a_request_waiting_for_its_peer_is_confirmed_by_hand(tmp_path: Path) -> None:
    url, db = world(tmp_path)
    with db.transaction() as s:
        [req] = s.scalars(select(ProvisioningRequestRow)).all()
        request_id = req.id
        # As a webhook answering 202 leaves it: accepted, waiting for the callback.
        s.execute(update(ProvisioningRequestRow).values(state="sent"))
        [note] = s.scalars(select(NotificationRow)).all()
        assert note.state == "waiting"
    listed = arrears("provisioning", "requests", "--state", "sent", "--json", "--database-url", url)
    assert [r["id"] for r in json.loads(listed.stdout)] == [request_id]
    table = arrears("provisioning", "requests", "--database-url", url)
    assert table.returncode == 0 and "restricted" in table.stdout

    done = arrears("provisioning", "confirm", str(request_id), "--actor", "noc", "--database-url", url)
    assert done.returncode == 0, done.stderr
    with db.transaction() as s:
        assert s.get_one(ProvisioningRequestRow, request_id).state == "confirmed"
        [note] = s.scalars(select(NotificationRow)).all()
        assert note.state == "pending"  # the network changed: now the customer may be told
    again = arrears("provisioning", "confirm", str(request_id), "--database-url", url)
    assert again.returncode == 2 and "confirmed" in again.stderr
    assert arrears("provisioning", "requests", "--state", "bogus", "--database-url", url).returncode == 2
    db.dispose()
