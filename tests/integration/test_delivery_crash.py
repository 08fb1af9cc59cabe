"""Workers killed with SIGKILL at random moments while they decide and deliver notices.

A real SMTP server in this process receives what the workers send. At the end,
from what the server actually received: no notice twice, and none lost without
trace (a notice whose send was cut off after the irrevocable step is
`uncertain`, for an operator; everything else arrives exactly once).

ARREARS_CRASH_ACCOUNTS sets the size (about 1.5 notices per account).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from arrears.bench import Mix, populate
from arrears.bootstrap import provisioning_dispatcher
from arrears.channels.base import message_id
from arrears.engine.scan import full_pass
from arrears.engine.service import run_provisioning
from arrears.store.db import Database
from arrears.store.migrate import ensure_schema
from arrears.store.tables import NotificationRow
from peers.smtp_server import RecordingHandler, smtp_server

ACCOUNTS = int(os.environ.get("ARREARS_CRASH_ACCOUNTS", "800"))
RULES = {"min_overdue_amount": "50.00", "min_overdue_days": 14, "restore_threshold": "10.00"}
OVERDUE_ONLY = Mix(past_rules=1.0, excluded_group=0.0, disputed=0.0, not_yet_due=0.0)
FINAL = ("sent", "uncertain", "failed", "skipped")


def _worker(url: str, smtp_port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "ARREARS_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}?starttls=false&timeout=5",
        # Short claims, so a killed worker's notices are reconciled within the test.
        "ARREARS_DELIVERY_CLAIM": "2",
        "ARREARS_SCAN_BATCH": "200",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "arrears", "worker", "--interval", "0.2", "--database-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def _done(db: Database) -> bool:
    states = _states(db)
    return sum(states.values()) > 0 and all(s in FINAL for s in states)


def _states(db: Database) -> Counter[str]:
    with db.engine.connect() as conn:
        rows = conn.execute(select(NotificationRow.state, func.count()).group_by(NotificationRow.state))
        return Counter({state: n for state, n in rows})


@pytest.mark.postgres
def test_killed_workers_deliver_every_notice_once(postgres_url: str) -> None:
    ensure_schema(postgres_url)
    db = Database(postgres_url)
    rng = random.Random(os.environ.get("ARREARS_CRASH_SEED", "7"))
    kills = 0
    try:
        now = datetime.now(UTC)
        populate(db, ACCOUNTS, now=now, mix=OVERDUE_ONLY, rules=RULES, key="crash")
        # The suspensions and their notices, decided here so the workers' lives go to delivery.
        full_pass(db, now, None)
        run_provisioning(db, provisioning_dispatcher(), now)
        with smtp_server(RecordingHandler()) as server:
            deadline = time.monotonic() + 120
            # Kill each worker at a random moment once it is sending, until 8 have died
            # (or everything is delivered: then the last worker below has nothing to do).
            while kills < 8 and time.monotonic() < deadline and not _done(db):
                worker = _worker(postgres_url, server.port)
                started = len(server.handler.received)
                while len(server.handler.received) == started and worker.poll() is None:
                    if time.monotonic() > deadline or _done(db):
                        break
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.0, 1.0))
                if worker.poll() is None:
                    worker.send_signal(signal.SIGKILL)
                    kills += 1
                worker.wait()
            last = _worker(postgres_url, server.port)
            try:
                while time.monotonic() < deadline and not _done(db):
                    assert last.poll() is None, "the last worker died"
                    time.sleep(0.3)
            finally:
                last.send_signal(signal.SIGTERM)
                last.wait(timeout=15)
            received = [r.message_id for r in server.handler.received]

        with db.engine.connect() as conn:
            rows = conn.execute(
                select(NotificationRow.key, NotificationRow.state).where(NotificationRow.channel == "email")
            ).all()
        counts = Counter(received)
        expected = {message_id(key, "arrears@localhost"): state for key, state in rows}
        duplicates = sum(n - 1 for n in counts.values() if n > 1)
        unknown = [mid for mid in counts if mid not in expected]
        sent_once = sum(1 for mid, state in expected.items() if state == "sent" and counts[mid] == 1)
        sent_missing = [mid for mid, state in expected.items() if state == "sent" and counts[mid] == 0]
        uncertain = [mid for mid, state in expected.items() if state == "uncertain"]
        # Lost: neither received nor flagged for an operator.
        lost = [mid for mid, state in expected.items() if counts[mid] == 0 and state != "uncertain"]
        print(
            f"\nnotices: {len(expected)}, kills: {kills}, delivered once: {sent_once}, "
            f"duplicates: {duplicates}, lost: {len(lost)}, uncertain: {len(uncertain)} "
            f"(of which received: {sum(1 for mid in uncertain if counts[mid])})"
        )
        assert len(expected) >= ACCOUNTS  # every account suspended, a notice per service
        assert kills >= 5
        assert duplicates == 0
        assert unknown == []
        assert sent_missing == []
        assert lost == []
        assert set(_states(db)) <= {"sent", "uncertain"}
        # Everything but the few cut off at the irrevocable step arrived exactly once.
        assert sent_once + len(uncertain) == len(expected)
        assert len(uncertain) <= kills
    finally:
        db.dispose()
