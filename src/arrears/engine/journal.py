"""History lines: every change and why, in the shape the simulation prints.

A `Journal` either adds ORM rows to the session (the default: they are flushed
with everything else) or, given a `Writes`, collects plain rows that
`Writes.flush` inserts in bulk. The engine's evaluation rounds use the latter:
a round makes thousands of rows whose ids nothing reads during the round, and
one multi-row insert per table costs far less than one ORM object per row.

`Writes` also writes back the account, service and episode states
(`repository.AccountState`) the round changed: new episodes in one insert,
changed rows in one `UPDATE ... FROM unnest(...)` per table on PostgreSQL (an
executemany elsewhere). The states are the only copy of those rows the engine
changes within the transaction; any ORM copy the session holds is expired once
they are written, so the two can never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import JSON, Dialect, Table, bindparam, insert, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from arrears.store.repository import REMEMBERED_EVENTS, AccountState, EpisodeState, ServiceState
from arrears.store.tables import (
    AccountRow,
    EpisodeRow,
    HistoryRow,
    NoteRow,
    NotificationRow,
    ProvisioningRequestRow,
    ServiceRow,
    WebhookDeliveryRow,
)
from arrears.store.types import Money, UTCDateTime
from arrears.webhooks.events import EVENT_KINDS
from arrears.webhooks.outbox import Outbox

# The tables themselves (Core): plain executemany inserts, no ORM bookkeeping.
_REQUESTS: Table = ProvisioningRequestRow.__table__  # type: ignore[assignment]
_NOTIFICATIONS: Table = NotificationRow.__table__  # type: ignore[assignment]
_HISTORY: Table = HistoryRow.__table__  # type: ignore[assignment]
_NOTES: Table = NoteRow.__table__  # type: ignore[assignment]
_ACCOUNTS: Table = AccountRow.__table__  # type: ignore[assignment]
_SERVICES: Table = ServiceRow.__table__  # type: ignore[assignment]
_EPISODES: Table = EpisodeRow.__table__  # type: ignore[assignment]
_DELIVERIES: Table = WebhookDeliveryRow.__table__  # type: ignore[assignment]


class HasId(Protocol):
    """An episode as rows refer to it: an ORM row or a state (id None until inserted)."""

    @property
    def id(self) -> int | None: ...


class Subject(Protocol):
    """An account as history lines name it: an ORM row or a state."""

    @property
    def id(self) -> int: ...
    @property
    def ext_id(self) -> str: ...


class PendingRequest:
    """A provisioning request collected by `Writes`: its id is known once flushed."""

    __slots__ = ("episode", "id", "values")

    state = "pending"

    def __init__(self, values: dict[str, Any], episode: HasId | None):
        self.values = values
        self.episode = episode
        self.id: int | None = None

    @property
    def service_id(self) -> int:
        service_id: int = self.values["service_id"]
        return service_id


class Writes:
    """Rows to write at the end of an evaluation round, in the order they were made.

    Rows that refer to an episode or a request keep the object and take its id
    at `flush`, after the new episodes have theirs.
    """

    def __init__(self) -> None:
        self.history: list[tuple[dict[str, Any], HasId | None]] = []
        self.requests: list[PendingRequest] = []
        self.notifications: list[tuple[dict[str, Any], PendingRequest | ProvisioningRequestRow | None]] = []
        self.notes: list[dict[str, Any]] = []
        # Webhook deliveries (webhooks.outbox), with the episode whose id their payload names.
        self.deliveries: list[tuple[dict[str, Any], HasId | None]] = []
        # States written back when changed, and episodes to insert.
        self.accounts: list[AccountState] = []
        self.episodes: list[EpisodeState] = []
        self.new_episodes: list[EpisodeState] = []

    def track(self, accounts: Sequence[AccountState]) -> None:
        """Write these states back (what changed of them) at every `flush`."""
        self.accounts.extend(accounts)
        self.episodes.extend(a.episode for a in accounts if a.episode is not None)

    def add_episode(self, episode: EpisodeState) -> None:
        self.new_episodes.append(episode)
        self.episodes.append(episode)

    def has_request_for(self, service_id: int) -> bool:
        return any(r.service_id == service_id for r in self.requests)

    def remembered(self) -> bool:
        """Whether a collected notification is one an evaluation reads back (`NoticeMemory`)."""
        return any(values["event"] in REMEMBERED_EVENTS for values, _ in self.notifications)

    def flush(self, session: Session, *, states: bool = True, collected: bool = True) -> None:
        """Write the session's changes, the new episodes, the collected rows, then the changed states.

        With `states=False` / `collected=False` the changed account, service and
        episode rows / the collected rows are left for a later flush: between
        evaluation rounds only new episodes' ids (and notifications that are read
        back) are needed, and one statement per table per transaction costs less
        than one per round.
        """
        session.flush()
        self._insert_episodes(session)
        if collected:
            self._insert_collected(session)
        if states:
            self._update_states(session)

    def _insert_collected(self, session: Session) -> None:
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
        if self.deliveries:
            rows = []
            for values, episode in self.deliveries:
                if episode is not None:
                    values["payload"]["data"]["episode"] = episode.id
                rows.append(values)
            _insert(session, _DELIVERIES, rows)
            self.deliveries = []

    def _insert_episodes(self, session: Session) -> None:
        if self.new_episodes:
            # Inserted first: accounts, services and history rows point at them.
            new = self.new_episodes
            rows = [
                {
                    "account_id": e.account_id,
                    "started_at": e.started_at,
                    "stage": e.stage,
                    "rule_set_id": e.rule_set_id,
                    "ended_at": e.ended_at,
                    "end_reason": e.end_reason,
                }
                for e in new
            ]
            for e, new_id in zip(new, _insert(session, _EPISODES, rows, ids=True), strict=True):
                e.id = new_id
                e.saved = e.row()
            self.new_episodes = []
        # The states' episode ids follow their episodes (new ones have their ids now).
        for account in self.accounts:
            account.sync()

    def _update_states(self, session: Session) -> None:
        # One statement per table for the rows that changed since the last write.
        episodes = _changed(self.episodes)
        accounts = _changed(self.accounts)
        services = _changed([s for a in self.accounts for s in a.services])
        _update(session, _EPISODES, EpisodeState.COLUMNS, episodes)
        _update(session, _ACCOUNTS, AccountState.COLUMNS, accounts)
        _update(session, _SERVICES, ServiceState.COLUMNS, services)
        _expire(session, EpisodeRow, [i for i, _ in episodes])
        _expire(session, AccountRow, [i for i, _ in accounts])
        _expire(session, ServiceRow, [i for i, _ in services])


def _changed(
    states: Sequence[AccountState | ServiceState | EpisodeState],
) -> list[tuple[int, tuple[Any, ...]]]:
    """(id, columns) of the states whose columns differ from what is stored; marks them stored."""
    out: list[tuple[int, tuple[Any, ...]]] = []
    for state in states:
        row = state.row()
        if row != state.saved:
            assert state.id is not None
            out.append((state.id, row))
            state.saved = row
    return out


def _expire(session: Session, model: type[Any], ids: list[int]) -> None:
    """Expire the session's ORM copies of rows just written with Core statements.

    The next read of such an object loads it again (a relationship declared
    `lazy="raise"` raises instead of answering from stale state).
    """
    identity_map = session.identity_map
    if not identity_map:
        return
    for row_id in ids:
        obj = identity_map.get(identity_key(model, row_id))
        if obj is not None:
            session.expire(obj)


def _update(
    session: Session, table: Table, names: Sequence[str], rows: list[tuple[int, tuple[Any, ...]]]
) -> None:
    """Set `names` to the given values in the rows with these ids, in one statement.

    On PostgreSQL `UPDATE ... FROM unnest(<one array per column>)`, one statement
    whatever the number of rows; elsewhere an executemany.
    """
    if not rows:
        return
    conn = session.connection()
    dialect = conn.dialect
    if dialect.name != "postgresql":
        # Bind names must differ from the column names in an UPDATE's SET.
        stmt = (
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values({name: bindparam(f"b_{name}") for name in names})
        )
        params = [
            {"b_id": row_id, **{f"b_{name}": v for name, v in zip(names, values, strict=True)}}
            for row_id, values in rows
        ]
        conn.execute(stmt, params)
        return
    columns: list[list[Any]] = [[row_id for row_id, _ in rows]]
    for n, name in enumerate(names):
        proc = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        column = [values[n] for _, values in rows]
        columns.append(column if proc is None else [None if v is None else proc(v) for v in column])
    arrays = ", ".join(
        f"CAST(%s AS {table.c[name].type.compile(dialect=dialect)}[])" for name in ("id", *names)
    )
    sets = ", ".join(f"{name} = v.{name}" for name in names)
    id_type = table.c.id.type.compile(dialect=dialect)
    # `t.id = ANY(...)` as well: joined to the unnest alone, the planner may hash
    # the whole table rather than look the rows up by primary key.
    conn.exec_driver_sql(
        f"UPDATE {table.name} AS t SET {sets} FROM unnest({arrays}) AS v(id, {', '.join(names)}) "
        f"WHERE t.id = v.id AND t.id = ANY(CAST(%s AS {id_type}[]))",
        (*columns, columns[0]),
    )


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
    # Column by column: each column's conversion is looked up once, and the
    # values repeated down a column (the instant of the pass, amounts) are
    # converted once.
    columns = [_column(table.c[name].type, dialect, [row[name] for row in rows]) for name in names]
    # COPY knows nothing of the columns' Python-side defaults (an INSERT through
    # SQLAlchemy applies them): send the constant ones of the columns left out.
    for column in table.columns:
        if column.name not in rows[0] and isinstance(column.default, ScalarElementColumnDefault):
            names.append(column.name)
            columns.append(_column(column.type, dialect, [column.default.arg]) * len(rows))
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
        for values in zip(*columns, strict=True):
            copy.write_row(values)
    return new_ids


def _column(type_: Any, dialect: Dialect, values: list[Any]) -> list[Any]:
    """A column's values as COPY sends them: bound as SQLAlchemy binds them (None stays NULL)."""
    proc = type_.dialect_impl(dialect).bind_processor(dialect)
    if proc is None:
        return values
    if isinstance(type_, JSON):
        # What the bind processor's psycopg `Json` wrapper would send: the same
        # `json.dumps` text, without a wrapper and a dumper lookup per value.
        return [
            None if v is None else json.dumps(v) if type(v) is dict or type(v) is list else proc(v)
            for v in values
        ]
    if isinstance(type_, UTCDateTime | Money):
        # Equal instants (amounts) bind to the same value: convert each once.
        seen: dict[Any, Any] = {}
        out: list[Any] = []
        for v in values:
            if v is None:
                out.append(None)
                continue
            bound = seen.get(v)
            if bound is None:
                bound = seen[v] = proc(v)
            out.append(bound)
        return out
    return [None if v is None else proc(v) for v in values]


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
        self.outbox = Outbox(session, provider_id)

    def write(
        self,
        kind: str,
        account_id: int | None,
        *,
        episode: HasId | None = None,
        episode_id: int | None = None,
        rule_set_id: int | None = None,
        at: datetime | None = None,
        **data: Any,
    ) -> None:
        if kind in EVENT_KINDS:
            self._deliveries(kind, account_id, episode, episode_id, at or self.now, data)
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
        if isinstance(episode, EpisodeRow):
            # By reference: the episode may not have its id until the flush.
            row.episode = episode
        elif episode is not None:
            row.episode_id = episode.id
        self.session.add(row)

    def _deliveries(
        self,
        kind: str,
        account_id: int | None,
        episode: HasId | None,
        episode_id: int | None,
        at: datetime,
        data: dict[str, Any],
    ) -> None:
        """The webhook deliveries of a line that is an event someone wants, beside the line."""
        rows = self.outbox.record(
            kind,
            account_id,
            data,
            at=at,
            actor=self.actor,
            episode_stage=getattr(episode, "stage", None),
            episode_id=episode.id if episode is not None else episode_id,
        )
        for values in rows:
            if self.writes is not None:
                # A new episode gets its id at the flush: the payload takes it then.
                self.writes.deliveries.append((values, episode))
            else:
                self.session.add(WebhookDeliveryRow(**values))


def moved(before: str, after: str) -> dict[str, Any]:
    """The `from`/`to` fields of a change line (`from` is a keyword in Python)."""
    return {"from": before, "to": after}


def announce(session: Session, journal: Journal, account: Subject, values: dict[str, Any]) -> None:
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
