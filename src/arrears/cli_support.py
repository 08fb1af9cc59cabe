"""What the operator commands share: the database they work on, the provider, errors naming the option."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

from arrears.store.db import Database
from arrears.store.db import database_url as resolve_url
from arrears.store.tables import ProviderRow


class CliError(Exception):
    """A mistake on the command line, with the option or argument it is about."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message


@contextmanager
def cli_session(database_url: str | None, table: str) -> Iterator[Session]:
    """One transaction on the database of `--database-url`, which must have the schema (`table`)."""
    # Not bootstrap.Settings: these commands need only the database, not the engine's wiring.
    chosen = resolve_url(database_url)
    try:
        url = make_url(chosen)
        in_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
        # Connecting would create an empty file where a mistyped path points.
        if in_file and not Path(str(url.database)).exists():
            raise CliError("--database-url", f"no database at {url.database}: run `arrears db upgrade` first")
        db = Database(chosen)
    except ArgumentError as exc:
        raise CliError("--database-url", f"not a database URL we can use: {exc}") from None
    try:
        if not inspect(db.engine).has_table(table):
            raise CliError("--database-url", "no arrears schema here: run `arrears db upgrade` first")
        with db.transaction() as session:
            yield session
    finally:
        db.dispose()


def pick_provider(session: Session, key: str | None) -> ProviderRow:
    """The provider named by --provider, or the only one."""
    keys = list(session.scalars(select(ProviderRow.key).order_by(ProviderRow.key)))
    if key is None:
        if not keys:
            raise CliError("--provider", "this database has no providers yet")
        if len(keys) > 1:
            raise CliError(
                "--provider", f"this database has {len(keys)} providers ({', '.join(keys)}): name one"
            )
        key = keys[0]
    row = session.scalar(select(ProviderRow).where(ProviderRow.key == key))
    if row is None:
        raise CliError("--provider", f"no provider {key!r} (known: {', '.join(keys) or 'none'})")
    return row


Row = Mapping[str, Any]
# A column of a listing: its header, and the field it shows or how to show a row's cell.
Column = tuple[str, str | Callable[[Row], object]]


def show(rows: Sequence[Row], title: str, columns: Sequence[Column], *, as_json: bool) -> int:
    """A listing as JSON (`--json`: the rows as they are) or as a table; 0, the command's exit code."""
    if as_json:
        json.dump(list(rows), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    table = Table(title=title)
    for header, _ in columns:
        table.add_column(header, overflow="fold")
    for row in rows:
        cells = (row[how] if isinstance(how, str) else how(row) for _, how in columns)
        table.add_row(*("" if cell is None else str(cell) for cell in cells))
    Console().print(table)
    return 0
