"""`arrears provisioning`: routes to adapters, the request queue, settling by hand."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from arrears.bootstrap import Settings, database
from arrears.config import ConfigError
from arrears.provisioning import service
from arrears.store.db import Database
from arrears.store.tables import ProviderRow

T = TypeVar("T")


def _error(message: str) -> int:
    sys.stderr.write(f"error: {message}\n")
    return 2


def _open(database_url: str | None) -> Database | None:
    db = database(Settings.from_env(database_url))
    if not inspect(db.engine).has_table("provisioning_routes"):
        db.dispose()
        _error("no arrears schema here (or an old one): run `arrears db upgrade` first")
        return None
    return db


def _provider(session: Session, key: str | None) -> ProviderRow:
    rows = session.scalars(select(ProviderRow).order_by(ProviderRow.key)).all()
    if key is None:
        if len(rows) == 1:
            return rows[0]
        raise ConfigError("--provider", f"name one of: {', '.join(r.key for r in rows) or 'none'}")
    for r in rows:
        if r.key == key:
            return r
    raise ConfigError("--provider", f"no provider {key!r}")


def _config(text: str) -> dict[str, Any]:
    """The adapter settings: a JSON object, or the path of a file holding one."""
    raw = Path(text).read_text() if not text.lstrip().startswith("{") else text
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ConfigError("--config", f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError("--config", "must be a JSON object")
    return value


class _Failed(Exception):
    """Already said on stderr; exit 2."""


def _in_transaction(database_url: str | None, work: Callable[[Session], T]) -> T:
    """`work` in one transaction; a ConfigError (or an unreadable file) is printed and ends it."""
    db = _open(database_url)
    if db is None:
        raise _Failed
    try:
        with db.transaction() as session:
            return work(session)
    except (ConfigError, OSError) as exc:
        _error(str(exc))
        raise _Failed from None
    finally:
        db.dispose()


def _exit_2_on_failure(command: Callable[..., int]) -> Callable[..., int]:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            return command(*args, **kwargs)
        except _Failed:
            return 2

    return wrapper


@_exit_2_on_failure
def route_set(
    database_url: str | None, provider: str | None, service_type: str, adapter: str, config: str, actor: str
) -> int:
    def work(session: Session) -> str:
        p = _provider(session, provider)
        now = datetime.now(UTC)
        service.set_route(session, p, service_type, adapter, _config(config), actor=actor, now=now)
        return p.key

    key = _in_transaction(database_url, work)
    print(f"{key}: services of type {service_type!r} now go to the {adapter} adapter")
    return 0


@_exit_2_on_failure
def route_remove(database_url: str | None, provider: str | None, service_type: str) -> int:
    def work(session: Session) -> tuple[str, bool]:
        p = _provider(session, provider)
        return p.key, service.remove_route(session, p, service_type)

    key, removed = _in_transaction(database_url, work)
    print(f"{key}: route {service_type!r} {'removed' if removed else 'was not there'}")
    return 0


@_exit_2_on_failure
def route_list(database_url: str | None, provider: str | None, as_json: bool) -> int:
    def work(session: Session) -> tuple[str, list[dict[str, Any]]]:
        p = _provider(session, provider)
        return p.key, service.routes(session, p)

    key, rows = _in_transaction(database_url, work)
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title=f"Provisioning routes of {key} (no route: the log adapter)")
    for column in ("service type", "adapter", "settings", "updated"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["service_type"],
            r["adapter"],
            ", ".join(r["settings"]),
            f"{r['updated_at'][:16]} {r['updated_by']}",
        )
    Console().print(table)
    return 0


@_exit_2_on_failure
def requests(database_url: str | None, f: service.RequestFilter, as_json: bool) -> int:
    rows = _in_transaction(database_url, lambda session: service.list_requests(session, f))
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title=f"Provisioning requests ({len(rows)}, newest first)")
    for column in ("id", "account", "service", "action", "adapter", "state", "attempts", "last error"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["account"],
            r["service"],
            r["action"],
            r["adapter"],
            r["state"],
            str(r["attempts"]),
            r["last_error"] or "",
        )
    Console().print(table)
    return 0


@_exit_2_on_failure
def settle(database_url: str | None, request_id: int, state: str, reason: str, actor: str) -> int:
    def work(session: Session) -> str:
        now = datetime.now(UTC)
        req = service.settle_by_hand(session, request_id, state=state, detail=reason, actor=actor, now=now)
        return req.state

    result = _in_transaction(database_url, work)
    print(f"provisioning request {request_id}: {result}")
    return 0
