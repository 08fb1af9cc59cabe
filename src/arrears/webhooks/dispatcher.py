"""Posting webhook events: at least once, signed, retried with backoff for three days.

The engine records a `pending` delivery per wanting endpoint in the change's
transaction (`outbox`). A dispatcher round:

1. **claims** due deliveries, oldest first (`FOR UPDATE SKIP LOCKED` on
   PostgreSQL, then a lease: `claimed_by` / `claimed_until`), committed before
   anything is sent, so dispatchers share the work and none posts what another
   holds; a delivery whose endpoint was disabled meanwhile fails here;
2. **posts** each, endpoint by endpoint, signed as the provisioning webhook
   signs (`Arrears-Signature: t=...,v1=...`), with the event's id and type in
   headers;
3. **records** each outcome in its own short transaction: `delivered` (2xx);
   retried with exponential backoff and jitter (any other answer, or none);
   `failed` once three days have passed since the event, with an alert to the
   provider's operations address (at most one a day per endpoint). 410 Gone
   disables the endpoint: the receiver said it will never take events again.

A dispatcher that dies between posting and recording leaves its lease to expire;
the delivery is then posted again with the same event id. That is the
at-least-once promise: receivers drop repeats by the id.

Order: within a run (one worker round), an endpoint's due deliveries go oldest
first, and its first failure ends the endpoint's turn until the next run, so a
receiver that is down gets one request per run, not one per waiting event. A
failed delivery then waits for its own backoff while later ones go ahead: one
event a receiver keeps refusing never holds the others back. Events therefore
arrive in creation order while the receiver takes them, not across retries
(nor when several dispatchers share one endpoint's backlog).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from arrears import backoff
from arrears.notify.alerts import raise_alert
from arrears.provisioning.base import ConfigError
from arrears.provisioning.registry import resolve_env
from arrears.provisioning.webhook import SIGNATURE_HEADER, sign
from arrears.rounds import Counts, instant, until_idle
from arrears.store.db import Database
from arrears.store.tables import AccountRow, WebhookDeliveryRow, WebhookEndpointRow
from arrears.webhooks.service import DISABLED, fail_pending

log = logging.getLogger("arrears.webhooks")

EVENT_ID_HEADER = "Arrears-Event-Id"
EVENT_TYPE_HEADER = "Arrears-Event-Type"
ATTEMPT_HEADER = "Arrears-Delivery-Attempt"
_ERROR_LENGTH = 500  # the last_error column
_EXCERPT = 200

# Told of each outcome ("delivered", "retry", "failed") and, when delivered, the
# seconds from the event to its delivery. The worker turns these into metrics.
OutcomeHook = Callable[[str, float | None], None]


@dataclass(frozen=True)
class WebhookPolicy:
    batch: int = 50
    first_retry: timedelta = timedelta(seconds=30)
    max_retry: timedelta = timedelta(hours=1)
    # Retried until this long after the event; the last attempt is made at that mark.
    give_up_after: timedelta = timedelta(days=3)
    # How long a claim lasts; a round stops posting well before its claims run out.
    claim_for: timedelta = timedelta(minutes=10)
    timeout: float = 10.0  # seconds, for each of connect/read/write

    def retry_delay(self, attempts: int, rng: random.Random) -> timedelta:
        return backoff.retry_delay(attempts, self.first_retry, self.max_retry, rng)

    def next_attempt(
        self, created_at: datetime, attempts: int, now: datetime, rng: random.Random
    ) -> datetime | None:
        """When to try again after `attempts` failed ones, or None: the event's time is up."""
        deadline = created_at + self.give_up_after
        if now >= deadline:
            return None
        return min(now + self.retry_delay(attempts, rng), deadline)


@dataclass
class WebhookReport(Counts):
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    held: int = 0  # claimed, not posted: the endpoint failed earlier in the run (still due)

    @property
    def handled(self) -> int:
        # Held deliveries are still due: a round that only held some has not made progress.
        return self.delivered + self.retried + self.failed


@dataclass(frozen=True)
class _Claimed:
    id: int
    endpoint_id: int
    url: str
    secret: str | None  # None: it could not be read (`secret_error` says why)
    secret_error: str | None
    event_id: str
    event_type: str
    body: bytes
    attempt: int  # the number this attempt has


@dataclass(frozen=True)
class _Answer:
    status: int | None  # the HTTP status, None when there was no answer
    error: str | None  # None: delivered


def encode(payload: dict[str, object]) -> bytes:
    """The request body: compact JSON, the exact bytes that are signed."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


class WebhookDispatcher:
    """Claims, posts and records webhook deliveries; many may run against one database."""

    def __init__(
        self,
        db: Database,
        *,
        worker: str,
        policy: WebhookPolicy | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] | None = None,
        on_outcome: OutcomeHook | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.db = db
        self.worker = worker
        self.policy = policy or WebhookPolicy()
        self.rng = rng or random.Random()
        # The wall clock: signatures and the claims' time left; None: the round's `now` (tests).
        self.clock = clock
        self.on_outcome = on_outcome
        self._transport = transport
        self._client: httpx.Client | None = None
        # Endpoints that failed in this run: left alone until the next one.
        self._resting: set[int] = set()

    def run(
        self, now: datetime | None = None, *, should_stop: Callable[[], bool] | None = None
    ) -> WebhookReport:
        """Rounds until nothing more is due (or `should_stop` says so); `now` or the clock's time."""
        self._resting = set()
        return until_idle(self.round, lambda: instant(now, self.clock), WebhookReport(), should_stop)

    def round(self, now: datetime) -> WebhookReport:
        report = WebhookReport()
        claimed = self._claim(now, report)
        lease_end = now + self.policy.claim_for
        by_endpoint: dict[int, list[_Claimed]] = {}
        for item in claimed:
            by_endpoint.setdefault(item.endpoint_id, []).append(item)
        for endpoint_id, items in by_endpoint.items():
            for n, item in enumerate(items):
                if self._lease_running_out(lease_end):
                    self._release(items[n:], report)
                    break
                answer = self._post(item, now)
                self._record(item, answer, now, report)
                if answer.error is not None:
                    self._resting.add(endpoint_id)
                    self._release(items[n + 1 :], report)
                    break
        return report

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- 1. claim --------------------------------------------------------------------

    def _claim(self, now: datetime, report: WebhookReport) -> list[_Claimed]:
        claimed: list[_Claimed] = []
        with self.db.transaction() as session:
            stmt = (
                select(WebhookDeliveryRow, WebhookEndpointRow)
                .join(WebhookEndpointRow, WebhookEndpointRow.id == WebhookDeliveryRow.endpoint_id)
                .where(
                    WebhookDeliveryRow.status == "pending",
                    or_(
                        WebhookDeliveryRow.next_attempt_at.is_(None),
                        WebhookDeliveryRow.next_attempt_at <= now,
                    ),
                    or_(WebhookDeliveryRow.claimed_until.is_(None), WebhookDeliveryRow.claimed_until <= now),
                )
                .order_by(WebhookDeliveryRow.id)
                .limit(self.policy.batch)
            )
            if self._resting:
                stmt = stmt.where(WebhookDeliveryRow.endpoint_id.not_in(sorted(self._resting)))
            if self.db.is_postgres:
                stmt = stmt.with_for_update(skip_locked=True, of=WebhookDeliveryRow)
            for delivery, endpoint in session.execute(stmt).all():
                if not endpoint.enabled:
                    # Recorded by a change that read the endpoint before it was disabled.
                    delivery.status, delivery.next_attempt_at, delivery.last_error = "failed", None, DISABLED
                    report.failed += 1
                    continue
                delivery.claimed_by = self.worker
                delivery.claimed_until = now + self.policy.claim_for
                secret, secret_error = _secret(endpoint)
                claimed.append(
                    _Claimed(
                        id=delivery.id,
                        endpoint_id=endpoint.id,
                        url=endpoint.url,
                        secret=secret,
                        secret_error=secret_error,
                        event_id=delivery.event_id,
                        event_type=delivery.event_type,
                        body=encode(delivery.payload),
                        attempt=delivery.attempts + 1,
                    )
                )
        return claimed

    def _lease_running_out(self, lease_end: datetime) -> bool:
        """Whether the claims may lapse before another post ends (only the wall clock can tell)."""
        if self.clock is None:
            return False
        return self.clock() + timedelta(seconds=3 * self.policy.timeout) >= lease_end

    def _release(self, items: list[_Claimed], report: WebhookReport) -> None:
        """Give claimed deliveries back unposted: still due, for the next run or dispatcher."""
        if not items:
            return
        with self.db.transaction() as session:
            session.execute(
                update(WebhookDeliveryRow)
                .where(
                    WebhookDeliveryRow.id.in_([i.id for i in items]),
                    WebhookDeliveryRow.claimed_by == self.worker,
                )
                .values(claimed_by=None, claimed_until=None)
            )
        report.held += len(items)

    # -- 2. post ---------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                timeout=self.policy.timeout,
                # The signed request must reach only the registered address.
                follow_redirects=False,
                headers={"User-Agent": "arrears-webhooks/1"},
                transport=self._transport,
            )
        return self._client

    def _post(self, item: _Claimed, now: datetime) -> _Answer:
        if item.secret is None:
            return _Answer(None, item.secret_error)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(item.body, item.secret, self.clock() if self.clock else now),
            EVENT_ID_HEADER: item.event_id,
            EVENT_TYPE_HEADER: item.event_type,
            ATTEMPT_HEADER: str(item.attempt),
        }
        try:
            response = self._http().post(item.url, content=item.body, headers=headers)
        except httpx.TimeoutException as exc:
            return _Answer(None, f"timed out after {self.policy.timeout:g} s ({type(exc).__name__})")
        except httpx.TransportError as exc:
            return _Answer(None, f"cannot reach the endpoint: {type(exc).__name__}: {exc}")
        except Exception as exc:  # whatever the URL or the peer does, the round goes on
            log.exception("webhook post failed unexpectedly")
            return _Answer(None, f"error: {type(exc).__name__}: {exc}")
        status = response.status_code
        if 200 <= status < 300:
            return _Answer(status, None)
        what = f"HTTP {status} {response.reason_phrase}".rstrip()
        if 300 <= status < 400:
            location = response.headers.get("Location")
            where = f" to {_excerpt(location)}" if location else ""
            return _Answer(status, f"{what}: redirect{where} not followed (register the final URL)")
        text = _excerpt(response.text.strip())
        return _Answer(status, f"{what}: {text}" if text else what)

    # -- 3. record -------------------------------------------------------------------

    def _record(self, item: _Claimed, answer: _Answer, now: datetime, report: WebhookReport) -> None:
        with self.db.transaction() as session:
            row = session.get(WebhookDeliveryRow, item.id, with_for_update=self.db.is_postgres)
            if row is None or row.claimed_by != self.worker:
                # Our claim lapsed and another dispatcher took it: its outcome stands.
                log.warning("webhook delivery %s: claim lost before recording", item.id)
                return
            row.claimed_by = row.claimed_until = None
            row.attempts += 1
            row.last_attempt_at = now
            row.response_status = answer.status
            if answer.error is None:
                # Delivered, even if its endpoint was disabled while the post was on its way.
                row.status, row.delivered_at, row.next_attempt_at, row.last_error = (
                    "delivered",
                    now,
                    None,
                    None,
                )
                outcome = "delivered"
                report.delivered += 1
            elif row.status != "pending":
                # Failed meanwhile (its endpoint was disabled): that stands.
                outcome = "failed"
                report.failed += 1
            elif answer.status == 410:
                self._gone(session, row, answer.error, now)
                outcome = "failed"
                report.failed += 1
            else:
                retry_at = self.policy.next_attempt(row.created_at, row.attempts, now, self.rng)
                if retry_at is None:
                    days = self.policy.give_up_after / timedelta(days=1)
                    reason = f"gave up after {row.attempts} attempt(s) over {days:g} days: {answer.error}"
                    row.status, row.next_attempt_at = "failed", None
                    row.last_error = reason[:_ERROR_LENGTH]
                    self._alert(session, row, reason, now)
                    outcome = "failed"
                    report.failed += 1
                else:
                    row.next_attempt_at, row.last_error = retry_at, answer.error[:_ERROR_LENGTH]
                    outcome = "retry"
                    report.retried += 1
            event = {
                "event": "webhook",
                "outcome": outcome,
                "provider": row.provider_id,
                "delivery": row.id,
                "endpoint": row.endpoint_id,
                "event_id": row.event_id,
                "event_type": row.event_type,
                "attempt": row.attempts,
                "status": answer.status,
                "detail": (answer.error or "")[:300],
            }
            latency = (now - row.created_at).total_seconds() if outcome == "delivered" else None
        log.log(logging.WARNING if outcome == "failed" else logging.INFO, "webhook %s", outcome, extra=event)
        if self.on_outcome is not None:
            self.on_outcome(outcome, latency)

    def _gone(self, session: Session, row: WebhookDeliveryRow, error: str, now: datetime) -> None:
        """410 Gone: the receiver will never take events again. Disable the endpoint."""
        endpoint = session.get_one(WebhookEndpointRow, row.endpoint_id)
        endpoint.enabled = False
        reason = f"{error} (the endpoint answered 410 Gone and was disabled)"
        row.status, row.next_attempt_at, row.last_error = "failed", None, reason[:_ERROR_LENGTH]
        fail_pending(session, endpoint.id, now, f"{DISABLED}: it answered 410 Gone")
        self._alert(session, row, reason, now)

    def _alert(self, session: Session, row: WebhookDeliveryRow, reason: str, now: datetime) -> None:
        """Tell the provider's operations address; at most once a day per endpoint."""
        data = row.payload.get("data") if isinstance(row.payload, dict) else None
        account = data.get("account") if isinstance(data, dict) else None
        account_id = (
            session.scalar(
                select(AccountRow.id).where(
                    AccountRow.provider_id == row.provider_id, AccountRow.ext_id == account
                )
            )
            if isinstance(account, str)
            else None
        )
        if account_id is None:
            return  # alerts belong to an account; every event names one
        endpoint = session.get_one(WebhookEndpointRow, row.endpoint_id)
        raise_alert(
            session,
            provider_id=row.provider_id,
            account_id=account_id,
            key=f"webhook|{endpoint.id}|{now.date().isoformat()}",
            subject=f"arrears: webhook endpoint {endpoint.id} is not taking events",
            text=(
                f"The webhook endpoint {endpoint.id} ({endpoint.url}) did not take event {row.event_id} "
                f"({row.event_type}, account {account}):\n\n{reason}\n\n"
                "Other events may have failed too; list them with\n"
                "    GET /api/v1/webhook-deliveries?status=failed\n"
                "and, once the receiver is fixed, send one again with\n"
                f"    POST /api/v1/webhook-deliveries/{row.id}/retry\n"
            ),
            now=now,
        )


def _secret(endpoint: WebhookEndpointRow) -> tuple[str | None, str | None]:
    """The endpoint's signing secret (an `env:NAME` read now), or why it cannot be read."""
    try:
        value = resolve_env({"secret": endpoint.secret}, "endpoint")["secret"]
    except ConfigError as exc:
        return None, str(exc)
    return str(value), None


__all__ = [
    "ATTEMPT_HEADER",
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "WebhookDispatcher",
    "WebhookPolicy",
    "WebhookReport",
]
