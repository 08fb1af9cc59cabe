"""The worker's own small HTTP server: /healthz and /metrics.

A thread with the standard library's server: the worker has no web framework
to carry, and a scrape must work even while the worker's loop is busy.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from arrears.ops.metrics import exposition


@dataclass
class Health:
    """What /healthz reports: `healthy()` decides the status code."""

    check: Callable[[], tuple[bool, dict[str, Any]]]


class OpsServer:
    def __init__(self, host: str, port: int, health: Health):
        self.health = health
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/metrics":
                    self._send(200, exposition(), CONTENT_TYPE_LATEST)
                elif self.path.split("?")[0] == "/healthz":
                    ok, details = outer.health.check()
                    body = json.dumps({"status": "ok" if ok else "unhealthy", **details}, default=str)
                    self._send(200 if ok else 503, body.encode(), "application/json")
                else:
                    self._send(404, b'{"error": "not found"}', "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # scrapes every few seconds would drown the worker's own log

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="arrears-ops", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> OpsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
