"""`arrears webhooks`: a provider's endpoints and their deliveries, as an operator sees them."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from arrears.cli_support import CliError, Column, cli_session, pick_provider, show
from arrears.config import ConfigError
from arrears.store.tables import WebhookDeliveryRow, WebhookEndpointRow
from arrears.webhooks import service

T = TypeVar("T")


def _in_transaction(database_url: str | None, work: Callable[[Session], T]) -> T:
    with cli_session(database_url, WebhookEndpointRow.__tablename__) as session:
        try:
            return work(session)
        except ConfigError as exc:
            raise CliError(_option(exc.field), exc.message) from None
        except service.Conflict as exc:
            raise CliError("webhooks", str(exc)) from None


def _option(field: str) -> str:
    """The option a service's field name (as the API says it: `endpoint.events[1]`) stands for."""
    name = field.rpartition(".")[2].split("[")[0]
    return "--event" if name == "events" else f"--{name}"


def _exit_2_on_failure(command: Callable[..., int]) -> Callable[..., int]:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            return command(*args, **kwargs)
        except CliError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 2

    return wrapper


@_exit_2_on_failure
def add(
    database_url: str | None,
    provider: str | None,
    url: str,
    secret: str | None,
    events: list[str],
    description: str,
) -> int:
    """Register an endpoint; an operator may give the secret as `env:NAME` (read by the worker)."""

    def work(session: Session) -> tuple[str, dict[str, Any], str | None]:
        p = pick_provider(session, provider)
        data = {"url": url, "secret": secret, "events": events, "description": description}
        row, generated = service.create_endpoint(session, p.id, data, datetime.now(UTC), allow_env=True)
        return p.key, service.endpoint_view(row, ZoneInfo(p.timezone)), generated

    key, view, generated = _in_transaction(database_url, work)
    print(
        f"{key}: webhook endpoint {view['id']} posts {', '.join(view['events']) or 'every event'} to {view['url']}"
    )
    if generated:
        print(f"signing secret (shown only now): {generated}")
    return 0


@_exit_2_on_failure
def endpoints(database_url: str | None, provider: str | None, as_json: bool) -> int:
    def work(session: Session) -> tuple[str, list[dict[str, Any]]]:
        p = pick_provider(session, provider)
        tz = ZoneInfo(p.timezone)
        return p.key, [service.endpoint_view(r, tz) for r in service.list_endpoints(session, p.id)]

    key, rows = _in_transaction(database_url, work)
    columns: list[Column] = [
        ("id", "id"),
        ("url", "url"),
        ("events", lambda r: ", ".join(r["events"]) or "every event"),
        ("enabled", lambda r: "yes" if r["enabled"] else "no"),
        ("description", "description"),
        ("created", lambda r: r["created_at"][:16]),
    ]
    return show(rows, f"Webhook endpoints of {key}", columns, as_json=as_json)


@_exit_2_on_failure
def deliveries(
    database_url: str | None,
    provider: str | None,
    endpoint: int | None,
    status: str | None,
    limit: int,
    as_json: bool,
) -> int:
    def work(session: Session) -> tuple[str, list[dict[str, Any]]]:
        p = pick_provider(session, provider)
        stmt = service.deliveries_query(p.id, endpoint=endpoint, status=status)
        rows = session.scalars(stmt.order_by(WebhookDeliveryRow.id.desc()).limit(limit)).all()
        tz = ZoneInfo(p.timezone)
        return p.key, [service.delivery_view(r, tz) for r in rows]

    key, rows = _in_transaction(database_url, work)
    columns: list[Column] = [
        ("id", "id"),
        ("endpoint", "endpoint"),
        ("event", "event_id"),
        ("type", "event_type"),
        ("status", "status"),
        ("attempts", "attempts"),
        ("next attempt", lambda r: (r["next_attempt_at"] or "")[:19]),
        (
            "last answer",
            lambda r: r["last_error"] or (str(r["response_status"]) if r["response_status"] else ""),
        ),
    ]
    return show(rows, f"Webhook deliveries of {key} ({len(rows)}, newest first)", columns, as_json=as_json)
    return 0


@_exit_2_on_failure
def retry(database_url: str | None, provider: str | None, delivery_id: int) -> int:
    def work(session: Session) -> None:
        p = pick_provider(session, provider)
        row = service.get_delivery(session, p.id, delivery_id)
        if row is None:
            raise CliError("DELIVERY", f"{p.key} has no webhook delivery {delivery_id}")
        service.retry_delivery(session, row, datetime.now(UTC))

    _in_transaction(database_url, work)
    print(f"webhook delivery {delivery_id}: pending, posted at the worker's next round")
    return 0
