"""Signing in and out, and a platform user's choice of provider."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from arrears.store.tables import ProviderRow
from arrears.web import sessions, users
from arrears.web.context import (
    PROVIDER_COOKIE,
    ConsoleError,
    SignedInForm,
    console_state,
    render,
    safe_next,
    signed_in,
)

router = APIRouter()
# Sign-in has no session yet, so its form is protected by a double-submit token: a cookie and
# a hidden field that must match (a cross-site form cannot read or set the cookie).
LOGIN_CSRF_COOKIE = "arrears_login_csrf"
FAILED = "Wrong username or password."


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    # Secure whenever the console is reached over HTTPS (uvicorn honours X-Forwarded-Proto
    # from trusted proxies), so a cookie never travels in clear where TLS is in use.
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def _login_page(
    request: Request, next_url: str, error: str | None = None, username: str = "", status: int = 401
) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        {"title": "Sign in", "login_csrf": token, "next": next_url, "error": error, "username": username},
        status=status if error else 200,
    )
    _set_cookie(response, request, LOGIN_CSRF_COOKIE, token, 3600)
    return response


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    return _login_page(request, safe_next(next))


@router.post("/login")
def login(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not csrf_token or not sessions.same(cookie, csrf_token):
        raise ConsoleError(403, "this sign-in form has expired; reload the page and sign in again")
    state = console_state(request)
    now = state.clock()
    client = request.client.host if request.client is not None else ""
    wait = state.sign_ins_per_user.take(("user", username.strip().lower())) or state.sign_ins_per_client.take(
        ("client", client)
    )
    if wait is not None:
        minutes = max(1, round(wait / 60))
        return _login_page(
            request, safe_next(next), f"Too many sign-in attempts: try again in {minutes} min.", username, 429
        )
    with state.db.transaction() as s:
        user = users.authenticate(s, username.strip(), password)
        token = sessions.start(s, user, now) if user is not None else None
    if token is None:
        return _login_page(request, safe_next(next), FAILED, username)
    response = RedirectResponse(safe_next(next), status_code=303)
    _set_cookie(response, request, sessions.COOKIE, token, int(sessions.LIFETIME.total_seconds()))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
def logout(request: Request, who: SignedInForm) -> Response:
    state = console_state(request)
    with state.db.transaction() as s:
        sessions.end(s, request.cookies.get(sessions.COOKIE, ""), state.clock())
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/")
    response.delete_cookie(PROVIDER_COOKIE, path="/")
    return response


@router.get("/provider")
def provider_form(request: Request) -> Response:
    """A platform user picks the provider to look at (a provider's user has only their own)."""
    who = signed_in(request)
    if who.provider_id is not None:
        return RedirectResponse("/", status_code=303)
    state = console_state(request)
    with state.db.transaction() as s:
        providers = list(s.scalars(select(ProviderRow).order_by(ProviderRow.key)))
    chosen = request.cookies.get(PROVIDER_COOKIE, "")
    return render(
        request,
        "provider.html",
        {
            "title": "Choose a provider",
            "who": who,
            "csrf": who.csrf_token,
            "providers": providers,
            "chosen": chosen,
        },
    )


@router.post("/provider")
def choose_provider(request: Request, who: SignedInForm, provider: Annotated[str, Form()] = "") -> Response:
    if who.provider_id is not None:
        raise ConsoleError(403, "you look at your own provider only")
    state = console_state(request)
    with state.db.transaction() as s:
        row = s.get(ProviderRow, int(provider)) if provider.isdigit() else None
    if row is None:
        raise ConsoleError(422, f"provider: no provider {provider!r}")
    response = RedirectResponse("/", status_code=303)
    _set_cookie(response, request, PROVIDER_COOKIE, str(row.id), int(sessions.LIFETIME.total_seconds()))
    return response
