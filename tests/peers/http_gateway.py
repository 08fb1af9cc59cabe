"""A local HTTP server standing in for an SMS gateway (a JSON API, or Kannel's sendsms).

It records every request and answers with scripted replies (a default otherwise).
`close()` stops the server, hangs up on kept-alive connections and joins every
handler thread.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/plain; charset=utf-8"
    delay: float = 0.0  # seconds to wait before answering (to provoke client timeouts)

    @classmethod
    def json(cls, status: int, data: object, **headers: str) -> Reply:
        return cls(status, json.dumps(data), headers=headers, content_type="application/json")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpGateway:
    def __init__(self, default: Reply | None = None) -> None:
        self.default = default or Reply()
        self.requests: list[Request] = []
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real gateway does
            timeout = 2  # an idle kept-alive connection ends on its own

            def setup(self) -> None:
                super().setup()
                with gateway._lock:
                    gateway._connections.add(self.request)

            def finish(self) -> None:
                with gateway._lock:
                    gateway._connections.discard(self.request)
                super().finish()

            def do_GET(self) -> None:
                gateway._handle(self)

            def do_POST(self) -> None:
                gateway._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = False  # so server_close() joins the handler threads
        self.host = "127.0.0.1"
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    def reply_next(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=2)
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        request = read_request(handler)
        with self._lock:
            self.requests.append(request)
            reply = self._replies.popleft() if self._replies else self.default
        respond(handler, reply)


def read_request(handler: BaseHTTPRequestHandler) -> Request:
    """The request in hand, body read (header names lower-cased)."""
    length = int(handler.headers.get("Content-Length") or 0)
    body = handler.rfile.read(length) if length else b""
    url = urlsplit(handler.path)
    return Request(
        method=handler.command,
        path=url.path,
        query=dict(parse_qsl(url.query, keep_blank_values=True)),
        headers={k.lower(): v for k, v in handler.headers.items()},
        body=body,
    )


def respond(handler: BaseHTTPRequestHandler, reply: Reply) -> bool:
    """Send `reply` (after its delay); False when the client had already given up."""
    if reply.delay:
        handler.close_connection = True  # the client will have timed out: no keep-alive to wait on
        time.sleep(reply.delay)
    payload = reply.body.encode()
    try:
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.content_type)
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)
    except OSError:
        handler.close_connection = True  # the client gave up (a timeout test)
        return False
    return True
