"""A local HTTP server standing in for a provider's system that receives arrears' webhook events.

It checks each request's `Arrears-Signature` with `arrears.provisioning.webhook.verify`
(a bad one is answered 401 and kept in `rejected`), records every signed event in
arrival order (`events`, repeats included: arrears delivers at least once), and can
be told to answer the next N signed requests with a failure (`fail_next`), or to
answer with scripted replies (`reply_next`). `close()` stops it and joins its threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

from arrears.provisioning.webhook import DEFAULT_TOLERANCE, SIGNATURE_HEADER, SignatureError, utcnow, verify
from peers.http_gateway import HttpGateway, Reply, Request, read_request, respond

__all__ = ["EventReceiver", "Received", "Reply"]


@dataclass(frozen=True)
class Received:
    """One signed request: the event as posted, and what we answered."""

    event: dict[str, Any]
    headers: dict[str, str]  # lower-case names
    status: int

    @property
    def id(self) -> str:
        return str(self.event["id"])


class EventReceiver(HttpGateway):
    def __init__(
        self,
        secret: str | Sequence[str],
        *,
        clock: Callable[[], datetime] = utcnow,
        tolerance: timedelta = DEFAULT_TOLERANCE,
        default: Reply | None = None,
        hold: float = 0.0,  # seconds each request takes (to let two dispatchers overlap)
    ) -> None:
        # Set before the server starts (in HttpGateway.__init__): handlers read them.
        self.secrets = [secret] if isinstance(secret, str) else list(secret)
        self.clock = clock
        self.tolerance = tolerance
        self.hold = hold
        self.received: list[Received] = []
        self.rejected: list[tuple[Request, str]] = []
        self._failures: list[Reply] = []
        super().__init__(default or Reply.json(200, {"received": True}))

    @property
    def url(self) -> str:
        return f"http://{self.netloc}/events"

    def fail_next(self, n: int, reply: Reply | None = None) -> None:
        """Answer the next `n` signed requests with `reply` (default: 503)."""
        with self._lock:
            self._failures.extend([reply or Reply(503, "down for maintenance")] * n)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event taken (2xx), in arrival order, repeats included."""
        with self._lock:
            return [r.event for r in self.received if 200 <= r.status < 300]

    @property
    def attempts(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        request = read_request(handler)
        body = request.body
        error = self._check(handler.headers.get(SIGNATURE_HEADER), body)
        if error is None and self.hold:
            time.sleep(self.hold)
        with self._lock:
            if error is not None:
                self.rejected.append((request, error))
                reply = Reply(401, f"bad signature: {error}")
            else:
                if self._failures:
                    reply = self._failures.pop(0)
                else:
                    reply = self._replies.popleft() if self._replies else self.default
                self.received.append(Received(request.json(), request.headers, reply.status))
        respond(handler, reply)

    def _check(self, header: str | None, body: bytes) -> str | None:
        if header is None:
            return f"missing {SIGNATURE_HEADER} header"
        try:
            verify(header, body, self.secrets, self.clock(), self.tolerance)
        except SignatureError as exc:
            return exc.reason
        return None
