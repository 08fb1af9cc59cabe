"""`arrears keys` and `arrears serve` end to end: the real command line and a real server process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .harness import free_port


def arrears(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arrears", *args], capture_output=True, text=True, timeout=60, env=_env()
    )


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("ARREARS_DATABASE_URL", "ARREARS_PLATFORM_KEY")}


def test_a_platform_key_from_the_cli_drives_a_served_api(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/arrears.db"
    made = arrears("keys", "create", "--platform", "--name", "ops", "--database-url", url)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("arr_") and "shown only now" in made.stderr
    assert arrears("keys", "create", "--database-url", url).returncode == 2  # neither kind

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "arrears", "serve", "--port", str(port), "--database-url", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/openapi.json").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        platform = {"Authorization": f"Bearer {key}"}
        r = httpx.post(
            f"{base}/providers",
            json={"key": "acme", "timezone": "Australia/Sydney", "currency": "AUD"},
            headers=platform,
        )
        assert r.status_code == 201, r.text
        provider = {"Authorization": f"Bearer {r.json()['api_key']}"}
        assert httpx.put(f"{base}/accounts/A1", json={}, headers=provider).status_code == 200

        listed = arrears("keys", "list", "--json", "--database-url", url)
        keys = json.loads(listed.stdout)
        assert [(k["name"], k["provider"]) for k in keys] == [("ops", None), ("first key", "acme")]
        made = arrears("keys", "create", "--provider", "acme", "--database-url", url)
        assert made.returncode == 0 and made.stdout.startswith("arr_")
        # Revoked from the command line: refused by the running server at once.
        assert arrears("keys", "revoke", keys[1]["prefix"], "--database-url", url).returncode == 0
        assert httpx.get(f"{base}/provider", headers=provider).status_code == 401
        extra = {"Authorization": f"Bearer {made.stdout.strip()}"}
        assert httpx.get(f"{base}/provider", headers=extra).json()["key"] == "acme"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert code == 0, server.stderr.read() if server.stderr else ""
