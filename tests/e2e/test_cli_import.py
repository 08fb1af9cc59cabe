"""`arrears import` end to end: the same import as the API's, from a file, with its report."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from arrears.engine.inputs import Inputs, create_provider
from arrears.store.db import Database
from arrears.store.migrate import ensure_schema
from arrears.store.tables import AccountRow, InvoiceRow, PaymentRow

from .command import arrears

NOW = datetime(2026, 4, 1, 0, 0, tzinfo=UTC)


def world(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/import.db"
    ensure_schema(url)
    db = Database(url)
    with db.transaction() as s:
        for key in ("fibre", "mobile"):
            p = create_provider(s, key=key, timezone="Europe/London", currency="GBP", now=NOW)
            inputs = Inputs.open(s, p.id, NOW)
            inputs.put_rule_set(
                {"min_overdue_amount": "50.00", "min_overdue_days": 14, "restore_threshold": "0"}
            )
    db.dispose()
    return url


def test_a_json_lines_file_is_imported_and_its_bad_lines_reported(tmp_path: Path) -> None:
    url = world(tmp_path)
    feed = tmp_path / "feed.jsonl"
    feed.write_text(
        "\n".join(
            [
                '{"type": "account", "id": "A1", "services": [{"id": "S1", "type": "fttp"}]}',
                '{"type": "invoice", "id": "I1", "account": "A1", "amount": "90.00", "due": "2026-03-01"}',
                '{"type": "invoice", "id": "I2", "account": "A1", "amount": "-5", "due": "2026-03-01"}',
                '{"type": "payment", "id": "P1", "account": "A1", "amount": "20.00"}',
                '{"type": "payment", "id": "P2", "account": "NOPE", "amount": "1.00"}',
                "not json",
            ]
        )
        + "\n"
    )
    done = arrears("import", str(feed), "--provider", "fibre", "--json", "--database-url", url)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert (report["received"], report["applied"], report["refused"]) == (6, 3, 3)
    refused = {e["line"]: e["field"] for e in report["errors"]}
    assert refused[3] == "amount" and refused[5] == "account" and 6 in refused

    # The same file again changes nothing: the payment is not recorded twice.
    again = arrears("import", str(feed), "--provider", "fibre", "--database-url", url)
    assert again.returncode == 1
    assert "6 lines, 3 applied, 3 refused" in again.stdout
    assert "amount" in again.stdout
    db = Database(url)
    try:
        with db.transaction() as s:
            assert s.scalar(select(func.count()).select_from(PaymentRow)) == 1
            assert s.scalar(select(func.count()).select_from(AccountRow)) == 1
            balance = s.scalar(select(InvoiceRow.balance).where(InvoiceRow.ext_id == "I1"))
            assert balance == Decimal("70.00")
    finally:
        db.dispose()


def test_a_csv_file_needs_its_type_and_the_provider_when_there_are_several(tmp_path: Path) -> None:
    url = world(tmp_path)
    accounts = tmp_path / "accounts.jsonl"
    accounts.write_text('{"type": "account", "id": "A1"}\n')
    assert arrears("import", str(accounts), "--provider", "fibre", "--database-url", url).returncode == 0
    invoices = tmp_path / "invoices.csv"
    invoices.write_text("id,account,amount,due\nI1,A1,12.50,2026-03-01\nI2,A1,7.25,2026-03-15\n")

    no_type = arrears("import", str(invoices), "--provider", "fibre", "--database-url", url)
    assert no_type.returncode == 2 and "--type" in no_type.stderr
    no_provider = arrears("import", str(invoices), "--type", "invoice", "--database-url", url)
    assert no_provider.returncode == 2 and "--provider" in no_provider.stderr

    done = arrears(
        "import", str(invoices), "--type", "invoice", "--provider", "fibre", "--json", "--database-url", url
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["applied"] == 2
    db = Database(url)
    try:
        with db.transaction() as s:
            amounts = s.scalars(select(InvoiceRow.amount).order_by(InvoiceRow.ext_id)).all()
            assert amounts == [Decimal("12.50"), Decimal("7.25")]
    finally:
        db.dispose()
