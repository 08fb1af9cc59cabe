"""The provisioning dispatcher with a provider's route: a real command adapter (a script)
answering confirmed, accepted, retry or failed; backoff; an alert to the operations
address on failure; and the notice that waits for the network. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import random
import stat
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from arrears.config import NoticeSettingsSpec, parse_mappings
from arrears.engine.inputs import Inputs, create_provider
from arrears.engine.provisioning import ProvisioningDispatcher
from arrears.engine.service import run_provisioning
from arrears.provisioning.routing import ProvisioningPolicy, Routes
from arrears.provisioning.service import set_route
from arrears.store.db import Database
from arrears.store.tables import NotificationRow, ProviderRow, ProvisioningRequestRow

NOW = datetime(2026, 4, 1, 10, 0, tzinfo=UTC)

SCRIPT = """#!{python}
import json, sys, pathlib
here = pathlib.Path({folder!r})
call = json.load(sys.stdin)
with open(here / "calls.jsonl", "a") as f:
    f.write(json.dumps(call) + "\\n")
answers = (here / "answers").read_text().split()
n = sum(1 for _ in open(here / "calls.jsonl"))
answer = answers[min(n, len(answers)) - 1]
if answer == "accepted":
    print(json.dumps({{"state": "accepted", "reference": "TICKET-" + str(call["request_id"])}}))
    sys.exit(0)
if answer == "retry":
    sys.exit(75)
if answer == "failed":
    sys.stderr.write("no such subscriber on the HLR\\n")
    sys.exit(3)
sys.exit(0)
"""


def script(tmp_path: Path, *answers: str) -> Path:
    path = tmp_path / "provision.py"
    path.write_text(SCRIPT.format(python=sys.executable, folder=str(tmp_path)))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "answers").write_text(" ".join(answers))
    return path


def calls(tmp_path: Path) -> list[dict[str, object]]:
    f = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in f.read_text().splitlines()] if f.exists() else []


def world(db: Database, tmp_path: Path, *answers: str) -> int:
    with db.transaction() as s:
        p = create_provider(
            s,
            key="mvno",
            timezone="UTC",
            currency="AUD",
            notices=NoticeSettingsSpec(operations_email="noc@mvno.example"),
            now=NOW,
        )
        inputs = Inputs.open(s, p.id, NOW)
        inputs.put_rule_set({"min_overdue_amount": "50.00", "min_overdue_days": 14, "restore_threshold": "0"})
        events = {"auto_suspend": {"channels": ["email"], "after_provisioning": True}}
        inputs.put_mappings(parse_mappings(events, sms=False, since=NOW))
        inputs.put_account(
            {
                "id": "A1",
                "contacts": [{"role": "primary", "email": "jo@example.com"}],
                "services": [{"id": "S1", "type": "mobile"}],
            }
        )
        set_route(
            s,
            s.get_one(ProviderRow, p.id),
            "mobile",
            "command",
            {"command": [str(script(tmp_path, *answers))], "timeout": 20},
            actor="test",
            now=NOW,
        )
        inputs.put_invoice(
            {"id": "I1", "account": "A1", "amount": "80.00", "due": "2026-03-01", "issued_at": NOW}
        )
        inputs.settle()
        return p.id


def dispatcher(**policy: object) -> ProvisioningDispatcher:
    outcomes: list[tuple[str, str]] = []
    d = ProvisioningDispatcher(
        Routes(),
        ProvisioningPolicy(**policy),  # type: ignore[arg-type]
        rng=random.Random(3),
        on_outcome=lambda adapter, outcome, _latency: outcomes.append((adapter, outcome)),
    )
    d.outcomes = outcomes  # type: ignore[attr-defined]
    return d


def request(db: Database) -> ProvisioningRequestRow:
    with db.transaction() as s:
        return s.scalars(select(ProvisioningRequestRow)).one()


def notice(db: Database, event: str) -> NotificationRow:
    with db.transaction() as s:
        return s.scalars(select(NotificationRow).where(NotificationRow.event == event)).one()


def test_the_route_confirms_and_the_waiting_notice_is_released(db: Database, tmp_path: Path) -> None:
    world(db, tmp_path, "confirmed")
    assert notice(db, "auto_suspend").state == "waiting"
    d = dispatcher()
    assert run_provisioning(db, d, NOW) == 1
    req = request(db)
    assert (req.state, req.adapter, req.attempts) == ("confirmed", "command", 1)
    assert notice(db, "auto_suspend").state == "pending"
    [call] = calls(tmp_path)
    assert call["action"] == "restricted" and call["service"] == "S1" and call["key"] == req.key
    assert call["provider"] == "mvno" and call["service_type"] == "mobile"
    assert d.outcomes == [("command", "confirmed")]  # type: ignore[attr-defined]


def test_transient_failures_back_off_then_confirm(db: Database, tmp_path: Path) -> None:
    world(db, tmp_path, "retry", "retry", "confirmed")
    d = dispatcher(first_retry=timedelta(minutes=2))
    run_provisioning(db, d, NOW)
    req = request(db)
    assert req.state == "pending" and req.attempts == 1 and "75" in (req.last_error or "")
    assert timedelta(minutes=1) <= req.not_before - NOW <= timedelta(minutes=2)
    assert run_provisioning(db, d, NOW + timedelta(seconds=30)) == 0  # not before its time
    run_provisioning(db, d, NOW + timedelta(minutes=2))
    req = request(db)
    assert req.attempts == 2 and timedelta(minutes=2) <= req.not_before - (NOW + timedelta(minutes=2))
    run_provisioning(db, d, NOW + timedelta(hours=1))
    req = request(db)
    assert (req.state, req.attempts) == ("confirmed", 3)
    keys = {c["key"] for c in calls(tmp_path)}
    assert keys == {req.key}  # the same idempotency key every time
    assert [c["attempt"] for c in calls(tmp_path)] == [1, 2, 3]


def test_a_refusal_fails_at_once_skips_the_notice_and_alerts_operations(db: Database, tmp_path: Path) -> None:
    world(db, tmp_path, "failed")
    run_provisioning(db, dispatcher(), NOW)
    req = request(db)
    assert req.state == "failed" and "no such subscriber" in (req.last_error or "")
    assert notice(db, "auto_suspend").state == "skipped"  # the network did not change: nothing to tell
    alert = notice(db, "operator_alert")
    assert alert.to_address == "noc@mvno.example" and alert.state == "pending"
    assert "S1" in alert.context["subject"] and f"confirm {req.id}" in alert.context["text"]
    # Alerted once, however often the dispatcher looks again.
    run_provisioning(db, dispatcher(), NOW + timedelta(hours=1))
    with db.transaction() as s:
        alerts = s.scalars(select(NotificationRow).where(NotificationRow.event == "operator_alert")).all()
    assert len(alerts) == 1


def test_retries_run_out_into_failed(db: Database, tmp_path: Path) -> None:
    world(db, tmp_path, "retry")
    d = dispatcher(max_attempts=2, first_retry=timedelta(seconds=1))
    run_provisioning(db, d, NOW)
    run_provisioning(db, d, NOW + timedelta(minutes=5))
    req = request(db)
    assert req.state == "failed" and (req.last_error or "").startswith("gave up after 2 attempts")


def test_accepted_waits_for_confirmation(db: Database, tmp_path: Path) -> None:
    from arrears.provisioning.service import settle_by_hand

    world(db, tmp_path, "accepted")
    run_provisioning(db, dispatcher(), NOW)
    req = request(db)
    assert (req.state, req.reference) == ("sent", f"TICKET-{req.id}")
    assert notice(db, "auto_suspend").state == "waiting"
    with db.transaction() as s:
        settle_by_hand(
            s, req.id, state="confirmed", detail="", actor="callback", now=NOW + timedelta(minutes=3)
        )
    assert request(db).state == "confirmed"
    assert notice(db, "auto_suspend").state == "pending"


def test_a_route_whose_secret_is_missing_here_waits_instead_of_failing(db: Database, tmp_path: Path) -> None:
    import os

    pid = world(db, tmp_path, "confirmed")
    os.environ["ARREARS_TEST_HOOK_SECRET"] = "0123456789abcdef0123"
    try:
        with db.transaction() as s:
            set_route(
                s,
                s.get_one(ProviderRow, pid),
                "mobile",
                "webhook",
                {"url": "http://127.0.0.1:9/hook", "secret": "env:ARREARS_TEST_HOOK_SECRET"},
                actor="test",
                now=NOW,
            )
    finally:
        del os.environ["ARREARS_TEST_HOOK_SECRET"]
    run_provisioning(db, dispatcher(), NOW)
    req = request(db)
    assert req.state == "pending" and "misconfigured" in (req.last_error or "")
    assert "ARREARS_TEST_HOOK_SECRET" in (req.last_error or "")
