"""Provisioning requests: the dispatcher and the adapter interface (SPEC §8).

The engine writes a `pending` request in the decision's transaction; the
dispatcher later hands it to the provider's adapter and records the outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from arrears.engine.journal import Journal, announce
from arrears.store.repository import id_filter
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
        if not requests:
            return 0
        # What the batch needs, read in a few queries rather than a few per request.
        service_ids = sorted({req.service_id for req in requests})
        account_ids = sorted({req.account_id for req in requests})
        among_services = id_filter(session, service_ids)
        # The oldest request of each service still waiting for its confirmation.
        first_sent: dict[int, int] = {
            service_id: first
            for service_id, first in session.execute(
                select(ProvisioningRequestRow.service_id, func.min(ProvisioningRequestRow.id))
                .where(
                    among_services(ProvisioningRequestRow.service_id), ProvisioningRequestRow.state == "sent"
                )
                .group_by(ProvisioningRequestRow.service_id)
            ).all()
        }
        # Held here, so `get_one` (in `settle`) answers from the identity map.
        services = {
            svc.id: svc for svc in session.scalars(select(ServiceRow).where(among_services(ServiceRow.id)))
        }
        accounts = session.scalars(
            select(AccountRow).where(id_filter(session, account_ids)(AccountRow.id))
        ).all()
        waiting: dict[int, list[NotificationRow]] = {req.id: [] for req in requests}
        for note in session.scalars(
            select(NotificationRow)
            .where(
                id_filter(session, sorted(waiting))(NotificationRow.provisioning_request_id),
                NotificationRow.state == "waiting",
            )
            .order_by(NotificationRow.id)
        ):
            assert note.provisioning_request_id is not None
            waiting[note.provisioning_request_id].append(note)
        done = 0
        seen_services: set[int] = set()
        for req in requests:
            # Requests for one service are applied in order. The states read above
            # stay true through the loop: only requests of services in
            # `seen_services` change, and those are not looked at again.
            earlier = first_sent.get(req.service_id)
            if req.service_id in seen_services or (earlier is not None and earlier < req.id):
                continue
            seen_services.add(req.service_id)
            service = services[req.service_id]
            adapter = self.adapters.get(req.adapter) or self.adapters["log"]
            req.attempts += 1
            outcome = adapter.execute(req, service)
            self.settle(session, req, outcome, now, waiting=waiting[req.id])
            done += 1
        del accounts  # held until here (see above)
        return done

    def settle(
        self,
        session: Session,
        req: ProvisioningRequestRow,
        outcome: Outcome,
        now: datetime,
        *,
        waiting: Sequence[NotificationRow] | None = None,
    ) -> None:
        """Record the outcome; a final one releases (or skips) the notices waiting for it.

        `waiting`, when given, must be the request's notifications in state
        `waiting` (the dispatcher reads them for a whole batch at once).
        """
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
        if waiting is None:
            waiting = session.scalars(
                select(NotificationRow)
                .where(NotificationRow.provisioning_request_id == req.id, NotificationRow.state == "waiting")
                .order_by(NotificationRow.id)
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
