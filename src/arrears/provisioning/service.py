"""What operators do with provisioning: choose adapters, look at requests, settle them by hand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from arrears.config import ConfigError
from arrears.provisioning.base import ConfigError as AdapterConfigError
from arrears.provisioning.registry import ADAPTERS, check_config
from arrears.store.tables import (
    AccountRow,
    ProviderRow,
    ProvisioningRequestRow,
    ProvisioningRouteRow,
    ServiceRow,
)

ANY_TYPE = "*"
STATES = ("pending", "sent", "confirmed", "failed", "cancelled")


def set_route(
    session: Session,
    provider: ProviderRow,
    service_type: str,
    adapter: str,
    config: dict[str, Any],
    *,
    actor: str,
    now: datetime,
) -> ProvisioningRouteRow:
    """Route a provider's services of `service_type` (`*`: all others) to an adapter.

    The adapter is built once with the settings first, so a typo is refused now
    with the setting's name, not found when the first suspension fails.
    """
    if adapter not in ADAPTERS:
        raise ConfigError("adapter", f"unknown adapter {adapter!r} (known: {', '.join(ADAPTERS)})")
    if not service_type or len(service_type) > 50:
        raise ConfigError("service_type", "a service type (at most 50 characters), or * for any")
    try:
        check_config(adapter, config)
    except AdapterConfigError as exc:
        raise ConfigError(exc.field, exc.message) from None
    row = session.scalar(
        select(ProvisioningRouteRow).where(
            ProvisioningRouteRow.provider_id == provider.id, ProvisioningRouteRow.service_type == service_type
        )
    )
    if row is None:
        row = ProvisioningRouteRow(provider_id=provider.id, service_type=service_type)
        session.add(row)
    row.adapter, row.config, row.updated_at, row.updated_by = adapter, dict(config), now, actor
    session.flush()
    return row


def remove_route(session: Session, provider: ProviderRow, service_type: str) -> bool:
    result = session.execute(
        delete(ProvisioningRouteRow).where(
            ProvisioningRouteRow.provider_id == provider.id, ProvisioningRouteRow.service_type == service_type
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def routes(session: Session, provider: ProviderRow) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(ProvisioningRouteRow)
        .where(ProvisioningRouteRow.provider_id == provider.id)
        .order_by(ProvisioningRouteRow.service_type)
    )
    return [
        {
            "service_type": r.service_type,
            "adapter": r.adapter,
            # Settings may hold secrets: show only their names.
            "settings": sorted(r.config),
            "updated_at": r.updated_at.isoformat(),
            "updated_by": r.updated_by,
        }
        for r in rows
    ]


@dataclass(frozen=True)
class RequestFilter:
    provider: str | None = None
    account: str | None = None
    state: str | None = None
    limit: int = 100


def list_requests(session: Session, f: RequestFilter) -> list[dict[str, Any]]:
    if f.state is not None and f.state not in STATES:
        raise ConfigError("state", f"{f.state!r} is not one of: {', '.join(STATES)}")
    stmt = (
        select(ProvisioningRequestRow, AccountRow.ext_id, ServiceRow.ext_id, ProviderRow.key)
        .join(AccountRow, AccountRow.id == ProvisioningRequestRow.account_id)
        .join(ServiceRow, ServiceRow.id == ProvisioningRequestRow.service_id)
        .join(ProviderRow, ProviderRow.id == ProvisioningRequestRow.provider_id)
        .order_by(ProvisioningRequestRow.id.desc())
        .limit(f.limit)
    )
    if f.provider is not None:
        stmt = stmt.where(ProviderRow.key == f.provider)
    if f.account is not None:
        stmt = stmt.where(AccountRow.ext_id == f.account)
    if f.state is not None:
        stmt = stmt.where(ProvisioningRequestRow.state == f.state)
    return [
        {
            "id": r.id,
            "provider": provider,
            "account": account,
            "service": service,
            "action": r.action,
            "adapter": r.adapter,
            "state": r.state,
            "attempts": r.attempts,
            "last_error": r.last_error,
            "reference": r.reference,
            "not_before": r.not_before.isoformat(),
            "created_at": r.created_at.isoformat(),
            "updated_at": r.updated_at.isoformat(),
            "key": r.key,
        }
        for r, account, service, provider in session.execute(stmt)
    ]


def settle_by_hand(
    session: Session,
    request_id: int,
    *,
    state: str,
    detail: str,
    actor: str,
    now: datetime,
    provider_id: int | None = None,
) -> ProvisioningRequestRow:
    """Confirm or fail a request that waits for its peer (`sent`), or one that failed.

    The same path as an adapter's own outcome: confirming releases the notices
    that waited for it; failing skips them. `provider_id` limits it to one
    provider (an API key's), answering "no request" for anyone else's.
    """
    from arrears.engine.provisioning import Outcome, ProvisioningDispatcher

    if state not in ("confirmed", "failed"):
        raise ConfigError("state", "confirmed or failed")
    stmt = select(ProvisioningRequestRow).where(ProvisioningRequestRow.id == request_id).with_for_update()
    if provider_id is not None:
        stmt = stmt.where(ProvisioningRequestRow.provider_id == provider_id)
    req = session.scalar(stmt)
    if req is None:
        raise ConfigError("id", f"no provisioning request {request_id}")
    allowed = ("sent", "pending", "failed") if state == "confirmed" else ("sent", "pending")
    if req.state not in allowed:
        raise ConfigError("state", f"request {request_id} is {req.state}; it cannot become {state}")
    ProvisioningDispatcher().settle(
        session, req, Outcome(state, None if state == "confirmed" else detail), now
    )
    if detail:
        req.last_error = f"{detail} ({actor})" if state == "failed" else req.last_error
    return req
