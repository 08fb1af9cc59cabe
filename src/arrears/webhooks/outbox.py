"""The journal's side of webhooks: the deliveries a history line calls for.

A `Journal` hands every line that may be an event (`events.EVENT_KINDS`) to its
`Outbox`, which answers the delivery rows to write with the line, in the same
transaction: one per enabled endpoint of the provider that wants the event, all
with one event id. The provider's endpoints are read once per journal, on the
first line that is an event; a provider without endpoints costs that one query
per transaction that changes something, and nothing per line after it.

An endpoint added or enabled while a transaction runs is seen by the next one.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears.domain.clock import iso_local
from arrears.store.tables import ProviderRow, WebhookEndpointRow
from arrears.webhooks.events import StageContext, event_data, event_type, payload, stage_context, wants


def new_event_id() -> str:
    """A fresh event id: the same on every endpoint's delivery and every attempt of the event."""
    return f"evt_{uuid.uuid4().hex}"


class Outbox:
    """One journal's view of its provider's endpoints, and the delivery rows its lines call for."""

    def __init__(self, session: Session, provider_id: int):
        self.session = session
        self.provider_id = provider_id
        # (endpoint id, subscribed types); None until the first event asks.
        self._endpoints: list[tuple[int, tuple[str, ...]]] | None = None
        self._provider_key = ""
        self._tz = ZoneInfo("UTC")
        # Per account, what its last stage line in this journal said (see events.StageContext).
        self._context: dict[int, StageContext] = {}

    def _load(self) -> list[tuple[int, tuple[str, ...]]]:
        if self._endpoints is None:
            # Not flushed first: the engine's pending work has nothing to do with endpoints.
            with self.session.no_autoflush:
                rows = self.session.execute(
                    select(WebhookEndpointRow.id, WebhookEndpointRow.events)
                    .where(
                        WebhookEndpointRow.provider_id == self.provider_id,
                        WebhookEndpointRow.enabled.is_(True),
                    )
                    .order_by(WebhookEndpointRow.id)
                ).all()
                self._endpoints = [(endpoint_id, tuple(events or ())) for endpoint_id, events in rows]
                if self._endpoints:
                    key, tz = self.session.execute(
                        select(ProviderRow.key, ProviderRow.timezone).where(
                            ProviderRow.id == self.provider_id
                        )
                    ).one()
                    self._provider_key, self._tz = key, ZoneInfo(tz)
        return self._endpoints

    def record(
        self,
        kind: str,
        account_id: int | None,
        data: dict[str, Any],
        *,
        at: datetime,
        actor: str,
        episode_stage: str | None,
        episode_id: int | None,
    ) -> list[dict[str, Any]]:
        """The `webhook_deliveries` rows (column values) for this line; none when nobody wants it.

        The rows share one payload; its `data.episode` is `episode_id` (the
        journal fills it in later for an episode that has no id yet).
        """
        if self._endpoints is not None and not self._endpoints:
            # Known to have no endpoints: the common case, and nothing to work out.
            return []
        type_ = event_type(kind, data)
        if type_ is None:
            return []
        endpoints = self._load()
        if not endpoints:
            return []
        context = self._context.get(account_id) if account_id is not None else None
        if kind == "stage" and account_id is not None:
            self._context[account_id] = stage_context(data)
        targets = [endpoint_id for endpoint_id, subscribed in endpoints if wants(subscribed, type_)]
        if not targets:
            return []
        body = event_data(
            kind,
            data,
            context=context,
            episode_stage=episode_stage,
            at_local=iso_local(at, self._tz),
            actor=actor,
        )
        body["episode"] = episode_id
        event_id = new_event_id()
        message = payload(event_id, type_, at, self._provider_key, body)
        return [
            {
                "endpoint_id": endpoint_id,
                "provider_id": self.provider_id,
                "event_id": event_id,
                "event_type": type_,
                "payload": message,
                "created_at": at,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": at,
                "last_attempt_at": None,
                "response_status": None,
                "last_error": None,
                "delivered_at": None,
                "claimed_by": None,
                "claimed_until": None,
            }
            for endpoint_id in targets
        ]
