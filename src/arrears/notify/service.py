"""What operators do with notifications: list them, retry or cancel one that needs a person."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears.config import ConfigError
from arrears.store.tables import AccountRow, HistoryRow, NotificationRow, ProviderRow

STATES = ("waiting", "pending", "sending", "sent", "failed", "skipped", "uncertain", "cancelled")
# A person may send again what failed or may not have gone out, and call off what has not gone.
RETRYABLE = ("failed", "uncertain")
CANCELLABLE = ("pending", "waiting", "failed", "uncertain")


@dataclass(frozen=True)
class NotificationFilter:
    provider: str | None = None  # provider key
    account: str | None = None  # the provider's own account id
    event: str | None = None
    state: str | None = None
    limit: int = 100


def list_notifications(session: Session, f: NotificationFilter) -> list[dict[str, Any]]:
    if f.state is not None and f.state not in STATES:
        raise ConfigError("state", f"{f.state!r} is not one of: {', '.join(STATES)}")
    stmt = (
        select(NotificationRow, AccountRow.ext_id, ProviderRow.key)
        .join(AccountRow, AccountRow.id == NotificationRow.account_id)
        .join(ProviderRow, ProviderRow.id == NotificationRow.provider_id)
        .order_by(NotificationRow.due_at.desc(), NotificationRow.id.desc())
        .limit(f.limit)
    )
    if f.provider is not None:
        stmt = stmt.where(ProviderRow.key == f.provider)
    if f.account is not None:
        stmt = stmt.where(AccountRow.ext_id == f.account)
    if f.event is not None:
        stmt = stmt.where(NotificationRow.event == f.event)
    if f.state is not None:
        stmt = stmt.where(NotificationRow.state == f.state)
    return [as_json(row, account, provider) for row, account, provider in session.execute(stmt)]


def as_json(row: NotificationRow, account: str, provider: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "provider": provider,
        "account": account,
        "event": row.event,
        "channel": row.channel,
        "to": row.to_address,
        "service": row.service_ext_id,
        "invoice": row.invoice_ext_id,
        "state": row.state,
        "reason": row.reason,
        "due_at": row.due_at.isoformat(),
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at.isoformat() if row.next_attempt_at else None,
        "sent_at": row.sent_at.isoformat() if row.sent_at else None,
        "reference": row.reference,
        "delivery": row.delivery,
        "key": row.key,
    }


def retry(
    session: Session, notification_id: int, *, actor: str, now: datetime, provider_id: int | None = None
) -> NotificationRow:
    """Send again, now: for a failed notice or one whose send was interrupted.

    `provider_id` limits it to one provider's notices (a console user's),
    answering "no notification" for anyone else's.
    """
    row = _get(session, notification_id, provider_id)
    if row.state not in RETRYABLE:
        raise ConfigError(
            "state", f"notification {row.id} is {row.state}; only {', '.join(RETRYABLE)} can be retried"
        )
    row.state, row.next_attempt_at, row.reason = "pending", now, None
    row.attempts = 0  # a fresh allowance of attempts, on a person's say-so
    delivery_line(session, row, now, row.state, "retry", actor)
    return row


def cancel(
    session: Session, notification_id: int, *, actor: str, now: datetime, provider_id: int | None = None
) -> NotificationRow:
    """Give up on a notice that has not gone out (`provider_id` as for `retry`)."""
    row = _get(session, notification_id, provider_id)
    if row.state not in CANCELLABLE:
        raise ConfigError(
            "state", f"notification {row.id} is {row.state}; only {', '.join(CANCELLABLE)} can be cancelled"
        )
    row.state, row.reason = "cancelled", f"cancelled by {actor}"
    delivery_line(session, row, now, row.state, "cancel", actor)
    return row


def _get(session: Session, notification_id: int, provider_id: int | None) -> NotificationRow:
    row = session.get(NotificationRow, notification_id, with_for_update=True)
    if row is None or (provider_id is not None and row.provider_id != provider_id):
        raise ConfigError("id", f"no notification {notification_id}")
    return row


def delivery_line(
    session: Session, row: NotificationRow, now: datetime, state: str, detail: str, actor: str = "dispatcher"
) -> None:
    """A delivery line in the account's history, beside the decision that asked for the notice."""
    data: dict[str, Any] = {
        "event": row.event,
        "channel": row.channel,
        "service": row.service_ext_id,
        "invoice": row.invoice_ext_id,
        "to": row.to_address,
        "state": state,
        "detail": detail,
        "notification": row.id,
    }
    session.add(
        HistoryRow(
            provider_id=row.provider_id,
            account_id=row.account_id,
            at=now,
            kind="delivery",
            data=data,
            actor=actor,
        )
    )
