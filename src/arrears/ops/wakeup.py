"""LISTEN/NOTIFY: a payment's restore starts within a second, not at the next poll.

Whoever commits new work (an input that restored an account, a decision with
provisioning requests or notices) calls `notify_work` inside its transaction;
PostgreSQL delivers the notification when, and only if, it commits. Each worker
keeps one extra connection that LISTENs and sets an event its loop waits on.
On SQLite both are no-ops: a single process polls.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

CHANNEL = "arrears_work"
log = logging.getLogger("arrears.wakeup")


# Workers in this very process (`arrears run`): woken when the session commits, on any database.
_local: list[threading.Event] = []


def register_local(event: threading.Event) -> None:
    _local.append(event)


def unregister_local(event: threading.Event) -> None:
    if event in _local:
        _local.remove(event)


def notify_work(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {CHANNEL}"))
    if _local:
        sa_event.listen(session, "after_commit", _wake_local, once=True)


def _wake_local(_session: Session) -> None:
    for waiting in list(_local):
        waiting.set()


class Waker:
    """A thread that LISTENs and sets `event` whenever work was committed elsewhere."""

    def __init__(self, database_url: str, event: threading.Event):
        url = make_url(database_url)
        self.enabled = url.get_backend_name() == "postgresql"
        self.conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.event = event
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="arrears-waker", daemon=True)

    def start(self) -> Waker:
        if self.enabled:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    # Something may have been committed while we were not listening.
                    self.event.set()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.event.set()
            except psycopg.Error as exc:
                # The database is away: the worker's own loop notices too; try again soon.
                log.warning("listen connection lost: %s", exc)
                self._stop.wait(2.0)
