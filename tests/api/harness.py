"""A real server for the API tests: uvicorn in a thread on a free port, and helpers to talk to it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from arrears.api import create_app
from arrears.api.auth import RateLimit
from arrears.config import parse_mappings
from arrears.engine.inputs import Inputs
from arrears.store.db import Database
from arrears.store.migrate import ensure_schema

# Monday 2 March 2026, 12:00 in Sydney (AEDT, +11:00).
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
PLATFORM_KEY = "arr_platform-test-key-from-the-environment"
# Plenty for any test but the rate limit's own.
NO_LIMIT = RateLimit(per_second=1000.0, burst=100_000)


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """Serve `app` on a free port until the block ends; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@dataclass
class Api:
    """A running API with its database and clock, and clients for its keys."""

    url: str
    db: Database
    clock: Clock
    _clients: list[httpx.Client] = field(default_factory=list)

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        c = httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=30)
        self._clients.append(c)
        return c

    @property
    def platform(self) -> httpx.Client:
        return self.client(PLATFORM_KEY)

    def provider(self, key: str, *, rules: bool = True, **fields: Any) -> tuple[int, httpx.Client]:
        """A new provider (via the API) and a client with its first key; with `rules`, rules that
        suspend after 14 days over 50.00 and restore at 10.00, both switched on."""
        body = {"key": key, "name": key.upper(), "timezone": "Australia/Sydney", "currency": "AUD", **fields}
        r = self.platform.post("/providers", json=body)
        assert r.status_code == 201, r.text
        pid = int(r.json()["id"])
        if rules:
            self.configure(pid)
        return pid, self.client(r.json()["api_key"])

    def configure(self, provider_id: int, **rule_fields: Any) -> None:
        # Underneath, so each test starts configured; the endpoints have their own tests.
        with self.db.transaction() as s:
            inputs = Inputs.open(s, provider_id, self.clock())
            inputs.put_rule_set(
                {
                    "min_overdue_amount": "50.00",
                    "min_overdue_days": 14,
                    "restore_threshold": "10.00",
                    **rule_fields,
                }
            )
            events = {"auto_suspend": {"channels": ["note"]}, "auto_unsuspend": {"channels": ["note"]}}
            inputs.put_mappings(parse_mappings(events, sms=False, since=self.clock()))

    def close(self) -> None:
        for c in self._clients:
            c.close()


@contextmanager
def api_on(url: str, rate_limit: RateLimit = NO_LIMIT, **options: Any) -> Iterator[Api]:
    ensure_schema(url)
    db = Database(url)
    clock = Clock()
    app = create_app(db, platform_key=PLATFORM_KEY, clock=clock, rate_limit=rate_limit, **options)
    with running(app) as base:
        api = Api(base, db, clock)
        try:
            yield api
        finally:
            api.close()
    db.dispose()


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    """The response's problem details, checked to be RFC 9457 with this status."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["title"] and "type" in body, body
    return body


def fields(r: httpx.Response) -> dict[str, str]:
    """{field: message} of a 422 problem."""
    return {e["field"]: e["message"] for e in problem(r, 422)["errors"]}
