"""Connecting to the database: SQLite by default, PostgreSQL in production."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

DEFAULT_SQLITE = "sqlite:///arrears.db"


def database_url(explicit: str | None = None) -> str:
    return explicit or os.environ.get("ARREARS_DATABASE_URL") or DEFAULT_SQLITE


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        if url in ("sqlite://", "sqlite:///:memory:"):
            # One connection shared by the whole process: an in-memory database
            # exists only as long as its connection.
            engine = create_engine(
                url, connect_args={"check_same_thread": False}, poolclass=StaticPool, **kwargs
            )
        else:
            path = url.split("///", 1)[-1]
            if path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # TCP keepalives: a connection to a server that vanished without a word (a network
    # partition) fails within about a minute instead of blocking a worker forever.
    connect_args = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
    connect_args.update(kwargs.pop("connect_args", {}))
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    # WAL is a property of the file, set once. Processes opening a new file at the
    # same moment can find it locked while another one switches it (SQLite does not
    # wait on that lock): they wait a little and look again.
    for attempt in range(WAL_ATTEMPTS):
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == WAL_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


WAL_ATTEMPTS = 20


class Database:
    """One database: its engine and the transactions the engine's work runs in."""

    def __init__(self, url: str | None = None, engine: Engine | None = None):
        self.url = database_url(url)
        self.engine = engine or make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=True)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits together, or not at all."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def create_all(self) -> None:
        """Create the schema directly (in-memory simulation; migrations elsewhere)."""
        from sqlalchemy import MetaData

        from arrears.store.tables import Base

        metadata: MetaData = Base.metadata
        if not self.is_postgres:
            # A fresh copy: once the shared metadata has been created on PostgreSQL in this
            # process, SQLAlchemy leaves the ALTER-only foreign key (accounts -> episodes) out of
            # SQLite's CREATE TABLE, and SQLite cannot add it afterwards.
            metadata = MetaData(naming_convention=Base.metadata.naming_convention)
            for table in Base.metadata.sorted_tables:
                table.to_metadata(metadata)
        metadata.create_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
