"""Carrying out decisions in bulk: plain states written back with set-based
statements, batches side by side on PostgreSQL, the dispatcher's batched reads."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, func, select

from arrears.bench import Mix, populate
from arrears.config import parse_mappings
from arrears.engine import scan
from arrears.engine.inputs import Inputs, create_provider
from arrears.engine.journal import _HISTORY, _insert
from arrears.engine.provisioning import Outcome, ProvisioningDispatcher
from arrears.engine.scan import full_pass
from arrears.provisioning.base import ProvisioningCall, Result, State
from arrears.provisioning.routing import Routes
from arrears.store.db import Database
from arrears.store.tables import (
    AccountRow,
    EpisodeRow,
    HistoryRow,
    NotificationRow,
    ProvisioningRequestRow,
    ServiceRow,
)

TZ = ZoneInfo("Australia/Sydney")
SETUP = datetime(2026, 1, 1, 10, 0, tzinfo=TZ).astimezone(UTC)
NOW = datetime(2026, 2, 2, 10, 0, tzinfo=TZ).astimezone(UTC)  # a Monday, inside the window
RULES = {"min_overdue_amount": "50.00", "min_overdue_days": 14, "restore_threshold": "10.00"}
EVENTS: dict[str, Any] = {"auto_suspend": {"channels": ["email"]}, "auto_unsuspend": {"channels": ["email"]}}


def _provider(s: Any, events: dict[str, Any] | None = None) -> Inputs:
    p = create_provider(s, key="p", timezone="Australia/Sydney", currency="AUD", now=SETUP)
    inputs = Inputs.open(s, p.id, SETUP)
    inputs.put_rule_set(dict(RULES), SETUP)
    inputs.put_mappings(parse_mappings(events or EVENTS, sms=False, since=SETUP))
    return inputs


def _overdue_account(inputs: Inputs, ext: str, services: int = 2) -> None:
    inputs.put_account(
        {
            "id": ext,
            "contacts": [{"role": "primary", "name": ext, "email": f"{ext.lower()}@example.com"}],
            "services": [{"id": f"{ext}-S{i}", "type": "mobile"} for i in range(services)],
        }
    )
    inputs.put_invoice({"id": f"{ext}-I1", "account": ext, "amount": "120.00", "due": "2026-01-10"})


def test_settle_leaves_no_stale_orm_copy(db: Database) -> None:
    """The inputs' ORM rows of an account the engine then changes are read again, not trusted."""
    with db.transaction() as s:
        inputs = _provider(s)
        _overdue_account(inputs, "A")
        inputs.settle()
        # Rows the session holds (the identity map keeps only those referenced).
        row = inputs.account("A")
        services = s.scalars(select(ServiceRow).where(ServiceRow.account_id == row.id)).all()
        assert row.status == "active" and {svc.status for svc in services} == {"active"}
        inputs.now = NOW
        inputs.touched.add(row.id)
        (ev,) = inputs.settle()
        assert ev.action.value == "escalate"
        # The same session, the same objects: they must show the engine's work.
        assert (row.status, row.status_reason, row.stage) == ("suspended", "auto", "suspend")
        assert row.episode_id is not None
        assert inputs.account("A") is row
        assert {(svc.status, svc.changed_by, svc.episode_id) for svc in services} == {
            ("restricted", "episode", row.episode_id)  # the default stage restricts
        }
        episode = s.get_one(EpisodeRow, row.episode_id)
        assert (episode.stage, episode.ended_at) == ("suspend", None)


def test_restore_cancels_the_pending_requests_read_ahead(db: Database) -> None:
    """Paid before provisioning ran: the pending suspensions are cancelled, nothing is sent."""
    with db.transaction() as s:
        inputs = _provider(s)
        _overdue_account(inputs, "A")
        _overdue_account(inputs, "B", services=1)
        inputs.settle()
    full_pass(db, NOW)
    later = NOW + timedelta(hours=1)
    with db.transaction() as s:
        inputs = Inputs.open(s, inputs.provider.id, later)
        for ext in ("A", "B"):
            inputs.put_payment({"id": f"{ext}-P1", "account": ext, "amount": "120.00"})
        evaluations = inputs.settle()
        assert [ev.action.value for ev in evaluations] == ["restore", "restore"]
    with db.transaction() as s:
        requests = s.scalars(select(ProvisioningRequestRow).order_by(ProvisioningRequestRow.id)).all()
        assert [(r.action, r.state) for r in requests] == [("restricted", "cancelled")] * 3
        accounts = s.scalars(select(AccountRow).order_by(AccountRow.id)).all()
        assert [(a.status, a.episode_id) for a in accounts] == [("active", None)] * 2
        episodes = s.scalars(select(EpisodeRow)).all()
        assert [(e.end_reason, e.ended_at) for e in episodes] == [("paid", later)] * 2
        cancelled = s.scalars(
            select(HistoryRow).where(HistoryRow.kind == "provisioning").order_by(HistoryRow.id)
        ).all()
        assert [h.data["state"] for h in cancelled] == ["cancelled"] * 3
        assert {r.service_id for r in requests} == set(s.scalars(select(ServiceRow.id)))


def test_states_are_written_with_one_statement_per_table(db: Database) -> None:
    with db.transaction() as s:
        inputs = _provider(s)
        for n in range(12):
            _overdue_account(inputs, f"A{n}")
        inputs.settle()
    updates: Counter[str] = Counter()

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("UPDATE"):
            updates[statement.split()[1]] += 1

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        result = full_pass(db, NOW)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert result.actions == {"escalate": 12}
    # PostgreSQL: one UPDATE ... FROM unnest per table; SQLite: one executemany.
    assert updates == {"accounts": 1, "services": 1}
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(EpisodeRow)) == 12
        linked = s.execute(
            select(func.count())
            .select_from(ServiceRow)
            .join(AccountRow, AccountRow.id == ServiceRow.account_id)
            .where(ServiceRow.episode_id == AccountRow.episode_id, ServiceRow.status == "restricted")
        ).scalar()
        assert linked == 24
        stage_lines = s.scalars(select(HistoryRow.episode_id).where(HistoryRow.kind == "stage")).all()
        assert sorted(stage_lines) == sorted(s.scalars(select(EpisodeRow.id)))


def test_copy_fills_python_side_defaults(db: Database) -> None:
    """A bulk insert leaving a column out gets its default, as an ORM insert would."""
    with db.transaction() as s:
        inputs = _provider(s)
        row = {"provider_id": inputs.provider.id, "account_id": None, "at": NOW, "kind": "test"}
        _insert(s, _HISTORY, [{**row, "data": {"n": 1}, "episode_id": None, "rule_set_id": None}])
    with db.transaction() as s:
        (line,) = s.scalars(select(HistoryRow).where(HistoryRow.kind == "test")).all()
        assert (line.actor, line.data) == ("arrears", {"n": 1})


@pytest.fixture
def threads() -> Iterator[None]:
    saved = scan.APPLY_THREADS
    scan.APPLY_THREADS = 3
    yield
    scan.APPLY_THREADS = saved


def test_batches_side_by_side_carry_out_each_decision_once(pg_db: Database, threads: None) -> None:
    accounts = 600
    populate(pg_db, accounts, now=NOW, mix=Mix(past_rules=0.5, not_yet_due=0.2), seed=7)
    result = full_pass(pg_db, NOW, batch=40, plan=True)
    assert result.applied == result.actions["escalate"] > 200
    assert len({e.account_id for e in result.plan}) == len(result.plan) == result.candidates
    with pg_db.transaction() as s:
        per_account = Counter(s.scalars(select(EpisodeRow.account_id).where(EpisodeRow.ended_at.is_(None))))
        assert len(per_account) == result.actions["escalate"] and set(per_account.values()) == {1}
        notices = s.scalar(select(func.count()).select_from(NotificationRow))
        services = s.scalar(
            select(func.count()).select_from(ServiceRow).where(ServiceRow.status == "restricted")
        )
        assert notices == services
    again = full_pass(pg_db, NOW + timedelta(minutes=1))
    assert again.actions == {} and again.applied == 0


class _SentFirst:
    """Accepts the first request it sees (confirmation to come), confirms the others."""

    name = "log"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def execute(self, call: ProvisioningCall) -> Result:
        self.seen.append(call.request_id)
        return Result(State.ACCEPTED if len(self.seen) == 1 else State.CONFIRMED)

    def close(self) -> None:
        pass


def test_dispatcher_keeps_each_services_requests_in_order(db: Database) -> None:
    events = {**EVENTS, "auto_suspend": {"channels": ["email"], "after_provisioning": True}}
    with db.transaction() as s:
        inputs = _provider(s, events)
        _overdue_account(inputs, "A", services=1)
        _overdue_account(inputs, "B", services=1)
        inputs.settle()
    full_pass(db, NOW)
    adapter = _SentFirst()
    dispatcher = ProvisioningDispatcher(Routes(default=adapter))
    later = NOW + timedelta(minutes=10)
    with db.transaction() as s:
        assert dispatcher.dispatch(s, later) == 2  # A's (sent: confirmation to come) and B's
        a, b = s.scalars(select(AccountRow.id).order_by(AccountRow.id)).all()
    with db.transaction() as s:
        inputs = Inputs.open(s, inputs.provider.id, later)
        inputs.put_payment({"id": "A-P1", "account": "A", "amount": "120.00"})
        inputs.manual("A", "restore")
        inputs.settle()
    with db.transaction() as s:
        assert dispatcher.dispatch(s, later) == 0  # A's restore waits for A's confirmation

        def requests() -> list[tuple[bool, str, str]]:
            return [
                (account_id == a, action, state)
                for account_id, action, state in s.execute(
                    select(
                        ProvisioningRequestRow.account_id,
                        ProvisioningRequestRow.action,
                        ProvisioningRequestRow.state,
                    ).order_by(ProvisioningRequestRow.id)
                )
            ]

        def notices() -> dict[int, str]:
            rows = s.execute(
                select(NotificationRow.account_id, NotificationRow.state).where(
                    NotificationRow.event == "auto_suspend"
                )
            ).all()
            return {account_id: state for account_id, state in rows}

        assert requests() == [
            (True, "restricted", "sent"),
            (False, "restricted", "confirmed"),
            (True, "restore", "pending"),
        ]
        assert notices() == {a: "waiting", b: "pending"}, "B's notice was released by its confirmation"
        first = s.scalars(select(ProvisioningRequestRow).order_by(ProvisioningRequestRow.id)).first()
        assert first is not None
        dispatcher.settle(s, first, Outcome("confirmed"), later)
        assert notices() == {a: "pending", b: "pending"}
    with db.transaction() as s:
        assert dispatcher.dispatch(s, later) == 1  # now A's restore
        assert requests()[-1] == (True, "restore", "confirmed")
