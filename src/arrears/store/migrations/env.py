"""Alembic environment for arrears (run through `arrears.store.migrate`).

Connects with `config.attributes["connection"]` when the caller passes one, else
with the URL in `config.attributes["url"]` (or the `sqlalchemy.url` option, or
$ARREARS_DATABASE_URL, or the default SQLite file).
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection, Engine, MetaData, Table, event, text
from sqlalchemy.types import TypeDecorator

from arrears.store.db import database_url, make_engine
from arrears.store.tables import Base

config = context.config
target_metadata = Base.metadata

# One migration at a time per schema: workers starting together wait for each other.
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('arrears.migrate:' || current_schema()))"


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    return database_url(url)


def _render_item(kind: str, obj: Any, autogen: AutogenContext) -> str | Literal[False]:
    """Autogenerate writes the stored type (BigInteger for Money...), not the app's class."""
    if kind == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl_instance!r}"
    return False


def _run(connection: Connection, *, own_sqlite: bool = False) -> None:
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: later migrations copy and move tables instead.
        render_as_batch=sqlite,
        compare_type=True,
        render_item=_render_item,
        # On our own SQLite connection BEGIN is ours too (see _sqlite_engine), so the
        # whole upgrade is one transaction there, as it is on PostgreSQL.
        transactional_ddl=True if own_sqlite else None,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text(_LOCK))
        context.run_migrations()
        migration = context.get_context()
        if not migration.get_current_heads():
            # At base nothing of arrears remains, not even the version table.
            Table(migration.version_table, MetaData(), schema=migration.version_table_schema).drop(
                connection, checkfirst=True
            )
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")


def _sqlite_engine(url: str) -> Engine:
    """An engine whose transactions take the write lock at BEGIN and include DDL.

    Foreign keys are off while tables are copied and moved (batch mode); `_run`
    checks them all before committing instead. BEGIN IMMEDIATE makes a second
    process migrating the same file wait, then find the work done.
    """
    engine = make_engine(url)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # sqlite3 must not BEGIN on its own
        dbapi_connection.execute("PRAGMA foreign_keys=OFF")

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    given: Connection | None = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    url = _url()
    sqlite = url.startswith("sqlite")
    engine = _sqlite_engine(url) if sqlite else make_engine(url)
    try:
        with engine.connect() as connection:
            _run(connection, own_sqlite=sqlite)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
