"""`arrears notifications`: the operator's view of what was sent, and why not."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from rich.console import Console
from sqlalchemy import inspect

from arrears.bootstrap import Settings, database
from arrears.cli_support import Column, show
from arrears.config import ConfigError
from arrears.notify import service


def _error(message: str) -> None:
    # Plain text: rich would wrap it at 80 columns and read [...] as markup.
    sys.stderr.write(f"{message}\n")


def list_command(
    database_url: str | None,
    *,
    provider: str | None,
    account: str | None,
    event: str | None,
    state: str | None,
    limit: int,
    as_json: bool,
) -> int:
    db = database(Settings.from_env(database_url))
    try:
        if not inspect(db.engine).has_table("notifications"):
            _error("error: no arrears schema here: run `arrears db upgrade` first")
            return 2
        f = service.NotificationFilter(provider, account, event, state, limit)
        try:
            with db.transaction() as session:
                rows = service.list_notifications(session, f)
        except ConfigError as exc:
            _error(f"error: --{exc.field}: {exc.message}")
            return 2
    finally:
        db.dispose()
    columns: list[Column] = [
        ("id", "id"),
        ("account", "account"),
        ("event", "event"),
        ("channel", "channel"),
        ("to", "to"),
        ("due (UTC)", lambda r: r["due_at"][:16]),
        ("state", lambda r: r["state"] + (f" ({r['delivery']})" if r["delivery"] else "")),
        ("attempts", "attempts"),
        ("reason", "reason"),
    ]
    return show(rows, f"Notifications ({len(rows)}, newest first)", columns, as_json=as_json)


def change_command(database_url: str | None, action: str, notification_id: int, actor: str) -> int:
    db = database(Settings.from_env(database_url))
    now = datetime.now(UTC)
    try:
        if not inspect(db.engine).has_table("notifications"):
            _error("error: no arrears schema here: run `arrears db upgrade` first")
            return 2
        with db.transaction() as session:
            change = service.retry if action == "retry" else service.cancel
            row = change(session, notification_id, actor=actor, now=now)
            state = row.state
    except ConfigError as exc:
        _error(f"error: {exc}")
        return 2
    finally:
        db.dispose()
    Console().print(f"notification {notification_id}: {state}")
    return 0
