"""`arrears users`: the people who sign in to the web console (create, list, disable)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import typer
from sqlalchemy import select

from arrears.cli_support import CliError, Column, cli_session, show
from arrears.config import ConfigError
from arrears.store.tables import ProviderRow
from arrears.web import users

TABLE = "console_users"


def _error(message: str) -> int:
    sys.stderr.write(f"error: {message}\n")
    return 2


def _password(from_stdin: bool) -> str:
    if from_stdin:
        # One line: a trailing newline from `echo` or a file is not part of the password.
        return sys.stdin.readline().rstrip("\r\n")
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


def create_command(
    database_url: str | None,
    username: str,
    *,
    provider: str | None,
    platform: bool,
    role: str,
    password_stdin: bool,
) -> int:
    if platform == (provider is not None):
        return _error("give exactly one of --platform or --provider KEY")
    if role not in users.ROLES:
        return _error(f"--role: {role!r} is not one of: {', '.join(users.ROLES)}")
    password = _password(password_stdin)
    try:
        with cli_session(database_url, TABLE) as s:
            provider_id = None
            if provider is not None:
                provider_id = s.scalar(select(ProviderRow.id).where(ProviderRow.key == provider))
                if provider_id is None:
                    raise CliError("--provider", f"no provider {provider!r}")
            users.create_user(s, username, password, role, provider_id, datetime.now(UTC))
    except CliError as exc:
        return _error(str(exc))
    except ConfigError as exc:
        name = "USERNAME" if exc.field == "username" else f"--{exc.field}"
        return _error(f"{name}: {exc.message}")
    who = "the platform (picks a provider)" if platform else f"provider {provider}"
    typer.echo(f"created {role} {username} of {who}")
    return 0


def list_command(database_url: str | None, *, as_json: bool) -> int:
    try:
        with cli_session(database_url, TABLE) as s:
            rows = users.list_users(s)
    except CliError as exc:
        return _error(str(exc))
    items: list[dict[str, str | None]] = [
        {
            "username": u.username,
            "provider": u.provider,
            "role": u.role,
            "created_at": u.created_at.isoformat(),
            "disabled_at": u.disabled_at.isoformat() if u.disabled_at else None,
        }
        for u in rows
    ]
    columns: list[Column] = [
        ("username", "username"),
        ("provider", lambda r: r["provider"] or "(platform)"),
        ("role", "role"),
        ("created", lambda r: str(r["created_at"])[:16]),
        ("disabled", "disabled_at"),
    ]
    return show(items, "Console users", columns, as_json=as_json)


def disable_command(database_url: str | None, username: str) -> int:
    try:
        with cli_session(database_url, TABLE) as s:
            row = users.disable_user(s, username, datetime.now(UTC))
    except CliError as exc:
        return _error(str(exc))
    if row is None:
        return _error(f"USERNAME: no console user {username!r}")
    typer.echo(f"disabled {username}; their sessions have ended")
    return 0
