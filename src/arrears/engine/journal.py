"""History lines: every change and why, in the shape the simulation prints.

A `Journal` either adds ORM rows to the session (the default: they are flushed
with everything else) or, given a `Writes`, collects plain rows that
`Writes.flush` inserts in bulk. The engine's evaluation rounds use the latter:
a round makes thousands of rows whose ids nothing reads during the round, and
one multi-row insert per table costs far less than one ORM object per row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, text
from sqlalchemy.orm import Session

from arrears.store.tables import (
    AccountRow,
    EpisodeRow,
    HistoryRow,
    NoteRow,
    NotificationRow,
    ProvisioningRequestRow,
)

# The tables themselves (Core): plain executemany inserts, no ORM bookkeeping.
_REQUESTS: Table = ProvisioningRequestRow.__table__  # type: ignore[assignment]
_NOTIFICATIONS: Table = NotificationRow.__table__  # type: ignore[assignment]
_HISTORY: Table = HistoryRow.__table__  # type: ignore[assignment]
_NOTES: Table = NoteRow.__table__  # type: ignore[assignment]


class PendingRequest:
    """A provisioning request collected by `Writes`: its id is known once flushed."""

    __slots__ = ("episode", "id", "values")

    state = "pending"

    def __init__(self, values: dict[str, Any], episode: EpisodeRow | None):
        self.values = values
        self.episode = episode
        self.id: int | None = None

    @property
    def service_id(self) -> int:
        service_id: int = self.values["service_id"]
        return service_id


class Writes:
    """Rows to insert at the end of an evaluation round, in the order they were made.

    Episodes stay ORM objects (accounts point at them); rows that refer to an
    episode or a request keep the object and take its id at `flush`, after the
    session's own flush has given the new episodes theirs.
    """

    def __init__(self) -> None:
        self.history: list[tuple[dict[str, Any], EpisodeRow | None]] = []
        self.requests: list[PendingRequest] = []
        self.notifications: list[tuple[dict[str, Any], PendingRequest | ProvisioningRequestRow | None]] = []
        self.notes: list[dict[str, Any]] = []

    def has_request_for(self, service_id: int) -> bool:
        return any(r.service_id == service_id for r in self.requests)

    def flush(self, session: Session) -> None:
        """Write the session's changes, then the collected rows (a statement per table)."""
        session.flush()
        if self.requests:
            rows = [
                {**r.values, "episode_id": r.episode.id if r.episode is not None else r.values["episode_id"]}
                for r in self.requests
            ]
            for r, new_id in zip(self.requests, _insert(session, _REQUESTS, rows, ids=True), strict=True):
                r.id = new_id
            self.requests = []
        if self.notifications:
            rows = []
            for values, request in self.notifications:
                values["provisioning_request_id"] = request.id if request is not None else None
                rows.append(values)
            _insert(session, _NOTIFICATIONS, rows)
            self.notifications = []
        if self.history:
            rows = []
            for values, episode in self.history:
                if episode is not None:
                    values["episode_id"] = episode.id
                rows.append(values)
            _insert(session, _HISTORY, rows)
            self.history = []
        if self.notes:
            _insert(session, _NOTES, self.notes)
            self.notes = []


def _insert(session: Session, table: Table, rows: list[dict[str, Any]], *, ids: bool = False) -> list[int]:
    """Insert `rows` (dicts with the same keys) in their order; their new ids when `ids`.

    On PostgreSQL one COPY per table (ids, when wanted, taken from the table's
    sequence first, in order); elsewhere one executemany.
    """
    if not rows:
        return []
    conn = session.connection()
    dialect = conn.dialect
    if dialect.name != "postgresql":
        if not ids:
            conn.execute(insert(table), rows)
            return []
        stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return list(conn.execute(stmt, rows).scalars())
    new_ids: list[int] = []
    if ids:
        new_ids = sorted(
            conn.execute(
                text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
                {"t": table.name, "n": len(rows)},
            ).scalars()
        )
        for row, new_id in zip(rows, new_ids, strict=True):
            row["id"] = new_id
    names = list(rows[0])
    processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                [
                    value if proc is None or value is None else proc(value)
                    for proc, value in zip(processors, [row[name] for name in names], strict=True)
                ]
            )
    return new_ids


class Journal:
    """Appends history rows inside the caller's transaction."""

    def __init__(
        self,
        session: Session,
        provider_id: int,
        now: datetime,
        actor: str = "arrears",
        writes: Writes | None = None,
    ):
        self.session = session
        self.provider_id = provider_id
        self.now = now
        self.actor = actor
        self.writes = writes

    def write(
        self,
        kind: str,
        account_id: int | None,
        *,
        episode: EpisodeRow | None = None,
        episode_id: int | None = None,
        rule_set_id: int | None = None,
        at: datetime | None = None,
        **data: Any,
    ) -> None:
        if self.writes is not None:
            values = {
                "provider_id": self.provider_id,
                "account_id": account_id,
                "at": at or self.now,
                "kind": kind,
                "data": data,
                "episode_id": episode_id,
                "rule_set_id": rule_set_id,
                "actor": self.actor,
            }
            self.writes.history.append((values, episode))
            return
        row = HistoryRow(
            provider_id=self.provider_id,
            account_id=account_id,
            at=at or self.now,
            kind=kind,
            data=data,
            episode_id=episode_id,
            rule_set_id=rule_set_id,
            actor=self.actor,
        )
        if episode is not None:
            # By reference: the episode may not have its id until the flush.
            row.episode = episode
        self.session.add(row)


def moved(before: str, after: str) -> dict[str, Any]:
    """The `from`/`to` fields of a change line (`from` is a keyword in Python)."""
    return {"from": before, "to": after}


def announce(session: Session, journal: Journal, account: AccountRow, values: dict[str, Any]) -> None:
    """A notice is out of the engine's hands: recorded for delivery (and noted).

    `values` holds the notification's channel, event, service_ext_id,
    invoice_ext_id and to_address. Used when a notice is decided and when one
    that waited for provisioning is released.
    """
    if values["channel"] == "note":
        body = _note_text(values["event"], values["service_ext_id"], values["invoice_ext_id"])
        note = {"account_id": account.id, "at": journal.now, "author": "arrears", "body": body}
        if journal.writes is not None:
            journal.writes.notes.append(note)
        else:
            session.add(NoteRow(**note))
    journal.write(
        "notification",
        account.id,
        account=account.ext_id,
        event=values["event"],
        channel=values["channel"],
        service=values["service_ext_id"],
        invoice=values["invoice_ext_id"],
        to=values["to_address"],
    )


def _note_text(event: str, service_ext_id: str | None, invoice_ext_id: str | None) -> str:
    subject = service_ext_id or invoice_ext_id or ""
    return f"{event.replace('_', ' ')} {subject}".strip()
