"""A full pass shared among processes (PostgreSQL) decides and writes what one process would."""

from __future__ import annotations

import itertools
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from arrears.bench import BENCH_NOW, Mix, populate
from arrears.engine import scan, shards
from arrears.engine.scan import ScanResult, full_pass
from arrears.store.db import Database
from arrears.store.tables import (
    AccountRow,
    EpisodeRow,
    HistoryRow,
    NotificationRow,
    ProvisioningRequestRow,
    ServiceRow,
)
from pg_schemas import postgres_schema

ACCOUNTS = 1500
# Small batches, so that each process's candidates make several.
SMALL = 25


@pytest.fixture
def small_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    # Processes forked from this one see it (those from a forkserver read in 2,000s).
    monkeypatch.setattr(scan, "READ_BATCH", SMALL)


@pytest.fixture
def accounts(pg_db: Database, small_reads: None) -> Iterator[Database]:
    populate(pg_db, ACCOUNTS, mix=Mix(), seed=7, key="shards")
    yield pg_db


@pytest.fixture(autouse=True)
def forked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fork by default, as a command does: the test runner's own threads would choose the forkserver."""
    monkeypatch.setattr(shards, "_start_method", lambda: "fork")


def _plan(result: ScanResult) -> list[dict[str, Any]]:
    return [entry.as_json() | {"id": entry.account_id} for entry in result.plan]


def _written(db: Database) -> dict[str, Any]:
    """What an apply pass leaves in the database, in a form two databases can be compared by."""
    with db.transaction() as s:
        return {
            "accounts": Counter(s.execute(select(AccountRow.status, AccountRow.stage)).all()),
            "services": Counter(s.execute(select(ServiceRow.status, ServiceRow.changed_by)).all()),
            "open_episodes": s.scalar(select(func.count()).where(EpisodeRow.ended_at.is_(None))),
            "history": Counter(
                s.execute(select(HistoryRow.kind, func.count()).group_by(HistoryRow.kind)).all()
            ),
            "notifications": Counter(
                s.execute(select(NotificationRow.event, func.count()).group_by(NotificationRow.event)).all()
            ),
            "provisioning": Counter(
                s.execute(
                    select(ProvisioningRequestRow.action, func.count()).group_by(
                        ProvisioningRequestRow.action
                    )
                ).all()
            ),
            "suspended": sorted(
                s.scalars(select(AccountRow.ext_id).where(AccountRow.status == "suspended")).all()
            ),
        }


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_a_shared_dry_run_plans_exactly_what_one_process_plans(
    accounts: Database, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shards, "_start_method", lambda: method)
    alone = full_pass(accounts, BENCH_NOW, dry_run=True, plan=True, processes=1, batch=SMALL)
    shared = full_pass(accounts, BENCH_NOW, dry_run=True, plan=True, processes=3, batch=SMALL)

    assert (alone.processes, shared.processes) == (1, 3)
    assert _plan(shared) == _plan(alone)  # same entries, same (account) order
    assert (shared.evaluated, shared.actions) == (alone.evaluated, alone.actions)
    assert alone.actions.get("escalate", 0) > 0


def test_processes_are_forked_only_from_a_process_without_other_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.undo()  # the real choice, not the `forked` fixture's
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    assert shards._start_method() == "fork"
    monkeypatch.setattr(threading, "active_count", lambda: 2)
    assert shards._start_method() == "forkserver"


def test_a_shared_pass_writes_what_one_process_writes(pg_db: Database, small_reads: None) -> None:
    populate(pg_db, ACCOUNTS, mix=Mix(), seed=7, key="shards")
    seen: list[tuple[int, int]] = []
    shared = full_pass(
        pg_db, BENCH_NOW, processes=2, batch=SMALL, progress=lambda done, total: seen.append((done, total))
    )

    # The same accounts in a schema of their own, carried out by one process.
    with postgres_schema() as url:
        other = Database(url)
        try:
            other.create_all()
            populate(other, ACCOUNTS, mix=Mix(), seed=7, key="shards")
            alone = full_pass(other, BENCH_NOW, processes=1, batch=SMALL)
            written_alone = _written(other)
        finally:
            other.dispose()

    assert shared.actions == alone.actions and shared.actions.get("escalate", 0) > 0
    assert shared.applied == alone.applied and shared.processes == 2
    assert _written(pg_db) == written_alone
    # Progress came from the processes as they went (the total growing as they
    # found their ranges' candidates), up to every candidate.
    assert seen[-1] == (shared.candidates, shared.candidates) == (alone.candidates, alone.candidates)
    assert len(seen) > 3
    assert all(a[0] <= b[0] and a[1] <= b[1] and b[0] <= b[1] for a, b in itertools.pairwise(seen))
    # A pass right after finds nothing more to do.
    again = full_pass(pg_db, BENCH_NOW, processes=2, batch=SMALL)
    assert again.actions == {}


def test_a_stop_reaches_every_process(accounts: Database) -> None:
    everything = full_pass(accounts, BENCH_NOW, dry_run=True, processes=1)
    seen: list[int] = []

    result = full_pass(
        accounts,
        BENCH_NOW,
        dry_run=True,
        processes=2,
        batch=SMALL,
        progress=lambda done, total: seen.append(done),
        should_stop=lambda: any(seen),  # stop once some batch is done
    )

    assert result.stopped
    assert 0 < result.evaluated < everything.evaluated


def _on_second_batch(monkeypatch: pytest.MonkeyPatch, happen: Callable[[], None]) -> None:
    """Make `happen` happen when a process reaches its second batch (processes fork from this one)."""
    real = scan.assess_snapshots
    calls = {"n": 0}

    def assess(session: Any, provider: Any, ids: Any, now: datetime) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            happen()
        return real(session, provider, ids, now)

    monkeypatch.setattr(scan, "assess_snapshots", assess)


def test_a_failing_process_fails_the_pass_with_its_traceback(
    accounts: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail() -> None:
        raise RuntimeError("the database went away")

    _on_second_batch(monkeypatch, fail)
    with pytest.raises(shards.ShardFailed, match="the database went away"):
        full_pass(accounts, BENCH_NOW, dry_run=True, processes=2, batch=SMALL)


def test_a_process_killed_mid_pass_fails_it_without_hanging(
    accounts: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the kernel's out-of-memory killer would.
    _on_second_batch(monkeypatch, lambda: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(shards.ShardFailed, match=r"exit code -9\) without a result"):
        full_pass(accounts, BENCH_NOW, dry_run=True, processes=2, batch=SMALL)


def test_who_shares_a_pass(sqlite_url: str, accounts: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(shards.ENV, raising=False)
    pid = provider_id(accounts)
    # SQLite: one writer, and an in-memory database lives in one process.
    assert shards.processes_for(Database(sqlite_url), [pid], 4, None) == 1
    # Small passes stay in this process unless a number is asked for.
    assert shards.processes_for(accounts, [pid], None, None) == 1
    assert shards.processes_for(accounts, [pid], 3, None) == 3
    monkeypatch.setattr(shards, "MIN_ACCOUNTS", ACCOUNTS)
    monkeypatch.setenv(shards.ENV, "2")
    assert shards.processes_for(accounts, [pid], None, None) == 2
    monkeypatch.setenv(shards.ENV, "1")
    assert shards.processes_for(accounts, [pid], None, None) == 1


def provider_id(db: Database) -> int:
    with db.transaction() as s:
        return s.scalars(select(AccountRow.provider_id).limit(1)).one()


def test_a_lambda_clock_in_a_threaded_process_keeps_the_pass_here(
    pg_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shards, "_start_method", lambda: "forkserver")
    # A forkserver's process gets the clock by pickling; a lambda cannot be.
    assert shards.processes_for(pg_db, [1], 2, lambda: BENCH_NOW) == 1
    assert shards.processes_for(pg_db, [1], 2, None) == 2


@pytest.mark.parametrize("raw", ["two", "0", "-3"])
def test_a_bad_process_count_names_the_variable(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(shards.ENV, raw)
    with pytest.raises(ValueError, match=shards.ENV):
        shards.configured()


def test_ranges_cover_every_id_once() -> None:
    assert shards.ranges(1, 10, 3) == [(1, 3), (4, 6), (7, 10)]
    assert shards.ranges(5, 5, 4) == [(5, 5)]  # never an empty range
    cut = shards.ranges(17, 1_000_003, 32)
    assert len(cut) == 32 and cut[0][0] == 17 and cut[-1][1] == 1_000_003
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(cut))


def test_ranges_are_dealt_in_turn() -> None:
    a, b, c = (1, 10), (11, 20), (21, 30)
    assert shards.shares([7, 8], [a, b, c], 2) == [
        [(7, a), (7, c), (8, b)],
        [(7, b), (8, a), (8, c)],
    ]
    # Fewer ranges than processes: only as many processes as ranges.
    assert shards.shares([7], [a], 4) == [[(7, a)]]
