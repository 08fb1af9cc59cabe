"""`arrears users` and `arrears serve` end to end: a user made on the command line signs in to
the console of a real server process, and is locked out once disabled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from api.harness import free_port
from arrears.engine.inputs import create_provider
from arrears.store.db import Database

from .harness import hidden

PASSWORD = "a long enough password"


def arrears(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ARREARS_DATABASE_URL", "ARREARS_PLATFORM_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "arrears", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def _sign_in(base: str, username: str) -> httpx.Response:
    with httpx.Client(base_url=base, timeout=30, follow_redirects=True) as c:
        form = c.get("/login")
        return c.post(
            "/login",
            data={"username": username, "password": PASSWORD, "csrf_token": hidden(form.text, "csrf_token")},
        )


def test_users_made_on_the_command_line_sign_in_to_a_served_console(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/arrears.db"
    assert arrears("db", "upgrade", "--database-url", url).returncode == 0
    db = Database(url)
    with db.transaction() as s:
        create_provider(s, key="acme", timezone="Australia/Sydney", currency="AUD", now=datetime.now(UTC))
    db.dispose()

    made = arrears(
        "users", "create", "olivia", "--provider", "acme", "--role", "operator", "--password-stdin",
        "--database-url", url, stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "created operator olivia of provider acme" in made.stdout
    again = arrears(
        "users",
        "create",
        "olivia",
        "--provider",
        "acme",
        "--password-stdin",
        "--database-url",
        url,
        stdin=PASSWORD,
    )
    assert again.returncode == 2 and "USERNAME: 'olivia' exists already" in again.stderr
    short = arrears(
        "users", "create", "sam", "--platform", "--password-stdin", "--database-url", url, stdin="short"
    )
    assert short.returncode == 2 and "--password: must be at least 10 characters" in short.stderr
    bad_role = arrears("users", "create", "sam", "--platform", "--role", "boss", "--database-url", url)
    assert bad_role.returncode == 2 and "--role" in bad_role.stderr
    listed = arrears("users", "list", "--json", "--database-url", url)
    assert [
        (u["username"], u["provider"], u["role"], u["disabled_at"]) for u in json.loads(listed.stdout)
    ] == [("olivia", "acme", "operator", None)]

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "arrears", "serve", "--port", str(port), "--database-url", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/login", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        signed_in = _sign_in(base, "olivia")
        assert signed_in.status_code == 200 and "Dashboard" in signed_in.text  # followed the redirect
        assert httpx.get(f"{base}/api/v1/openapi.json").status_code == 200

        disabled = arrears("users", "disable", "olivia", "--database-url", url)
        assert disabled.returncode == 0 and "disabled olivia" in disabled.stdout
        assert _sign_in(base, "olivia").status_code == 401
        assert arrears("users", "disable", "nobody", "--database-url", url).returncode == 2
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
