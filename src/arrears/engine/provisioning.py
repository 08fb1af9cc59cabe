"""Provisioning requests: the dispatcher and the adapter interface (SPEC §8).

The engine writes a `pending` request in the decision's transaction; the
dispatcher later hands it to the provider's adapter and records the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears.engine.journal import Journal, announce
from arrears.store.tables import AccountRow, NotificationRow, ProvisioningRequestRow, ServiceRow

FINAL_STATES = ("confirmed", "failed", "cancelled")


@dataclass(frozen=True)
class Outcome:
    state: str  # "confirmed", "sent" (accepted; confirmation comes later) or "failed"
    error: str | None = None


class ProvisioningAdapter(Protocol):
    name: str

    def execute(self, request: ProvisioningRequestRow, service: ServiceRow) -> Outcome: ...


class LogAdapter:
    """Records the request and confirms it at once: the default."""

    name = "log"

    def execute(self, request: ProvisioningRequestRow, service: ServiceRow) -> Outcome:
        return Outcome("confirmed")


class ProvisioningDispatcher:
    def __init__(self, adapters: dict[str, ProvisioningAdapter] | None = None):
        self.adapters: dict[str, ProvisioningAdapter] = adapters or {"log": LogAdapter()}

    def dispatch(self, session: Session, now: datetime, limit: int = 500) -> int:
        """Run the next request of each service whose turn has come; returns how many ran."""
        stmt = (
            select(ProvisioningRequestRow)
            .where(ProvisioningRequestRow.state == "pending", ProvisioningRequestRow.not_before <= now)
            .order_by(ProvisioningRequestRow.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        requests = session.scalars(stmt).all()
        done = 0
        seen_services: set[int] = set()
        for req in requests:
            if req.service_id in seen_services or self._earlier_unfinished(session, req):
                continue  # requests for one service are applied in order
            seen_services.add(req.service_id)
            service = session.get_one(ServiceRow, req.service_id)
            adapter = self.adapters.get(req.adapter) or self.adapters["log"]
            req.attempts += 1
            outcome = adapter.execute(req, service)
            self.settle(session, req, outcome, now)
            done += 1
        return done

    def _earlier_unfinished(self, session: Session, req: ProvisioningRequestRow) -> bool:
        earlier = session.scalar(
            select(ProvisioningRequestRow.id).where(
                ProvisioningRequestRow.service_id == req.service_id,
                ProvisioningRequestRow.id < req.id,
                ProvisioningRequestRow.state == "sent",
            )
        )
        return earlier is not None

    def settle(self, session: Session, req: ProvisioningRequestRow, outcome: Outcome, now: datetime) -> None:
        req.state = outcome.state
        req.last_error = outcome.error
        req.updated_at = now
        if outcome.state not in FINAL_STATES:
            return
        account = session.get_one(AccountRow, req.account_id)
        service = session.get_one(ServiceRow, req.service_id)
        journal = Journal(session, req.provider_id, now)
        journal.write(
            "provisioning",
            account.id,
            episode_id=req.episode_id,
            account=account.ext_id,
            service=service.ext_id,
            action=req.action,
            state=req.state,
        )
        waiting = session.scalars(
            select(NotificationRow).where(
                NotificationRow.provisioning_request_id == req.id, NotificationRow.state == "waiting"
            )
        ).all()
        for note in waiting:
            if req.state == "confirmed":
                # The network has changed: now the customer may be told.
                note.state = "pending"
                announce(
                    session,
                    journal,
                    account,
                    {
                        "channel": note.channel,
                        "event": note.event,
                        "service_ext_id": note.service_ext_id,
                        "invoice_ext_id": note.invoice_ext_id,
                        "to_address": note.to_address,
                    },
                )
            else:
                note.state = "skipped"
                note.reason = f"provisioning_{req.state}"
                journal.write(
                    "skipped",
                    account.id,
                    account=account.ext_id,
                    event=note.event,
                    channel=note.channel,
                    service=note.service_ext_id,
                    invoice=note.invoice_ext_id,
                    reason=note.reason,
                )
