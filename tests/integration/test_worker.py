"""Two workers on one PostgreSQL database: every decision is carried out exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from arrears.bench import Mix, populate
from arrears.store.db import Database
from arrears.store.migrate import ensure_schema
from arrears.store.tables import (
    AccountRow,
    EpisodeRow,
    HistoryRow,
    NotificationRow,
    ProvisioningRequestRow,
    ServiceRow,
)

ACCOUNTS = 200
# No windows or holidays: the workers act on the real clock, at any time of day.
RULES = {"min_overdue_amount": "50.00", "min_overdue_days": 14, "restore_threshold": "10.00"}
OVERDUE_ONLY = Mix(past_rules=1.0, excluded_group=0.0, disputed=0.0, not_yet_due=0.0)


def _worker(url: str, log: Path) -> subprocess.Popen[str]:
    # The log goes to a file: a pipe nobody reads fills up and stalls a busy worker.
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "arrears", "worker", "--interval", "0.2", "--database-url", url],
            stdout=subprocess.DEVNULL,
            stderr=out,
            text=True,
            # Small batches, so the two workers interleave on these few accounts.
            env={**os.environ, "PYTHONUNBUFFERED": "1", "ARREARS_SCAN_BATCH": "20", "ARREARS_OPS_PORT": "-1"},
        )


def _count(db: Database, stmt: object) -> int:
    with db.engine.connect() as conn:
        return int(conn.scalar(stmt) or 0)  # type: ignore[call-overload]


def test_two_workers_suspend_each_account_exactly_once(postgres_url: str, tmp_path: Path) -> None:
    ensure_schema(postgres_url)
    db = Database(postgres_url)
    try:
        populate(db, ACCOUNTS, now=datetime.now(UTC), mix=OVERDUE_ONLY, rules=RULES, key="w")
        services = _count(db, select(func.count()).select_from(ServiceRow))
        logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
        workers = [_worker(postgres_url, log) for log in logs]
        try:
            deadline = time.monotonic() + 25
            while time.monotonic() < deadline:
                suspended = _count(
                    db, select(func.count()).select_from(AccountRow).where(AccountRow.status == "suspended")
                )
                pending = _count(
                    db,
                    select(func.count())
                    .select_from(ProvisioningRequestRow)
                    .where(ProvisioningRequestRow.state != "confirmed"),
                )
                if suspended == ACCOUNTS and pending == 0:
                    break
                assert all(w.poll() is None for w in workers), "a worker died"
                time.sleep(0.2)
            assert suspended == ACCOUNTS
            assert pending == 0
            time.sleep(0.5)  # a few more rounds of both workers: still nothing twice
        finally:
            started = time.monotonic()
            for w in workers:
                if w.poll() is None:
                    w.send_signal(signal.SIGTERM)
            for w in workers:
                w.wait(timeout=15)
            outputs = [("", log.read_text()) for log in logs]
            stop_s = time.monotonic() - started
        for w, (_, err) in zip(workers, outputs, strict=True):
            assert w.returncode == 0, err[-3000:]
            assert '"event": "stopped"' in err, err[-3000:]
        # One full pass of the provider today, by whichever worker took its lock first.
        assert sum(err.count('"pass": "full"') for _, err in outputs) == 1
        assert stop_s < 5

        def per(column: object, table: object, *where: object) -> list[int]:
            stmt = select(func.count()).select_from(table).where(*where).group_by(column)  # type: ignore[arg-type]
            with db.engine.connect() as conn:
                return sorted(set(conn.scalars(stmt)))

        assert _count(db, select(func.count()).select_from(EpisodeRow)) == ACCOUNTS
        assert per(EpisodeRow.account_id, EpisodeRow) == [1]
        stage_lines = (HistoryRow.kind == "stage",)
        assert _count(db, select(func.count()).select_from(HistoryRow).where(*stage_lines)) == ACCOUNTS
        assert per(HistoryRow.account_id, HistoryRow, *stage_lines) == [1]
        assert _count(db, select(func.count()).select_from(ProvisioningRequestRow)) == services
        assert per(ProvisioningRequestRow.service_id, ProvisioningRequestRow) == [1]
        # auto_suspend by email: one notice per service.
        assert _count(db, select(func.count()).select_from(NotificationRow)) == services
        assert (
            _count(db, select(func.count()).select_from(ServiceRow).where(ServiceRow.status != "restricted"))
            == 0
        )
    finally:
        db.dispose()
