"""Request size limits, and the record of writes that failed (successful ones record themselves)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arrears.api.auth import Principal
from arrears.api.context import WRITE_METHODS, ApiState, record_write
from arrears.api.problems import MEDIA_TYPE

log = logging.getLogger("arrears.api")


class ApiMiddleware:
    """Pure ASGI, so it sees the status of every response, including those of exception handlers."""

    def __init__(self, app: ASGIApp, state: ApiState, max_body: int, limits: Mapping[str, int] | None = None):
        self.app = app
        self.state = state
        self.max_body = max_body
        # Paths allowed a body limit of their own (bulk import takes files larger than any record).
        self.limits = dict(limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Shared with `request.state` downstream: the auth dependency leaves the principal here.
        request_state: dict[str, Any] = scope.setdefault("state", {})
        limit = self.limits.get(scope["path"], self.max_body)
        length = _content_length(scope)
        if length is not None and length > limit:
            await _too_large(send, limit)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # FastAPI passes an HTTPException raised while reading the body through as is.
                    raise HTTPException(413, f"the request body is larger than {limit} bytes")
            return message

        status = 500

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, limited_receive, watching_send)
        finally:
            if scope["method"] in WRITE_METHODS and not request_state.get("write_recorded"):
                principal = request_state.get("principal")
                if isinstance(principal, Principal):
                    await run_in_threadpool(self._record, principal, scope, status)

    def _record(self, principal: Principal, scope: Scope, status: int) -> None:
        try:
            with self.state.db.transaction() as session:
                record_write(session, principal, scope["method"], scope["path"], status, self.state.clock())
        except Exception:  # the answer stands even when its record cannot be written
            log.exception("could not record a failed write")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "Content Too Large",
            "status": 413,
            "detail": f"the request body is larger than {limit} bytes",
            "errors": [],
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
