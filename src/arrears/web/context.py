"""What a console request works with: who is signed in, the provider they look at, the
database and clock, and how pages are rendered. The dependencies here are the console's
whole access policy: `ViewerPage` for reading, `OperatorForm` / `AdminForm` for changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.orm import Session

from arrears.api.auth import RateLimit, RateLimiter
from arrears.api.views import Tenant
from arrears.engine.inputs import Inputs
from arrears.store.db import Database
from arrears.store.tables import ProviderRow
from arrears.web import sessions
from arrears.web.sessions import SignedIn
from arrears.web.users import role_allows

# A platform user's choice of provider. Not a secret: a platform user may look at any provider.
PROVIDER_COOKIE = "arrears_provider"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SECURITY_HEADERS = {
    # Everything the console loads is its own: no CDN, no inline script.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SignInRequired(Exception):
    """No live session: the browser is sent to the sign-in page."""


class ProviderRequired(Exception):
    """A platform user who has not picked a provider yet."""


class ConsoleError(Exception):
    """An answer other than the page asked for (403, 404, 409, ...), rendered as a page."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


SIGN_INS_PER_USER = RateLimit(per_second=1 / 60, burst=10)  # then one a minute
SIGN_INS_PER_CLIENT = RateLimit(per_second=1 / 10, burst=30)


@dataclass
class ConsoleState:
    """One console's configuration (kept on `app.state.console`)."""

    db: Database
    clock: Callable[[], datetime]
    templates: Environment
    # Sign-in attempts, per username and per client address: guessing passwords is slow.
    sign_ins_per_user: RateLimiter = field(default_factory=lambda: RateLimiter(SIGN_INS_PER_USER))
    sign_ins_per_client: RateLimiter = field(default_factory=lambda: RateLimiter(SIGN_INS_PER_CLIENT))


def console_state(request: Request) -> ConsoleState:
    state: ConsoleState = request.app.state.console
    return state


# -- rendering -------------------------------------------------------------------------------


def _local(value: str | datetime | None, tz: ZoneInfo, with_zone: bool = True) -> str:
    """An instant (ISO string with any offset, or aware datetime) in the provider's timezone."""
    if value is None or value == "":
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z" if with_zone else "%Y-%m-%d %H:%M")


def _money(value: str | Decimal | None, currency: str) -> str:
    """An exact amount with thousands separators and the currency code: `1,234.50 AUD`."""
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(value)
    except InvalidOperation:
        return str(value)
    exponent = amount.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return f"{amount:,.{places}f} {currency}"


def _words(value: str | None) -> str:
    """A code as words: `manual_suspend` → `manual suspend`."""
    return (value or "").replace("_", " ")


# What holds an account back (domain.exclusions.CODES), as an operator reads it.
EXCLUSIONS = {
    "not_active": "account not active (inactive, or suspended by hand)",
    "excluded_group": "an excluded group",
    "omit_flag": "the omit flag",
    "payment_plan": "a payment plan",
    "dispute": "a disputed invoice",
    "complaint_case": "an open complaint case",
    "unallocated_payment": "an unallocated payment",
    "resuspend_grace": "the grace period after a restore by hand",
}


def exclusion(code: str) -> str:
    return EXCLUSIONS.get(code, _words(code))


def make_templates() -> Environment:
    env = Environment(
        loader=PackageLoader("arrears.web", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["words"] = _words
    env.filters["exclusion"] = exclusion
    env.filters["urlpart"] = lambda v: quote(str(v), safe="")
    return env


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    state = console_state(request)
    html = state.templates.get_template(template).render(
        {"request": request, "path": request.url.path, **context}
    )
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def is_htmx(request: Request) -> bool:
    """A request made by htmx, which wants only the part of the page it replaces."""
    return request.headers.get("hx-request") == "true"


def see_other(request: Request, url: str) -> Response:
    """After a change: a plain form gets a redirect; htmx is told where to go."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Location": url})
    return RedirectResponse(url, status_code=303)


def safe_next(url: str | None) -> str:
    """Where to go after signing in: only a path of this site (no `//host`, no scheme)."""
    if url and url.startswith("/") and not url.startswith("//") and not re.search(r"[\\\s]", url):
        return url
    return "/"


# -- who is looking, and at which provider -----------------------------------------------------


def signed_in(request: Request) -> SignedIn:
    """The live session of the request's cookie; anything else asks for a sign-in."""
    token = request.cookies.get(sessions.COOKIE)
    if not token:
        raise SignInRequired()
    state = console_state(request)
    with state.db.transaction() as s:
        who = sessions.find(s, token, state.clock())
    if who is None:
        raise SignInRequired()
    return who


@dataclass
class Page:
    """One request of a signed-in person about one provider."""

    request: Request
    state: ConsoleState
    who: SignedIn
    provider: ProviderRow
    now: datetime

    @property
    def tenant(self) -> Tenant:
        return Tenant.of(self.provider)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.provider.timezone)

    def can(self, role: str) -> bool:
        return role_allows(self.who.role, role)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.state.db.transaction() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: the change and everything it causes commit together."""
        with self.state.db.transaction() as session:
            yield session

    @contextmanager
    def inputs(self) -> Iterator[Inputs]:
        """`write` with the provider's `Inputs`, acting as the signed-in person."""
        with self.write() as session:
            yield Inputs.open(session, self.provider.id, self.now, actor=self.who.actor)

    def render(
        self, template: str, *, status: int = 200, headers: dict[str, str] | None = None, **context: Any
    ) -> HTMLResponse:
        tz, currency = self.tz, self.provider.currency
        base = {
            "who": self.who,
            "provider": self.provider,
            "csrf": self.who.csrf_token,
            "can_act": self.can("operator"),
            "can_admin": self.can("admin"),
            "local": lambda v, zone=True: _local(v, tz, zone),
            "money": lambda v: _money(v, currency),
            "now": self.now,
        }
        return render(self.request, template, {**base, **context}, status=status, headers=headers)


def _page(request: Request, who: SignedIn) -> Page:
    state = console_state(request)
    provider_id = who.provider_id
    if provider_id is None:
        chosen = request.cookies.get(PROVIDER_COOKIE, "")
        if not chosen.isdigit():
            raise ProviderRequired()
        provider_id = int(chosen)
    with state.db.transaction() as s:
        provider = s.get(ProviderRow, provider_id)
    if provider is None:
        if who.provider_id is None:
            raise ProviderRequired()
        raise ConsoleError(403, "your provider no longer exists")
    return Page(request, state, who, provider, state.clock())


def viewer_page(request: Request, who: Annotated[SignedIn, Depends(signed_in)]) -> Page:
    return _page(request, who)


async def check_csrf(request: Request, who: SignedIn) -> None:
    """Every change must carry the session's CSRF token (a form field, or htmx's header)."""
    sent = request.headers.get(CSRF_HEADER)
    if not sent:
        form = await request.form()  # starlette keeps it for the route's own Form fields
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not sessions.same(sent, who.csrf_token):
        raise ConsoleError(403, "this form has expired or did not come from the console; reload the page")


def _needs(role: str) -> Callable[..., Any]:
    async def dependency(request: Request, page: Annotated[Page, Depends(viewer_page)]) -> Page:
        await check_csrf(request, page.who)
        if not page.can(role):
            raise ConsoleError(403, f"only an {role} may do this; you are a {page.who.role}")
        return page

    return dependency


async def signed_in_form(request: Request, who: Annotated[SignedIn, Depends(signed_in)]) -> SignedIn:
    """A change that needs a session but no provider (signing out, picking a provider)."""
    await check_csrf(request, who)
    return who


ViewerPage = Annotated[Page, Depends(viewer_page)]
OperatorForm = Annotated[Page, Depends(_needs("operator"))]
AdminForm = Annotated[Page, Depends(_needs("admin"))]
SignedInForm = Annotated[SignedIn, Depends(signed_in_form)]
