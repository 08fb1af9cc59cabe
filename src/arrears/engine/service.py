"""The engine's service layer: evaluate accounts, scan for due work, run provisioning.

Production (worker, API) and the simulation call exactly these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from arrears.domain.decisions import Action, Evaluation, evaluate
from arrears.engine.applicator import Applicator
from arrears.engine.journal import Journal
from arrears.engine.provisioning import ProvisioningDispatcher
from arrears.store.db import Database
from arrears.store.repository import ProviderView, load_accounts, load_provider, notice_memory, snapshot
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
    side-effect rows commit together.
    """
    rows = load_accounts(session, account_ids, lock=not dry_run)
    memory = notice_memory(session, rows)
    journal = Journal(session, provider.id, now, actor)
    applicator = Applicator(session, provider, now, journal)
    out: list[Evaluation] = []
    for row in rows:
        snap = snapshot(row, memory[row.id])
        ev = evaluate(snap, provider.context, now)
        out.append(ev)
        if dry_run:
            continue
        for _ in range(MAX_ROUNDS):
            if not applicator.apply(row, snap, ev):
                break
            session.flush()
            snap = snapshot(row, notice_memory(session, [row])[row.id])
            ev = evaluate(snap, provider.context, now)
    return out


def due_accounts(
    session: Session, now: datetime, provider_id: int | None = None, limit: int = 1000
) -> list[tuple[int, int]]:
    """(provider, account) pairs whose next wake-up has come, earliest first."""
    stmt = (
        select(AccountRow.provider_id, AccountRow.id)
        .where(AccountRow.next_wakeup_at <= now)
        .order_by(AccountRow.next_wakeup_at, AccountRow.id)
        .limit(limit)
    )
    if provider_id is not None:
        stmt = stmt.where(AccountRow.provider_id == provider_id)
    return [(p, a) for p, a in session.execute(stmt).all()]


def next_wakeup(session: Session, provider_id: int | None = None) -> datetime | None:
    stmt = select(func.min(AccountRow.next_wakeup_at))
    if provider_id is not None:
        stmt = stmt.where(AccountRow.provider_id == provider_id)
    value = session.scalar(stmt)
    if value is None:
        return None
    from arrears.store.types import UTCDateTime

    result = UTCDateTime().process_result_value(value, session.get_bind().dialect)
    return result


def run_due(db: Database, now: datetime, *, batch: int = 200, provider_id: int | None = None) -> PassResult:
    """Evaluate every account whose wake-up has come, a batch per transaction."""
    result = PassResult()
    providers: dict[int, ProviderView] = {}
    while True:
        with db.transaction() as session:
            due = due_accounts(session, now, provider_id, limit=batch)
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


def run_provisioning(db: Database, dispatcher: ProvisioningDispatcher, now: datetime) -> int:
    total = 0
    while True:
        with db.transaction() as session:
            n = dispatcher.dispatch(session, now)
        total += n
        if n == 0:
            return total
