"""Delivering the notifications the engine records, exactly once as the customer sees it.

The engine writes a notification row in the same transaction as the decision
that asks for it (state `pending`, or `waiting` for provisioning). A dispatcher
round then:

1. **reconciles** rows another dispatcher left `sending` when it died: a
   transport whose peer drops repeats (an HTTP gateway given an idempotency
   key) gets the row back; for any other the message may have gone out, so
   the row becomes `uncertain` for an operator to retry or cancel, never
   resent blindly;
2. **claims** due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so several
   dispatchers share the work), skips those no longer true (the invoice was
   paid meanwhile), defers SMS out of the provider's quiet hours, renders the
   rest and records an attempt, all committed *before* anything is sent;
3. **sends** each channel's messages as one batch (one connection);
4. **records** each outcome: sent, retried later with exponential backoff and
   jitter, or failed with the reason.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from arrears import backoff
from arrears.channels.base import Channel, LogFailed, Message, Outcome, Result
from arrears.domain.events import LATE_LIMIT, QuietHours
from arrears.notify.alerts import EVENT as ALERT_EVENT
from arrears.notify.facts import NoticeData, load_notice_batch, still_true
from arrears.notify.rendering import render_notice
from arrears.notify.service import delivery_line
from arrears.notify.templates import Rendered, TemplateError, TemplateSource
from arrears.rounds import Counts, instant, until_idle
from arrears.store.db import Database
from arrears.store.tables import (
    EventMappingRow,
    NotificationAttemptRow,
    NotificationRow,
    ProviderRow,
)

log = logging.getLogger("arrears.notify")

INVOICE_EVENTS = ("invoice_due", "invoice_overdue")
UNCERTAIN_REASON = "interrupted while sending: it may have gone out; retry or cancel it by hand"


@dataclass(frozen=True)
class DeliveryPolicy:
    batch: int = 50
    max_attempts: int = 8
    first_retry: timedelta = timedelta(minutes=1)
    max_retry: timedelta = timedelta(hours=6)
    # How long a claimed row is ours; a send batch ends long before (transports time out).
    claim_for: timedelta = timedelta(minutes=10)

    def retry_delay(self, attempts: int, rng: random.Random) -> timedelta:
        return backoff.retry_delay(attempts, self.first_retry, self.max_retry, rng)


@dataclass
class DeliveryReport(Counts):
    sent: int = 0
    noted: int = 0  # note-channel notices: written with the decision, marked done here
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    deferred: int = 0
    requeued: int = 0
    uncertain: int = 0


@dataclass(frozen=True)
class Senders:
    """Who notices come from when a provider has not set its own sender."""

    email: str = "arrears@localhost"
    sms: str = "arrears"


@dataclass
class _Claimed:
    notification_id: int
    attempt_id: int
    channel: str
    message: Message


@dataclass
class _ProviderInfo:
    row: ProviderRow
    tz: ZoneInfo
    quiet: QuietHours | None
    loud_mappings: set[str] = field(default_factory=set)  # mappings whose SMS ignore quiet hours


class NotificationDispatcher:
    """Claims, sends and records notifications; many may run against one database."""

    def __init__(
        self,
        db: Database,
        channels: Mapping[str, Channel],
        *,
        worker: str,
        policy: DeliveryPolicy | None = None,
        senders: Senders | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] | None = None,
        on_outcome: Callable[[str, str, float | None], None] | None = None,
    ):
        self.db = db
        # Told of each outcome (channel, outcome, seconds from due to sent); metrics, in the worker.
        self.on_outcome = on_outcome
        # The wall clock, for claims renewed mid-batch; None: the round's `now` (tests, the demo).
        self.clock = clock
        self.channels = dict(channels)
        self.worker = worker
        self.policy = policy or DeliveryPolicy()
        self.senders = senders or Senders()
        self.rng = rng or random.Random()

    def run(
        self, now: datetime | None = None, *, should_stop: Callable[[], bool] | None = None
    ) -> DeliveryReport:
        """Rounds until nothing more is due (or `should_stop` says so); `now` or the clock's time."""
        total = self.reconcile(instant(now, self.clock))
        return until_idle(self.round, lambda: instant(now, self.clock), total, should_stop)

    def round(self, now: datetime) -> DeliveryReport:
        report = DeliveryReport()
        claimed = self._claim(now, report)
        by_channel: dict[str, list[_Claimed]] = {}
        for c in claimed:
            by_channel.setdefault(c.channel, []).append(c)
        for name, items in by_channel.items():
            progress = _Progress(self, items, now, report)
            outcomes = self._send(self.channels[name], [c.message for c in items], progress)
            if outcomes is not None:
                try:
                    progress.finish(outcomes)
                except LogFailed:
                    log.exception("recording delivery outcomes failed; reconciliation will finish them")
            self._receipts(name)
        return report

    # -- 1. reconcile ----------------------------------------------------------------

    def reconcile(self, now: datetime) -> DeliveryReport:
        report = DeliveryReport()
        with self.db.transaction() as session:
            stmt = select(NotificationRow).where(
                NotificationRow.state == "sending", NotificationRow.claimed_until < now
            )
            if self.db.is_postgres:
                stmt = stmt.with_for_update(skip_locked=True)
            for row in session.scalars(stmt).all():
                open_attempts = session.scalars(
                    select(NotificationAttemptRow).where(
                        NotificationAttemptRow.notification_id == row.id,
                        NotificationAttemptRow.result.is_(None),
                    )
                ).all()
                gone = any(a.phase == "committing" for a in open_attempts)
                for a in open_attempts:
                    a.result, a.finished_at = "interrupted", now
                    a.detail = "stopped mid-send" if a.phase == "committing" else "stopped before sending"
                row.claimed_by = row.claimed_until = None
                channel = self.channels.get(row.channel)
                if not gone or (channel is not None and getattr(channel, "redelivery_safe", False)):
                    row.state, row.next_attempt_at = "pending", now
                    report.requeued += 1
                else:
                    row.state, row.reason = "uncertain", UNCERTAIN_REASON
                    report.uncertain += 1
                    delivery_line(session, row, now, "uncertain", UNCERTAIN_REASON)
        return report

    # -- 2. claim --------------------------------------------------------------------

    def _claim(self, now: datetime, report: DeliveryReport) -> list[_Claimed]:
        claimed: list[_Claimed] = []
        with self.db.transaction() as session:
            stmt = (
                select(NotificationRow)
                .where(
                    NotificationRow.state == "pending",
                    NotificationRow.channel.in_(["note", *self.channels]),
                    NotificationRow.due_at <= now,
                    or_(NotificationRow.next_attempt_at.is_(None), NotificationRow.next_attempt_at <= now),
                )
                .order_by(NotificationRow.due_at, NotificationRow.id)
                .limit(self.policy.batch)
            )
            if self.db.is_postgres:
                stmt = stmt.with_for_update(skip_locked=True)
            rows = session.scalars(stmt).all()
            providers = {pid: _provider_info(session, pid) for pid in {r.provider_id for r in rows}}
            data = load_notice_batch(
                session,
                [r for r in rows if r.channel != "note"],
                {p: i.row for p, i in providers.items()},
                now,
            )
            templates: dict[tuple[int, str, str], TemplateSource] = {}
            prepared: list[tuple[NotificationRow, NotificationAttemptRow, Message]] = []
            for row in rows:
                ready = self._prepare(session, row, providers[row.provider_id], data, templates, now, report)
                if ready is not None:
                    prepared.append(ready)
            session.flush()  # the attempts' ids, in one statement
            claimed = [
                _Claimed(row.id, attempt.id, row.channel, message) for row, attempt, message in prepared
            ]
        return claimed

    def _prepare(
        self,
        session: Session,
        row: NotificationRow,
        info: _ProviderInfo,
        loaded: dict[int, NoticeData],
        templates: dict[tuple[int, str, str], TemplateSource],
        now: datetime,
        report: DeliveryReport,
    ) -> tuple[NotificationRow, NotificationAttemptRow, Message] | None:
        if row.channel == "note":
            # The note was written with the decision; nothing leaves arrears.
            row.state, row.sent_at = "sent", now
            report.noted += 1
            return None
        if row.event == ALERT_EVENT:
            return self._ready(
                session, row, info, Rendered(row.context["subject"], row.context["text"], None, None), now
            )
        data = loaded[row.id]
        reason = still_true(row, data)
        if (
            reason is None
            and row.attempts == 0
            and row.event in INVOICE_EVENTS
            and now - row.due_at > LATE_LIMIT
        ):
            # SPEC §7's 24 h rule, applied again at delivery: a transport that was
            # down for days must not wake customers with stale invoice reminders.
            reason = "late"
        if reason is not None:
            row.state, row.reason = "skipped", reason
            report.skipped += 1
            delivery_line(session, row, now, "skipped", reason)
            return None
        if row.channel == "sms" and info.quiet is not None and row.mapping_key not in info.loud_mappings:
            until = info.quiet.until(now, info.tz)
            if until is not None:
                row.next_attempt_at = until
                report.deferred += 1
                return None
        try:
            rendered = render_notice(session, row, data, info.row, now, templates)
        except (TemplateError, ValueError) as exc:
            # Templates are checked when saved; one failing here (a value the sample
            # lacked) is the provider's to fix, not something a retry would cure.
            row.state, row.reason = "failed", f"template: {exc}"[:200]
            report.failed += 1
            delivery_line(session, row, now, "failed", row.reason)
            return None
        return self._ready(session, row, info, rendered, now)

    def _ready(
        self, session: Session, row: NotificationRow, info: _ProviderInfo, rendered: Rendered, now: datetime
    ) -> tuple[NotificationRow, NotificationAttemptRow, Message]:
        """Record the attempt (committed with the claim) and build the message."""
        sender = (info.row.email_from or self.senders.email) if row.channel == "email" else None
        if row.channel == "sms":
            sender = info.row.sms_from or self.senders.sms
        assert row.to_address is not None and sender is not None  # no_recipient rows are skipped at birth
        row.state = "sending"
        row.attempts += 1
        row.claimed_by, row.claimed_until = self.worker, now + self.policy.claim_for
        row.subject, row.body = rendered.subject or None, rendered.text
        attempt = NotificationAttemptRow(
            notification_id=row.id, number=row.attempts, worker=self.worker, started_at=now
        )
        session.add(attempt)
        message = Message(
            key=row.key,
            to=row.to_address,
            sender=sender,
            text=rendered.text,
            subject=rendered.subject,
            html=rendered.html,
        )
        return row, attempt, message

    # -- 3. send ---------------------------------------------------------------------

    def _send(
        self, channel: Channel, messages: Sequence[Message], progress: _Progress
    ) -> list[Outcome] | None:
        """The channel's outcomes; None when the batch stopped because recording failed.

        Then the rows stay `sending` and the next reconciliation, after the
        claim expires, decides from each attempt's phase what may have gone out.
        """
        try:
            outcomes = channel.send(messages, progress)
        except LogFailed:
            log.exception("recording delivery progress failed; batch stopped")
            return None
        except Exception as exc:  # a transport must not raise; if one does, treat it as transient
            log.exception("channel %s raised", channel.name)
            return [Outcome(Result.RETRY, f"transport error: {exc}")] * len(messages)
        if len(outcomes) != len(messages):
            raise RuntimeError(f"channel {channel.name} answered {len(outcomes)} of {len(messages)} messages")
        return outcomes

    # -- 4. record -------------------------------------------------------------------

    def _progress(
        self,
        now: datetime,
        outcomes: Sequence[tuple[_Claimed, Outcome]],
        report: DeliveryReport,
        committing: _Claimed | None = None,
    ) -> None:
        """Record outcomes, and mark `committing` irrevocable, in one transaction.

        Recording the previous message's outcome together with the next one's
        mark halves the commits of a batch; a crash between them leaves that
        outcome unknown, i.e. `uncertain`, never sent twice.
        """
        with self.db.transaction() as session:
            for item, outcome in outcomes:
                self._record_one(session, item, outcome, now, report)
            if committing is not None:
                renewed = session.execute(
                    update(NotificationRow)
                    .where(
                        NotificationRow.id == committing.notification_id,
                        NotificationRow.state == "sending",
                        NotificationRow.claimed_by == self.worker,
                    )
                    .values(claimed_until=(self.clock() if self.clock else now) + self.policy.claim_for)
                )
                if renewed.rowcount != 1:  # type: ignore[attr-defined]
                    raise RuntimeError(f"notification {committing.notification_id}: claim lost; not sending")
                session.execute(
                    update(NotificationAttemptRow)
                    .where(NotificationAttemptRow.id == committing.attempt_id)
                    .values(phase="committing")
                )

    def _committing(self, item: _Claimed, now: datetime) -> None:
        self._progress(now, [], DeliveryReport(), committing=item)

    def _record_one(
        self, session: Session, item: _Claimed, outcome: Outcome, now: datetime, report: DeliveryReport
    ) -> None:
        row = session.get(NotificationRow, item.notification_id, with_for_update=self.db.is_postgres)
        if row is None or row.state != "sending" or row.claimed_by != self.worker:
            return  # reconciled by another dispatcher meanwhile: its verdict stands
        session.execute(
            update(NotificationAttemptRow)
            .where(NotificationAttemptRow.id == item.attempt_id)
            .values(finished_at=now, result=outcome.result.value, detail=outcome.detail)
        )
        row.claimed_by = row.claimed_until = None
        log.info(
            "notification %s",
            outcome.result.value,
            extra={
                "event": "notification",
                "outcome": outcome.result.value,
                "provider": row.provider_id,
                "account": row.account_id,
                "notification": row.id,
                "channel": row.channel,
                "attempt": row.attempts,
                "detail": outcome.detail[:300],
            },
        )
        if self.on_outcome is not None:
            latency = (now - row.due_at).total_seconds() if outcome.result is Result.SENT else None
            self.on_outcome(row.channel, outcome.result.value, latency)
        if outcome.result is Result.SENT:
            row.state, row.sent_at, row.reference, row.reason = "sent", now, outcome.reference, None
            report.sent += 1
            delivery_line(session, row, now, "sent", outcome.detail)
        elif outcome.result is Result.RETRY and row.attempts < self.policy.max_attempts:
            row.state, row.reason = "pending", outcome.detail[:200] or None
            row.next_attempt_at = now + self.policy.retry_delay(row.attempts, self.rng)
            report.retried += 1
        else:
            if outcome.result is Result.RETRY:
                reason = f"gave up after {row.attempts} attempts: {outcome.detail}"
            else:
                reason = outcome.detail or "refused"
            row.state, row.reason = "failed", reason[:200]
            report.failed += 1
            delivery_line(session, row, now, "failed", reason)

    def _receipts(self, channel_name: str) -> None:
        receipts = self.channels[channel_name].receipts()
        if not receipts:
            return
        with self.db.transaction() as session:
            for r in receipts:
                session.execute(
                    update(NotificationRow)
                    .where(NotificationRow.channel == channel_name, NotificationRow.reference == r.reference)
                    .values(delivery=r.state[:16])
                )

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()


class _Progress:
    """The SendLog of one batch: nothing goes on before the step before it is committed."""

    def __init__(
        self,
        dispatcher: NotificationDispatcher,
        items: Sequence[_Claimed],
        now: datetime,
        report: DeliveryReport,
    ):
        self.dispatcher = dispatcher
        self.items = items
        self.now = now
        self.report = report
        self.recorded: set[int] = set()
        self.unrecorded: list[tuple[int, Outcome]] = []

    def committing(self, index: int) -> None:
        self._flush(committing=self.items[index])

    def outcome(self, index: int, outcome: Outcome) -> None:
        if index not in self.recorded and all(i != index for i, _ in self.unrecorded):
            self.unrecorded.append((index, outcome))

    def finish(self, outcomes: Sequence[Outcome]) -> None:
        """The batch is over: record every outcome not recorded yet."""
        for i, outcome in enumerate(outcomes):
            self.outcome(i, outcome)
        self._flush()

    def _flush(self, committing: _Claimed | None = None) -> None:
        pending = [(self.items[i], o) for i, o in self.unrecorded]
        try:
            self.dispatcher._progress(self.now, pending, self.report, committing)
        except Exception as exc:
            raise LogFailed(exc) from exc
        self.recorded.update(i for i, _ in self.unrecorded)
        self.unrecorded = []


def _provider_info(session: Session, provider_id: int) -> _ProviderInfo:
    row = session.get_one(ProviderRow, provider_id)
    quiet = None
    if row.quiet_start and row.quiet_end:
        quiet = QuietHours(time.fromisoformat(row.quiet_start), time.fromisoformat(row.quiet_end))
    loud = {
        key
        for key, body in session.execute(
            select(EventMappingRow.key, EventMappingRow.body).where(
                EventMappingRow.provider_id == provider_id
            )
        )
        if body.get("quiet_hours") is False
    }
    return _ProviderInfo(row, ZoneInfo(row.timezone), quiet, loud)


__all__ = [
    "DeliveryPolicy",
    "DeliveryReport",
    "NoticeData",
    "NotificationDispatcher",
    "Senders",
]
