"""The full pass: the candidate query, carrying out its decisions, dry runs, `arrears scan`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from arrears.config import parse_mappings
from arrears.engine.applicator import needs_apply
from arrears.engine.inputs import Inputs, create_provider
from arrears.engine.scan import candidates, full_pass
from arrears.engine.service import assess
from arrears.store.db import Database
from arrears.store.repository import load_accounts, load_provider, load_snapshots, notice_memory, snapshot
from arrears.store.tables import AccountRow, Base, EpisodeRow

TZ = ZoneInfo("Australia/Sydney")
SETUP = datetime(2026, 1, 1, 10, 0, tzinfo=TZ).astimezone(UTC)
NOW = datetime(2026, 2, 2, 10, 0, tzinfo=TZ).astimezone(UTC)
RULES = {"min_overdue_amount": "50.00", "min_overdue_days": 14, "restore_threshold": "10.00"}
EVENTS = {"auto_suspend": {"channels": ["email"]}, "auto_unsuspend": {"channels": ["email"]}}


def _account(inputs: Inputs, ext: str, services: int = 1) -> None:
    inputs.put_account(
        {
            "id": ext,
            "contacts": [{"role": "primary", "name": ext, "email": f"{ext.lower()}@example.com"}],
            "services": [{"id": f"{ext}-S{i}", "type": "mobile"} for i in range(services)],
        }
    )


@pytest.fixture
def accounts(db: Database) -> Iterator[dict[str, int]]:
    """One provider, evaluated at SETUP; returns ext id -> account id.

    OVER     120.00 due 10 Jan: 23 days overdue at NOW, past the rules
    EPISODE  120.00 due 1 Dec: already past the rules at SETUP, so suspended then
    WAKE     20.00 (below the amount), with a wake-up that has come by NOW
    PAID     no invoices
    SMALL    20.00 overdue: never enough to suspend
    FUTURE   120.00 due 20 Feb: not due yet at NOW
    NEW      like SMALL, but never evaluated
    """
    with db.transaction() as s:
        p = create_provider(s, key="p", timezone="Australia/Sydney", currency="AUD", now=SETUP)
        inputs = Inputs.open(s, p.id, SETUP)
        inputs.put_rule_set(dict(RULES), SETUP)
        inputs.put_mappings(parse_mappings(EVENTS, sms=False, since=SETUP))
        for ext in ("OVER", "EPISODE", "WAKE", "PAID", "SMALL", "FUTURE", "NEW"):
            _account(inputs, ext, services=2 if ext == "OVER" else 1)
        for ext, amount, due in (
            ("OVER", "120.00", "2026-01-10"),
            ("EPISODE", "120.00", "2025-12-01"),
            ("WAKE", "20.00", "2026-01-10"),
            ("SMALL", "20.00", "2025-12-20"),
            ("FUTURE", "120.00", "2026-02-20"),
            ("NEW", "20.00", "2025-12-20"),
        ):
            inputs.put_invoice({"id": f"{ext}-I1", "account": ext, "amount": amount, "due": due})
        inputs.settle()
        ids = {a.ext_id: a.id for a in s.scalars(select(AccountRow))}
        s.execute(
            update(AccountRow)
            .where(AccountRow.id == ids["WAKE"])
            .values(next_wakeup_at=NOW - timedelta(hours=1))
        )
        s.execute(update(AccountRow).where(AccountRow.id == ids["NEW"]).values(evaluated_at=None))
    yield ids


def _provider(db: Database) -> Any:
    with db.transaction() as s:
        pid = s.scalar(select(AccountRow.provider_id).limit(1))
        assert pid is not None
        return load_provider(s, pid)


def _state(db: Database) -> dict[str, Any]:
    """Every table's rows, to show that nothing changed."""
    out: dict[str, Any] = {}
    with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            out[table.name] = sorted(map(tuple, conn.execute(select(table)).all()), key=repr)
    return out


def test_candidates_are_the_accounts_whose_decision_may_change(
    db: Database, accounts: dict[str, int]
) -> None:
    provider = _provider(db)
    with db.transaction() as s:
        found = set(candidates(s, provider, NOW))
        episode = s.scalar(select(AccountRow.episode_id).where(AccountRow.id == accounts["EPISODE"]))
    assert episode is not None, "EPISODE was suspended when it was set up"
    by_id = {v: k for k, v in accounts.items()}
    assert sorted(by_id[i] for i in found) == ["EPISODE", "NEW", "OVER", "WAKE"]


def test_full_pass_suspends_the_overdue_account_once(db: Database, accounts: dict[str, int]) -> None:
    first = full_pass(db, NOW)
    assert first.actions == {"escalate": 1}
    assert first.candidates == 4
    with db.transaction() as s:
        over = s.get_one(AccountRow, accounts["OVER"])
        assert over.status == "suspended" and over.episode_id is not None
        assert s.scalar(select(func.count()).select_from(EpisodeRow)) == 2  # EPISODE's and OVER's
    # Right after, every candidate is quiet: carrying out its decision would change nothing.
    later = NOW + timedelta(minutes=1)
    with db.transaction() as s:
        assessed = assess(s, _provider(db), list(accounts.values()), later)
    assert [st.ext_id for st, ev in assessed if needs_apply(st, ev)] == []
    before = _state(db)
    second = full_pass(db, later)
    assert second.actions == {}
    assert second.applied == 0
    assert _state(db) == before, "a second pass right after changes nothing"


def test_dry_run_changes_nothing(db: Database, accounts: dict[str, int]) -> None:
    before = _state(db)
    result = full_pass(db, NOW, dry_run=True, plan=True)
    assert _state(db) == before
    assert result.actions == {"escalate": 1}
    (over,) = [e for e in result.plan if e.account == "OVER"]
    assert (over.action, over.to_stage, over.status, over.stage) == ("escalate", "suspend", "active", None)
    assert over.as_json()["projected_suspension"] == "2026-02-02T10:00:00+11:00"
    (episode,) = [e for e in result.plan if e.account == "EPISODE"]
    assert (episode.action, episode.stage) == ("none", "suspend")


def test_plain_row_snapshots_equal_orm_snapshots(db: Database, accounts: dict[str, int]) -> None:
    """`load_snapshots` (the scan's fast read) must see exactly what `snapshot` sees."""
    full_pass(db, NOW)
    with db.transaction() as s:
        ids = list(accounts.values())
        rows = load_accounts(s, ids)
        memory = notice_memory(s, rows)
        orm = {r.ext_id: snapshot(r, memory[r.id]) for r in rows}
        plain = {snap.id: snap for _, snap in load_snapshots(s, ids)}
    assert plain == orm


def test_scan_dry_run_json_cli(db: Database, accounts: dict[str, int], database_url: str) -> None:
    before = _state(db)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "arrears",
            "scan",
            "--dry-run",
            "--json",
            "--at",
            "2026-02-02T10:00",
            "--provider",
            "p",
            "--database-url",
            database_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    by_account = {e["account"]: e for e in plan}
    assert sorted(by_account) == ["EPISODE", "NEW", "OVER", "WAKE"]
    over = by_account["OVER"]
    assert over["action"] == "escalate"
    assert over["to_stage"] == "suspend"
    assert over["projected_suspension"] == "2026-02-02T10:00:00+11:00"
    assert over["exclusions"] == []
    assert over["figures"] == {"total_owing": "120.00", "overdue_balance": "120.00", "days_overdue": 23}
    assert _state(db) == before
