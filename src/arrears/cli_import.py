"""`arrears import`: a billing file (JSON Lines or CSV) into the database, as `POST /api/v1/import` does.

The same reading and applying code as the API (`api.imports`): each line upserted
as its `PUT` would be, good lines kept, refused lines reported with the field at
fault. Exit 0 when every line was applied, 1 when some were refused, 2 when the
command itself is wrong (no file, no provider, a CSV without `--type`).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from arrears.api.imports import KINDS, ImportReport, Kind, RecordKind, read_lines, run_import
from arrears.cli_support import CliError, cli_session, pick_provider
from arrears.store.db import Database
from arrears.store.db import database_url as resolve_url


def _kind(path: Path, kind: str | None) -> Kind | None:
    """The CSV file's one kind, or None for JSON Lines (told apart by the file's suffix)."""
    is_csv = path.suffix.lower() == ".csv"
    if kind is not None:
        try:
            chosen = RecordKind(kind)
        except ValueError:
            raise CliError("--type", f"{kind!r} is not one of {', '.join(KINDS)}") from None
        if not is_csv:
            raise CliError("--type", "is for CSV files: each JSON line names its own `type`")
        return KINDS[chosen]
    if is_csv:
        raise CliError("--type", f"a CSV file holds one kind of record: say which ({', '.join(KINDS)})")
    return None


def import_file(
    database_url: str | None, path: Path, provider: str | None, kind: str | None, as_json: bool
) -> int:
    try:
        fixed = _kind(path, kind)
        if not path.is_file():
            raise CliError("FILE", f"no file at {path}")
        with cli_session(database_url, "accounts") as session:
            row = pick_provider(session, provider)
            provider_id, provider_key = row.id, row.key
    except CliError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    db = Database(resolve_url(database_url))
    try:
        with path.open("rb") as stream:
            report = _run(db, provider_id, stream, path.stat().st_size, fixed, quiet=as_json)
    finally:
        db.dispose()
    if as_json:
        print(json.dumps(report.model_dump()))
    else:
        _print(report, provider_key, path)
    return 0 if report.refused == 0 else 1


def _run(
    db: Database, provider_id: int, stream: IO[bytes], size: int, fixed: Kind | None, quiet: bool
) -> ImportReport:
    now = datetime.now(UTC)
    lines = read_lines(stream, fixed)
    progress = Progress(
        TextColumn("importing"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[lines]:,} lines"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=quiet,
        transient=True,
    )
    with progress:
        task = progress.add_task("import", total=size, lines=0)

        def advance(report: ImportReport) -> None:
            progress.update(task, completed=stream.tell(), lines=report.received)

        return run_import(db, provider_id, now, "cli", lines, fixed, progress=advance)


def _print(report: ImportReport, provider: str, path: Path) -> None:
    console = Console()
    console.print(
        f"{path.name} → {provider}: {report.received:,} lines, {report.applied:,} applied, "
        f"{report.refused:,} refused"
    )
    if not report.errors:
        return
    table = Table("line", "id", "field", "why")
    for error in report.errors:
        table.add_row(str(error.line), error.id or "", error.field or "", error.message)
    console.print(table)
    if report.errors_omitted:
        console.print(f"… and {report.errors_omitted:,} more refused lines")
