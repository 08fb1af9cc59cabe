"""The scan benchmark: `python -m arrears.bench --accounts N [--database-url URL] [--json]`.

It fills an empty database with N accounts of one provider in steady state
(bulk inserts: COPY on PostgreSQL, executemany on SQLite), including the
episodes, history lines and provisioning requests of earlier months for some
of them, then measures, on the same run:

- `bare_aggregate_s`: one plain `SELECT account_id, SUM(balance), MIN(due_date)
  FROM invoices WHERE status = 'open' GROUP BY account_id`, fetched fully: the
  floor for reading the data a scan needs (the best of 3 runs);
- `full_scan_s`: one complete evaluation pass (`scan.full_pass`, dry run; the
  best of 2 runs);
- `scan_ratio` = full_scan_s / bare_aggregate_s;
- `apply_per_s`: a real pass carrying out the decisions (about 8 % of the
  accounts are past the rules), decisions per second, history, provisioning
  and notification rows included;
- `incremental_scan_s`: a due pass right after (nothing changed);
- `peak_rss_mb`: the peak resident memory (`resource.getrusage`); when a pass
  ran in several processes, the larger of that and the peak of their summed
  proportional set sizes (`TreeMemory`: shared pages counted once).

It prints ONE JSON line on stdout; progress goes to stderr. Without
`--database-url` it uses a temporary SQLite file. `populate` is also what the
worker and scan tests use to make many accounts quickly.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, inspect, select, text
from sqlalchemy.exc import DBAPIError

from arrears.config import parse_mappings
from arrears.domain.clock import at_local, local_date, start_of_day
from arrears.engine.inputs import Inputs, create_provider
from arrears.engine.scan import due_pass, full_pass
from arrears.store.db import Database
from arrears.store.tables import (
    AccountRow,
    Base,
    ContactRow,
    EpisodeRow,
    GroupRow,
    HistoryRow,
    InvoiceRow,
    PaymentRow,
    ProvisioningRequestRow,
    ServiceRow,
)
from arrears.store.types import SCALE

TIMEZONE = "Australia/Sydney"
# A Wednesday, 10:00 in Sydney: inside the rule set's window, not a holiday.
BENCH_NOW = datetime(2026, 3, 4, 10, 0, tzinfo=ZoneInfo(TIMEZONE)).astimezone(UTC)

RULES: dict[str, Any] = {
    "name": "default",
    "min_overdue_amount": "50.00",
    "min_overdue_days": 14,
    "restore_threshold": "10.00",
    "resuspend_days": 7,
    "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}],
    "holidays": {"country": "AU", "subdivision": "NSW"},
    "excluded_groups": [{"group": "VIP", "reason": "key accounts are handled by hand"}],
}
EVENTS: dict[str, Any] = {
    "auto_suspend": {"channels": ["email"]},
    "auto_unsuspend": {"channels": ["email"]},
}
CHUNK = 5_000  # accounts generated and written at a time (bounds the memory used)

Say = Callable[[str], None]


@dataclass(frozen=True)
class Mix:
    """Shares of the accounts in each situation; the rest are paid up."""

    past_rules: float = 0.08  # overdue past the rules: to be suspended
    excluded_group: float = 0.01  # past the rules, but in an excluded group
    disputed: float = 0.01  # past the rules, but the overdue amount is disputed
    # The latest invoice is open and not due yet. With monthly bills spread over
    # the month and 14-day terms, about half the customers are in this state at
    # any time; the other half have paid theirs.
    not_yet_due: float = 0.45
    # Of the accounts that are up to date, those that were suspended and restored
    # in an earlier month: their episode, history lines and provisioning requests
    # are in the tables, as in a system that has been running for a while.
    past_episode: float = 0.10


PAST, EXCLUDED, DISPUTED, NOT_DUE, PAID = "past", "excluded", "disputed", "not_due", "paid"


def _kind(r: float, mix: Mix) -> str:
    edge = mix.past_rules
    if r < edge:
        return PAST
    edge += mix.excluded_group
    if r < edge:
        return EXCLUDED
    edge += mix.disputed
    if r < edge:
        return DISPUTED
    edge += mix.not_yet_due
    if r < edge:
        return NOT_DUE
    return PAID


# -- bulk writing ----------------------------------------------------------------------------


def _sqlite_instant(value: datetime) -> str:
    # The text form SQLAlchemy's SQLite dialect stores (microseconds always present).
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


class _Tables:
    """Rows of one chunk, per table, as plain tuples (naive UTC instants, money scaled)."""

    COLUMNS: dict[str, tuple[str, ...]] = {
        "accounts": (
            "id",
            "provider_id",
            "ext_id",
            "status",
            "status_reason",
            "omit",
            "omit_reason",
            "omit_until",
            "episode_id",
            "operator_restored_at",
            "path_started_at",
            "excluded_reasons",
            "shadow_stage",
            "next_wakeup_at",
            "evaluated_at",
            "stage",
            "projected_suspension",
            "created_at",
        ),
        # Before services: services and requests point at episodes.
        "episodes": ("id", "account_id", "started_at", "ended_at", "stage", "end_reason", "rule_set_id"),
        "services": (
            "id",
            "provider_id",
            "account_id",
            "ext_id",
            "type",
            "status",
            "changed_by",
            "episode_id",
        ),
        "contacts": ("id", "account_id", "role", "service_ext_id", "name", "email", "phone"),
        "account_groups": ("id", "account_id", "name"),
        "invoices": (
            "id",
            "provider_id",
            "account_id",
            "ext_id",
            "issued_at",
            "due_date",
            "amount",
            "balance",
            "disputed",
            "status",
        ),
        "payments": ("id", "provider_id", "account_id", "ext_id", "amount", "unallocated", "received_at"),
        "provisioning_requests": (
            "id",
            "provider_id",
            "account_id",
            "service_id",
            "episode_id",
            "key",
            "action",
            "adapter",
            "state",
            "attempts",
            "last_error",
            "not_before",
            "created_at",
            "updated_at",
        ),
        "history": (
            "id",
            "provider_id",
            "account_id",
            "at",
            "kind",
            "data",
            "episode_id",
            "rule_set_id",
            "actor",
        ),
    }

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in self.COLUMNS}


def _write(conn: Connection, tables: _Tables) -> None:
    raw = conn.connection.driver_connection
    assert raw is not None
    if conn.dialect.name == "postgresql":
        cur = raw.cursor()
        for name, rows in tables.rows.items():
            if not rows:
                continue
            names = ", ".join(_Tables.COLUMNS[name])
            with cur.copy(f"COPY {name} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        cur.close()
        return
    cur = raw.cursor()
    for name, rows in tables.rows.items():
        if not rows:
            continue
        cols = _Tables.COLUMNS[name]
        fixed = [
            tuple(
                _sqlite_instant(v) if isinstance(v, datetime) else v.isoformat() if isinstance(v, date) else v
                for v in row
            )
            for row in rows
        ]
        marks = ", ".join("?" for _ in cols)
        cur.executemany(f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({marks})", fixed)
    cur.close()


# -- generating a provider's accounts --------------------------------------------------------


@dataclass
class _Ids:
    account: int
    service: int
    contact: int
    group: int
    invoice: int
    payment: int
    episode: int
    request: int
    history: int

    @classmethod
    def after_existing(cls, conn: Connection) -> _Ids:
        def top(model: Any) -> int:
            return int(conn.scalar(select(func.coalesce(func.max(model.id), 0))) or 0)

        return cls(
            top(AccountRow),
            top(ServiceRow),
            top(ContactRow),
            top(GroupRow),
            top(InvoiceRow),
            top(PaymentRow),
            top(EpisodeRow),
            top(ProvisioningRequestRow),
            top(HistoryRow),
        )


class _Generator:
    def __init__(
        self,
        provider_id: int,
        key: str,
        now: datetime,
        mix: Mix,
        seed: int,
        ids: _Ids,
        rule_set_id: int | None = None,
    ):
        self.provider_id = provider_id
        self.key = key
        self.now = now
        self.mix = mix
        self.rng = random.Random(seed)
        # Past episodes draw from their own stream: the accounts and invoices
        # generated are the same whatever their share.
        self.past_rng = random.Random(seed + 1)
        self.rule_set_id = rule_set_id
        self.ids = ids
        self.tz = ZoneInfo(TIMEZONE)
        self.today = local_date(now, self.tz)
        self.naive_now = now.astimezone(UTC).replace(tzinfo=None)
        self.evaluated = self.naive_now - timedelta(hours=1)
        self.created = self.naive_now - timedelta(days=400)
        # Past the rules: the window opened at 09:00 today and the engine is about to act.
        nine = _naive(at_local(self.today, datetime.min.time().replace(hour=9), self.tz))
        self.window_open = min(nine, self.naive_now)
        self._midnights: dict[date, datetime] = {}
        self.counts: dict[str, int] = {}

    def midnight(self, day: date) -> datetime:
        value = self._midnights.get(day)
        if value is None:
            value = self._midnights[day] = _naive(start_of_day(day, self.tz))
        return value

    def past_episode(
        self, rows: dict[str, list[tuple[Any, ...]]], aid: int, ext: str, services: list[tuple[int, str]]
    ) -> None:
        """An episode of an earlier month (suspended, paid, restored) with its record."""
        ids, pid, rs = self.ids, self.provider_id, self.rule_set_id
        started = self.naive_now - timedelta(days=self.past_rng.randint(35, 300), hours=2)
        ended = started + timedelta(days=self.past_rng.randint(1, 20))
        eid = ids.episode
        rows["episodes"].append((eid, aid, started, ended, "suspend", "paid", rs))

        def line(at: datetime, kind: str, data: dict[str, Any], rule_set: int | None = None) -> None:
            ids.history += 1
            body = json.dumps({"account": ext, **data})
            rows["history"].append((ids.history, pid, aid, at, kind, body, eid, rule_set, "arrears"))

        line(started, "stage", {"from": "none", "to": "suspend"}, rs)
        for at, action, before, after in (
            (started, "suspend", "active", "suspended"),
            (ended, "restore", "suspended", "active"),
        ):
            for sid, sext in services:
                ids.request += 1
                rows["provisioning_requests"].append(
                    (
                        ids.request,
                        pid,
                        aid,
                        sid,
                        eid,
                        f"svc{sid}:{action}:{at.isoformat()}",
                        action,
                        "log",
                        "confirmed",
                        1,
                        None,
                        at,
                        at,
                        at,
                    )
                )
                line(at, "service_status", {"service": sext, "from": before, "to": after})
        line(ended, "stage", {"from": "suspend", "to": "none", "reason": "paid"}, rs)

    def chunk(self, start: int, end: int) -> _Tables:
        out = _Tables()
        rows = out.rows
        rng, ids, pid, key = self.rng, self.ids, self.provider_id, self.key
        for n in range(start, end):
            ids.account += 1
            aid = ids.account
            kind = _kind(rng.random(), self.mix)
            self.counts[kind] = self.counts.get(kind, 0) + 1
            ext = f"{key}-A{n:07d}"
            past = kind in (PAID, NOT_DUE) and self.past_rng.random() < self.mix.past_episode
            if past:
                ids.episode += 1
            services: list[tuple[int, str]] = []
            for s in range(1 if rng.random() < 0.5 else 2):
                ids.service += 1
                services.append((ids.service, f"{ext}-S{s}"))
                rows["services"].append(
                    (
                        ids.service,
                        pid,
                        aid,
                        f"{ext}-S{s}",
                        ("mobile", "broadband")[s],
                        "active",
                        # As a restore leaves them.
                        "episode" if past else "external",
                        ids.episode if past else None,
                    )
                )
            if past:
                self.past_episode(rows, aid, ext, services)
            ids.contact += 1
            rows["contacts"].append(
                (
                    ids.contact,
                    aid,
                    "primary",
                    None,
                    f"Customer {n}",
                    f"c{n}@example.com",
                    f"+614{n % 10**8:08d}",
                )
            )
            if kind == EXCLUDED:
                ids.group += 1
                rows["account_groups"].append((ids.group, aid, "VIP"))
            if rng.random() < 0.2:
                ids.group += 1
                rows["account_groups"].append((ids.group, aid, "business"))

            n_invoices = rng.randint(2, 6)
            latest_age = rng.randint(1, 13) if kind == NOT_DUE else rng.randint(1, 29)
            unpaid = {PAST: 2, EXCLUDED: 2, DISPUTED: 2, NOT_DUE: 1}.get(kind, 0)
            latest_due = self.today
            for j in range(n_invoices):
                age = latest_age + 30 * (n_invoices - 1 - j)
                issued = self.naive_now - timedelta(days=age, hours=rng.randint(0, 12))
                due = self.today - timedelta(days=age) + timedelta(days=14)
                latest_due = due
                amount = rng.randint(6_000, 20_000) * int(SCALE) // 100
                ids.invoice += 1
                if j >= n_invoices - unpaid:
                    disputed = amount if kind == DISPUTED else 0
                    rows["invoices"].append(
                        (ids.invoice, pid, aid, f"{ext}-I{j}", issued, due, amount, amount, disputed, "open")
                    )
                else:
                    rows["invoices"].append(
                        (ids.invoice, pid, aid, f"{ext}-I{j}", issued, due, amount, 0, 0, "paid")
                    )
                    ids.payment += 1
                    received = issued + timedelta(days=10)
                    rows["payments"].append((ids.payment, pid, aid, f"{ext}-P{j}", amount, 0, received))

            excluded_reasons = {EXCLUDED: "excluded_group", DISPUTED: "dispute"}.get(kind)
            if kind == PAST:
                wakeup: datetime | None = self.window_open
            elif kind == NOT_DUE:
                wakeup = self.midnight(latest_due + timedelta(days=RULES["min_overdue_days"] + 1))
            else:
                wakeup = None
            rows["accounts"].append(
                (
                    aid,
                    pid,
                    ext,
                    "active",
                    None,
                    False,
                    None,
                    None,
                    None,
                    None,
                    None,
                    excluded_reasons,
                    None,
                    wakeup,
                    self.evaluated,
                    None,
                    None,
                    self.created,
                )
            )
        return out


def _naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


def populate(
    db: Database,
    accounts: int,
    *,
    now: datetime = BENCH_NOW,
    mix: Mix | None = None,
    seed: int = 1,
    key: str = "bench",
    rules: dict[str, Any] | None = None,
    say: Say | None = None,
) -> int:
    """Add a provider with `accounts` accounts in steady state (evaluated, wake-ups set).

    The provider has a typical rule set (50.00 over 14 days, restore at 10.00,
    weekday office hours, NSW holidays, group VIP excluded) and auto_suspend /
    auto_unsuspend enabled (email). Some accounts have an episode of an earlier
    month, with its history lines and provisioning requests (`Mix.past_episode`).
    Returns the provider's id.
    """
    mix = mix or Mix()
    configured = now - timedelta(days=400)
    with db.transaction() as s:
        provider = create_provider(s, key=key, timezone=TIMEZONE, currency="AUD", now=configured)
        inputs = Inputs.open(s, provider.id, configured, actor="bench")
        rule_set = inputs.put_rule_set(dict(rules or RULES), configured)
        inputs.put_mappings(parse_mappings(EVENTS, sms=False, since=configured))
        s.flush()
        provider_id, rule_set_id = provider.id, rule_set.id
    with db.engine.begin() as conn:
        ids = _Ids.after_existing(conn)
    gen = _Generator(provider_id, key, now, mix, seed, ids, rule_set_id)
    for start in range(0, accounts, CHUNK):
        end = min(accounts, start + CHUNK)
        tables = gen.chunk(start, end)
        with db.engine.begin() as conn:
            _write(conn, tables)
        if say is not None and (end % 50_000 == 0 or end == accounts):
            say(f"populate: {end:,}/{accounts:,} accounts")
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            for table in _Tables.COLUMNS:
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"
                    )
                )
    analyze(db)
    return provider_id


def analyze(db: Database) -> None:
    """Fresh planner statistics (after a bulk load the planner knows nothing).

    On PostgreSQL also VACUUM, as autovacuum does to a table soon after a bulk
    load: a database in steady state has its pages marked all-visible, which
    index-only scans (the candidate query's) rely on.
    """
    if db.is_postgres:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"VACUUM (ANALYZE) {', '.join(_Tables.COLUMNS)}"))
    else:
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE"))


# -- measuring ------------------------------------------------------------------------------------


BARE_AGGREGATE = (
    "SELECT account_id, SUM(balance), MIN(due_date) FROM invoices WHERE status = 'open' GROUP BY account_id"
)


# Runs of each measurement (a dry run changes nothing, so it can be repeated).
BARE_RUNS = 3
FULL_RUNS = 2


def bare_aggregate(db: Database) -> int:
    """Run the floor query and fetch every row; returns the number of rows."""
    n = 0
    with db.engine.connect() as conn:
        result = conn.execution_options(stream_results=True).execute(text(BARE_AGGREGATE))
        for part in result.partitions(20_000):
            n += len(part)
    return n


def settle(db: Database) -> None:
    """Write the load out now: its write-back would overlap (and slow) the first measurements.

    CHECKPOINT needs the pg_checkpoint role (or a superuser); without it, the
    measurements start at once.
    """
    if db.is_postgres:
        with (
            db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
            suppress(DBAPIError),
        ):
            conn.execute(text("CHECKPOINT"))


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def peak_rss_mb() -> float:
    """Peak resident memory of this process."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # kilobytes on Linux, bytes on macOS
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)


class TreeMemory:
    """The peak memory of this process and its descendants, watched from a process of its own.

    A pass shared among processes forks them (`engine.shards`), and each one's
    resident memory counts the pages it still shares with this one: adding them
    up would count those pages several times. The watcher adds up the
    proportional set sizes instead (a shared page divided among its sharers),
    twice a second. It is a process, not a thread: a thread here would change
    how a pass starts its processes. Linux only; elsewhere `peak_mb` is None.
    """

    # Reading a process's proportional set size walks its page tables under its
    # memory lock: often enough to see a pass's plateau, rarely enough not to slow it.
    INTERVAL_S = 0.5

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.peak: float | None = None

    def start(self) -> TreeMemory:
        if Path(f"/proc/{os.getpid()}/smaps_rollup").exists():
            self.proc = subprocess.Popen(
                [sys.executable, "-c", f"from arrears.bench import _watch; _watch({os.getpid()})"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        return self

    def peak_mb(self) -> float | None:
        """Stop watching; the largest total seen."""
        if self.proc is None:
            return None
        if self.peak is None and self.proc.returncode is None:
            out, _ = self.proc.communicate("")  # closing its input asks for the figure
            self.peak = float(out) if out.strip() else None
        return self.peak


def _tree_pss_kb(root: int, leave_out: int) -> int:
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split() if int(c) != leave_out)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # it ended meanwhile
    return total


def _watch(root: int) -> None:
    """The watcher's loop (see `TreeMemory`): until its input closes, then print the peak in MB."""
    import select

    os.nice(10)  # the benchmark's processes come first
    peak = 0
    me = os.getpid()
    while not select.select([sys.stdin], [], [], TreeMemory.INTERVAL_S)[0]:
        peak = max(peak, _tree_pss_kb(root, me))
    peak = max(peak, _tree_pss_kb(root, me))
    print(round(peak / 1024, 1))


def prepare(db: Database, reset: bool) -> None:
    """An empty arrears schema: migrated to the latest version, with no accounts."""
    names = set(inspect(db.engine).get_table_names())
    if AccountRow.__tablename__ in names:
        with db.engine.connect() as conn:
            has_rows = conn.scalar(select(AccountRow.id).limit(1)) is not None
        if has_rows and not reset:
            raise SystemExit("the database already holds accounts; use an empty one or pass --reset")
        if reset:
            Base.metadata.drop_all(db.engine)
            with db.engine.begin() as conn:
                conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    from arrears.store.migrate import ensure_schema

    ensure_schema(db.url)


def run(
    accounts: int,
    url: str | None = None,
    *,
    reset: bool = False,
    apply: bool = True,
    mix: Mix | None = None,
    say: Say | None = None,
    processes: int | None = None,
) -> dict[str, Any]:
    say = say or (lambda _msg: None)
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if url is None:
        tmp = tempfile.TemporaryDirectory(prefix="arrears-bench-")
        url = f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    db = Database(url)
    memory = TreeMemory().start()
    try:
        prepare(db, reset)
        mix = mix or Mix()
        populate_s, _ = _timed(lambda: populate(db, accounts, mix=mix, say=say))
        say(f"populated {accounts:,} accounts in {populate_s:.1f} s")
        settle(db)

        bare_aggregate(db)  # warm the caches for both measurements alike
        # Each figure is the best of a few runs: a busy moment on the machine
        # should not move the ratio either way.
        bare_s, groups = min(_timed(lambda: bare_aggregate(db)) for _ in range(BARE_RUNS))
        say(f"bare aggregate: {bare_s:.3f} s ({groups:,} groups)")

        def progress(done: int, total: int) -> None:
            if total and (done == total or done % 50_000 < 500):
                say(f"  {done:,}/{total:,} candidates")

        full_s, dry = min(
            (
                _timed(lambda: full_pass(db, BENCH_NOW, dry_run=True, progress=progress, processes=processes))
                for _ in range(FULL_RUNS)
            ),
            key=lambda timed: timed[0],
        )
        say(
            f"full scan (dry run): {full_s:.3f} s, {dry.candidates:,} candidates in {dry.processes} "
            f"process(es), actions {dry.actions}"
        )

        apply_s: float | None = None
        due_s: float | None = None
        decisions = 0
        if apply:
            apply_s, applied = _timed(
                lambda: full_pass(db, BENCH_NOW, progress=progress, processes=processes)
            )
            decisions = sum(applied.actions.values())
            say(f"apply pass: {apply_s:.3f} s, {decisions:,} decisions {applied.actions}")

            due_s, due = _timed(lambda: due_pass(db, BENCH_NOW))
            say(f"incremental (due) pass: {due_s:.3f} s, {due.evaluated:,} evaluated")

        alone = peak_rss_mb()
        tree = memory.peak_mb()
        return {
            "accounts": accounts,
            "backend": db.engine.dialect.name,
            "full_scan_s": round(full_s, 3),
            "bare_aggregate_s": round(bare_s, 3),
            "scan_ratio": round(full_s / bare_s, 2) if bare_s else None,
            "apply_per_s": round(decisions / apply_s, 1) if apply_s else None,
            "incremental_scan_s": round(due_s, 4) if due_s is not None else None,
            # With a pass shared among processes, the peak of them all (`TreeMemory`).
            "peak_rss_mb": max(alone, tree or 0.0),
            "peak_rss_this_process_mb": alone,
            "scan_processes": dry.processes,
            "candidates": dry.candidates,
            "decisions": decisions if apply else None,
            "incremental_ratio": round(due_s / full_s, 4) if due_s is not None and full_s else None,
            "populate_s": round(populate_s, 1),
            "mix": {k: v for k, v in vars(mix).items()},
        }
    finally:
        memory.peak_mb()
        db.dispose()
        if tmp is not None:
            tmp.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m arrears.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000, help="accounts to generate")
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--json", action="store_true", help="print only the JSON line on stdout (default)")
    parser.add_argument("--reset", action="store_true", help="drop the arrears tables first")
    parser.add_argument(
        "--no-apply",
        action="store_true",
        help="measure the scans only (no apply pass, so no apply_per_s or incremental_scan_s)",
    )
    parser.add_argument(
        "--not-yet-due",
        type=float,
        default=Mix.not_yet_due,
        help=f"share of accounts whose latest invoice is not due yet (default {Mix.not_yet_due})",
    )
    parser.add_argument(
        "--past-episode",
        type=float,
        default=Mix.past_episode,
        help="share of up-to-date accounts with an episode of an earlier month in the tables "
        f"(default {Mix.past_episode}; 0: tables without history, as on a first day)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="processes the full passes are shared among (default: as ARREARS_SCAN_PROCESSES decides)",
    )
    args = parser.parse_args(argv)

    t0 = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    figures = run(
        args.accounts,
        args.database_url,
        reset=args.reset,
        apply=not args.no_apply,
        mix=Mix(not_yet_due=args.not_yet_due, past_episode=args.past_episode),
        say=say,
        processes=args.processes,
    )
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
