"""`arrears provisioning`: routes to adapters, the request queue, settling by hand."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from arrears.cli_support import CliError, Column, cli_session, pick_provider, show
from arrears.config import ConfigError
from arrears.provisioning import service
from arrears.store.tables import ProvisioningRouteRow

T = TypeVar("T")


def _error(message: str) -> int:
    sys.stderr.write(f"error: {message}\n")
    return 2


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


def _in_transaction(database_url: str | None, work: Callable[[Session], T]) -> T:
    """`work` in one transaction on the provisioning schema (cli_support.cli_session)."""
    with cli_session(database_url, ProvisioningRouteRow.__tablename__) as session:
        try:
            return work(session)
        except ConfigError as exc:
            raise CliError(exc.field, exc.message) from None
        except OSError as exc:  # a --config file that cannot be read
            raise CliError("--config", str(exc)) from None


def _exit_2_on_failure(command: Callable[..., int]) -> Callable[..., int]:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            return command(*args, **kwargs)
        except CliError as exc:
            return _error(str(exc))

    return wrapper


@_exit_2_on_failure
def route_set(
    database_url: str | None, provider: str | None, service_type: str, adapter: str, config: str, actor: str
) -> int:
    def work(session: Session) -> str:
        p = pick_provider(session, provider)
        now = datetime.now(UTC)
        service.set_route(session, p, service_type, adapter, _config(config), actor=actor, now=now)
        return p.key

    key = _in_transaction(database_url, work)
    print(f"{key}: services of type {service_type!r} now go to the {adapter} adapter")
    return 0


@_exit_2_on_failure
def route_remove(database_url: str | None, provider: str | None, service_type: str) -> int:
    def work(session: Session) -> tuple[str, bool]:
        p = pick_provider(session, provider)
        return p.key, service.remove_route(session, p, service_type)

    key, removed = _in_transaction(database_url, work)
    print(f"{key}: route {service_type!r} {'removed' if removed else 'was not there'}")
    return 0


@_exit_2_on_failure
def route_list(database_url: str | None, provider: str | None, as_json: bool) -> int:
    def work(session: Session) -> tuple[str, list[dict[str, Any]]]:
        p = pick_provider(session, provider)
        return p.key, service.routes(session, p)

    key, rows = _in_transaction(database_url, work)
    columns: list[Column] = [
        ("service type", "service_type"),
        ("adapter", "adapter"),
        ("settings", lambda r: ", ".join(r["settings"])),
        ("updated", lambda r: f"{r['updated_at'][:16]} {r['updated_by']}"),
    ]
    return show(rows, f"Provisioning routes of {key} (no route: the log adapter)", columns, as_json=as_json)


@_exit_2_on_failure
def requests(database_url: str | None, f: service.RequestFilter, as_json: bool) -> int:
    rows = _in_transaction(database_url, lambda session: service.list_requests(session, f))
    columns: list[Column] = [
        (name, name.replace(" ", "_")) for name in ("id", "account", "service", "action", "adapter", "state")
    ]
    columns += [("attempts", "attempts"), ("last error", "last_error")]
    return show(rows, f"Provisioning requests ({len(rows)}, newest first)", columns, as_json=as_json)


@_exit_2_on_failure
def settle(database_url: str | None, request_id: int, state: str, reason: str, actor: str) -> int:
    def work(session: Session) -> str:
        now = datetime.now(UTC)
        req = service.settle_by_hand(session, request_id, state=state, detail=reason, actor=actor, now=now)
        return req.state

    result = _in_transaction(database_url, work)
    print(f"provisioning request {request_id}: {result}")
    return 0
