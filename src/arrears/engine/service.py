"""The engine's service layer: evaluate accounts, scan for due work, run provisioning.

Production (worker, API) and the simulation call exactly these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from arrears.domain.decisions import Action, Evaluation, evaluate
from arrears.engine.applicator import Applicator
from arrears.engine.journal import Journal, Writes
from arrears.engine.provisioning import ProvisioningDispatcher
from arrears.store.db import Database
from arrears.store.repository import (
    ProviderView,
    StoredAccount,
    load_accounts,
    load_provider,
    load_snapshots,
    notice_memory,
    snapshot,
)
from arrears.store.tables import AccountRow

# An evaluation that changes the account is followed by another, so the next
# wake-up reflects the new state; a few rounds always settle.
MAX_ROUNDS = 4


@dataclass
class PassResult:
    evaluated: int = 0
    actions: dict[str, int] = field(default_factory=dict)

    def add(self, ev: Evaluation) -> None:
        self.evaluated += 1
        if ev.action is not Action.NONE:
            self.actions[ev.action.value] = self.actions.get(ev.action.value, 0) + 1

    def merge(self, other: PassResult) -> None:
        self.evaluated += other.evaluated
        for k, v in other.actions.items():
            self.actions[k] = self.actions.get(k, 0) + v


def reevaluate(
    session: Session,
    provider: ProviderView,
    account_ids: Sequence[int],
    now: datetime,
    *,
    actor: str = "arrears",
    dry_run: bool = False,
) -> list[Evaluation]:
    """Evaluate accounts of one provider at `now` and carry out what is decided.

    Runs inside the caller's transaction: the decision, its history and its
    side-effect rows commit together. Returns the first evaluation of each
    account, in account id order.
    """
    if dry_run:
        return [ev for _, ev in assess(session, provider, account_ids, now)]
    ctx = provider.context
    rows = load_accounts(session, account_ids, lock=True)
    memory = notice_memory(session, rows)
    # History, provisioning and notification rows are collected and inserted in
    # bulk at the end of each round (still in the caller's transaction).
    writes = Writes()
    journal = Journal(session, provider.id, now, actor, writes)
    applicator = Applicator(session, provider, now, journal)
    out: list[Evaluation] = []
    changed: list[AccountRow] = []
    for row in rows:
        snap = snapshot(row, memory[row.id])
        ev = evaluate(snap, ctx, now)
        out.append(ev)
        if applicator.apply(row, snap, ev):
            changed.append(row)
    # The accounts that changed are evaluated again, all together (one flush and
    # one query a round, not one per account), until they settle.
    for _ in range(MAX_ROUNDS - 1):
        if not changed:
            break
        writes.flush(session)
        memory = notice_memory(session, changed)
        again: list[AccountRow] = []
        for row in changed:
            snap = snapshot(row, memory[row.id])
            if applicator.apply(row, snap, evaluate(snap, ctx, now)):
                again.append(row)
        changed = again
    writes.flush(session)
    return out


def assess(
    session: Session, provider: ProviderView, account_ids: Sequence[int], now: datetime
) -> list[tuple[StoredAccount, Evaluation]]:
    """Evaluate accounts of one provider at `now` without changing anything.

    Reads plain rows (no ORM objects, no locks), so it is the fast way to look
    at many accounts; `reevaluate` is the way to act on them.
    """
    ctx = provider.context
    return [(stored, evaluate(snap, ctx, now)) for stored, snap in load_snapshots(session, account_ids)]


def claim_accounts(session: Session, account_ids: Sequence[int]) -> list[int]:
    """Lock these accounts for this transaction, leaving out those another one holds.

    On PostgreSQL (`FOR UPDATE SKIP LOCKED`) an account locked elsewhere is being
    evaluated there, so this transaction need not (and must not) act on it too.
    SQLite has one writer at a time: every existing account is claimed.
    """
    if not account_ids:
        return []
    stmt = select(AccountRow.id).where(AccountRow.id.in_(sorted(set(account_ids)))).order_by(AccountRow.id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list(session.scalars(stmt).all())


def due_accounts(
    session: Session,
    now: datetime,
    provider_id: int | None = None,
    limit: int = 1000,
    *,
    claim: bool = False,
) -> list[tuple[int, int]]:
    """(provider, account) pairs whose next wake-up has come, earliest first.

    With `claim`, the accounts are locked for the caller's transaction and
    those another transaction holds are skipped (PostgreSQL), so concurrent
    workers share the due accounts instead of evaluating them twice.
    """
    stmt = (
        select(AccountRow.provider_id, AccountRow.id)
        .where(AccountRow.next_wakeup_at <= now)
        .order_by(AccountRow.next_wakeup_at, AccountRow.id)
        .limit(limit)
    )
    if provider_id is not None:
        stmt = stmt.where(AccountRow.provider_id == provider_id)
    if claim and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return [(p, a) for p, a in session.execute(stmt).all()]


def next_wakeup(session: Session, provider_id: int | None = None) -> datetime | None:
    stmt = select(func.min(AccountRow.next_wakeup_at))
    if provider_id is not None:
        stmt = stmt.where(AccountRow.provider_id == provider_id)
    # MIN() keeps the column's type, so the value comes back an aware UTC instant.
    return session.scalar(stmt)


def run_due(
    db: Database,
    now: datetime,
    *,
    batch: int = 200,
    provider_id: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PassResult:
    """Evaluate every account whose wake-up has come, a batch per transaction.

    `should_stop` is asked between batches: a stop request ends the pass after
    the batch in hand has committed.
    """
    result = PassResult()
    providers: dict[int, ProviderView] = {}
    while should_stop is None or not should_stop():
        with db.transaction() as session:
            due = due_accounts(session, now, provider_id, limit=batch, claim=True)
            if not due:
                break
            by_provider: dict[int, list[int]] = {}
            for p, a in due:
                by_provider.setdefault(p, []).append(a)
            for p, ids in by_provider.items():
                if p not in providers:
                    providers[p] = load_provider(session, p)
                for ev in reevaluate(session, providers[p], ids, now):
                    result.add(ev)
    return result


def run_provisioning(
    db: Database,
    dispatcher: ProvisioningDispatcher,
    now: datetime,
    *,
    batch: int = 500,
    should_stop: Callable[[], bool] | None = None,
) -> int:
    """Dispatch the provisioning requests whose turn has come, `batch` per transaction.

    `should_stop` is asked between transactions (a worker stopping finishes the
    batch in hand); a smaller batch lets several workers share the requests.
    """
    total = 0
    while should_stop is None or not should_stop():
        with db.transaction() as session:
            n = dispatcher.dispatch(session, now, limit=batch)
        total += n
        if n == 0:
            break
    return total
