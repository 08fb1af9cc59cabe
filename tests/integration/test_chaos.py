"""Chaos: several workers on PostgreSQL suspend and then restore every account while
they are killed with SIGKILL at random, and the network's webhook fails a third of
its calls. At the end, from what the peers actually received:

    requests: N, duplicates: 0, lost: 0, notices: N, duplicate notices: 0

`make chaos` runs it large (ARREARS_CHAOS_ACCOUNTS); `make test` runs it small.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from arrears.bench import Mix, populate
from arrears.channels.base import message_id
from arrears.engine.inputs import Inputs
from arrears.provisioning.service import set_route
from arrears.store.db import Database
from arrears.store.migrate import ensure_schema
from arrears.store.tables import (
    AccountRow,
    InvoiceRow,
    NotificationRow,
    ProviderRow,
    ProvisioningRequestRow,
    ServiceRow,
)
from peers.network import Network
from peers.smtp_server import RecordingHandler, smtp_server

pytestmark = pytest.mark.postgres

ACCOUNTS = int(os.environ.get("ARREARS_CHAOS_ACCOUNTS", "150"))
WORKERS = 3
SECRET = "chaos-webhook-secret-0123456789"
RULES = {"min_overdue_amount": "50.00", "min_overdue_days": 14, "restore_threshold": "10.00"}
OVERDUE_ONLY = Mix(past_rules=1.0, excluded_group=0.0, disputed=0.0, not_yet_due=0.0)
NOTICE_FINAL = ("sent", "uncertain", "failed", "skipped", "cancelled")


class Crew:
    """WORKERS worker processes, one killed with SIGKILL and replaced now and then."""

    def __init__(self, url: str, smtp_port: int, logs: Path, rng: random.Random):
        self.url, self.smtp_port, self.logs, self.rng = url, smtp_port, logs, rng
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log_of: dict[int, Path] = {}
        self.kills = 0
        self.started = 0

    def spawn(self) -> None:
        self.started += 1
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "ARREARS_SMTP_URL": f"smtp://127.0.0.1:{self.smtp_port}?starttls=false&timeout=5",
            "ARREARS_DELIVERY_CLAIM": "2",
            "ARREARS_SCAN_BATCH": "25",
            "ARREARS_PROVISIONING_FIRST_RETRY": "0.3",
            "ARREARS_OPS_PORT": "-1",
        }
        path = self.logs / f"worker-{self.started}.log"
        with path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "arrears", "worker", "--interval", "0.3", "--database-url", self.url],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
            )
        self.procs.append(proc)
        self.log_of[proc.pid] = path

    def run(self, done: Callable[[], bool], *, kills: int, timeout: float) -> None:
        while len(self.procs) < WORKERS:
            self.spawn()
        deadline = time.monotonic() + timeout
        left = kills
        while time.monotonic() < deadline and not done():
            time.sleep(self.rng.uniform(0.4, 1.5))
            if left > 0:
                victim = self.procs.pop(self.rng.randrange(len(self.procs)))
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                self.kills += 1
                left -= 1
                self.spawn()
        assert done(), "the work was not finished in time"

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            p.wait(timeout=30)
            # One still starting up (no signal handler yet) dies of the signal; any other stops cleanly.
            started = '"event": "started"' in self.log_of[p.pid].read_text()
            assert p.returncode == 0 or not started, "a worker did not stop gracefully"
        self.procs = []


def count(db: Database, stmt: object) -> int:
    with db.engine.connect() as conn:
        return int(conn.scalar(stmt) or 0)  # type: ignore[call-overload]


def settled(db: Database, status: str) -> bool:
    """Every account in `status`, every request final, every notice delivered or decided."""
    with db.engine.connect() as conn:
        accounts = dict(
            conn.execute(select(AccountRow.status, func.count()).group_by(AccountRow.status)).all()
        )
        requests = dict(
            conn.execute(
                select(ProvisioningRequestRow.state, func.count()).group_by(ProvisioningRequestRow.state)
            ).all()
        )
        notices = dict(
            conn.execute(select(NotificationRow.state, func.count()).group_by(NotificationRow.state)).all()
        )
    return (
        set(accounts) == {status}
        and set(requests) <= {"confirmed", "cancelled", "failed"}
        and set(notices) <= set(NOTICE_FINAL)
    )


def pay_everyone(db: Database, provider_id: int) -> None:
    now = datetime.now(UTC)
    with db.engine.connect() as conn:
        owing = conn.execute(
            select(AccountRow.ext_id, func.sum(InvoiceRow.balance))
            .join(InvoiceRow, InvoiceRow.account_id == AccountRow.id)
            .where(AccountRow.provider_id == provider_id, InvoiceRow.status == "open")
            .group_by(AccountRow.ext_id)
        ).all()
    for i in range(0, len(owing), 25):
        with db.transaction() as s:
            inputs = Inputs.open(s, provider_id, now)
            for ext_id, amount in owing[i : i + 25]:
                assert isinstance(amount, Decimal)
                inputs.put_payment({"id": f"PAY-{ext_id}", "account": ext_id, "amount": f"{amount:.2f}"})
            inputs.settle()


def test_killed_workers_and_a_flaky_network_lose_and_repeat_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    ensure_schema(postgres_url)
    db = Database(postgres_url)
    rng = random.Random(os.environ.get("ARREARS_CHAOS_SEED", "11"))
    try:
        now = datetime.now(UTC)
        pid = populate(db, ACCOUNTS, now=now, mix=OVERDUE_ONLY, rules=RULES, key="chaos")
        with Network(SECRET, fail_every=3) as net, smtp_server(RecordingHandler()) as smtp:
            with db.transaction() as s:
                provider = s.get_one(ProviderRow, pid)
                config = {"url": f"http://{net.netloc}/provision", "secret": SECRET, "timeout": 5}
                set_route(s, provider, "*", "webhook", config, actor="test", now=now)
            crew = Crew(postgres_url, smtp.port, tmp_path, rng)
            try:
                crew.run(lambda: settled(db, "suspended"), kills=4, timeout=180)
                pay_everyone(db, pid)
                crew.run(lambda: settled(db, "active"), kills=4, timeout=180)
            finally:
                crew.stop()
            received = Counter(r.message_id for r in smtp.handler.received)

        with db.engine.connect() as conn:
            requests = conn.execute(
                select(ProvisioningRequestRow.key, ProvisioningRequestRow.state, ServiceRow.ext_id).join(
                    ServiceRow, ServiceRow.id == ProvisioningRequestRow.service_id
                )
            ).all()
            services = dict(conn.execute(select(ServiceRow.ext_id, ServiceRow.status)).all())
            notices = conn.execute(
                select(NotificationRow.key, NotificationRow.state).where(NotificationRow.channel == "email")
            ).all()
        confirmed = [key for key, state, _ in requests if state == "confirmed"]
        lost = [key for key in confirmed if net.applied[key] == 0]
        duplicates = sum(n - 1 for n in net.applied.values() if n > 1)
        ids = {message_id(key, "arrears@localhost"): state for key, state in notices}
        duplicate_notices = sum(n - 1 for n in received.values() if n > 1)
        lost_notices = [mid for mid, state in ids.items() if received[mid] == 0 and state != "uncertain"]
        uncertain = sum(1 for state in ids.values() if state == "uncertain")
        print(
            f"\nrequests: {len(requests)}, duplicates: {duplicates}, lost: {len(lost)}, "
            f"notices: {len(ids)}, duplicate notices: {duplicate_notices}"
            f"\n(kills: {crew.kills}; network calls: {net.calls}, failed on purpose: {net.failed}, "
            f"repeats absorbed by idempotency keys: {net.repeats}; notices uncertain: {uncertain})"
        )
        assert crew.kills == 8
        assert net.failed > 0 and net.bad_signatures == 0
        assert duplicates == 0
        assert lost == []
        assert all(state in ("confirmed", "cancelled") for _, state, _ in requests)
        # Every service ends as arrears says, and the network's last word agrees.
        assert set(services.values()) == {"active"}
        assert all(acts[-1] == "restore" for acts in net.actions.values())
        assert len(net.actions) == len(services)
        assert duplicate_notices == 0
        assert lost_notices == []
        assert len(ids) >= 2 * len(services)  # a suspension and a restoration notice per service
    finally:
        db.dispose()
