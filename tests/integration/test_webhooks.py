"""Outbound webhooks end to end: a scan's suspension records the events in its own
transaction, and the dispatcher posts them, signed, to a real HTTP receiver, retrying
with backoff for three days. SQLite and PostgreSQL (two dispatchers: PostgreSQL only).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from arrears.config import NoticeSettingsSpec, parse_mappings
from arrears.engine.inputs import Inputs, create_provider
from arrears.engine.scan import full_pass
from arrears.engine.service import reevaluate
from arrears.provisioning.service import settle_by_hand
from arrears.store.db import Database
from arrears.store.repository import load_provider
from arrears.store.tables import (
    AccountRow,
    EpisodeRow,
    HistoryRow,
    NotificationRow,
    ProvisioningRequestRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
)
from arrears.webhooks import service
from arrears.webhooks.dispatcher import (
    ATTEMPT_HEADER,
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    WebhookDispatcher,
    WebhookPolicy,
    WebhookReport,
)
from arrears.worker import Worker
from peers.event_receiver import EventReceiver, Reply

# Wednesday 1 April 2026, 21:00 in Sydney (AEDT, +11:00).
NOW = datetime(2026, 4, 1, 10, 0, tzinfo=UTC)
SECRET = "whsec_a-receivers-shared-secret"
SUSPENSION = ["episode.opened", "service.restricted", "service.restricted", "account.suspended"]


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def receiver(clock: Clock) -> Iterator[EventReceiver]:
    # It checks signatures against the same (virtual) time the dispatcher signs with.
    with EventReceiver(SECRET, clock=clock) as r:
        yield r


def world(db: Database, *endpoints: dict[str, Any], accounts: int = 1) -> int:
    """A provider whose accounts A1.. owe 80.00 due a month ago (none suspended yet: a scan does it)."""
    with db.transaction() as s:
        p = create_provider(
            s,
            key="isp",
            timezone="Australia/Sydney",
            currency="AUD",
            notices=NoticeSettingsSpec(operations_email="noc@isp.example"),
            now=NOW - timedelta(days=60),
        )
        inputs = Inputs.open(s, p.id, NOW - timedelta(days=60))
        inputs.put_rule_set(
            {"min_overdue_amount": "50.00", "min_overdue_days": 14, "restore_threshold": "10.00"}
        )
        events = {"auto_suspend": {"channels": ["note"]}, "auto_unsuspend": {"channels": ["note"]}}
        inputs.put_mappings(parse_mappings(events, sms=False, since=NOW - timedelta(days=60)))
        for n in range(1, accounts + 1):
            services = [{"id": f"S{n}a", "type": "mobile"}, {"id": f"S{n}b", "type": "mobile"}]
            inputs.put_account({"id": f"A{n}", "services": services})
            inputs.put_invoice(
                {
                    "id": f"I{n}",
                    "account": f"A{n}",
                    "amount": "80.00",
                    "due": "2026-03-01",
                    "issued_at": NOW - timedelta(days=45),
                }
            )
        for e in endpoints:
            service.create_endpoint(s, p.id, e, NOW - timedelta(days=1), allow_env=True)
        return p.id


def deliveries(db: Database, **where: Any) -> list[WebhookDeliveryRow]:
    with db.transaction() as s:
        stmt = select(WebhookDeliveryRow).order_by(WebhookDeliveryRow.id)
        for name, value in where.items():
            stmt = stmt.where(getattr(WebhookDeliveryRow, name) == value)
        return list(s.scalars(stmt).all())


def endpoint_ids(db: Database) -> list[int]:
    with db.transaction() as s:
        return list(s.scalars(select(WebhookEndpointRow.id).order_by(WebhookEndpointRow.id)))


def dispatcher(db: Database, worker: str = "w1", **policy: Any) -> WebhookDispatcher:
    return WebhookDispatcher(db, worker=worker, policy=WebhookPolicy(**policy), rng=random.Random(5))


# -- recording -------------------------------------------------------------------------------


def test_a_scan_suspension_records_deliveries_for_subscribed_enabled_endpoints(db: Database) -> None:
    pid = world(
        db,
        {"url": "https://all.example/hook", "secret": SECRET},
        {"url": "https://crm.example/hook", "secret": SECRET, "events": ["account.suspended"]},
        {"url": "https://other.example/hook", "secret": SECRET, "events": ["account.restored"]},
        {"url": "https://old.example/hook", "secret": SECRET},
    )
    every, crm, _restored_only, old = endpoint_ids(db)
    with db.transaction() as s:
        service.disable_endpoint(s, s.get_one(WebhookEndpointRow, old), NOW, service.DISABLED)

    full_pass(db, NOW, pid)

    to_every = deliveries(db, endpoint_id=every)
    assert [d.event_type for d in to_every] == SUSPENSION
    [to_crm] = deliveries(db, endpoint_id=crm)
    assert len(deliveries(db)) == 5  # nothing for the restore-only or the disabled endpoint
    # One event, one id, whichever endpoint it goes to.
    assert to_crm.event_id == to_every[-1].event_id
    assert len({d.event_id for d in to_every}) == 4
    assert all(d.status == "pending" and d.attempts == 0 and d.created_at == NOW for d in to_every)
    with db.transaction() as s:
        episode_id = s.scalars(select(EpisodeRow.id)).one()
    body = to_crm.payload
    assert body["id"] == to_crm.event_id and body["id"].startswith("evt_")
    assert (body["type"], body["provider"], body["created_at"]) == (
        "account.suspended",
        "isp",
        "2026-04-01T10:00:00Z",
    )
    assert body["data"] == {
        "account": "A1",
        "service": None,
        "from": "active",
        "to": "suspended",
        "stage": "suspend",
        "reason": "auto",
        "rule_set": "default",
        "rule_set_version": 1,
        "action": None,
        "episode": episode_id,
        "actor": "arrears",
        "at": "2026-04-01T21:00:00+11:00",
    }
    restricted = to_every[1].payload["data"]
    assert (restricted["service"], restricted["from"], restricted["to"]) == ("S1a", "active", "restricted")
    assert restricted["episode"] == episode_id and restricted["rule_set_version"] == 1


def test_a_payment_that_restores_sends_the_closing_events(db: Database) -> None:
    pid = world(db, {"url": "https://all.example/hook", "secret": SECRET})
    full_pass(db, NOW, pid)
    later = NOW + timedelta(hours=2)
    with db.transaction() as s:
        inputs = Inputs.open(s, pid, later)
        inputs.put_payment({"id": "P1", "account": "A1", "amount": "80.00"})
        inputs.settle()
    restore = [d for d in deliveries(db) if d.created_at == later]
    assert [d.event_type for d in restore] == [
        "episode.closed",
        "service.restored",
        "service.restored",
        "account.restored",
    ]
    data = restore[-1].payload["data"]
    assert (data["from"], data["to"], data["reason"], data["stage"], data["actor"]) == (
        "suspended",
        "active",
        "paid",
        "none",
        "billing",
    )
    assert restore[0].payload["data"]["episode"] == deliveries(db)[0].payload["data"]["episode"]


def test_a_change_that_rolls_back_leaves_no_delivery(db: Database) -> None:
    pid = world(db, {"url": "https://all.example/hook", "secret": SECRET})
    with pytest.raises(RuntimeError), db.transaction() as s:
        account_id = s.scalars(select(AccountRow.id)).one()
        reevaluate(s, load_provider(s, pid), [account_id], NOW)
        assert s.scalar(select(func.count()).select_from(WebhookDeliveryRow)) == 4
        raise RuntimeError("the change fails after its events were written")
    assert deliveries(db) == []
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(HistoryRow)) == 0


def test_operator_actions_and_failed_provisioning_are_events_too(db: Database) -> None:
    pid = world(db, {"url": "https://all.example/hook", "secret": SECRET})
    with db.transaction() as s:
        inputs = Inputs.open(s, pid, NOW, actor="noc:jo")
        inputs.manual("A1", "suspend", "fraud check")
    suspended = deliveries(db)
    assert [d.event_type for d in suspended] == [
        "service.suspended",
        "service.suspended",
        "account.suspended",
    ]
    data = suspended[-1].payload["data"]
    assert (data["reason"], data["actor"], data["stage"], data["episode"]) == ("manual", "noc:jo", None, None)

    with db.transaction() as s:
        req_id = s.scalars(select(ProvisioningRequestRow.id).order_by(ProvisioningRequestRow.id)).first()
        assert req_id is not None
        settle_by_hand(
            s, req_id, state="failed", detail="HLR refused", actor="noc:jo", now=NOW, provider_id=pid
        )
    failed = deliveries(db, event_type="provisioning.failed")
    assert [(d.payload["data"]["service"], d.payload["data"]["action"]) for d in failed] == [
        ("S1a", "suspended")
    ]


def test_a_provider_without_endpoints_records_nothing(db: Database) -> None:
    pid = world(db, accounts=3)
    result = full_pass(db, NOW, pid)
    assert result.applied == 3
    assert deliveries(db) == []


# -- delivery --------------------------------------------------------------------------------


def test_the_dispatcher_posts_each_event_signed_with_its_id_in_order(
    db: Database, receiver: EventReceiver
) -> None:
    pid = world(db, {"url": receiver.url, "secret": SECRET})
    full_pass(db, NOW, pid)
    report = dispatcher(db).run(NOW)
    assert (report.delivered, report.retried, report.failed) == (4, 0, 0)
    assert receiver.rejected == []  # every signature checked out
    got = receiver.attempts
    assert [r.event["type"] for r in got] == SUSPENSION  # creation order
    rows = deliveries(db)
    assert [r.id for r in got] == [d.event_id for d in rows]
    for r in got:
        assert r.headers[EVENT_ID_HEADER.lower()] == r.id
        assert r.headers[EVENT_TYPE_HEADER.lower()] == r.event["type"]
        assert r.headers[ATTEMPT_HEADER.lower()] == "1"
    assert all(
        (d.status, d.attempts, d.response_status, d.delivered_at) == ("delivered", 1, 200, NOW) for d in rows
    )
    assert dispatcher(db).run(NOW).handled == 0  # nothing is posted twice


def test_failures_are_retried_with_backoff_and_the_same_event_id(
    db: Database, receiver: EventReceiver, clock: Clock
) -> None:
    pid = world(db, {"url": receiver.url, "secret": SECRET, "events": ["account.suspended"]})
    full_pass(db, NOW, pid)
    receiver.fail_next(2, Reply(503, "down for maintenance"))
    d = dispatcher(db)

    assert d.run(NOW).retried == 1
    [row] = deliveries(db)
    assert (row.status, row.attempts, row.response_status) == ("pending", 1, 503)
    assert row.last_error is not None and "503" in row.last_error and "maintenance" in row.last_error
    assert row.next_attempt_at is not None
    assert NOW + timedelta(seconds=15) <= row.next_attempt_at <= NOW + timedelta(seconds=30)
    assert d.run(NOW + timedelta(seconds=10)).handled == 0  # not due yet

    clock.now = row.next_attempt_at
    assert d.run(clock.now).retried == 1
    [row] = deliveries(db)
    assert row.next_attempt_at is not None
    assert clock.now + timedelta(seconds=30) <= row.next_attempt_at <= clock.now + timedelta(seconds=60)

    clock.now = row.next_attempt_at
    assert d.run(clock.now).delivered == 1
    [row] = deliveries(db)
    assert (row.status, row.attempts, row.response_status, row.last_error) == ("delivered", 3, 200, None)
    attempts = receiver.attempts
    assert [a.status for a in attempts] == [503, 503, 200]
    assert {a.id for a in attempts} == {row.event_id}
    assert [a.headers[ATTEMPT_HEADER.lower()] for a in attempts] == ["1", "2", "3"]


def test_a_receiver_that_is_down_gets_one_request_per_run(db: Database, receiver: EventReceiver) -> None:
    pid = world(db, {"url": receiver.url, "secret": SECRET})
    full_pass(db, NOW, pid)
    receiver.fail_next(100)
    report = dispatcher(db).run(NOW)
    assert (report.retried, report.held) == (1, 3)
    assert len(receiver.attempts) == 1
    # The others were not tried: still due, for the next run.
    assert [(d.attempts, d.next_attempt_at) for d in deliveries(db)][1:] == [(0, NOW)] * 3


def test_after_three_days_a_delivery_fails_and_operations_hear_of_it_once(db: Database, clock: Clock) -> None:
    with EventReceiver(SECRET, clock=clock, default=Reply(500, "boom")) as receiver:
        events = ["episode.opened", "account.suspended"]
        pid = world(db, {"url": receiver.url, "secret": SECRET, "events": events})
        full_pass(db, NOW, pid)
        d = dispatcher(db)
        for _ in range(1000):
            due = [r.next_attempt_at for r in deliveries(db, status="pending")]
            if not due:
                break
            # Deliveries held back by an earlier failure in the run are due at once.
            clock.now = max(clock.now, min(t for t in due if t is not None))
            d.run(clock.now)
        rows = deliveries(db)
    deadline = NOW + timedelta(days=3)
    assert all(r.status == "failed" for r in rows)
    assert all(r.last_attempt_at == deadline for r in rows)  # the last try is at the three-day mark
    assert all(r.last_error is not None and r.last_error.startswith("gave up after") for r in rows)
    assert all("over 3 days: HTTP 500" in (r.last_error or "") for r in rows)
    # Backoff: from 30 s doubling to an hour, so between about 75 and 150 attempts in three days.
    assert all(70 <= r.attempts <= 160 for r in rows), [r.attempts for r in rows]
    attempts = receiver.attempts
    assert len(attempts) == sum(r.attempts for r in rows)
    assert {a.id for a in attempts} == {r.event_id for r in rows}
    with db.transaction() as s:
        alerts = s.scalars(select(NotificationRow).where(NotificationRow.event == "operator_alert")).all()
    [alert] = alerts  # two events failed the same day: one alert
    assert alert.to_address == "noc@isp.example"
    assert "not taking events" in alert.context["subject"] and receiver.url in alert.context["text"]


def test_410_gone_disables_the_endpoint(db: Database, receiver: EventReceiver) -> None:
    pid = world(db, {"url": receiver.url, "secret": SECRET}, accounts=2)
    receiver.reply_next(Reply(410, "no such hook"))
    with db.transaction() as s:
        Inputs.open(s, pid, NOW).manual("A1", "suspend", "fraud")
    report = dispatcher(db).run(NOW)
    assert (report.failed, report.held, report.delivered) == (1, 2, 0)
    rows = deliveries(db)
    assert rows[0].response_status == 410 and "410 Gone" in (rows[0].last_error or "")
    assert [r.status for r in rows] == ["failed"] * 3
    assert all(r.last_error == "endpoint disabled: it answered 410 Gone" for r in rows[1:])
    with db.transaction() as s:
        assert s.scalars(select(WebhookEndpointRow.enabled)).one() is False
    full_pass(db, NOW, pid)  # A2 is suspended now: no one to tell
    assert len(deliveries(db)) == 3


def test_a_post_whose_outcome_was_never_recorded_is_posted_again_with_the_same_id(
    db: Database, receiver: EventReceiver, clock: Clock
) -> None:
    pid = world(db, {"url": receiver.url, "secret": SECRET, "events": ["account.suspended"]})
    full_pass(db, NOW, pid)
    dead = dispatcher(db, "dead")
    # It claims and posts, then dies before recording the answer.
    [claimed] = dead._claim(NOW, WebhookReport())
    dead._post(claimed, NOW)
    # Until its claim lapses, nobody else posts it.
    assert dispatcher(db, "w2").run(NOW + timedelta(minutes=5)).handled == 0
    clock.now = NOW + timedelta(minutes=11)
    assert dispatcher(db, "w2").run(clock.now).delivered == 1
    attempts = receiver.attempts
    assert len(attempts) == 2 and attempts[0].id == attempts[1].id
    [row] = deliveries(db)
    assert (row.status, row.attempts) == ("delivered", 1)


def test_a_secret_can_come_from_the_workers_environment(
    db: Database, receiver: EventReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = world(
        db, {"url": receiver.url, "secret": "env:TEST_WEBHOOK_SECRET", "events": ["account.suspended"]}
    )
    full_pass(db, NOW, pid)
    monkeypatch.delenv("TEST_WEBHOOK_SECRET", raising=False)
    assert dispatcher(db).run(NOW).retried == 1
    [row] = deliveries(db)
    assert row.last_error is not None and "TEST_WEBHOOK_SECRET is not set" in row.last_error
    assert receiver.attempts == []
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)
    assert dispatcher(db).run(NOW + timedelta(minutes=1)).delivered == 1
    assert receiver.rejected == []


def test_the_worker_round_suspends_and_posts(db: Database, receiver: EventReceiver, clock: Clock) -> None:
    world(db, {"url": receiver.url, "secret": SECRET})
    webhooks = WebhookDispatcher(db, worker="w1", clock=clock)
    worker = Worker(db, 60, clock=clock, webhooks=webhooks)
    worker.tick()
    webhooks.close()
    worker.dispatcher.close()
    assert [e["type"] for e in receiver.events] == SUSPENSION
    assert receiver.rejected == []


def test_two_dispatchers_never_post_one_event_twice(pg_db: Database, clock: Clock) -> None:
    db = pg_db
    with EventReceiver(SECRET, clock=clock, hold=0.01) as receiver:
        pid = world(db, {"url": receiver.url, "secret": SECRET}, accounts=15)
        full_pass(db, NOW, pid)
        total = len(deliveries(db))
        assert total == 15 * 4
        start = threading.Barrier(2)
        reports = []

        def work(name: str) -> None:
            d = dispatcher(db, name, batch=5)
            start.wait()
            reports.append(d.run(NOW))
            d.close()

        threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        ids = [a.id for a in receiver.attempts]
    assert len(ids) == total and len(set(ids)) == total
    assert all(r.delivered > 0 for r in reports), reports  # both took a share
    assert {d.status for d in deliveries(db)} == {"delivered"}
