"""Carrying out an evaluation: status changes, episodes, history, and the rows
for side effects (provisioning requests, notifications), all in the caller's
transaction so they commit together or not at all.

The engine's evaluations (`service.reevaluate`) hand the applicator plain
states (`repository.AccountState`), whose changes `journal.Writes` writes in
bulk; operator actions (`inputs`) hand it ORM rows, flushed by the session.
Both kinds look alike to the parts below (`AccountLike`, `ServiceLike`,
`EpisodeLike`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears.domain.clock import iso_local
from arrears.domain.decisions import Action, Evaluation, NoticeDue
from arrears.domain.events import EventKind, EventMapping, Recipient, notice_key, recipients
from arrears.domain.model import AccountSnapshot, ServiceStatus
from arrears.domain.money import fmt
from arrears.domain.rules import Stage
from arrears.engine.journal import Journal, PendingRequest, announce, moved
from arrears.store.repository import AccountState, EpisodeState, ProviderView, StoredAccount, id_filter
from arrears.store.tables import (
    AccountRow,
    EpisodeRow,
    NotificationRow,
    ProvisioningRequestRow,
)

ACTIVE_LIKE = (ServiceStatus.ACTIVE.value, ServiceStatus.PREACTIVE.value)
STAGE_STATUS_VALUES = ("restricted", "suspended", "deactivated")


class EpisodeLike(Protocol):
    """An `EpisodeRow` or an `EpisodeState`."""

    @property
    def id(self) -> int | None: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def rule_set_id(self) -> int | None: ...

    stage: str
    ended_at: datetime | None
    end_reason: str | None


class ServiceLike(Protocol):
    """A `ServiceRow` or a `ServiceState`."""

    @property
    def id(self) -> int: ...
    @property
    def ext_id(self) -> str: ...
    @property
    def episode_id(self) -> int | None: ...

    status: str
    changed_by: str


class AccountLike(Protocol):
    """An `AccountRow` or an `AccountState`."""

    @property
    def id(self) -> int: ...
    @property
    def ext_id(self) -> str: ...
    @property
    def services(self) -> Sequence[ServiceLike]: ...
    @property
    def episode(self) -> EpisodeLike | None: ...

    status: str
    status_reason: str | None
    path_started_at: datetime | None
    shadow_stage: str | None
    excluded_reasons: str | None
    projected_suspension: datetime | None


Request = ProvisioningRequestRow | PendingRequest


class Applicator:
    def __init__(self, session: Session, provider: ProviderView, now: datetime, journal: Journal):
        self.session = session
        self.provider = provider
        self.now = now
        self.journal = journal
        # Pending requests of services, read ahead for a batch (`read_pending`).
        self._pending: dict[int, list[ProvisioningRequestRow]] = {}
        self._read_ahead: set[int] = set()

    def read_pending(self, service_ids: Iterable[int]) -> None:
        """Read the pending requests of these services now, in one query.

        A restore cancels the pending requests of each service it restores;
        reading them for a whole batch at once saves a query per service. Read
        after the session's work is flushed; requests this applicator makes
        later are looked up as before.
        """
        ids = sorted(set(service_ids) - self._read_ahead)
        if not ids:
            return
        among = id_filter(self.session, ids)
        for req in self.session.scalars(
            select(ProvisioningRequestRow)
            .where(among(ProvisioningRequestRow.service_id), ProvisioningRequestRow.state == "pending")
            .order_by(ProvisioningRequestRow.id)
        ):
            self._pending.setdefault(req.service_id, []).append(req)
        self._read_ahead.update(ids)

    # -- the whole evaluation -------------------------------------------------

    def apply(self, account: AccountState, snap: AccountSnapshot, ev: Evaluation) -> bool:
        """Carry out `ev`; True when the account's state changed (evaluate again)."""
        rs_id = self._rule_set_id(ev)
        if ev.excluded_now:
            self.journal.write(
                "excluded",
                account.id,
                rule_set_id=rs_id,
                account=account.ext_id,
                reasons=list(ev.excluded_now),
                why=self._why(ev),
            )
        account.excluded_reasons = ",".join(ev.excluded_memory) if ev.excluded_memory else None
        account.shadow_stage = ev.shadow_memory
        if ev.heading and account.path_started_at is None:
            account.path_started_at = self.now
        elif not ev.heading and account.episode is None:
            account.path_started_at = None
        for notice in ev.notices:
            self._record_notice(account, snap, notice)

        changed = False
        if ev.action is Action.ESCALATE and ev.stage is not None:
            self._move(account, snap, ev, ev.stage, escalation=True)
            changed = True
        elif ev.action is Action.DEESCALATE and ev.stage is not None:
            self._move(account, snap, ev, ev.stage, escalation=False)
            changed = True
        elif ev.action is Action.RESTORE:
            self.restore(account, snap, reason=ev.restore_reason or "paid", notify=True, ev=ev)
            changed = True
        elif ev.action is Action.WOULD_SUSPEND and ev.stage is not None:
            self.journal.write(
                "would_suspend",
                account.id,
                rule_set_id=rs_id,
                account=account.ext_id,
                stage=ev.stage.name,
                why=self._why(ev),
            )
        elif ev.action is Action.WOULD_RESTORE:
            self.journal.write(
                "would_restore",
                account.id,
                rule_set_id=rs_id,
                account=account.ext_id,
                reason=ev.restore_reason,
                why=self._why(ev),
            )

        account.stage = account.episode.stage if account.episode is not None else None
        account.projected_suspension = ev.projected
        account.next_wakeup_at = ev.next_wakeup
        account.evaluated_at = self.now
        return changed

    # -- escalation and de-escalation ----------------------------------------

    def _move(
        self, account: AccountState, snap: AccountSnapshot, ev: Evaluation, stage: Stage, *, escalation: bool
    ) -> None:
        """Move the account to `stage`; `snap` (taken before) supplies the notice recipients."""
        rs_id = self._rule_set_id(ev)
        episode = account.episode
        if episode is None:
            episode = EpisodeState(None, account.id, self.now, stage.name, rs_id)
            writes = self.journal.writes
            assert writes is not None, "states are written by `Writes`"
            writes.add_episode(episode)
            account.episode = episode
            before = "none"
        else:
            before = episode.stage
            episode.stage = stage.name
        self.journal.write(
            "stage",
            account.id,
            episode=episode,
            rule_set_id=rs_id,
            account=account.ext_id,
            **moved(before, stage.name),
            why=self._why(ev),
        )
        target = stage.status.value
        changed: list[tuple[ServiceLike, Request]] = []
        for svc in account.services:
            # A new episode has no id before the flush, and no services yet.
            ours = (
                episode.id is not None and svc.episode_id == episode.id and svc.status in STAGE_STATUS_VALUES
            )
            if not (svc.status == ServiceStatus.ACTIVE.value or ours) or svc.status == target:
                continue
            self._service_status(account, svc, target, episode)
            svc.changed_by = "episode"
            svc.episode = episode
            changed.append((svc, self._provision(account, svc, stage.provisioning_action, episode)))
        self._account_status_after_change(account, episode)
        if escalation:
            for m in self._mappings(EventKind.AUTO_SUSPEND):
                for moved_svc, req in changed:
                    # An episode can reach the same stage twice (down after a part
                    # payment, up again later): each escalation is its own occurrence.
                    occurrence = f"{episode.started_at.isoformat()}:{stage.name}:{self.now.isoformat()}"
                    self._notify(
                        account,
                        snap,
                        m,
                        occurrence,
                        self.now,
                        service=moved_svc,
                        request=req,
                        context={"stage": stage.name},
                    )

    def _account_status_after_change(self, account: AccountLike, episode: EpisodeLike | None) -> None:
        if account.status == "active" and not any(s.status in ACTIVE_LIKE for s in account.services):
            self._account_status(account, "suspended", "auto", episode)

    # -- restoration ------------------------------------------------------------

    def restore(
        self,
        account: AccountLike,
        snap: AccountSnapshot,
        *,
        reason: str,
        notify: bool,
        ev: Evaluation | None = None,
    ) -> None:
        """Return everything the current episode changed; end the episode."""
        episode = account.episode
        if episode is None:
            return
        rs_id = self._rule_set_id(ev) if ev else episode.rule_set_id
        self.journal.write(
            "stage",
            account.id,
            episode=episode,
            rule_set_id=rs_id,
            account=account.ext_id,
            **moved(episode.stage, "none"),
            reason=reason,
            why=self._why(ev) if ev else {"reason": reason},
        )
        restored: list[tuple[ServiceLike, Request | None]] = []
        for svc in account.services:
            if svc.episode_id != episode.id or svc.status not in STAGE_STATUS_VALUES:
                continue
            self._service_status(account, svc, "active", episode)
            restored.append((svc, self._provision(account, svc, "restore", episode)))
        if account.status == "suspended" and account.status_reason == "auto":
            self._account_status(account, "active", None, episode)
        episode.ended_at = self.now
        episode.end_reason = reason
        _leave_episode(account)
        account.path_started_at = None
        account.shadow_stage = None
        account.excluded_reasons = None
        if notify:
            for m in self._mappings(EventKind.AUTO_UNSUSPEND):
                for svc, req in restored:
                    self._notify(
                        account,
                        snap,
                        m,
                        f"{episode.started_at.isoformat()}:restore",
                        self.now,
                        service=svc,
                        request=req,
                        context={"reason": reason},
                    )

    # -- the parts ----------------------------------------------------------------

    def _service_status(
        self, account: AccountLike, svc: ServiceLike, to: str, episode: EpisodeLike | None
    ) -> None:
        self.journal.write(
            "service_status",
            account.id,
            episode=episode,
            account=account.ext_id,
            service=svc.ext_id,
            **moved(svc.status, to),
        )
        svc.status = to

    def _account_status(
        self, account: AccountLike, to: str, reason: str | None, episode: EpisodeLike | None
    ) -> None:
        self.journal.write(
            "account_status",
            account.id,
            episode=episode,
            account=account.ext_id,
            **moved(account.status, to),
            reason=reason,
        )
        account.status = to
        account.status_reason = reason

    def _provision(
        self, account: AccountLike, svc: ServiceLike, action: str, episode: EpisodeLike | None
    ) -> Request:
        writes = self.journal.writes
        if action == "restore":
            pending = self._pending_requests(svc.id)
            if pending:
                # The network never changed: cancel instead of sending both.
                for req in pending:
                    req.state = "cancelled"
                    req.updated_at = self.now
                    self.journal.write(
                        "provisioning",
                        account.id,
                        episode=episode,
                        account=account.ext_id,
                        service=svc.ext_id,
                        action=req.action,
                        state="cancelled",
                    )
                return pending[-1]
        values: dict[str, Any] = {
            "provider_id": self.provider.id,
            "account_id": account.id,
            "service_id": svc.id,
            "episode_id": None,
            "key": f"svc{svc.id}:{action}:{self.now.isoformat()}",
            "action": action,
            "adapter": "log",
            "state": "pending",
            "attempts": 0,
            "last_error": None,
            "not_before": self.now,
            "created_at": self.now,
            "updated_at": self.now,
        }
        # A service read ahead has a request made after the read: look it up again.
        self._read_ahead.discard(svc.id)
        if writes is not None:
            pending_request = PendingRequest(values, episode)
            writes.requests.append(pending_request)
            return pending_request
        if isinstance(episode, EpisodeRow):
            del values["episode_id"]
            req = ProvisioningRequestRow(**values, episode=episode)
        else:
            values["episode_id"] = episode.id if episode is not None else None
            req = ProvisioningRequestRow(**values)
        self.session.add(req)
        return req

    def _pending_requests(self, service_id: int) -> Sequence[ProvisioningRequestRow]:
        """The service's pending requests, oldest first; they are cancelled by the caller."""
        if service_id in self._read_ahead:
            self._read_ahead.discard(service_id)
            return self._pending.pop(service_id, [])
        writes = self.journal.writes
        if writes is not None and writes.has_request_for(service_id):
            # A request made earlier in this round must be seen by the query below.
            writes.flush(self.session)
        return self.session.scalars(
            select(ProvisioningRequestRow)
            .where(
                ProvisioningRequestRow.service_id == service_id,
                ProvisioningRequestRow.state == "pending",
            )
            .order_by(ProvisioningRequestRow.id)
        ).all()

    def _mappings(self, event: EventKind) -> list[EventMapping]:
        return self.provider.context.mappings.of(event)

    def _record_notice(self, account: AccountLike, snap: AccountSnapshot, notice: NoticeDue) -> None:
        context: dict[str, Any] = {}
        if notice.mapping.event is EventKind.SUSPENSION_WARNING:
            context["projected_suspension"] = (
                account.projected_suspension.isoformat() if account.projected_suspension else None
            )
        occurrence_key = notice.key
        self._notify(
            account,
            snap,
            notice.mapping,
            None,
            notice.due_at,
            invoice=notice.invoice,
            skip_reason="late" if notice.late else None,
            context=context,
            key=occurrence_key,
        )

    def _notify(
        self,
        account: AccountLike,
        snap: AccountSnapshot,
        m: EventMapping,
        occurrence: str | None,
        due_at: datetime,
        *,
        service: ServiceLike | None = None,
        request: Request | None = None,
        invoice: str | None = None,
        skip_reason: str | None = None,
        context: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> None:
        base_key = key or notice_key(m, service.ext_id if service else account.ext_id, occurrence or "")
        targets: list[Recipient] = recipients(m, snap, service.ext_id if service else None)
        if not targets:
            # No channel configured: remember the occurrence so it is not looked at again.
            targets = [Recipient(m.roles[0], "none", None)]
        writes = self.journal.writes
        service_ext_id = service.ext_id if service else None
        for r in targets:
            reason = skip_reason
            if reason is None and r.address is None and r.channel not in ("note", "none"):
                reason = "no_recipient"
            state = "skipped" if reason or r.channel == "none" else "pending"
            if (
                state == "pending"
                and m.after_provisioning
                and request is not None
                and request.state != "confirmed"
            ):
                state = "waiting"
            values: dict[str, Any] = {
                "provider_id": self.provider.id,
                "account_id": account.id,
                "key": f"{base_key}|{r.channel}|{r.role.value}|{r.address or ''}",
                "event": m.event.value,
                "mapping_key": m.key,
                "channel": r.channel,
                "recipient_role": r.role.value,
                "to_address": r.address,
                "service_ext_id": service_ext_id,
                "invoice_ext_id": invoice,
                "due_at": due_at,
                "state": state,
                "reason": reason,
                "context": dict(context or {}),
                "created_at": self.now,
            }
            if writes is not None:
                writes.notifications.append((values, request))
            else:
                self.session.add(NotificationRow(**values, provisioning_request=request))
            if r.channel == "none":
                continue
            if state == "skipped":
                self.journal.write(
                    "skipped",
                    account.id,
                    account=account.ext_id,
                    event=m.event.value,
                    channel=r.channel,
                    service=service_ext_id,
                    invoice=invoice,
                    reason=reason,
                )
            elif state == "pending":
                self._announce(account, values)

    def _announce(self, account: AccountLike, values: dict[str, Any]) -> None:
        announce(self.session, self.journal, account, values)

    # -- helpers -------------------------------------------------------------------

    def _rule_set_id(self, ev: Evaluation | None) -> int | None:
        if ev is None or ev.rule_set is None:
            return None
        return self.provider.rule_set_ids.get((ev.rule_set.name, ev.rule_set.version))

    def _why(self, ev: Evaluation) -> dict[str, Any]:
        cur = self.provider.currency
        f = ev.figures
        return {
            "rule_set": ev.rule_set.name if ev.rule_set else None,
            "version": ev.rule_set.version if ev.rule_set else None,
            "figures": {
                "total_owing": fmt(f.total_owing, cur),
                "overdue_balance": fmt(f.overdue_balance, cur),
                "days_overdue": f.days_overdue,
                "disputed": fmt(f.disputed, cur),
                "unallocated": fmt(f.unallocated, cur),
            },
            "exclusions": list(ev.exclusions),
            "reason": ev.restore_reason,
            "projected_suspension": iso_local(ev.projected, self.provider.tz) if ev.projected else None,
        }


def _leave_episode(account: AccountLike) -> None:
    """The account is in no episode any more (the relationship is typed per kind of account)."""
    if isinstance(account, AccountState):
        account.episode = None
    else:
        assert isinstance(account, AccountRow)
        account.episode = None


def needs_apply(stored: StoredAccount, ev: Evaluation) -> bool:
    """Whether carrying out `ev` would change anything but `evaluated_at`.

    Mirrors what `Applicator.apply` (above) writes; an account for which this is False
    can be left alone by a scan (it keeps its stored decision fields).
    """
    if ev.action is not Action.NONE or ev.notices or ev.excluded_now is not None:
        return True
    if stored.evaluated_at is None:
        return True
    excluded = ",".join(ev.excluded_memory) if ev.excluded_memory else None
    path_changes = (ev.heading and stored.path_started_at is None) or (
        not ev.heading and stored.episode_stage is None and stored.path_started_at is not None
    )
    return (
        path_changes
        or stored.excluded_reasons != excluded
        or stored.shadow_stage != ev.shadow_memory
        or stored.stage != stored.episode_stage
        or stored.projected_suspension != ev.projected
        or stored.next_wakeup_at != ev.next_wakeup
    )
