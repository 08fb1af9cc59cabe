"""Delivery end to end: the engine records a notice, the dispatcher sends it to a real
SMTP server (aiosmtpd in this process), and each outcome is recorded exactly once.

Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from arrears.channels.base import message_id
from arrears.channels.email import SmtpChannel, SmtpSettings
from arrears.channels.http_sms import JsonSmsGateway, JsonSmsSettings
from arrears.config import ConfigError, NoticeSettingsSpec, parse_mappings
from arrears.engine.clock import VirtualClock
from arrears.engine.inputs import Inputs, create_provider
from arrears.notify import service
from arrears.notify.dispatcher import DeliveryPolicy, DeliveryReport, NotificationDispatcher
from arrears.notify.rendering import save_template
from arrears.notify.templates import TemplateSource
from arrears.store.db import Database
from arrears.store.tables import HistoryRow, NotificationAttemptRow, NotificationRow
from peers.http_gateway import HttpGateway, Reply
from peers.smtp_server import RecordingHandler, Server, smtp_server

SYDNEY = ZoneInfo("Australia/Sydney")
START = datetime(2026, 3, 1, 0, 0, tzinfo=SYDNEY).astimezone(UTC)
# invoice_overdue, days_after 1, send_time 09:00: the notice's instant.
NOTICE_AT = datetime(2026, 3, 3, 9, 0, tzinfo=SYDNEY).astimezone(UTC)


@pytest.fixture
def server() -> Iterator[Server]:
    with smtp_server(RecordingHandler()) as s:
        yield s


def email_channel(server: Server) -> SmtpChannel:
    return SmtpChannel(SmtpSettings(server.host, server.port, security="none", timeout=5))


def setup_provider(db: Database, accounts: int = 1, channels: tuple[str, ...] = ("email",)) -> int:
    """A provider whose invoice_overdue notice goes out by email; invoices due 2 March."""
    with db.transaction() as s:
        p = create_provider(
            s,
            key="p1",
            name="Harbour Telco",
            timezone="Australia/Sydney",
            currency="AUD",
            sms=True,
            notices=NoticeSettingsSpec(locale="en_AU", email_from="accounts@harbour.example"),
            now=START,
        )
        inputs = Inputs.open(s, p.id, START)
        inputs.put_rule_set({"min_overdue_amount": "50.00", "min_overdue_days": 30, "restore_threshold": "0"})
        events = {"invoice_overdue": [{"days_after": 1, "channels": list(channels)}]}
        inputs.put_mappings(parse_mappings(events, sms=True, since=START))
        for n in range(accounts):
            inputs.put_account(
                {
                    "id": f"A{n}",
                    "contacts": [
                        {
                            "role": "primary",
                            "name": f"Jo {n}",
                            "email": f"jo{n}@example.com",
                            "phone": "+61412345678",
                        }
                    ],
                    "services": [{"id": f"S{n}", "type": "mobile"}],
                }
            )
            inputs.put_invoice({"id": f"I{n}", "account": f"A{n}", "amount": "120.50", "due": "2026-03-02"})
        inputs.settle()
        return p.id


def reach(db: Database, until: datetime) -> None:
    clock = VirtualClock(db, START)
    clock.settle()
    clock.advance(until)


def notifications(db: Database) -> list[NotificationRow]:
    with db.transaction() as s:
        return list(s.scalars(select(NotificationRow).order_by(NotificationRow.id)))


def dispatcher(db: Database, channel: object, worker: str = "w1", **policy: object) -> NotificationDispatcher:
    return NotificationDispatcher(
        db,
        {"email": channel},  # type: ignore[dict-item]
        worker=worker,
        policy=DeliveryPolicy(**policy),  # type: ignore[arg-type]
        rng=random.Random(1),
    )


def test_a_recorded_notice_arrives_once_with_its_stable_message_id(db: Database, server: Server) -> None:
    setup_provider(db)
    reach(db, NOTICE_AT)
    [row] = notifications(db)
    assert (row.state, row.event, row.to_address) == ("pending", "invoice_overdue", "jo0@example.com")

    report = dispatcher(db, email_channel(server)).run(NOTICE_AT + timedelta(minutes=1))
    assert report.sent == 1
    [got] = server.handler.received
    msg = got.parsed()
    assert msg["To"] == "jo0@example.com"
    assert msg["From"] == "accounts@harbour.example"
    assert msg["Message-ID"] == message_id(row.key, "accounts@harbour.example")
    body = msg.get_body(("plain",))
    assert body is not None and "I0" in body.get_content()
    assert "$120.50" in body.get_content()  # en_AU, AUD: formatted, exact
    assert msg.get_body(("html",)) is not None

    [row] = notifications(db)
    assert (row.state, row.attempts, row.reference) == ("sent", 1, msg["Message-ID"])
    with db.transaction() as s:
        [attempt] = s.scalars(select(NotificationAttemptRow)).all()
        assert (attempt.result, attempt.worker) == ("sent", "w1")
        kinds = s.scalars(select(HistoryRow.data).where(HistoryRow.kind == "delivery")).all()
        assert [k["state"] for k in kinds] == ["sent"]

    # Nothing is due any more: a second round sends nothing.
    assert dispatcher(db, email_channel(server)).run(NOTICE_AT + timedelta(hours=1)).sent == 0
    assert len(server.handler.received) == 1


def test_a_notice_paid_before_its_turn_is_skipped_not_sent(db: Database, server: Server) -> None:
    pid = setup_provider(db)
    reach(db, NOTICE_AT)
    with db.transaction() as s:
        inputs = Inputs.open(s, pid, NOTICE_AT + timedelta(seconds=30))
        inputs.put_payment({"id": "P1", "account": "A0", "amount": "120.50"})
        inputs.settle()
    report = dispatcher(db, email_channel(server)).run(NOTICE_AT + timedelta(minutes=1))
    assert (report.sent, report.skipped) == (0, 1)
    assert server.handler.received == []
    [row] = notifications(db)
    assert (row.state, row.reason) == ("skipped", "invoice_settled")


def test_transient_failures_back_off_then_succeed(db: Database, server: Server) -> None:
    setup_provider(db)
    reach(db, NOTICE_AT)
    server.handler.rcpt_replies["jo0@example.com"] = "451 4.3.0 try again later"
    t = NOTICE_AT + timedelta(minutes=1)
    d = dispatcher(db, email_channel(server), first_retry=timedelta(minutes=5))
    assert d.run(t).retried == 1
    [row] = notifications(db)
    assert row.state == "pending" and row.attempts == 1 and "451" in (row.reason or "")
    assert row.next_attempt_at is not None
    delay = row.next_attempt_at - t
    assert timedelta(minutes=2, seconds=30) <= delay <= timedelta(minutes=5)  # jittered, within the cap

    assert d.run(t + timedelta(minutes=1)).handled == 0  # not before its time
    del server.handler.rcpt_replies["jo0@example.com"]
    assert d.run(t + timedelta(minutes=6)).sent == 1
    [row] = notifications(db)
    assert (row.state, row.attempts) == ("sent", 2)
    assert len(server.handler.received) == 1


def test_retries_end_in_failed_with_the_reason(db: Database, server: Server) -> None:
    setup_provider(db)
    reach(db, NOTICE_AT)
    server.handler.rcpt_replies["jo0@example.com"] = "451 4.3.0 busy"
    d = dispatcher(db, email_channel(server), max_attempts=2, first_retry=timedelta(minutes=1))
    t = NOTICE_AT
    d.run(t)
    d.run(t + timedelta(hours=1))
    [row] = notifications(db)
    assert row.state == "failed"
    assert (
        row.reason is not None and row.reason.startswith("gave up after 2 attempts") and "451" in row.reason
    )


def test_a_permanent_refusal_fails_at_once(db: Database, server: Server) -> None:
    setup_provider(db)
    reach(db, NOTICE_AT)
    server.handler.rcpt_replies["jo0@example.com"] = "550 5.1.1 no such user"
    assert dispatcher(db, email_channel(server)).run(NOTICE_AT).failed == 1
    [row] = notifications(db)
    assert row.state == "failed" and "550" in (row.reason or "") and row.attempts == 1


def test_a_crash_before_anything_left_is_simply_sent_later(db: Database, server: Server) -> None:
    """Claimed and rendered, then the process died before the SMTP DATA: nothing went out."""
    setup_provider(db)
    reach(db, NOTICE_AT)
    dead = dispatcher(db, email_channel(server), worker="dead")
    assert len(dead._claim(NOTICE_AT, DeliveryReport())) == 1
    [row] = notifications(db)
    assert (row.state, row.claimed_by) == ("sending", "dead")

    alive = dispatcher(db, email_channel(server), worker="alive", claim_for=timedelta(minutes=10))
    assert alive.run(NOTICE_AT + timedelta(minutes=5)).handled == 0  # the claim still holds
    report = alive.run(NOTICE_AT + timedelta(minutes=11))
    assert (report.requeued, report.sent, report.uncertain) == (1, 1, 0)
    assert len(server.handler.received) == 1
    with db.transaction() as s:
        attempts = s.scalars(select(NotificationAttemptRow).order_by(NotificationAttemptRow.id)).all()
        assert [(a.worker, a.result) for a in attempts] == [("dead", "interrupted"), ("alive", "sent")]


def test_a_crash_mid_send_never_sends_twice(db: Database, server: Server) -> None:
    """The process died after DATA began: the message may have gone out.

    Another dispatcher, once the claim has expired, marks it `uncertain` instead of
    sending again; an operator's retry sends it (once).
    """
    setup_provider(db)
    reach(db, NOTICE_AT)
    dead = dispatcher(db, email_channel(server), worker="dead")
    [item] = dead._claim(NOTICE_AT, DeliveryReport())
    dead._committing(item, NOTICE_AT)  # then the process "died" before hearing back

    alive = dispatcher(db, email_channel(server), worker="alive", claim_for=timedelta(minutes=10))
    report = alive.run(NOTICE_AT + timedelta(minutes=11))
    assert report.uncertain == 1 and report.sent == 0
    assert server.handler.received == []
    [row] = notifications(db)
    assert row.state == "uncertain"
    with db.transaction() as s:
        [attempt] = s.scalars(select(NotificationAttemptRow)).all()
        assert (attempt.phase, attempt.result) == ("committing", "interrupted")
        # Someone working for another provider is told there is no such notice.
        for change in (service.retry, service.cancel):
            with pytest.raises(ConfigError, match=f"no notification {row.id}"):
                change(s, row.id, actor="ops@other", now=NOTICE_AT, provider_id=row.provider_id + 1)
        assert s.get_one(NotificationRow, row.id).state == "uncertain"
        service.retry(
            s, row.id, actor="ops@harbour", now=NOTICE_AT + timedelta(minutes=20), provider_id=row.provider_id
        )
    assert alive.run(NOTICE_AT + timedelta(minutes=21)).sent == 1
    assert len(server.handler.received) == 1


def test_a_dispatcher_whose_claim_was_taken_over_does_not_send(db: Database, server: Server) -> None:
    setup_provider(db)
    reach(db, NOTICE_AT)
    slow = dispatcher(db, email_channel(server), worker="slow", claim_for=timedelta(minutes=1))
    [item] = slow._claim(NOTICE_AT, DeliveryReport())
    # Its claim expired; another dispatcher reconciled the row (nothing had left) and sent it.
    other = dispatcher(db, email_channel(server), worker="other")
    assert other.run(NOTICE_AT + timedelta(minutes=2)).sent == 1
    # The slow one wakes up and tries to go on: refused before DATA.
    with pytest.raises(RuntimeError, match="claim lost"):
        slow._committing(item, NOTICE_AT + timedelta(minutes=2))
    assert len(server.handler.received) == 1


def test_note_channel_is_delivered_without_a_transport(db: Database) -> None:
    setup_provider(db, channels=("note",))
    reach(db, NOTICE_AT)
    d = NotificationDispatcher(db, {}, worker="w")
    assert d.run(NOTICE_AT).noted == 1
    [row] = notifications(db)
    assert row.state == "sent"


def test_email_waits_while_no_smtp_server_is_configured(db: Database) -> None:
    setup_provider(db)
    reach(db, NOTICE_AT)
    assert NotificationDispatcher(db, {}, worker="w").run(NOTICE_AT).handled == 0
    [row] = notifications(db)
    assert row.state == "pending"


def test_invoice_notices_more_than_a_day_late_are_skipped_at_delivery(db: Database, server: Server) -> None:
    setup_provider(db)
    reach(db, NOTICE_AT)
    report = dispatcher(db, email_channel(server)).run(NOTICE_AT + timedelta(hours=25))
    assert report.skipped == 1
    [row] = notifications(db)
    assert (row.state, row.reason) == ("skipped", "late")


def test_a_providers_own_template_is_used(db: Database, server: Server) -> None:
    pid = setup_provider(db)
    with db.transaction() as s:
        from arrears.store.tables import ProviderRow

        provider = s.get_one(ProviderRow, pid)
        save_template(
            s,
            provider,
            TemplateSource(
                event="invoice_overdue",
                channel="email",
                subject="Overdue: {{ invoice.id }}",
                text="Dear {{ contact.name }}, {{ invoice.balance }} is overdue.",
                html=None,
            ),
            actor="admin",
            now=START,
        )
    reach(db, NOTICE_AT)
    dispatcher(db, email_channel(server)).run(NOTICE_AT)
    msg = server.handler.received[0].parsed()
    assert msg["Subject"] == "Overdue: I0"
    body = msg.get_body(("plain",))
    assert body is not None and body.get_content().strip() == "Dear Jo 0, $120.50 is overdue."


def test_many_notices_share_one_connection_per_batch(db: Database, server: Server) -> None:
    setup_provider(db, accounts=12)
    reach(db, NOTICE_AT)
    report = dispatcher(db, email_channel(server), batch=5).run(NOTICE_AT)
    with db.transaction() as s:
        reasons = s.scalars(select(NotificationRow.reason).where(NotificationRow.state != "sent")).all()
    assert report.sent == 12, reasons
    assert len(server.handler.received) == 12
    assert len(server.handler.connections) == 3  # batches of 5, 5 and 2


@pytest.mark.postgres
def test_dispatchers_racing_on_postgres_send_each_notice_once(pg_db: Database, server: Server) -> None:
    db = pg_db
    setup_provider(db, accounts=60)
    reach(db, NOTICE_AT)
    barrier = threading.Barrier(3)

    def work(name: str) -> None:
        d = dispatcher(db, email_channel(server), worker=name, batch=4)
        barrier.wait()
        d.run(NOTICE_AT)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [r.parsed()["Message-ID"] for r in server.handler.received]
    assert len(ids) == 60 and len(set(ids)) == 60
    with db.transaction() as s:
        assert s.scalar(select(func.count()).where(NotificationRow.state == "sent")) == 60
        workers = set(s.scalars(select(NotificationAttemptRow.worker)).all())
    assert len(workers) >= 2  # the work really was shared


# SMS: quiet hours and a gateway that drops repeats -----------------------------------------

# invoice_overdue at 22:00 Sydney (send_time 22:00): inside the default quiet hours.
LATE_EVENING = datetime(2026, 3, 3, 22, 0, tzinfo=SYDNEY).astimezone(UTC)
NEXT_MORNING = datetime(2026, 3, 4, 8, 0, tzinfo=SYDNEY).astimezone(UTC)


def setup_sms(db: Database, *, quiet_hours: bool = True) -> None:
    with db.transaction() as s:
        p = create_provider(
            s,
            key="p1",
            timezone="Australia/Sydney",
            currency="AUD",
            sms=True,
            send_time="22:00",
            notices=NoticeSettingsSpec(sms_from="HARBOUR"),
            now=START,
        )
        inputs = Inputs.open(s, p.id, START)
        inputs.put_rule_set({"min_overdue_amount": "50.00", "min_overdue_days": 30, "restore_threshold": "0"})
        mapping = {"days_after": 1, "channels": ["sms"], "quiet_hours": quiet_hours}
        inputs.put_mappings(parse_mappings({"invoice_overdue": [mapping]}, sms=True, since=START))
        inputs.put_account({"id": "A0", "contacts": [{"role": "primary", "phone": "+61 412 345 678"}]})
        inputs.put_invoice({"id": "I0", "account": "A0", "amount": "120.50", "due": "2026-03-02"})
        inputs.settle()


@pytest.fixture
def gateway() -> Iterator[HttpGateway]:
    with HttpGateway(Reply.json(200, {"id": "gw-1"})) as g:
        yield g


def sms_dispatcher(db: Database, gateway: HttpGateway, worker: str = "w1") -> NotificationDispatcher:
    channel = JsonSmsGateway(JsonSmsSettings(f"http://{gateway.netloc}/sms"))
    return NotificationDispatcher(db, {"sms": channel}, worker=worker, rng=random.Random(1))


def test_sms_waits_out_the_quiet_hours(db: Database, gateway: HttpGateway) -> None:
    setup_sms(db)
    reach(db, LATE_EVENING)
    d = sms_dispatcher(db, gateway)
    assert d.run(LATE_EVENING).deferred == 1
    assert gateway.requests == []
    [row] = notifications(db)
    assert row.next_attempt_at == NEXT_MORNING and row.state == "pending"
    assert d.run(NEXT_MORNING - timedelta(minutes=1)).handled == 0
    assert d.run(NEXT_MORNING).sent == 1
    [request] = gateway.requests
    assert request.json()["to"] == "+61412345678" and request.json()["from"] == "HARBOUR"


def test_a_mapping_may_send_sms_in_quiet_hours(db: Database, gateway: HttpGateway) -> None:
    setup_sms(db, quiet_hours=False)
    reach(db, LATE_EVENING)
    assert sms_dispatcher(db, gateway).run(LATE_EVENING).sent == 1


def test_a_crash_mid_send_is_retried_where_the_gateway_drops_repeats(
    db: Database, gateway: HttpGateway
) -> None:
    setup_sms(db, quiet_hours=False)
    reach(db, LATE_EVENING)
    dead = sms_dispatcher(db, gateway, worker="dead")
    [item] = dead._claim(LATE_EVENING, DeliveryReport())
    dead._committing(item, LATE_EVENING)  # the request may have reached the gateway
    report = sms_dispatcher(db, gateway, worker="alive").run(LATE_EVENING + timedelta(minutes=11))
    assert (report.requeued, report.sent, report.uncertain) == (1, 1, 0)
    [row] = notifications(db)
    assert row.state == "sent"


# after_provisioning: the customer hears of a suspension only once the network changed ---


def test_a_notice_waiting_for_provisioning_goes_out_only_after_confirmation(
    db: Database, server: Server
) -> None:
    from arrears.bootstrap import provisioning_dispatcher
    from arrears.engine.service import run_provisioning
    from arrears.store.tables import ProvisioningRequestRow

    t = datetime(2026, 4, 1, 10, 0, tzinfo=SYDNEY).astimezone(UTC)
    with db.transaction() as s:
        p = create_provider(s, key="p1", timezone="Australia/Sydney", currency="AUD", now=START)
        inputs = Inputs.open(s, p.id, t)
        inputs.put_rule_set(
            {"min_overdue_amount": "50.00", "min_overdue_days": 14, "restore_threshold": "0"}, START
        )
        events = {"auto_suspend": {"channels": ["email"], "after_provisioning": True}}
        inputs.put_mappings(parse_mappings(events, sms=False, since=START))
        inputs.put_account(
            {
                "id": "A0",
                "contacts": [{"role": "primary", "name": "Jo", "email": "jo@example.com"}],
                "services": [{"id": "S0", "type": "nbn"}],
            }
        )
        inputs.put_invoice(
            {"id": "I0", "account": "A0", "amount": "99.00", "due": "2026-03-01", "issued_at": START}
        )
        inputs.settle()
    [row] = notifications(db)
    assert (row.event, row.state) == ("auto_suspend", "waiting")

    d = dispatcher(db, email_channel(server))
    assert d.run(t + timedelta(minutes=1)).handled == 0
    assert server.handler.received == []  # the network has not changed yet

    run_provisioning(db, provisioning_dispatcher(), t + timedelta(minutes=2))
    with db.transaction() as s:
        request = s.scalars(select(ProvisioningRequestRow)).one()
        assert request.state == "confirmed"
    assert d.run(t + timedelta(minutes=3)).sent == 1
    [got] = server.handler.received
    body = got.parsed().get_body(("plain",))
    assert body is not None and "S0" in body.get_content()
    [row] = notifications(db)
    assert row.state == "sent" and row.sent_at is not None and row.sent_at >= request.updated_at


def test_a_provider_may_have_no_quiet_hours(db: Database) -> None:
    with db.transaction() as s:
        p = create_provider(
            s,
            key="night-owl",
            timezone="UTC",
            currency="EUR",
            notices=NoticeSettingsSpec(quiet_hours=None),
            now=START,
        )
        pid = p.id
    with db.transaction() as s:
        from arrears.store.tables import ProviderRow

        row = s.get_one(ProviderRow, pid)
        assert (row.quiet_start, row.quiet_end) == (None, None)
