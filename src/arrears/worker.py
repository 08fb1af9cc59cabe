"""The worker (`arrears worker`) and the one-off scan (`arrears scan`).

The worker loops every scan interval: a due pass (the accounts whose wake-up
has come), the provisioning dispatch, the notification delivery and the webhook
deliveries; a full pass (`engine.scan`) when it
starts and whenever a provider's local date rolls over. Any number of workers
may share one PostgreSQL database: each batch claims its accounts with
`FOR UPDATE SKIP LOCKED`, so no decision is carried out twice. SIGTERM and
SIGINT stop it gracefully: the batch in hand commits, then it exits 0.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import inspect, select, text, update

from arrears.bootstrap import (
    Settings,
    database,
    notification_dispatcher,
    provisioning_dispatcher,
    webhook_dispatcher,
)
from arrears.domain.clock import local_date, parse_local
from arrears.engine.provisioning import ProvisioningDispatcher
from arrears.engine.scan import BATCH, PlanEntry, ScanResult, due_pass, full_pass
from arrears.engine.service import PassResult, run_provisioning
from arrears.notify.dispatcher import NotificationDispatcher
from arrears.ops import logs
from arrears.ops.http import Health, OpsServer
from arrears.ops.metrics import (
    DECISIONS,
    SCAN_SECONDS,
    TICKS,
    record_provisioning,
    register_queue_depths,
    unregister_queue_depths,
)
from arrears.ops.wakeup import Waker, register_local, unregister_local
from arrears.store.db import Database
from arrears.store.tables import ProviderRow
from arrears.webhooks.dispatcher import WebhookDispatcher

log = logging.getLogger("arrears.worker")

# Provisioning requests per transaction: small, so workers share them and stop promptly.
PROVISIONING_BATCH = 50
# Any fixed number: the PostgreSQL advisory lock that serialises schema upgrades.
SCHEMA_LOCK = 0x61727265
# The advisory lock class of full passes (with the provider's id as the second key).
FULL_PASS_LOCK = 0x61727266


def utcnow() -> datetime:
    return datetime.now(UTC)


# -- the worker -----------------------------------------------------------------------------


class Stop:
    """Set by SIGTERM/SIGINT; the loop asks it between batches and sleeps on it."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal: str | None = None

    def __call__(self) -> bool:
        return self._event.is_set()

    def set(self, name: str = "stop") -> None:
        self.signal = self.signal or name
        self._event.set()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(max(0.0, seconds))

    @contextmanager
    def on_signals(self) -> Iterator[None]:
        """Install the handlers for the duration (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, _frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            if self():
                # A second Ctrl-C: stop waiting for the batch.
                raise KeyboardInterrupt
            log.info(_fmt({"event": "stopping", "signal": name}))
            self.set(name)

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def _fmt(fields: dict[str, Any]) -> str:
    return json.dumps(fields, separators=(", ", ": "), default=str)


def configure_logging() -> None:
    """JSON lines on stderr (ARREARS_LOG_FORMAT=text for plain lines)."""
    logs.configure(json_lines=os.environ.get("ARREARS_LOG_FORMAT", "json") != "text")


def prepare_schema(db: Database) -> None:
    """Bring the schema to the latest version; workers starting together take turns."""
    from arrears.store.migrate import ensure_schema

    if not db.is_postgres:
        ensure_schema(db.url)
        return
    with db.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": SCHEMA_LOCK})
        try:
            ensure_schema(db.url)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SCHEMA_LOCK})
            conn.commit()


class Worker:
    def __init__(
        self,
        db: Database,
        interval: float,
        *,
        clock: Callable[[], datetime] = utcnow,
        stop: Stop | None = None,
        batch: int = BATCH,
        notifications: NotificationDispatcher | None = None,
        provisioning: ProvisioningDispatcher | None = None,
        webhooks: WebhookDispatcher | None = None,
    ):
        self.db = db
        self.interval = interval
        self.batch = batch
        self.clock = clock
        self.stop = stop or Stop()
        self.dispatcher = provisioning or provisioning_dispatcher(on_outcome=record_provisioning)
        self.notifications = notifications
        self.webhooks = webhooks
        # Set by the LISTEN thread when another process committed work for us.
        self.wake = threading.Event()
        self.last_ok: float | None = None  # time.monotonic() of the last round that completed

    def providers_rolled_over(self, now: datetime) -> list[tuple[int, date]]:
        """Providers whose last full pass (by any worker) was on another local date."""
        with self.db.transaction() as session:
            rows = session.execute(
                select(ProviderRow.id, ProviderRow.timezone, ProviderRow.full_pass_on)
            ).all()
        out = []
        for pid, tz, done_on in rows:
            today = local_date(now, ZoneInfo(tz))
            if done_on != today:
                out.append((pid, today))
        return out

    def tick(self) -> None:
        """One round: full passes where a date rolled over, the due pass, provisioning."""
        now = self.clock()
        for pid, today in self.providers_rolled_over(now):
            if self.stop():
                return
            with full_pass_lock(self.db, pid) as mine:
                if not mine:
                    continue  # another worker is scanning this provider right now
                if _full_pass_done(self.db, pid, today):
                    continue  # it finished while we waited for the lock
                t0 = time.perf_counter()
                result = full_pass(
                    self.db, now, pid, batch=self.batch, should_stop=self.stop, clock=self.clock
                )
                if not result.stopped:
                    _mark_full_pass(self.db, pid, today)
                self._log(
                    "full", t0, result, provider=pid, candidates=result.candidates, processes=result.processes
                )
                SCAN_SECONDS.labels("full").observe(time.perf_counter() - t0)
        if self.stop():
            return
        now = self.clock()
        t0 = time.perf_counter()
        due = due_pass(self.db, now, batch=self.batch, should_stop=self.stop)
        provisioned = run_provisioning(
            self.db, self.dispatcher, self.clock(), batch=PROVISIONING_BATCH, should_stop=self.stop
        )
        delivered: dict[str, int] = {}
        if self.notifications is not None and not self.stop():
            delivered = self.notifications.run(should_stop=self.stop).as_dict()
        posted: dict[str, int] = {}
        if self.webhooks is not None and not self.stop():
            posted = self.webhooks.run(should_stop=self.stop).as_dict()
        self._log("due", t0, due, provisioning=provisioned, notifications=delivered, webhooks=posted)
        SCAN_SECONDS.labels("due").observe(time.perf_counter() - t0)

    def _log(self, kind: str, t0: float, result: PassResult, **extra: Any) -> None:
        for action, n in result.actions.items():
            DECISIONS.labels(action).inc(n)
        fields: dict[str, Any] = {
            "event": "pass",
            "pass": kind,
            **extra,
            "evaluated": result.evaluated,
            "actions": result.actions,
            "duration_s": round(time.perf_counter() - t0, 3),
        }
        log.info(_fmt(fields))

    def run(self, once: bool = False) -> int:
        failed = False
        while not self.stop():
            started = time.monotonic()
            self.wake.clear()
            try:
                self.tick()
                failed = False
                self.last_ok = time.monotonic()
                TICKS.labels("ok").inc()
            except Exception:
                # A lost connection, a deadlock, a bug: say so, and try again next interval
                # (not at once: a database that is away must not turn this into a busy loop).
                log.exception(_fmt({"event": "pass_failed"}))
                failed = True
                TICKS.labels("failed").inc()
            if once:
                break
            self._sleep(self.interval - (time.monotonic() - started), after_failure=failed)
        return 1 if failed and once else 0

    def _sleep(self, seconds: float, *, after_failure: bool) -> None:
        """Until the next round: the interval, or sooner when work was committed elsewhere."""
        deadline = time.monotonic() + max(0.0, seconds)
        while not self.stop() and time.monotonic() < deadline:
            if not after_failure and self.wake.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
                return
            if after_failure:
                self.stop.wait(min(0.2, max(0.0, deadline - time.monotonic())))

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy when a round completed recently (three intervals, at least a minute)."""
        age = None if self.last_ok is None else time.monotonic() - self.last_ok
        limit = max(60.0, 3 * self.interval)
        ok = age is not None and age <= limit
        return ok, {"last_round_s_ago": None if age is None else round(age, 1), "limit_s": limit}


def run_all(settings: Settings, host: str, port: int, interval: float | None = None) -> int:
    """`arrears run`: the API (in a thread) and the worker in one process, for small installs.

    Inputs through the API wake the worker in this process as soon as they
    commit, on SQLite too, so a payment's restore does not wait for the poll.
    """
    import uvicorn

    from arrears.api.serve import app_from_env

    configure_logging()
    api_db = database(settings)
    prepare_schema(api_db)
    server = uvicorn.Server(
        uvicorn.Config(
            app_from_env(api_db),
            host=host,
            port=port,
            log_level=os.environ.get("ARREARS_LOG_LEVEL", "info").lower(),
        )
    )
    api = threading.Thread(target=server.run, name="arrears-api", daemon=True)
    api.start()
    try:
        return run_worker(settings, interval=interval)
    finally:
        server.should_exit = True
        api.join(timeout=15)
        api_db.dispose()


@contextmanager
def full_pass_lock(db: Database, provider_id: int) -> Iterator[bool]:
    """Whether this worker may scan the provider: a PostgreSQL advisory lock, held till done.

    On SQLite there is one writer at a time anyway: always yes.
    """
    if not db.is_postgres:
        yield True
        return
    with db.engine.connect() as conn:
        got = bool(
            conn.execute(
                text("SELECT pg_try_advisory_lock(:k, :p)"), {"k": FULL_PASS_LOCK, "p": provider_id}
            ).scalar()
        )
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(
                    text("SELECT pg_advisory_unlock(:k, :p)"), {"k": FULL_PASS_LOCK, "p": provider_id}
                )
                conn.commit()


def _full_pass_done(db: Database, provider_id: int, today: date) -> bool:
    with db.transaction() as session:
        return session.scalar(select(ProviderRow.full_pass_on).where(ProviderRow.id == provider_id)) == today


def _mark_full_pass(db: Database, provider_id: int, today: date) -> None:
    with db.transaction() as session:
        session.execute(update(ProviderRow).where(ProviderRow.id == provider_id).values(full_pass_on=today))


def run_worker(
    settings: Settings, interval: float | None = None, once: bool = False, ops_port: int | None = None
) -> int:
    """`arrears worker`: scan and dispatch until SIGTERM/SIGINT; 0 on a graceful stop."""
    configure_logging()
    db = database(settings)
    ops: OpsServer | None = None
    waker: Waker | None = None
    try:
        prepare_schema(db)
        every = settings.scan_interval_s if interval is None else interval
        # Accounts per transaction; an operational knob (and a way for tests to make
        # several workers interleave on few accounts).
        batch = int(os.environ.get("ARREARS_SCAN_BATCH", BATCH))
        worker = Worker(
            db,
            every,
            batch=batch,
            notifications=notification_dispatcher(settings, db, utcnow),
            provisioning=provisioning_dispatcher(settings, on_outcome=record_provisioning),
            webhooks=webhook_dispatcher(settings, db, utcnow),
        )
        register_queue_depths(db)
        port = settings.ops_port if ops_port is None else ops_port
        if port is not None and port >= 0 and not once:
            try:
                ops = OpsServer(settings.ops_host, port, Health(worker.health)).start()
            except OSError as exc:  # a second worker on this machine: the first one answers
                log.warning(_fmt({"event": "ops_server_not_started", "port": port, "error": str(exc)}))
        waker = Waker(db.url, worker.wake).start()
        register_local(worker.wake)
        with worker.stop.on_signals():
            log.info(
                _fmt(
                    {
                        "event": "started",
                        "interval_s": every,
                        "database": _safe_url(db.url),
                        "ops_port": ops.port if ops else None,
                        "listen": waker.enabled,
                    }
                )
            )
            code = worker.run(once=once)
        log.info(_fmt({"event": "stopped", "signal": worker.stop.signal}))
        if worker.notifications is not None:
            worker.notifications.close()
        if worker.webhooks is not None:
            worker.webhooks.close()
        worker.dispatcher.close()
        return code
    finally:
        if waker is not None:
            unregister_local(worker.wake)
            waker.stop()
        if ops is not None:
            ops.stop()
        unregister_queue_depths()
        db.dispose()


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# -- arrears scan ----------------------------------------------------------------------------


class ScanError(Exception):
    pass


def _instant(at: str | None, tz: ZoneInfo | None) -> datetime:
    if at is None:
        return utcnow()
    try:
        value = datetime.fromisoformat(at)
    except ValueError:
        raise ScanError(f"--at: {at!r} is not an ISO 8601 instant") from None
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    if tz is None:
        raise ScanError("--at without a UTC offset needs one provider (--provider) to be local to")
    return parse_local(at, tz)


def _select_provider(db: Database, key: str | None) -> tuple[int | None, ZoneInfo | None]:
    with db.transaction() as session:
        rows = session.execute(select(ProviderRow.id, ProviderRow.key, ProviderRow.timezone)).all()
    if key is not None:
        for pid, k, tz in rows:
            if k == key:
                return pid, ZoneInfo(tz)
        known = ", ".join(sorted(k for _, k, _ in rows)) or "none"
        raise ScanError(f"--provider: no provider {key!r} (known: {known})")
    if len(rows) == 1:
        return None, ZoneInfo(rows[0][2])
    return None, None


def scan_command(
    settings: Settings,
    dry_run: bool = False,
    as_json: bool = False,
    at: str | None = None,
    provider: str | None = None,
) -> int:
    """`arrears scan`: one full pass now (or `--at`); prints the plan of every candidate."""
    from rich.console import Console

    err = Console(stderr=True)
    db = database(settings)
    try:
        if not inspect(db.engine).has_table("accounts"):
            err.print(f"no arrears schema at {_safe_url(db.url)}: run `arrears db upgrade` first")
            return 2
        try:
            provider_id, tz = _select_provider(db, provider)
            now = _instant(at, tz)
        except ScanError as exc:
            err.print(f"error: {exc}")
            return 2
        result = _scan_with_progress(db, now, provider_id, dry_run, err)
    finally:
        db.dispose()
    entries = sorted(result.plan, key=lambda e: (e.provider, e.account_id))
    if as_json:
        json.dump([e.as_json() for e in entries], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_table(entries, result, now, dry_run)
    return 0


def _scan_with_progress(
    db: Database, now: datetime, provider_id: int | None, dry_run: bool, err: Any
) -> ScanResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("evaluating", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return full_pass(db, now, provider_id, dry_run=dry_run, progress=progress, plan=True)


def _print_table(entries: list[PlanEntry], result: ScanResult, now: datetime, dry_run: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from arrears.domain.clock import iso_local

    title = f"{'Dry run' if dry_run else 'Scan'} at {now.isoformat(timespec='seconds')}"
    if dry_run:
        title += ": nothing was changed"
    table = Table(title=title)
    for column in ("account", "provider", "status", "stage", "action → stage", "exclusions"):
        table.add_column(column)
    table.add_column("projected suspension")
    for e in entries:
        arrow = e.action if e.to_stage is None else f"{e.action} → {e.to_stage}"
        table.add_row(
            e.account,
            e.provider,
            e.status,
            e.stage or "none",
            arrow,
            ", ".join(e.exclusions),
            iso_local(e.projected_suspension, e.timezone) if e.projected_suspension else "",
        )
    out = Console()
    out.print(table)
    actions = ", ".join(f"{k}: {v}" for k, v in sorted(result.actions.items())) or "no actions"
    out.print(f"{result.candidates} candidates evaluated; {actions}")


__all__ = ["Stop", "Worker", "prepare_schema", "run_worker", "scan_command"]
