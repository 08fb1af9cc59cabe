"""The REST API (SPEC §10) under /api/v1: `create_app` builds it on a `Database`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from arrears.api import activity, billing, configuration, problems, providers, provisioning, webhooks
from arrears.api.auth import RateLimit, RateLimiter
from arrears.api.context import ApiState, utcnow
from arrears.api.imports import MAX_IMPORT_BODY
from arrears.api.imports import PATH as IMPORT_PATH
from arrears.api.imports import router as import_router
from arrears.api.middleware import ApiMiddleware
from arrears.api.views import BadCursor
from arrears.store.db import Database

PREFIX = "/api/v1"
# Large enough for any single record; bulk import may take more on its own route.
MAX_BODY = 1024 * 1024

DESCRIPTION = """
The billing feed and management API of arrears (SPEC §10). Authenticate with
`Authorization: Bearer <key>`: a **platform key** manages providers; a
**provider key** sees and changes only its own provider's records, addressed by
the provider's own ids (another provider's id answers 404). Records are
upserted with idempotent `PUT`s that answer 200 with the record as it now
stands. Money is a string (`"12.50"`), instants are ISO 8601 (without an
offset, in the provider's local time). Errors are RFC 9457 problem details
whose `errors` name each field at fault.
"""


def create_app(
    db: Database,
    *,
    platform_key: str | None = None,
    clock: Callable[[], datetime] = utcnow,
    rate_limit: RateLimit | None = None,
    max_body: int = MAX_BODY,
    max_import_body: int = MAX_IMPORT_BODY,
) -> FastAPI:
    """The API on `db`. `platform_key` (e.g. $ARREARS_PLATFORM_KEY) is accepted as a platform
    key besides those stored; `rate_limit` applies per key (None: the default; a limit of
    `per_second=0, burst=0` is not "off", use a large burst for that)."""
    app = FastAPI(
        title="arrears",
        version="1",
        description=DESCRIPTION,
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
    )
    state = ApiState(db, clock, platform_key or None, RateLimiter(rate_limit or RateLimit()))
    app.state.api = state
    problems.install(app)

    @app.exception_handler(BadCursor)
    async def _bad_cursor(request: Request, exc: BadCursor) -> JSONResponse:
        return problems.problem_response(
            422, f"cursor: {exc}", errors=[("cursor", str(exc))], type_=problems.INVALID
        )

    app.include_router(providers.router, prefix=PREFIX)
    app.include_router(billing.router, prefix=PREFIX)
    app.include_router(provisioning.router, prefix=PREFIX)
    app.include_router(activity.router, prefix=PREFIX)
    app.include_router(configuration.router, prefix=PREFIX)
    app.include_router(webhooks.router, prefix=PREFIX)
    app.include_router(import_router, prefix=PREFIX)
    limits = {PREFIX + IMPORT_PATH: max_import_body}  # bulk import takes files, not one record
    app.add_middleware(ApiMiddleware, state=state, max_body=max_body, limits=limits)
    return app
