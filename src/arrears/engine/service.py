"""The engine's service layer: evaluate accounts, scan for due work, run provisioning.

Production (worker, API) and the simulation call exactly these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from arrears.domain.decisions import Action, Evaluation, evaluate
from arrears.domain.model import AccountSnapshot
from arrears.engine.applicator import Applicator
from arrears.engine.journal import Journal, Writes
from arrears.engine.provisioning import ProvisioningDispatcher
from arrears.store.db import Database
from arrears.store.repository import (
    AccountState,
    ProviderView,
    StoredAccount,
    id_filter,
    load_provider,
    load_snapshots,
    load_states,
    notice_memory,
    state_snapshot,
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
    assessed: Mapping[int, tuple[AccountSnapshot, Evaluation]] | None = None,
) -> list[Evaluation]:
    """Evaluate accounts of one provider at `now` and carry out what is decided.

    Runs inside the caller's transaction: the decision, its history and its
    side-effect rows commit together. Returns the first evaluation of each
    account, in account id order.

    `assessed` (account id -> snapshot and its evaluation at `now`, e.g. from
    `assess_snapshots` moments before) spares evaluating again an account whose
    locked snapshot is still equal: `evaluate` is a pure function of both.
    """
    if dry_run:
        return [ev for _, ev in assess(session, provider, account_ids, now)]
    ctx = provider.context
    # Plain rows, locked; the states are this transaction's copy of the account,
    # service and episode rows, written back by `writes` (see journal.Writes).
    states = load_states(session, account_ids, lock=True)
    memory = notice_memory(session, states)
    # History, provisioning and notification rows are collected and inserted in
    # bulk at the end (still in the caller's transaction).
    writes = Writes()
    writes.track(states)
    journal = Journal(session, provider.id, now, actor, writes)
    applicator = Applicator(session, provider, now, journal)
    # A restore cancels its services' pending requests: read them for the batch at once.
    applicator.read_pending(s.id for a in states if a.episode is not None for s in a.services)
    out: list[Evaluation] = []
    changed: list[AccountState] = []
    for state in states:
        snap = state_snapshot(state, memory[state.id])
        seen = assessed.get(state.id) if assessed is not None else None
        ev = seen[1] if seen is not None and seen[0] == snap else evaluate(snap, ctx, now)
        out.append(ev)
        if applicator.apply(state, snap, ev):
            changed.append(state)
    # The accounts that changed are evaluated again, all together (one flush and
    # one query a round, not one per account), until they settle.
    for _ in range(MAX_ROUNDS - 1):
        if not changed:
            break
        # New episodes get their ids, and notifications the memory below reads
        # are written; everything else is written once, at the end.
        writes.flush(session, states=False, collected=writes.remembered())
        memory = notice_memory(session, changed)
        again: list[AccountState] = []
        for state in changed:
            snap = state_snapshot(state, memory[state.id])
            if applicator.apply(state, snap, evaluate(snap, ctx, now)):
                again.append(state)
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
    return [(stored, ev) for stored, _, ev in assess_snapshots(session, provider, account_ids, now)]


def assess_snapshots(
    session: Session, provider: ProviderView, account_ids: Sequence[int], now: datetime
) -> list[tuple[StoredAccount, AccountSnapshot, Evaluation]]:
    """`assess`, with the snapshot each evaluation was made from."""
    ctx = provider.context
    return [(stored, snap, evaluate(snap, ctx, now)) for stored, snap in load_snapshots(session, account_ids)]


def claim_accounts(session: Session, account_ids: Sequence[int]) -> list[int]:
    """Lock these accounts for this transaction, leaving out those another one holds.

    On PostgreSQL (`FOR UPDATE SKIP LOCKED`) an account locked elsewhere is being
    evaluated there, so this transaction need not (and must not) act on it too.
    SQLite has one writer at a time: every existing account is claimed.
    """
    if not account_ids:
        return []
    among = id_filter(session, sorted(set(account_ids)))
    stmt = select(AccountRow.id).where(among(AccountRow.id)).order_by(AccountRow.id)
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
