"""`arrears run`: the API and the worker in one process, on SQLite and on PostgreSQL.

Configured and fed only through the API: an overdue invoice suspends an
account; a payment restores it within a second of being sent (the write
re-evaluates the account at once), and the network change (provisioning) is
carried out within seconds, although the worker polls only once a minute.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

PLATFORM_KEY = "arr_platform_for_the_run_test_0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


def test_api_and_worker_in_one_process(tmp_path: Path, database_url: str) -> None:
    url = database_url
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "ARREARS_DATABASE_URL"}
    env.update(ARREARS_PLATFORM_KEY=PLATFORM_KEY, ARREARS_OPS_PORT="-1", PYTHONUNBUFFERED="1")
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "arrears",
            "run",
            "--port",
            str(port),
            "--interval",
            "60",
            "--database-url",
            url,
        ],
        stdout=log,
        stderr=log,
        env=env,
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:

        def up() -> bool:
            try:
                return httpx.get(f"{base}/openapi.json").status_code == 200
            except httpx.TransportError:
                assert proc.poll() is None, (tmp_path / "run.log").read_text()
                return False

        wait_until(up, 30, "the API answering")
        platform = {"Authorization": f"Bearer {PLATFORM_KEY}"}
        r = httpx.post(
            f"{base}/providers", json={"key": "isp", "timezone": "UTC", "currency": "EUR"}, headers=platform
        )
        assert r.status_code == 201, r.text
        key = {"Authorization": f"Bearer {r.json()['api_key']}"}

        rules = {"min_overdue_amount": "50.00", "min_overdue_days": 14, "restore_threshold": "0"}
        assert httpx.put(f"{base}/rule-sets/default", json=rules, headers=key).status_code == 200
        for event in ("auto_suspend", "auto_unsuspend"):
            r = httpx.put(f"{base}/event-mappings/{event}", json={"channels": ["note"]}, headers=key)
            assert r.status_code == 200, r.text

        account = {"services": [{"id": "S1", "type": "fibre"}]}
        assert httpx.put(f"{base}/accounts/A1", json=account, headers=key).status_code == 200
        invoice = {
            "account": "A1",
            "amount": "75.00",
            "due": "2026-01-01",
            "issued_at": "2025-12-01T00:00:00Z",
        }
        assert httpx.put(f"{base}/invoices/I1", json=invoice, headers=key).status_code == 200

        def state() -> dict[str, Any]:
            body = httpx.get(f"{base}/accounts/A1", headers=key).json()
            [service] = body["services"]
            return {
                "status": body["status"],
                "service": service["status"],
                "pending": service["pending_provisioning"],
            }

        assert state()["status"] == "suspended"
        wait_until(lambda: state()["pending"] == [], 15, "the suspension provisioned")

        payment = {"account": "A1", "amount": "75.00"}
        sent = time.monotonic()
        assert httpx.put(f"{base}/payments/P1", json=payment, headers=key).status_code == 200
        after = state()
        restored_in = time.monotonic() - sent
        assert after["status"] == "active" and after["service"] == "active"
        assert restored_in < 1.0, f"restored {restored_in:.2f} s after the payment was sent"
        # Within 15 s, not the minute-long poll: the worker was woken by the commit.
        wait_until(lambda: state()["pending"] == [], 15, "the restore provisioned")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "run.log").read_text()[-3000:]
