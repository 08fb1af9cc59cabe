"""The worker as an operator runs it: health and metrics, a payment's restore started by
LISTEN/NOTIFY rather than the next poll, and the database going away and coming back.

PostgreSQL only: that is the production path these belong to.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from arrears.bench import Mix, populate
from arrears.bootstrap import provisioning_dispatcher
from arrears.engine.inputs import Inputs
from arrears.engine.scan import full_pass
from arrears.engine.service import run_provisioning
from arrears.store.db import Database
from arrears.store.migrate import ensure_schema
from arrears.store.tables import AccountRow, InvoiceRow, ProvisioningRequestRow
from peers.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres

RULES = {"min_overdue_amount": "50.00", "min_overdue_days": 14, "restore_threshold": "10.00"}
OVERDUE_ONLY = Mix(past_rules=1.0, excluded_group=0.0, disputed=0.0, not_yet_due=0.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def worker(url: str, *, interval: float, ops_port: int, log: Path) -> Iterator[subprocess.Popen[str]]:
    """A worker process; its log (JSON lines) goes to `log`, never to a pipe it could fill."""
    out = log.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "arrears",
            "worker",
            "--interval",
            str(interval),
            "--database-url",
            url,
            "--ops-port",
            str(ops_port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=out,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        out.close()


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_for(condition: object, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


def healthy(port: int) -> bool:
    try:
        return get(port, "/healthz")[0] == 200
    except OSError:
        return False


def suspended_world(db: Database, accounts: int) -> int:
    now = datetime.now(UTC)
    pid = populate(db, accounts, now=now, mix=OVERDUE_ONLY, rules=RULES, key="rt")
    full_pass(db, now, pid)
    run_provisioning(db, provisioning_dispatcher(), now)
    return pid


def pay_everything(db: Database, pid: int) -> str:
    """A payment that clears one suspended account, committed here (as the API would)."""
    with db.transaction() as s:
        account = s.scalars(
            select(AccountRow).where(AccountRow.provider_id == pid, AccountRow.status == "suspended").limit(1)
        ).one()
        owing = s.scalar(
            select(func.sum(InvoiceRow.balance)).where(
                InvoiceRow.account_id == account.id, InvoiceRow.status == "open"
            )
        )
        assert isinstance(owing, Decimal)
        inputs = Inputs.open(s, pid, datetime.now(UTC))
        inputs.put_payment(
            {"id": f"PAY-{account.ext_id}", "account": account.ext_id, "amount": f"{owing:.2f}"}
        )
        inputs.settle()
        return account.ext_id


def restore_confirmed(db: Database, ext_id: str) -> bool:
    with db.engine.connect() as conn:
        states = conn.scalars(
            select(ProvisioningRequestRow.state)
            .join(AccountRow, AccountRow.id == ProvisioningRequestRow.account_id)
            .where(AccountRow.ext_id == ext_id, ProvisioningRequestRow.action == "restore")
        ).all()
    return bool(states) and all(s == "confirmed" for s in states)


def test_health_metrics_and_a_payment_restored_at_once(postgres_url: str, tmp_path: Path) -> None:
    ensure_schema(postgres_url)
    db = Database(postgres_url)
    try:
        pid = suspended_world(db, 30)
        port = free_port()
        # A minute between polls: only LISTEN/NOTIFY can make the restore quick.
        with worker(postgres_url, interval=60, ops_port=port, log=tmp_path / "worker.log") as proc:
            wait_for(lambda: healthy(port), 30, "healthy")
            status, body = get(port, "/healthz")
            assert status == 200 and json.loads(body)["status"] == "ok"
            status, metrics = get(port, "/metrics")
            assert status == 200
            assert "arrears_scan_duration_seconds_count" in metrics
            assert "arrears_worker_ticks_total" in metrics
            assert 'arrears_notifications_queued{channel="email",state="pending"}' in metrics
            assert get(port, "/nothing")[0] == 404

            time.sleep(1.0)  # the worker is now waiting for its next poll, a minute away
            ext_id = pay_everything(db, pid)
            # Within 15 s, a quarter of the poll interval: only the NOTIFY can explain it.
            wait_for(lambda: restore_confirmed(db, ext_id), 15, "restore confirmed")
            assert proc.poll() is None
        assert proc.returncode == 0
    finally:
        db.dispose()


def test_the_database_going_away_and_coming_back(postgres_url: str, tmp_path: Path) -> None:
    ensure_schema(postgres_url)
    db = Database(postgres_url)
    url = make_url(postgres_url)
    try:
        pid = suspended_world(db, 20)
        with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
            through_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
            port = free_port()
            interval = 0.5
            log = tmp_path / "worker.log"
            with worker(through_proxy, interval=interval, ops_port=port, log=log) as proc:
                wait_for(lambda: healthy(port), 30, "healthy")
                proxy.cut()
                away = 6.0
                time.sleep(away)
                assert proc.poll() is None, "the worker exited while the database was away"
                proxy.restore()
                # Work committed while it was away is done once it is back.
                ext_id = pay_everything(db, pid)
                wait_for(lambda: restore_confirmed(db, ext_id), 30, "restore after the database returned")
                assert proc.poll() is None
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        failures = [line for line in lines if line.get("event") == "pass_failed"]
        assert failures, "the outage went unnoticed"
        # Not a crash loop: failed rounds come at most once per interval (and a few reconnects).
        assert len(failures) <= away / interval + 4
        assert proc.returncode == 0
    finally:
        db.dispose()
