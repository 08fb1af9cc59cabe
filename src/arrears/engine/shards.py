"""Sharing a full pass among processes.

A large provider's full pass is bound by Python: each candidate costs some
tens of microseconds of evaluation on one core, while the database that reads
its rows mostly waits. Threads cannot share that work (the interpreter runs
one at a time), processes can. So, on PostgreSQL, a pass over many accounts:

- cuts the account ids into ranges (up to `RANGES_PER_PROCESS` per process)
  and deals them out in turn, so that the processes work on neighbouring rows at
  the same time (one share of the database's cache);
- each process runs the candidate query over each of its ranges (a range of
  the owed-invoices index, not all of it), then the very same loop as a
  single-process pass (`scan.run_batches`) over the candidates, with its own
  connections: it assesses them, and (unless a dry run) locks and carries out
  those that change, as any worker sharing the database does;
- this process gathers their progress and counts, and merges their plans
  back into account order.

Processes are started with `fork` when this process runs no other thread (a
command, the benchmark): nothing to import again. A worker also runs its
health server and LISTEN threads, and forking a process whose other threads
may hold locks is unsafe, so there the processes come from a `forkserver`
(started once, on the first such pass). Either way a process receives only
plain values (the database URL, provider ids, id ranges, the instant), so both
ways run the same code.

A stop (`should_stop`, SIGTERM, Ctrl-C) reaches every process, which finishes
the batch it is on, as a single-process pass does. A process that fails makes
the pass fail with its traceback, after the others have stopped.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import signal
import threading
import traceback
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkContext, ForkServerContext
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from arrears.store.db import Database
from arrears.store.tables import AccountRow, ProviderRow

if TYPE_CHECKING:
    from arrears.engine.scan import Progress, ScanResult, StopCheck
    from arrears.store.repository import ProviderView

ENV = "ARREARS_SCAN_PROCESSES"
# Processes by default: one per core, at most this many (the database needs cores too).
DEFAULT_MAX = 4
# Below this many accounts a pass takes about a second in one process at most;
# starting others would not pay.
MIN_ACCOUNTS = 100_000
# Ranges of account ids: about one per `RANGE_IDS` ids, at least one and at most
# `RANGES_PER_PROCESS` per process. Enough that one slow range does not leave the
# others idle at the end, few enough that each query's fixed cost is nothing.
RANGE_IDS = 25_000
RANGES_PER_PROCESS = 16
# How often the gathering process looks at `should_stop` while no process reports.
POLL_S = 0.2


class ShardFailed(RuntimeError):
    """A process sharing a pass failed (its traceback is in the message)."""


def configured() -> int:
    """`ARREARS_SCAN_PROCESSES`, or one per core (at most `DEFAULT_MAX`)."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return max(1, min(os.cpu_count() or 1, DEFAULT_MAX))
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"{ENV} must be a whole number of processes, not {raw!r}") from None
    if n < 1:
        raise ValueError(f"{ENV} must be at least 1, not {n}")
    return n


def processes_for(
    db: Database, provider_ids: Sequence[int], asked: int | None, clock: Callable[[], datetime] | None
) -> int:
    """How many processes a pass over these providers runs in (1: this one alone).

    SQLite takes one writer at a time and an in-memory database exists in one
    process only, so sharing is for PostgreSQL. `asked` (a caller's explicit
    number) is honoured whatever the size; by default passes over fewer than
    `MIN_ACCOUNTS` accounts stay here.
    """
    if not db.is_postgres or not provider_ids:
        return 1
    if asked is None:
        asked = configured()
        if asked > 1 and _accounts(db, provider_ids) < MIN_ACCOUNTS:
            return 1
    if asked > 1 and _start_method() == "forkserver" and not _picklable(clock):
        # A process from the forkserver gets its clock by pickling; a lambda cannot be.
        return 1
    return max(1, asked)


def _accounts(db: Database, provider_ids: Sequence[int]) -> int:
    with db.transaction() as session:
        n = session.scalar(select(func.count()).where(AccountRow.provider_id.in_(provider_ids)))
    return int(n or 0)


@dataclass(frozen=True)
class Job:
    """What every process of one pass needs to know (plain, picklable values)."""

    url: str
    now: datetime
    clock: Callable[[], datetime] | None
    dry_run: bool
    plan: bool
    batch: int


# One process's share: (provider id, (lowest, highest account id)) ranges, in order.
Share = list[tuple[int, tuple[int, int]]]


def ranges(lowest: int, highest: int, count: int) -> list[tuple[int, int]]:
    """[lowest, highest] cut into at most `count` consecutive ranges of (nearly) equal width."""
    width = highest - lowest + 1
    count = max(1, min(count, width))
    bounds = [lowest + width * k // count for k in range(count + 1)]
    return [(bounds[k], bounds[k + 1] - 1) for k in range(count)]


def shares(provider_ids: Sequence[int], id_ranges: Sequence[tuple[int, int]], n: int) -> list[Share]:
    """Deal the ranges out: range j (of every provider in turn) goes to process j mod n."""
    out: list[Share] = [[] for _ in range(n)]
    j = 0
    for pid in provider_ids:
        for id_range in id_ranges:
            out[j % n].append((pid, id_range))
            j += 1
    return [share for share in out if share]


def run(
    db: Database,
    job: Job,
    provider_ids: Sequence[int],
    n: int,
    result: ScanResult,
    progress: Progress | None,
    should_stop: StopCheck | None,
) -> None:
    """Run the pass in `n` processes, gathering into `result`."""
    with db.transaction() as session:
        lowest, highest = session.execute(select(func.min(AccountRow.id), func.max(AccountRow.id))).one()
        keys: dict[int, str] = {
            pid: key for pid, key in session.execute(select(ProviderRow.id, ProviderRow.key))
        }
    if lowest is None:
        return  # no accounts at all
    count = min(max((highest - lowest + 1) // RANGE_IDS, n), n * RANGES_PER_PROCESS)
    parts = shares(provider_ids, ranges(lowest, highest, count), n)
    if _start_method() == "fork":
        ctx: ForkContext | ForkServerContext = multiprocessing.get_context("fork")
    else:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__, "arrears.engine.scan"])
    stop = ctx.Event()
    # A pipe per process, not one shared queue: a process killed while writing
    # cannot leave a lock held that the others wait for, and its end of the pipe
    # closing tells us it ended.
    procs: list[tuple[BaseProcess, Connection]] = []
    pipes: dict[Connection, int] = {}  # of the processes that have not said their last word
    failures: list[str] = []
    found = done = 0
    try:
        for k, part in enumerate(parts):
            reader, writer = ctx.Pipe(duplex=False)
            proc: BaseProcess = ctx.Process(
                target=_main, args=(job, part, writer, stop), name=f"arrears-scan-{k}", daemon=True
            )
            proc.start()
            writer.close()  # the process has its own copy
            procs.append((proc, reader))
            pipes[reader] = k
        result.processes = len(procs)
        if progress is not None:
            progress(0, 0)
        while pipes:
            if should_stop is not None and not stop.is_set() and should_stop():
                stop.set()
            for ready in wait(list(pipes), timeout=POLL_S):
                assert isinstance(ready, Connection)
                k = pipes[ready]
                try:
                    kind, payload = ready.recv()
                except EOFError:
                    procs[k][0].join()
                    kind, payload = "failed", f"ended (exit code {procs[k][0].exitcode}) without a result"
                if kind in ("found", "progress"):
                    # The total grows as the processes find the candidates of their ranges.
                    found += payload if kind == "found" else 0
                    done += payload if kind == "progress" else 0
                    if progress is not None:
                        progress(done, found)
                    continue
                del pipes[ready]
                ready.close()
                if kind == "done":
                    part_result: ScanResult = payload
                    result.merge_scan(part_result)
                    result.candidates += part_result.candidates
                    result.stopped = result.stopped or part_result.stopped
                else:
                    failures.append(f"scan process {k} {payload}")
                    stop.set()
    finally:
        # On an error here (or Ctrl-C), the others finish their batch and end;
        # what they still send is read and dropped, so none waits on a full pipe.
        stop.set()
        for proc, reader in procs:
            proc.join(POLL_S)
            while proc.exitcode is None:
                with suppress(EOFError, OSError):
                    while reader.poll():
                        reader.recv()
                proc.join(POLL_S)
            reader.close()
    if failures:
        raise ShardFailed("\n".join(failures))
    if job.plan:
        # Each process planned its ranges in order; the pass answers in account order.
        rank = {keys[pid]: i for i, pid in enumerate(provider_ids)}
        result.plan.sort(key=lambda entry: (rank[entry.provider], entry.account_id))


def _main(job: Job, share: Share, out: Connection, stop: Event) -> None:
    """One process of a shared pass: its ranges' candidates, progress as it goes, then its counts."""
    from arrears.engine.scan import READ_BATCH, ScanResult, candidates, read_chunks, run_batches
    from arrears.store.repository import load_provider

    # Ctrl-C reaches the whole process group: the gathering process decides,
    # through `stop`. SIGTERM (a service manager stopping the group) ends the
    # current batch, as it does in a worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asked_to_stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: asked_to_stop.set())
    gc.freeze()  # see scan._old_objects_frozen

    def should_stop() -> bool:
        return stop.is_set() or asked_to_stop.is_set()

    db = Database(job.url)
    result = ScanResult()
    providers: dict[int, ProviderView] = {}
    try:
        for pid, id_range in share:
            if should_stop():
                result.stopped = True
                break
            with db.transaction() as session:
                if pid not in providers:
                    providers[pid] = load_provider(session, pid)
                ids = candidates(session, providers[pid], job.now, id_range)
            result.candidates += len(ids)
            out.send(("found", len(ids)))
            run_batches(
                db,
                providers[pid],
                read_chunks(ids, max(job.batch, READ_BATCH)),
                job.now,
                job.clock,
                job.dry_run,
                job.plan,
                job.batch,
                should_stop,
                lambda accounts: out.send(("progress", accounts)),
                result,
            )
            if result.stopped:
                break
        out.send(("done", result))
    except BaseException:
        out.send(("failed", f"failed:\n{traceback.format_exc()}"))
    finally:
        db.dispose()
        out.close()


def _start_method() -> str:
    return "fork" if threading.active_count() == 1 else "forkserver"


def _picklable(value: object) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


__all__ = [
    "ENV",
    "MIN_ACCOUNTS",
    "Job",
    "ShardFailed",
    "configured",
    "processes_for",
    "ranges",
    "run",
    "shares",
]
