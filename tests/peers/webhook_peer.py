"""A local HTTP server standing in for a provider's provisioning webhook.

It checks every request's `Arrears-Signature` with `arrears.provisioning.webhook.verify`
(a bad one is answered 401 and kept in `rejected`, not `requests`), answers with
scripted replies (a default otherwise), can fail every Nth signed call, and after a
202 can call back a URL with a signed callback, as a real asynchronous peer does.
`close()` stops the server and joins every handler thread (callbacks included).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler

import httpx

from arrears.provisioning.webhook import (
    DEFAULT_TOLERANCE,
    SIGNATURE_HEADER,
    SignatureError,
    sign,
    utcnow,
    verify,
)
from peers.http_gateway import HttpGateway, Reply, Request, read_request, respond

__all__ = ["Reply", "Request", "SentCallback", "WebhookPeer"]


@dataclass(frozen=True)
class SentCallback:
    body: bytes
    status: int | None  # the receiver's answer, or None when it could not be reached
    error: str | None = None


class WebhookPeer(HttpGateway):
    def __init__(
        self,
        secret: str | Sequence[str],
        default: Reply | None = None,
        *,
        fail_every: int = 0,  # answer every Nth correctly signed call with `failure`
        failure: Reply | None = None,
        callback_url: str | None = None,  # after a 202, POST a signed callback here
        callback_state: str = "confirmed",
        callback_detail: str = "",
        callback_secret: str | None = None,  # sign callbacks with another secret (default: the first)
        clock: Callable[[], datetime] = utcnow,
        tolerance: timedelta = DEFAULT_TOLERANCE,
    ) -> None:
        # Set before the server starts (in HttpGateway.__init__): handlers read them.
        self.secrets = [secret] if isinstance(secret, str) else list(secret)
        self.fail_every = fail_every
        self.failure = failure or Reply(503, "overloaded, try later", headers={"Retry-After": "7"})
        self.callback_url = callback_url
        self.callback_state = callback_state
        self.callback_detail = callback_detail
        self.callback_secret = callback_secret or self.secrets[0]
        self.clock = clock
        self.tolerance = tolerance
        self.rejected: list[tuple[Request, str]] = []  # (request, why its signature was refused)
        self.callbacks: list[SentCallback] = []
        self._signed_calls = 0
        super().__init__(default or Reply.json(200, {"id": "net-1"}))

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        request = read_request(handler)
        body = request.body
        error = self._check(handler.headers.get(SIGNATURE_HEADER), body)
        with self._lock:
            if error is not None:
                self.rejected.append((request, error))
                reply = Reply(401, f"bad signature: {error}")
            else:
                self.requests.append(request)
                self._signed_calls += 1
                if self.fail_every and self._signed_calls % self.fail_every == 0:
                    reply = self.failure
                else:
                    reply = self._replies.popleft() if self._replies else self.default
        if respond(handler, reply) and error is None and reply.status == 202 and self.callback_url:
            self._call_back(self.callback_url, request)

    def _check(self, header: str | None, body: bytes) -> str | None:
        if header is None:
            return f"missing {SIGNATURE_HEADER} header"
        try:
            verify(header, body, self.secrets, self.clock(), self.tolerance)
        except SignatureError as exc:
            return exc.reason
        return None

    def _call_back(self, url: str, request: Request) -> None:
        call = request.json()
        payload = {"request_id": call["request_id"], "key": call["key"], "state": self.callback_state}
        if self.callback_detail:
            payload["detail"] = self.callback_detail
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, self.callback_secret, self.clock()),
        }
        try:
            with httpx.Client(timeout=2) as client:
                status: int | None = client.post(url, content=body, headers=headers).status_code
            sent = SentCallback(body, status)
        except httpx.HTTPError as exc:
            sent = SentCallback(body, None, f"{type(exc).__name__}: {exc}")
        with self._lock:
            self.callbacks.append(sent)
