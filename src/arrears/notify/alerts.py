"""Alerts to a provider's operations address, for what needs a person (SPEC §8).

They travel as notification rows, so they get the same exactly-once delivery,
retries and records as customers' notices; their text is written here, not by
the provider's templates, and they are never skipped as no longer true.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears.store.tables import NotificationRow, ProviderRow

EVENT = "operator_alert"


def raise_alert(
    session: Session,
    *,
    provider_id: int,
    account_id: int,
    key: str,
    subject: str,
    text: str,
    now: datetime,
) -> NotificationRow | None:
    """Record an alert for the provider's operations address (none set: nothing to send).

    `key` makes it idempotent: the same problem alerted twice is one email.
    """
    address = session.scalar(select(ProviderRow.operations_email).where(ProviderRow.id == provider_id))
    if not address:
        return None
    full_key = f"alert|{key}"
    existing = session.scalar(
        select(NotificationRow).where(
            NotificationRow.provider_id == provider_id, NotificationRow.key == full_key
        )
    )
    if existing is not None:
        return existing
    context: dict[str, Any] = {"subject": subject, "text": text}
    row = NotificationRow(
        provider_id=provider_id,
        account_id=account_id,
        key=full_key,
        event=EVENT,
        mapping_key=EVENT,
        channel="email",
        recipient_role="operations",
        to_address=address,
        due_at=now,
        state="pending",
        context=context,
        created_at=now,
    )
    session.add(row)
    return row
