"""Bulk import: a file of billing records (JSON Lines or CSV), each line upserted as its `PUT` would be.

Every good line is applied and a bad one is refused, listed in the report with
its line number and the field at fault; a refused line undoes nothing else.
Lines are applied in file order, in batches of `BATCH` lines per transaction:
each line under a savepoint of its own, and the accounts a batch touched are
re-evaluated before the batch commits, as a `PUT` does. Each line is an
idempotent upsert, so importing the same file again changes nothing, and an
import cut short (a dropped connection) can simply be sent again.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import json
import logging
import tempfile
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import IO, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from arrears.api import records, responses, schemas
from arrears.api.context import Caller, provider_caller, record_write
from arrears.api.problems import INVALID, ApiProblem, error_message
from arrears.config import ConfigError, loc_to_path
from arrears.engine.inputs import Inputs
from arrears.store.db import Database

log = logging.getLogger("arrears.api")

PATH = "/import"
# Far more than any one record (MAX_BODY), for files of many thousands of lines.
MAX_IMPORT_BODY = 50 * 1024 * 1024
BATCH = 500  # lines per transaction
MAX_LISTED = 1000  # refused lines listed in the report; the rest are only counted
SPOOL_IN_MEMORY = 1024 * 1024  # a larger body waits on disk until it is read
MAX_ID = 100  # as `schemas.Id` and the ext_id columns
JSON_LINES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)
CSV = "text/csv"
CHARSETS = frozenset({"utf-8", "utf8", "us-ascii"})


class RecordKind(StrEnum):
    ACCOUNT = "account"
    SERVICE = "service"
    INVOICE = "invoice"
    PAYMENT = "payment"
    DISPUTE = "dispute"
    PLAN = "plan"
    CASE = "case"
    FLAG = "flag"


@dataclass(frozen=True)
class Kind:
    """How a line of one kind becomes its `PUT`: the fields that stand for the path's ids, the body."""

    name: RecordKind
    keys: tuple[str, ...]  # in the order the `PUT`'s path names them
    body: type[schemas.Body]
    put: Callable[..., object]  # records.put_*(inputs, *keys, body)


KINDS: dict[RecordKind, Kind] = {
    k.name: k
    for k in (
        Kind(RecordKind.ACCOUNT, ("id",), schemas.AccountIn, records.put_account),
        Kind(RecordKind.SERVICE, ("account", "id"), schemas.ServiceIn, records.put_service),
        Kind(RecordKind.INVOICE, ("id",), schemas.InvoiceIn, records.put_invoice),
        Kind(RecordKind.PAYMENT, ("id",), schemas.PaymentIn, records.put_payment),
        Kind(RecordKind.DISPUTE, ("invoice",), schemas.DisputeIn, records.put_dispute),
        Kind(RecordKind.PLAN, ("id",), schemas.PlanIn, records.put_plan),
        Kind(RecordKind.CASE, ("id",), schemas.CaseIn, records.put_case),
        Kind(RecordKind.FLAG, ("account",), schemas.FlagIn, records.put_flag),
    )
}


class LineError(BaseModel):
    line: int = Field(description="The line's number in the file (a CSV file's header is line 1)")
    id: str | None = Field(description="The id the line gave (a dispute's invoice, a flag's account)")
    field: str | None = Field(description="The field (in CSV, the column) at fault; null: the whole line")
    message: str


class ImportReport(BaseModel):
    received: int = Field(description="Lines read (blank lines aside)")
    applied: int
    refused: int
    errors: list[LineError] = Field(description=f"The refused lines, in order (the first {MAX_LISTED})")
    errors_omitted: int = Field(description="Refused lines beyond those listed")

    def refuse(self, line: int, ident: str | None, field: str | None, message: str) -> None:
        self.refused += 1
        if len(self.errors) < MAX_LISTED:
            self.errors.append(LineError(line=line, id=ident, field=field, message=message))
        else:
            self.errors_omitted += 1


# -- reading lines ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One line of the file as read: its fields, and why it cannot be read if it cannot."""

    number: int
    data: dict[str, Any]  # with a `problem`, whatever could be read (for the id in the report)
    field: str | None = None
    problem: str = ""


@dataclass(frozen=True)
class Record:
    """A line that is a valid body for its kind's `PUT`."""

    kind: Kind
    keys: tuple[str, ...]
    body: schemas.Body


class Refusal(Exception):
    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def json_lines(stream: IO[bytes]) -> Iterator[Line]:
    """One JSON object per line; blank lines are skipped."""
    for number, raw in enumerate(stream, 1):
        if number == 1:
            raw = raw.removeprefix(codecs.BOM_UTF8)
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            yield Line(number, {}, problem="is not UTF-8")
            continue
        except json.JSONDecodeError as exc:
            yield Line(number, {}, problem=f"is not valid JSON: {exc}")
            continue
        if not isinstance(value, dict):
            yield Line(number, {}, problem="must be a JSON object")
            continue
        yield Line(number, value)


def csv_lines(stream: IO[bytes], kind: Kind) -> Iterator[Line]:
    """Rows of a CSV file whose header names the fields of `kind`; an empty cell is a field left out.

    The header is checked before any row is read: a column that names no field is a
    mistake in the whole file, not in one row. Fields that hold lists (an account's
    groups, contacts and services; a payment's `allocate_to`; a plan's invoices) take
    JSON in their cell.
    """
    undecodable: set[int] = set()
    reader = csv.reader(_decoded(stream, undecodable))
    try:
        header: list[str] | None = next((row for row in reader if any(c.strip() for c in row)), None)
    except csv.Error as exc:
        raise ApiProblem(422, f"the CSV header is not valid CSV: {exc}", type_=INVALID) from None
    if header is None:
        return iter(())
    columns = [c.strip() for c in header]
    _check_header(columns, kind)
    return _rows(reader, columns, _json_fields(kind.body), undecodable)


def _decoded(stream: IO[bytes], undecodable: set[int]) -> Iterator[str]:
    """The stream's lines as text; a line that is not UTF-8 is noted, and its row refused."""
    for number, raw in enumerate(stream, 1):
        if number == 1:
            raw = raw.removeprefix(codecs.BOM_UTF8)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            undecodable.add(number)
            yield raw.decode("utf-8", errors="replace")


def _check_header(columns: list[str], kind: Kind) -> None:
    allowed = set(kind.keys) | set(kind.body.model_fields)
    errors: list[tuple[str, str]] = []
    for i, name in enumerate(columns):
        if name not in allowed:
            errors.append(
                (name or f"column {i + 1}", f"names no field of a {kind.name}: {', '.join(sorted(allowed))}")
            )
        elif columns.index(name) != i:
            errors.append((name, "is named twice"))
    errors += [(key, "is required: it names the record") for key in kind.keys if key not in columns]
    if errors:
        detail = "; ".join(f"{f}: {m}" for f, m in errors)
        raise ApiProblem(422, f"the CSV header: {detail}", errors=errors, type_=INVALID)


def _json_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields that hold a list, and so take JSON in a CSV cell."""
    out = set()
    for name, info in model.model_fields.items():
        ann = info.annotation
        options = (
            typing.get_args(ann) if typing.get_origin(ann) in (typing.Union, types.UnionType) else (ann,)
        )
        if any(typing.get_origin(o) is list for o in options):
            out.add(name)
    return frozenset(out)


def _rows(
    reader: Any, columns: list[str], json_fields: frozenset[str], undecodable: set[int]
) -> Iterator[Line]:
    while True:
        first = reader.line_num + 1  # a quoted cell may run over several lines
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Line(first, {}, problem=f"is not valid CSV: {exc}")
            if reader.line_num < first:
                return  # the reader cannot go on
            continue
        if not any(c.strip() for c in row):
            continue
        if undecodable.intersection(range(first, reader.line_num + 1)):
            yield Line(first, {}, problem="is not UTF-8")
        elif len(row) != len(columns):
            cells = dict(zip(columns, row, strict=False))
            yield Line(first, cells, problem=f"has {len(row)} cells; the header has {len(columns)}")
        else:
            yield _row(first, columns, row, json_fields)


def _row(number: int, columns: list[str], row: list[str], json_fields: frozenset[str]) -> Line:
    data: dict[str, Any] = {}
    field: str | None = None
    problem = ""
    for name, cell in zip(columns, row, strict=True):
        value = cell.strip()
        if value == "":
            continue
        if name not in json_fields:
            data[name] = value
            continue
        try:
            data[name] = json.loads(value)
        except json.JSONDecodeError as exc:
            problem = problem or f"is not valid JSON: {exc}"
            field = field or name
    return Line(number, data, field, problem)


# -- from a line to a record --------------------------------------------------------------------


def to_record(line: Line, fixed: Kind | None) -> Record:
    """The line as a `PUT` of its kind (`fixed` for CSV; a JSON line names its own `type`)."""
    if line.problem:
        raise Refusal(line.field, line.problem)
    data = dict(line.data)
    kind = fixed or _kind(data)
    keys: list[str] = []
    for key in kind.keys:
        value = data.pop(key, None)
        if value is None or value == "":
            raise Refusal(key, "is required")
        if not isinstance(value, str):
            raise Refusal(key, "must be a string")
        if len(value) > MAX_ID:
            raise Refusal(key, f"is longer than {MAX_ID} characters")
        keys.append(value)
    try:
        body = kind.body.model_validate(data)
    except ValidationError as exc:
        raise Refusal(*_first_error(exc)) from None
    return Record(kind, tuple(keys), body)


def _kind(data: dict[str, Any]) -> Kind:
    name = data.pop("type", None)
    if name is None:
        raise Refusal("type", f"is required: one of {', '.join(KINDS)}")
    try:
        kind = KINDS[RecordKind(name)]
    except (ValueError, TypeError):
        raise Refusal("type", f"{name!r} is not one of: {', '.join(KINDS)}") from None
    if kind.name is RecordKind.SERVICE and "service_type" in data:
        # `type` names the kind of line, so a service's own type goes by another name.
        data["type"] = data.pop("service_type")
    return kind


def line_id(line: Line, fixed: Kind | None) -> str | None:
    """The id a line gave (for the report), if it can be told."""
    data = line.data
    kind = fixed
    if kind is None:
        name = data.get("type")
        kind = KINDS[RecordKind(name)] if isinstance(name, str) and name in KINDS else None
    value = data.get(kind.keys[-1] if kind is not None else "id")
    return value if isinstance(value, str) else None


def _first_error(exc: ValidationError) -> tuple[str | None, str]:
    """The first field at fault, worded as the API's 422 problems word it."""
    err = exc.errors()[0]
    field = loc_to_path("", tuple(p for p in err["loc"] if isinstance(p, str | int))) or None
    return field, error_message(err)


def _unprefixed(field: str, kind: Kind) -> str | None:
    """`invoice.amount` as the line calls it: `amount` (the line is the invoice)."""
    if field == kind.name:
        return None
    return field.removeprefix(f"{kind.name}.")


# -- applying ----------------------------------------------------------------------------------


def apply_line(inputs: Inputs, line: Line, fixed: Kind | None, report: ImportReport) -> None:
    report.received += 1
    touched = set(inputs.touched)
    kind: Kind | None = fixed
    try:
        record = to_record(line, fixed)
        kind = record.kind
        with inputs.session.begin_nested():
            record.kind.put(inputs, *record.keys, record.body)
            inputs.session.flush()  # so a refused write fails here, inside its savepoint
    except Refusal as exc:
        field, message = exc.field, exc.message
    except ConfigError as exc:
        assert kind is not None
        field, message = _unprefixed(exc.field, kind), exc.message
    except records.NotFound as exc:
        field, message = exc.field, exc.message
    except IntegrityError:
        # Another write created the same record at that moment; the line may simply be sent again.
        field, message = None, "a concurrent write changed the same record; import the line again"
    else:
        report.applied += 1
        return
    # What the line touched was rolled back with its savepoint.
    inputs.touched = touched
    report.refuse(line.number, line_id(line, fixed), field, message)


def _begin(session: Session) -> None:
    """Open the batch's transaction on SQLite now: pysqlite begins one only at the first write, and a
    savepoint taken before that would commit its line on release, outside the batch."""
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        session.connection().exec_driver_sql("BEGIN")


def run_import(
    db: Database,
    provider_id: int,
    now: datetime,
    actor: str,
    lines: Iterator[Line],
    fixed: Kind | None,
    *,
    last_batch: Callable[[Session], None] | None = None,
    progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Apply `lines` batch by batch (the API and `arrears import` alike); `last_batch` runs in the
    last batch's transaction (the API records the write there), `progress` after each batch."""
    report = ImportReport(received=0, applied=0, refused=0, errors=[], errors_omitted=0)
    while True:
        with db.transaction() as session:
            _begin(session)
            inputs = Inputs.open(session, provider_id, now, actor=actor)
            count = 0
            for line in itertools.islice(lines, BATCH):
                count += 1
                apply_line(inputs, line, fixed, report)
            inputs.settle()
            if count < BATCH and last_batch is not None:
                last_batch(session)
        if progress is not None:
            progress(report)
        if count < BATCH:
            break
    log.info(
        "import for provider %s: %d lines, %d applied, %d refused",
        provider_id,
        report.received,
        report.applied,
        report.refused,
    )
    return report


def read_lines(stream: IO[bytes], fixed: Kind | None) -> Iterator[Line]:
    """The lines of a JSON Lines file (`fixed` None) or of a CSV file of one kind."""
    return json_lines(stream) if fixed is None else csv_lines(stream, fixed)


# -- the route ----------------------------------------------------------------------------------

router = APIRouter()
CallerDep = Annotated[Caller, Depends(provider_caller)]

_JSONL_EXAMPLE = "\n".join(
    [
        '{"type": "account", "id": "A1", "services": [{"id": "S1", "type": "mobile"}]}',
        '{"type": "invoice", "id": "I1", "account": "A1", "amount": "120.00", "due": "2026-02-20"}',
        '{"type": "payment", "id": "P1", "account": "A1", "amount": "50.00"}',
    ]
)
_CSV_EXAMPLE = "id,account,amount,due,issued_at\nI1,A1,120.00,2026-02-20,2026-02-06T08:00\n"


def _format(content_type: str | None) -> str:
    """`jsonl` or `csv`, from the Content-Type header (415 for anything else)."""
    media, *params = (content_type or "").split(";")
    media = media.strip().lower()
    charset = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    accepted = "application/x-ndjson (or application/jsonl) for JSON Lines, or text/csv"
    if media not in JSON_LINES and media != CSV:
        raise ApiProblem(
            415,
            f"Content-Type {media or '(none)'} is not accepted: send {accepted}",
            errors=[("Content-Type", f"must be {accepted}")],
        )
    if charset is not None and charset not in CHARSETS:
        raise ApiProblem(
            415,
            f"Content-Type charset {charset} is not accepted: send UTF-8",
            errors=[("Content-Type", "the charset must be utf-8")],
        )
    return "csv" if media == CSV else "jsonl"


@router.post(
    PATH,
    tags=["import"],
    summary="Import records in bulk",
    responses=responses.problems(
        401,
        403,
        413,
        415,
        422,
        429,
        notes={
            403: "Not a provider's key",
            413: "The file is larger than the import limit (50 MiB)",
            415: "Not JSON Lines or CSV; `errors` names `Content-Type`",
            422: "`?type=` missing (CSV) or a CSV header naming no field",
        },
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}, "example": _JSONL_EXAMPLE},
                "text/csv": {"schema": {"type": "string"}, "example": _CSV_EXAMPLE},
            },
        }
    },
)
async def import_records(
    request: Request,
    caller: CallerDep,
    kind: Annotated[
        RecordKind | None,
        Query(alias="type", description="The kind of every row of a CSV file (CSV only)"),
    ] = None,
) -> ImportReport:
    """Upsert many records at once, each line as its `PUT` would, in file order.

    **JSON Lines** (`Content-Type: application/x-ndjson`): one object per line, its
    `type` (`account`, `service`, `invoice`, `payment`, `dispute`, `plan`, `case`,
    `flag`) and the fields of that record's `PUT` body, with the ids of its path as
    fields: `id` (and `account` for a service), `invoice` for a dispute, `account`
    for a flag. A service's own type is `service_type`.

    **CSV** (`Content-Type: text/csv`, `?type=invoice`): records of one kind, a header
    row naming the fields; an empty cell leaves the field out; list fields take JSON.

    Good lines are applied even when others are refused; the report lists each
    refused line with its number and the field at fault.
    """
    fmt = _format(request.headers.get("content-type"))
    if fmt == "csv" and kind is None:
        raise ApiProblem(
            422,
            "type: a CSV file holds one kind of record; say which with ?type=",
            errors=[("type", f"is required with text/csv: one of {', '.join(KINDS)}")],
            type_=INVALID,
        )
    if fmt == "jsonl" and kind is not None:
        raise ApiProblem(
            422,
            "type: each JSON line names its own type; ?type= is for CSV",
            errors=[("type", "is for text/csv only: each JSON line has its own `type`")],
            type_=INVALID,
        )
    fixed = KINDS[kind] if kind is not None else None
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        # Read whole before anything is applied: a body over the limit is refused with nothing done.
        async for chunk in request.stream():
            spool.write(chunk)
        spool.seek(0)
        return await run_in_threadpool(_import, caller, spool, fixed)


def _import(caller: Caller, stream: IO[bytes], fixed: Kind | None) -> ImportReport:
    request = caller.request

    def record(session: Session) -> None:
        record_write(session, caller.principal, request.method, request.url.path, 200, caller.now)
        request.state.write_recorded = True

    return run_import(
        caller.state.db,
        caller.provider_id,
        caller.now,
        caller.principal.actor,
        read_lines(stream, fixed),
        fixed,
        last_batch=record,
    )
