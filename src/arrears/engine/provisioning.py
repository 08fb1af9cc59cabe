"""Provisioning requests: the dispatcher (SPEC §8; docs/provisioning.md).

The engine writes a `pending` request in the decision's transaction; the
dispatcher later hands it to the adapter of the provider's route for the
service type (arrears.provisioning) and records the outcome: confirmed,
accepted (waiting for a callback), retried with backoff, or failed with an
alert to the provider's operations address.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from arrears.engine.journal import Journal, announce
from arrears.notify.alerts import raise_alert
from arrears.provisioning.base import ProvisioningCall, Result, State
from arrears.provisioning.routing import ProvisioningPolicy, Routes
from arrears.store.repository import id_filter
from arrears.store.tables import (
    AccountRow,
    NotificationRow,
    ProviderRow,
    ProvisioningRequestRow,
    ServiceRow,
)

log = logging.getLogger("arrears.provisioning")

FINAL_STATES = ("confirmed", "failed", "cancelled")


@dataclass(frozen=True)
class Outcome:
    state: str  # "confirmed", "sent" (accepted; confirmation comes later) or "failed"
    error: str | None = None


# Told of every adapter outcome: (adapter name, outcome, seconds from decision to
# confirmation or None). The worker turns these into metrics; the engine knows none.
OutcomeHook = Callable[[str, str, float | None], None]


class ProvisioningDispatcher:
    """Carries out pending requests through each provider's adapters, in order per service."""

    def __init__(
        self,
        routes: Routes | None = None,
        policy: ProvisioningPolicy | None = None,
        *,
        rng: random.Random | None = None,
        on_outcome: OutcomeHook | None = None,
    ):
        self.routes = routes or Routes()
        self.policy = policy or ProvisioningPolicy()
        self.rng = rng or random.Random()
        self.on_outcome = on_outcome

    def close(self) -> None:
        self.routes.close()

    def dispatch(self, session: Session, now: datetime, limit: int = 500) -> int:
        """Run the next request of each service whose turn has come; returns how many ran.

        Each runs while its row is locked: a worker killed mid-call leaves it
        pending, and the next one sends it again with the same idempotency key.
        """
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
        accounts = {
            a.id: a
            for a in session.scalars(select(AccountRow).where(id_filter(session, account_ids)(AccountRow.id)))
        }
        provider_keys = dict(
            session.execute(
                select(ProviderRow.id, ProviderRow.key).where(
                    ProviderRow.id.in_({req.provider_id for req in requests})
                )
            ).all()
        )
        self.routes.prepare(session, provider_keys)
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
            account = accounts[req.account_id]
            adapter = self.routes.adapter(req.provider_id, service.type)
            req.adapter = adapter.name
            req.attempts += 1
            call = ProvisioningCall(
                request_id=req.id,
                key=req.key,
                action=req.action,
                provider=provider_keys[req.provider_id],
                account=account.ext_id,
                service=service.ext_id,
                service_type=service.type,
                attempt=req.attempts,
                created_at=req.created_at,
            )
            try:
                result = adapter.execute(call)
            except Exception as exc:  # an adapter must not raise; if one does, try again later
                log.exception("provisioning adapter %s raised", adapter.name)
                result = Result(State.RETRY, f"adapter error: {type(exc).__name__}: {exc}")
            self._apply(session, req, adapter.name, result, now, waiting[req.id])
            done += 1
        return done

    def _apply(
        self,
        session: Session,
        req: ProvisioningRequestRow,
        adapter: str,
        result: Result,
        now: datetime,
        waiting: Sequence[NotificationRow],
    ) -> None:
        if result.reference:
            req.reference = result.reference[:200]
        latency: float | None = None
        if result.state is State.CONFIRMED:
            self.settle(session, req, Outcome("confirmed"), now, waiting=waiting)
            latency = (now - req.created_at).total_seconds()
            outcome = "confirmed"
        elif result.state is State.ACCEPTED:
            # Taken by the peer; its callback (or an operator) confirms it later.
            self.settle(session, req, Outcome("sent", result.detail or None), now, waiting=waiting)
            outcome = "accepted"
        elif result.state is State.RETRY and req.attempts < self.policy.max_attempts:
            req.not_before = now + self.policy.retry_delay(req.attempts, self.rng)
            req.last_error = result.detail[:2000] or None
            req.updated_at = now
            outcome = "retry"
        else:
            reason = result.detail or "refused"
            if result.state is State.RETRY:
                reason = f"gave up after {req.attempts} attempts: {reason}"
            self.settle(session, req, Outcome("failed", reason[:2000]), now, waiting=waiting)
            self._alert(session, req, reason, now)
            outcome = "failed"
        # One line per outcome, with the ids that find it again (JSON in the worker's log).
        log.log(
            logging.WARNING if outcome == "failed" else logging.INFO,
            "provisioning %s",
            outcome,
            extra={
                "event": "provisioning",
                "outcome": outcome,
                "provider": req.provider_id,
                "account": req.account_id,
                "request": req.id,
                "action": req.action,
                "adapter": adapter,
                "attempt": req.attempts,
                "detail": result.detail[:300],
            },
        )
        if self.on_outcome is not None:
            self.on_outcome(adapter, outcome, latency)

    def _alert(self, session: Session, req: ProvisioningRequestRow, reason: str, now: datetime) -> None:
        account = session.get_one(AccountRow, req.account_id)
        service = session.get_one(ServiceRow, req.service_id)
        raise_alert(
            session,
            provider_id=req.provider_id,
            account_id=req.account_id,
            key=f"provisioning|{req.id}",
            subject=f"arrears: {req.action} of service {service.ext_id} failed",
            text=(
                f"The provisioning request {req.id} ({req.action} of service {service.ext_id}, "
                f"account {account.ext_id}) failed after {req.attempts} attempt(s) through the "
                f"{req.adapter} adapter:\n\n{reason}\n\n"
                "The network may not match what arrears recorded. Once fixed, confirm it with\n"
                f"    arrears provisioning confirm {req.id}\n"
            ),
            now=now,
        )

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
