"""The web console for operators (SPEC §10): server-rendered pages at `/`, beside the API.

`install(app, db, clock)` mounts it on the API's FastAPI app (`arrears serve` and
`arrears run` do so); `/static` serves its assets (htmx and console.css, no CDN). The API
under /api/v1 is untouched: its routes, errors and middleware stay as they were.

How it is built, for whoever adds pages:

- **Modules.** `users` (roles, argon2 password hashes, `arrears users`), `sessions`
  (server-side sessions: only a SHA-256 of the cookie's token is stored), `context` (the
  access policy as FastAPI dependencies, rendering, errors), `chart` (inline SVG), and one
  router per area: `login` (sign in/out, a platform user's choice of provider),
  `dashboard`, `accounts`, `activity` (notifications and provisioning requests),
  `configuration` (rule sets: versions side by side, the editor and its "what would
  change"), `events` (event mappings) and `templates_page` (templates and their preview).
  Templates are in `templates/` (`base.html` is the layout; `_macros.html` has the form
  helpers), styles in `static/console.css`, and `static/console.js` shows a change htmx
  sent and the server refused (`htmx:responseError`) in the page's alert region.
- **Reading.** A page handler takes `page: ViewerPage` (any signed-in role) and reads
  with `with page.read() as s:` through the API's read side (`arrears.api.views`,
  `notify.service`, `provisioning.service`): the console shows what the API answers, in
  the provider's timezone and currency (`local(...)` and `money(...)` in templates).
  It ends with `return page.render("x.html", name=value, ...)`.
- **Changing.** A POST handler takes `page: OperatorForm` (operators and admins) or
  `page: AdminForm` (admins): the dependency has already checked the session's CSRF token
  (a hidden `csrf_token` field, which `{{ m.csrf_field() }}` writes, or the `X-CSRF-Token` header
  htmx sends from `<body hx-headers>`) and the role, answering 403 otherwise. Make the
  change in one transaction (`with page.inputs() as inputs:` for account inputs, which
  records the person as `console:<username>`; `with page.write() as s:` otherwise), then
  answer `see_other(request, url)` (a 303 for plain forms, `HX-Location` for htmx) or,
  for htmx (`is_htmx(request)`), the re-rendered part of the page. Every form works
  without JavaScript; htmx only saves the reload. Refuse bad input by re-rendering the
  form with the message naming the field (status 422; htmx swaps 422 answers too).
- **Roles.** `viewer` reads; `operator` also acts on accounts and on notifications and
  provisioning requests; `admin` also manages the configuration (rule sets, event
  mappings, templates: `AdminForm`). A user belongs to one provider, or to the platform
  (`provider_id` NULL) and then picks the provider to look at (a cookie, checked on every
  request).
- **Pages.** Each page extends `base.html`, sets `title` and `nav` (the nav item to mark
  current), has one `<h1>`, labels every input, and wraps each table in
  `<div class="table-wrap" ...>` so that wide tables scroll on a phone instead of the page.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from arrears.api.context import utcnow
from arrears.store.db import Database
from arrears.web import accounts, activity, configuration, dashboard, events, login, templates_page
from arrears.web.context import (
    ConsoleError,
    ConsoleState,
    ProviderRequired,
    SignInRequired,
    is_htmx,
    make_templates,
    render,
)

STATIC = Path(__file__).parent / "static"
API_PREFIX = "/api/"


def install(app: FastAPI, db: Database, clock: Callable[[], datetime] = utcnow) -> None:
    """Serve the console at `/` and its assets at `/static` on `app` (the API's app)."""
    app.state.console = ConsoleState(db, clock, make_templates())
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (login, dashboard, accounts, activity, configuration, events, templates_page):
        app.include_router(module.router, include_in_schema=False)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        target = "/login"
        if request.method == "GET" and request.url.path not in ("/", "/login"):
            target += "?next=" + quote(
                request.url.path + (f"?{request.url.query}" if request.url.query else "")
            )
        if is_htmx(request):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(ProviderRequired)
    async def _pick_provider(request: Request, exc: ProviderRequired) -> Response:
        if is_htmx(request):
            return Response(status_code=204, headers={"HX-Redirect": "/provider"})
        return RedirectResponse("/provider", status_code=303)

    @app.exception_handler(ConsoleError)
    async def _error(request: Request, exc: ConsoleError) -> Response:
        return _error_page(request, exc.status, exc.message)

    # The API answers unknown paths with problem details; a person's browser gets a page.
    api_http = app.exception_handlers.get(StarletteHTTPException)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith(API_PREFIX) and api_http is not None:
            answer: Response = await api_http(request, exc)  # type: ignore[misc]
            return answer
        message = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404:
            message = "There is no such page."
        return _error_page(request, exc.status_code, message)

    # A console URL with a malformed part (a non-numeric index, say) is a page that is not
    # there; other malformed input is named, on a page rather than in JSON.
    api_invalid = app.exception_handlers.get(RequestValidationError)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith(API_PREFIX) and api_invalid is not None:
            answer: Response = await api_invalid(request, exc)  # type: ignore[misc]
            return answer
        errors = exc.errors()
        if any(tuple(e.get("loc", ()))[:1] == ("path",) for e in errors):
            status, message = 404, "There is no such page."
        else:
            where = [".".join(str(p) for p in tuple(e.get("loc", ()))[1:]) for e in errors]
            status, message = 422, "Not valid: " + ", ".join(w for w in where if w)
        return _error_page(request, status, message)


def _error_page(request: Request, status: int, message: str) -> Response:
    return render(
        request, "error.html", {"title": "Error", "status": status, "message": message}, status=status
    )


__all__ = ["install"]
