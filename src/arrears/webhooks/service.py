"""Endpoints and deliveries as a provider manages and reads them (the API and the CLI).

Bad input raises `config.ConfigError` naming the field (`endpoint.url`); a
request the records' state does not allow raises `Conflict`. Instants in the
views are ISO 8601 with the provider's UTC offset, as everywhere in the API.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from arrears.config import ConfigError
from arrears.domain.clock import iso_local
from arrears.provisioning.webhook import MIN_SECRET_LENGTH
from arrears.store.tables import WebhookDeliveryRow, WebhookEndpointRow
from arrears.webhooks.events import EVENT_TYPES

STATUSES = ("pending", "delivered", "failed")
# Enabled endpoints per provider: each event is one row per endpoint, written with the change.
MAX_ENDPOINTS = 20
MAX_URL = 2000
MAX_SECRET = 200
MAX_DESCRIPTION = 200
DISABLED = "endpoint disabled"


class Conflict(Exception):
    """What was asked cannot be done to the record as it stands (HTTP 409)."""


# -- checks ----------------------------------------------------------------------------------


def check_url(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(field, "is required (the http:// or https:// address events are posted to)")
    url = value.strip()
    if len(url) > MAX_URL:
        raise ConfigError(field, f"is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError(field, f"is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ConfigError(field, f"must start with http:// or https://, not {parts.scheme or 'nothing'}://")
    if not parts.hostname:
        raise ConfigError(field, "has no host")
    if any(c.isspace() for c in url):
        raise ConfigError(field, "must not contain spaces")
    return url


def check_secret(value: object, field: str, *, allow_env: bool = False) -> str:
    """A signing secret of at least 16 characters; `env:NAME` (read by the worker) if `allow_env`."""
    if not isinstance(value, str) or not value:
        raise ConfigError(field, "must be a non-empty string")
    if value.startswith("env:"):
        if not allow_env:
            # The worker's environment is the operator's, not a tenant's to point at.
            raise ConfigError(field, "env: references are for operators; give the secret itself")
        if len(value) == 4:
            raise ConfigError(field, "env: needs the name of an environment variable")
        return value
    if len(value) < MIN_SECRET_LENGTH:
        # Never echo the secret, even a wrong one.
        raise ConfigError(field, f"must be at least {MIN_SECRET_LENGTH} characters (it has {len(value)})")
    if len(value) > MAX_SECRET:
        raise ConfigError(field, f"must be at most {MAX_SECRET} characters")
    return value


def check_events(value: object, field: str) -> list[str]:
    """Known event types, without repeats; empty: every type."""
    if not isinstance(value, list | tuple):
        raise ConfigError(field, "must be a list of event types (empty: every event)")
    out: list[str] = []
    for n, item in enumerate(value):
        if not isinstance(item, str) or item not in EVENT_TYPES:
            raise ConfigError(
                f"{field}[{n}]", f"{item!r} is not an event type; known: {', '.join(EVENT_TYPES)}"
            )
        if item not in out:
            out.append(item)
    return out


def check_description(value: object, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(field, "must be a string")
    if len(value) > MAX_DESCRIPTION:
        raise ConfigError(field, f"must be at most {MAX_DESCRIPTION} characters")
    return value


def generate_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


# -- endpoints -------------------------------------------------------------------------------


def _room_for_one(session: Session, provider_id: int, field: str) -> None:
    enabled = session.scalar(
        select(func.count())
        .select_from(WebhookEndpointRow)
        .where(WebhookEndpointRow.provider_id == provider_id, WebhookEndpointRow.enabled.is_(True))
    )
    if (enabled or 0) >= MAX_ENDPOINTS:
        raise Conflict(
            f"{field}: a provider has at most {MAX_ENDPOINTS} enabled endpoints; disable one first"
        )


def create_endpoint(
    session: Session,
    provider_id: int,
    data: dict[str, Any],
    now: datetime,
    *,
    prefix: str = "endpoint",
    allow_env: bool = False,
) -> tuple[WebhookEndpointRow, str | None]:
    """A new enabled endpoint from `url`, `secret` (omitted: generated), `events`, `description`.

    Returns it with the generated secret (None when the caller gave one): shown once.
    """
    url = check_url(data.get("url"), f"{prefix}.url")
    generated = None
    if data.get("secret") is None:
        secret = generated = generate_secret()
    else:
        secret = check_secret(data["secret"], f"{prefix}.secret", allow_env=allow_env)
    events = check_events(data.get("events") or [], f"{prefix}.events")
    description = check_description(data.get("description"), f"{prefix}.description")
    _room_for_one(session, provider_id, prefix)
    row = WebhookEndpointRow(
        provider_id=provider_id,
        url=url,
        secret=secret,
        events=events,
        description=description,
        enabled=True,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row, generated


def change_endpoint(
    session: Session,
    row: WebhookEndpointRow,
    data: dict[str, Any],
    now: datetime,
    *,
    prefix: str = "endpoint",
    allow_env: bool = False,
) -> None:
    """Change the fields given (`url`, `secret`, `events`, `description`, `enabled`)."""
    for name in ("url", "secret", "events", "enabled"):
        if name in data and data[name] is None:
            raise ConfigError(f"{prefix}.{name}", "must not be null")
    if "url" in data:
        row.url = check_url(data["url"], f"{prefix}.url")
    if "secret" in data:
        row.secret = check_secret(data["secret"], f"{prefix}.secret", allow_env=allow_env)
    if "events" in data:
        row.events = check_events(data["events"], f"{prefix}.events")
    if "description" in data:
        row.description = check_description(data["description"], f"{prefix}.description")
    if "enabled" in data and data["enabled"] != row.enabled:
        if data["enabled"]:
            _room_for_one(session, row.provider_id, prefix)
            row.enabled = True
        else:
            disable_endpoint(session, row, now, DISABLED)


def disable_endpoint(session: Session, row: WebhookEndpointRow, now: datetime, reason: str) -> int:
    """No more events for it; its pending deliveries fail with `reason` (kept, and retryable
    once it is enabled again). Returns how many failed."""
    row.enabled = False
    return fail_pending(session, row.id, now, reason)


def fail_pending(session: Session, endpoint_id: int, now: datetime, reason: str) -> int:
    """Fail the endpoint's pending deliveries. One a dispatcher holds keeps its claim, so the
    dispatcher still records a delivery that went through (see dispatcher._record)."""
    result = session.execute(
        update(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.endpoint_id == endpoint_id, WebhookDeliveryRow.status == "pending")
        .values(status="failed", next_attempt_at=None, last_error=reason[:500])
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def get_endpoint(session: Session, provider_id: int, endpoint_id: int) -> WebhookEndpointRow | None:
    """The provider's endpoint; another provider's is simply not found."""
    return session.scalar(
        select(WebhookEndpointRow).where(
            WebhookEndpointRow.id == endpoint_id, WebhookEndpointRow.provider_id == provider_id
        )
    )


def list_endpoints(session: Session, provider_id: int) -> Sequence[WebhookEndpointRow]:
    return session.scalars(
        select(WebhookEndpointRow)
        .where(WebhookEndpointRow.provider_id == provider_id)
        .order_by(WebhookEndpointRow.id)
    ).all()


def endpoint_view(row: WebhookEndpointRow, tz: ZoneInfo) -> dict[str, Any]:
    """Never the secret: it is shown once, when generated."""
    return {
        "id": row.id,
        "url": row.url,
        "events": list(row.events or []),
        "description": row.description,
        "enabled": row.enabled,
        "created_at": iso_local(row.created_at, tz),
    }


# -- deliveries ------------------------------------------------------------------------------


def deliveries_query(
    provider_id: int,
    *,
    endpoint: int | None = None,
    status: str | None = None,
    event: str | None = None,
    prefix: str = "",
) -> Select[WebhookDeliveryRow]:
    """The provider's deliveries, filtered; the caller orders and pages them."""
    if status is not None and status not in STATUSES:
        raise ConfigError(f"{prefix}status", f"{status!r} is not one of: {', '.join(STATUSES)}")
    stmt = select(WebhookDeliveryRow).where(WebhookDeliveryRow.provider_id == provider_id)
    if endpoint is not None:
        stmt = stmt.where(WebhookDeliveryRow.endpoint_id == endpoint)
    if status is not None:
        stmt = stmt.where(WebhookDeliveryRow.status == status)
    if event is not None:
        stmt = stmt.where(WebhookDeliveryRow.event_id == event)
    return stmt


def get_delivery(session: Session, provider_id: int, delivery_id: int) -> WebhookDeliveryRow | None:
    return session.scalar(
        select(WebhookDeliveryRow).where(
            WebhookDeliveryRow.id == delivery_id, WebhookDeliveryRow.provider_id == provider_id
        )
    )


def delivery_view(row: WebhookDeliveryRow, tz: ZoneInfo) -> dict[str, Any]:
    def at(t: datetime | None) -> str | None:
        return iso_local(t, tz) if t is not None else None

    return {
        "id": row.id,
        "endpoint": row.endpoint_id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "status": row.status,
        "attempts": row.attempts,
        "created_at": at(row.created_at),
        "next_attempt_at": at(row.next_attempt_at) if row.status == "pending" else None,
        "last_attempt_at": at(row.last_attempt_at),
        "response_status": row.response_status,
        "last_error": row.last_error,
        "delivered_at": at(row.delivered_at),
        "payload": row.payload,
    }


def retry_delivery(session: Session, row: WebhookDeliveryRow, now: datetime) -> None:
    """Send a failed delivery again at once (same event id). Past its three days it gets this
    one attempt: failing again, it is failed again."""
    if row.status != "failed":
        raise Conflict(f"only a failed delivery can be retried; this one is {row.status}")
    enabled = session.scalar(
        select(WebhookEndpointRow.enabled).where(WebhookEndpointRow.id == row.endpoint_id)
    )
    if not enabled:
        raise Conflict(f"its endpoint {row.endpoint_id} is disabled; enable it first")
    row.status = "pending"
    row.next_attempt_at = now
    row.claimed_by = row.claimed_until = None
