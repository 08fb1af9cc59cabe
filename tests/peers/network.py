"""A provider's network behind a provisioning webhook, for the chaos test.

It verifies each call's signature, fails every Nth call (as a flaky network
does), and applies each request *once per idempotency key*: a repeat of an
applied key is answered 200 again without applying twice, as the webhook
contract asks of peers. It keeps what it applied, per service, in order.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler

from arrears.provisioning.webhook import SIGNATURE_HEADER, SignatureError, utcnow, verify
from peers.http_gateway import HttpGateway, Reply, respond


class Network(HttpGateway):
    def __init__(self, secret: str, *, fail_every: int = 3) -> None:
        self.secret = secret
        self.fail_every = fail_every
        self.calls = 0
        self.failed = 0  # calls answered 503 on purpose
        self.bad_signatures = 0
        self.repeats = 0  # calls for a key already applied: absorbed, not applied again
        self.applied: Counter[str] = Counter()  # key -> times applied (must stay 1)
        self.actions: dict[str, list[str]] = defaultdict(list)  # service -> actions applied, in order
        super().__init__(Reply.json(200, {"id": "applied"}))
        # Workers killed mid-call reset their connections: expected here, not worth a traceback.
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        if len(body) < length:
            return  # the worker was killed mid-request: nothing arrived to answer (or to verify)
        try:
            verify(handler.headers.get(SIGNATURE_HEADER) or "", body, self.secret, utcnow())
        except SignatureError as exc:
            with self._lock:
                self.bad_signatures += 1
            respond(handler, Reply(401, f"bad signature: {exc.reason}"))
            return
        call = json.loads(body)
        with self._lock:
            self.calls += 1
            if self.fail_every and self.calls % self.fail_every == 0:
                self.failed += 1
                reply = Reply(503, "network busy", headers={"Retry-After": "1"})
            elif self.applied[call["key"]]:
                self.repeats += 1
                reply = Reply.json(200, {"id": call["key"], "note": "already applied"})
            else:
                self.applied[call["key"]] += 1
                self.actions[call["service"]].append(call["action"])
                reply = Reply.json(200, {"id": call["key"]})
        respond(handler, reply)
