"""Scanning: finding the accounts whose decision may change, and evaluating just those.

Two passes keep every account's decision current:

- the **due pass** (`due_pass`) evaluates the accounts whose stored wake-up has
  come. Every evaluation stores the next instant its decision can change
  (SPEC §9), so in steady state this is all the work there is; it runs every
  scan interval.
- the **full pass** (`full_pass`) does not trust the stored wake-ups: one
  set-based query per provider finds every account whose decision may differ
  from nothing-to-do, from the invoices themselves. It runs when a worker
  starts, when a provider's local date rolls over, and for `arrears scan`.

The candidate query (one per provider):

    WITH owing AS (                        -- open invoices at `now` (SPEC §3), per account
      SELECT account_id FROM invoices
      WHERE provider_id = :p AND status = 'open' AND balance > 0 AND issued_at <= :now
      GROUP BY account_id
      HAVING MIN(due_date) < :today - :min_days                         -- days overdue > y
         AND SUM(balance) >= :min_amount                                -- amount basis >= x
         AND SUM(CASE WHEN due_date < :today THEN balance ELSE 0 END) > :min_k)  -- overdue > k
    SELECT a.id FROM accounts a LEFT JOIN owing o ON o.account_id = a.id
    WHERE a.provider_id = :p
      AND (a.episode_id IS NOT NULL          -- in an episode: restore / move along the ladder
           OR a.next_wakeup_at <= :now       -- a wake-up has come
           OR a.evaluated_at IS NULL         -- never evaluated
           OR o.account_id IS NOT NULL)      -- some stage of some rule set may hold
    ORDER BY a.id

The thresholds are the loosest over the provider's rule sets in force and
their stages (smallest days, amount and restore threshold; the amount is
compared with total owing, which is never below the overdue balance), so the
query can only return too many accounts, never too few. An account it leaves
out is not in an episode, has no wake-up due, and no stage of any rule set
can hold for it: its decision is "nothing to do".

The candidates are then evaluated in batches: read as plain rows and
evaluated without locks (`service.assess_snapshots`); only the accounts where
carrying out the decision would change something are locked and read again
by `service.reevaluate` in a transaction of their own (on PostgreSQL with
`FOR UPDATE SKIP LOCKED`: an account another worker holds is that worker's).
An account that has not changed in between keeps the evaluation it was
assessed with. On PostgreSQL two such transactions run side by side
(`_Applier`): while one waits for the database, the other is evaluated.
A dry run stops after the first step and changes nothing. A pass with many
candidates on PostgreSQL deals its batches out to several processes, each
running this same loop (`run_batches`; see `engine.shards`).
"""

from __future__ import annotations

import gc
import threading
from array import array
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from arrears.domain.clock import iso_local, local_date
from arrears.domain.decisions import Action, Evaluation
from arrears.domain.model import AccountSnapshot
from arrears.domain.money import fmt
from arrears.domain.rules import RuleSet
from arrears.engine import shards
from arrears.engine.applicator import needs_apply
from arrears.engine.service import (
    PassResult,
    assess_snapshots,
    claim_accounts,
    reevaluate,
    run_due,
)
from arrears.store.db import Database
from arrears.store.repository import ProviderView, StoredAccount, load_provider
from arrears.store.tables import AccountRow, InvoiceRow, ProviderRow, owing_invoice

# Accounts per writing transaction, and per read of the full pass's first look.
BATCH = 500
READ_BATCH = 2000
# Writing transactions at once on PostgreSQL (see `_Applier`).
APPLY_THREADS = 2

T = TypeVar("T")
Progress = Callable[[int, int], None]  # (accounts done, accounts to do)
StopCheck = Callable[[], bool]


@dataclass(frozen=True)
class Loosest:
    """The loosest conditions under which some stage of some rule set may hold."""

    min_days: int
    min_amount: Decimal
    restore_threshold: Decimal


def rule_sets_in_force(rule_sets: Sequence[RuleSet], now: datetime) -> list[RuleSet]:
    """The latest version of each named rule set that is effective at `now`."""
    current: dict[str, RuleSet] = {}
    for rs in rule_sets:
        if rs.effective_at <= now:
            best = current.get(rs.name)
            if best is None or (rs.effective_at, rs.version) > (best.effective_at, best.version):
                current[rs.name] = rs
    return list(current.values())


def loosest(rule_sets: Sequence[RuleSet], now: datetime) -> Loosest | None:
    """None when no rule set is in force (then no stage can hold for anyone)."""
    current = rule_sets_in_force(rule_sets, now)
    if not current:
        return None
    return Loosest(
        min_days=min(stage.min_overdue_days for rs in current for stage in rs.ladder),
        min_amount=min(rs.stage_amount(stage) for rs in current for stage in rs.ladder),
        restore_threshold=min(rs.restore_threshold for rs in current),
    )


def candidate_query(
    provider: ProviderView, now: datetime, between: tuple[int, int] | None = None
) -> Select[int]:
    """The ids of the provider's accounts whose decision may change at `now`, in id order.

    `between` (lowest, highest account id) limits it to a range of ids: the
    processes sharing a pass each query their own ranges (`engine.shards`).
    """
    a = AccountRow.__table__.c
    today = local_date(now, provider.tz)
    conditions: list[Any] = [
        a.episode_id.is_not(None),
        a.next_wakeup_at <= now,
        a.evaluated_at.is_(None),
    ]
    loose = loosest(provider.context.rule_sets, now)
    stmt = select(a.id).where(a.provider_id == provider.id)
    if between is not None:
        stmt = stmt.where(a.id.between(*between))
    if loose is not None:
        i = InvoiceRow.__table__.c
        overdue = func.sum(case((i.due_date < today, i.balance), else_=0))
        owed = [i.provider_id == provider.id, owing_invoice(), i.issued_at <= now]
        if between is not None:
            owed.append(i.account_id.between(*between))  # a range of the index, not all of it
        owing = (
            select(i.account_id)
            .where(*owed)
            .group_by(i.account_id)
            .having(
                and_(
                    func.min(i.due_date) < today - timedelta(days=loose.min_days),
                    func.sum(i.balance) >= loose.min_amount,
                    overdue > loose.restore_threshold,
                )
            )
            .subquery("owing")
        )
        stmt = stmt.select_from(AccountRow.__table__.outerjoin(owing, owing.c.account_id == a.id))
        conditions.append(owing.c.account_id.is_not(None))
    return stmt.where(or_(*conditions)).order_by(a.id)


def candidates(
    session: Session, provider: ProviderView, now: datetime, between: tuple[int, int] | None = None
) -> array[int]:
    """Run the candidate query, streaming the ids into a compact array."""
    out: array[int] = array("q")
    query = candidate_query(provider, now, between)
    result = session.scalars(query.execution_options(stream_results=True))
    for part in result.partitions(20_000):
        out.extend(part)
    return out


# -- the plan: what a pass decides for each candidate -------------------------------------


@dataclass(frozen=True)
class PlanEntry:
    """One candidate of a pass: where it stands and what the pass decides for it."""

    account_id: int
    account: str
    provider: str
    timezone: ZoneInfo
    currency: str
    status: str
    stage: str | None
    action: str
    to_stage: str | None  # where the action takes it ("none" for a restore)
    target_stage: str | None  # the last stage whose conditions hold
    exclusions: tuple[str, ...]
    projected_suspension: datetime | None
    next_wakeup: datetime | None
    total_owing: Decimal
    overdue_balance: Decimal
    days_overdue: int

    def as_json(self) -> dict[str, Any]:
        def local(t: datetime | None) -> str | None:
            return iso_local(t, self.timezone) if t is not None else None

        return {
            "account": self.account,
            "provider": self.provider,
            "status": self.status,
            "stage": self.stage or "none",
            "action": self.action,
            "to_stage": self.to_stage,
            "target_stage": self.target_stage,
            "exclusions": list(self.exclusions),
            "projected_suspension": local(self.projected_suspension),
            "next_wakeup": local(self.next_wakeup),
            "figures": {
                "total_owing": fmt(self.total_owing, self.currency),
                "overdue_balance": fmt(self.overdue_balance, self.currency),
                "days_overdue": self.days_overdue,
            },
        }


def plan_entry(provider: ProviderView, stored: StoredAccount, ev: Evaluation) -> PlanEntry:
    if ev.action is Action.RESTORE or ev.action is Action.WOULD_RESTORE:
        to_stage: str | None = "none"
    else:
        to_stage = ev.stage.name if ev.stage is not None else None
    return PlanEntry(
        account_id=stored.id,
        account=stored.ext_id,
        provider=provider.row.key,
        timezone=provider.tz,
        currency=provider.currency,
        status=stored.status,
        stage=stored.episode_stage,
        action=ev.action.value,
        to_stage=to_stage,
        target_stage=ev.target.name if ev.target is not None else None,
        exclusions=ev.exclusions,
        projected_suspension=ev.projected,
        next_wakeup=ev.next_wakeup,
        total_owing=ev.figures.total_owing,
        overdue_balance=ev.figures.overdue_balance,
        days_overdue=ev.figures.days_overdue,
    )


@dataclass
class ScanResult(PassResult):
    """A pass's counts, and (when asked for) the plan of each candidate."""

    candidates: int = 0
    applied: int = 0  # accounts evaluated again under a lock and carried out
    skipped_locked: int = 0  # accounts another transaction held (it evaluates them)
    stopped: bool = False
    processes: int = 1  # processes the pass's batches ran in (see `shards`)
    plan: list[PlanEntry] = field(default_factory=list)

    def merge_scan(self, other: ScanResult) -> None:
        """Add the counts and plan of a batch (not its candidates or `stopped`)."""
        self.merge(other)
        self.applied += other.applied
        self.skipped_locked += other.skipped_locked
        self.plan.extend(other.plan)


# -- the passes ----------------------------------------------------------------------------


def _chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def provider_ids(db: Database) -> list[int]:
    with db.transaction() as session:
        return list(session.scalars(select(ProviderRow.id).order_by(ProviderRow.id)))


def full_pass(
    db: Database,
    now: datetime,
    provider_id: int | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    *,
    batch: int = BATCH,
    plan: bool = False,
    should_stop: StopCheck | None = None,
    clock: Callable[[], datetime] | None = None,
    processes: int | None = None,
) -> ScanResult:
    """Evaluate every account whose decision may change at `now` (see the module docstring).

    `dry_run` changes nothing. `plan` keeps a `PlanEntry` per candidate (a dry
    run's output). `should_stop` is asked between batches. `clock`, when given,
    supplies the instant each batch is evaluated at (a long pass should not act
    on a stale `now`, e.g. after a window has closed); candidates are found at `now`.
    `processes` shares the batches among that many processes (PostgreSQL only;
    see `engine.shards`); by default `ARREARS_SCAN_PROCESSES` decides, for
    passes of at least `shards.MIN_CANDIDATES` candidates.
    """
    with _old_objects_frozen():
        return _full_pass(db, now, provider_id, dry_run, progress, batch, plan, should_stop, clock, processes)


# Passes running in this process, and whether they froze the garbage collector's heap.
_frozen_lock = threading.Lock()
_frozen_passes = 0
_froze = False


@contextmanager
def _old_objects_frozen() -> Iterator[None]:
    """Keep the objects that existed before the pass out of the garbage collector's full collections.

    A pass allocates millions of short-lived objects; many live through a batch,
    so the collector runs full collections several times a second, and each
    walked the whole heap the pass found (modules, the ORM's registry, the
    calendars): about a fifth of the Python time of an apply pass.
    `gc.freeze()` moves that heap aside for the pass; `gc.unfreeze()` puts it
    back. The objects the pass creates are collected as usual. A process that
    froze objects itself is left alone.
    """
    global _frozen_passes, _froze
    with _frozen_lock:
        if _frozen_passes == 0 and gc.get_freeze_count() == 0:
            gc.freeze()
            _froze = True
        _frozen_passes += 1
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen_passes -= 1
            if _frozen_passes == 0 and _froze:
                gc.unfreeze()
                _froze = False


def _full_pass(
    db: Database,
    now: datetime,
    provider_id: int | None,
    dry_run: bool,
    progress: Progress | None,
    batch: int,
    plan: bool,
    should_stop: StopCheck | None,
    clock: Callable[[], datetime] | None,
    processes: int | None,
) -> ScanResult:
    result = ScanResult()
    pids = [provider_id] if provider_id is not None else provider_ids(db)
    n = shards.processes_for(db, pids, processes, clock)
    if n > 1:
        job = shards.Job(db.url, now, clock, dry_run, plan, batch)
        shards.run(db, job, pids, n, result, progress, should_stop)
        return result
    work: list[tuple[ProviderView, array[int]]] = []
    for pid in pids:
        with db.transaction() as session:
            provider = load_provider(session, pid)
            work.append((provider, candidates(session, provider, now)))
    total = sum(len(ids) for _, ids in work)
    result.candidates = total
    if progress is not None:
        progress(0, total)
    size = max(batch, READ_BATCH)
    done = 0

    def batch_done(accounts: int) -> None:
        nonlocal done
        done += accounts
        if progress is not None:
            progress(done, total)

    for provider, ids in work:
        run_batches(
            db,
            provider,
            read_chunks(ids, size),
            now,
            clock,
            dry_run,
            plan,
            batch,
            should_stop,
            batch_done,
            result,
        )
        if result.stopped:
            break
    return result


def read_chunks(ids: array[int], size: int) -> list[array[int]]:
    """The candidates in the batches they are read in (bigger than writing batches: reading is cheap)."""
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def run_batches(
    db: Database,
    provider: ProviderView,
    chunks: Sequence[Sequence[int]],
    now: datetime,
    clock: Callable[[], datetime] | None,
    dry_run: bool,
    plan: bool,
    batch: int,
    should_stop: StopCheck | None,
    batch_done: Callable[[int], None],
    result: ScanResult,
) -> None:
    """Assess these batches of one provider's candidates and carry out what changes, into `result`.

    Sets `result.stopped` when `should_stop` said so between batches. The one
    loop of a pass, whether this process runs all of it or a share (`shards`).
    """
    applier = _Applier(db, result, threads=APPLY_THREADS if db.is_postgres and not dry_run else 1)
    try:
        for chunk in chunks:
            if should_stop is not None and should_stop():
                result.stopped = True
                return
            t = clock() if clock is not None else now
            with db.transaction() as session:
                assessed = assess_snapshots(session, provider, chunk, t)
            if dry_run:
                for stored, _, ev in assessed:
                    result.add(ev)
                    if plan:
                        result.plan.append(plan_entry(provider, stored, ev))
            else:
                for part in _chunks(assessed, batch):
                    if should_stop is not None and should_stop():
                        result.stopped = True
                        return
                    applier.submit(provider, part, t, plan)
            batch_done(len(chunk))
        applier.finish()
    finally:
        # On a stop or an error, batches not yet started are dropped; those
        # started commit (or fail) and are counted.
        applier.close()


class _Applier:
    """Carries out batches (`_apply_chunk`), several at once on PostgreSQL.

    Each batch is its own transaction on its own connection, over accounts no
    other batch holds (they are locked), so batches are independent: while one
    waits for the database (its inserts, its commit) another is evaluated.
    Results are merged in the order the batches were submitted.
    """

    def __init__(self, db: Database, result: ScanResult, threads: int):
        self.db = db
        self.result = result
        self.threads = threads
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="arrears-apply") if threads > 1 else None
        self.running: deque[Future[ScanResult]] = deque()

    def submit(
        self,
        provider: ProviderView,
        part: list[tuple[StoredAccount, AccountSnapshot, Evaluation]],
        now: datetime,
        plan: bool,
    ) -> None:
        if self.pool is None:
            self.result.merge_scan(_apply_chunk(self.db, provider, part, now, plan))
            return
        self.running.append(self.pool.submit(_apply_chunk, self.db, provider, part, now, plan))
        # A bounded queue: the pass reads ahead by at most one batch per thread.
        self._collect(self.threads)

    def finish(self) -> None:
        self._collect(0)

    def _collect(self, keep: int) -> None:
        while len(self.running) > keep:
            self.result.merge_scan(self.running.popleft().result())

    def close(self) -> None:
        if self.pool is None:
            return
        for future in self.running:
            future.cancel()
        self.pool.shutdown(wait=True)
        for future in self.running:
            if not future.cancelled() and future.exception() is None:
                self.result.merge_scan(future.result())
        self.running.clear()


def _apply_chunk(
    db: Database,
    provider: ProviderView,
    assessed: list[tuple[StoredAccount, AccountSnapshot, Evaluation]],
    now: datetime,
    plan: bool,
) -> ScanResult:
    """Carry out the decisions of one batch: only where something changes, under a lock."""
    result = ScanResult()
    todo: dict[int, StoredAccount] = {}
    seen: dict[int, tuple[AccountSnapshot, Evaluation]] = {}
    for stored, snap, ev in assessed:
        if needs_apply(stored, ev):
            todo[stored.id] = stored
            seen[stored.id] = (snap, ev)
            continue
        result.add(ev)
        if plan:
            result.plan.append(plan_entry(provider, stored, ev))
    if not todo:
        return result
    with db.transaction() as session:
        mine = claim_accounts(session, list(todo))
        # Under the lock each account is read again; one that has not changed
        # since it was assessed keeps that evaluation (see `reevaluate`).
        evaluations = reevaluate(session, provider, mine, now, assessed=seen)
    # reevaluate answers in account id order, and `mine` is in id order.
    for account_id, ev in zip(mine, evaluations, strict=True):
        result.add(ev)
        if plan:
            result.plan.append(plan_entry(provider, todo[account_id], ev))
    result.applied += len(mine)
    result.skipped_locked += len(todo) - len(mine)
    return result


def due_pass(
    db: Database,
    now: datetime,
    provider_id: int | None = None,
    *,
    batch: int = BATCH,
    should_stop: StopCheck | None = None,
) -> PassResult:
    """The incremental pass: every account whose stored wake-up has come (`service.run_due`).

    Many wake-ups can come at once (a local midnight, a window opening), so it
    keeps the old heap out of the collector's way as the full pass does.
    """
    with _old_objects_frozen():
        return run_due(db, now, batch=batch, provider_id=provider_id, should_stop=should_stop)


__all__ = [
    "BATCH",
    "READ_BATCH",
    "Loosest",
    "PlanEntry",
    "ScanResult",
    "candidate_query",
    "candidates",
    "due_pass",
    "full_pass",
    "loosest",
    "plan_entry",
    "provider_ids",
    "read_chunks",
    "rule_sets_in_force",
    "run_batches",
]
