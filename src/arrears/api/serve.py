"""`arrears serve`: the API on uvicorn, configured from the environment."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from arrears.api.app import MAX_BODY, create_app
from arrears.api.auth import RateLimit
from arrears.api.imports import MAX_IMPORT_BODY
from arrears.store.db import Database


def rate_limit_from_env() -> RateLimit:
    """$ARREARS_API_RATE requests per second per key, bursts of $ARREARS_API_BURST."""
    default = RateLimit()
    return RateLimit(
        per_second=float(os.environ.get("ARREARS_API_RATE", default.per_second)),
        burst=int(os.environ.get("ARREARS_API_BURST", default.burst)),
    )


def app_from_env(db: Database) -> FastAPI:
    """The API under /api/v1 and the web console at / (arrears.web)."""
    from arrears.web import install

    app = create_app(
        db,
        platform_key=os.environ.get("ARREARS_PLATFORM_KEY") or None,
        rate_limit=rate_limit_from_env(),
        max_body=int(os.environ.get("ARREARS_API_MAX_BODY", MAX_BODY)),
        max_import_body=int(os.environ.get("ARREARS_API_MAX_IMPORT_BODY", MAX_IMPORT_BODY)),
    )
    install(app, db)
    return app


class _Server(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        """As uvicorn's, except that a graceful stop exits 0 (as the worker does) instead of
        raising the signal again once the server has shut down."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(db: Database, host: str, port: int) -> int:
    """Serve until SIGTERM/SIGINT (uvicorn finishes the requests in hand, then returns)."""
    from arrears.worker import prepare_schema

    prepare_schema(db)
    app = app_from_env(db)
    config = uvicorn.Config(
        app, host=host, port=port, log_level=os.environ.get("ARREARS_LOG_LEVEL", "info").lower()
    )
    _Server(config).run()
    return 0
