"""The schema round-trips exact money and UTC instants on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import func, select

from arrears.engine.inputs import Inputs, create_provider
from arrears.store.db import Database
from arrears.store.tables import InvoiceRow


def test_money_and_instants_round_trip(db: Database) -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with db.transaction() as s:
        p = create_provider(s, key="p", timezone="Australia/Sydney", currency="AUD", now=now)
        inputs = Inputs.open(s, p.id, now)
        inputs.put_account({"id": "A1", "services": [{"id": "S1", "type": "mobile"}]})
        for i in range(10):
            inputs.put_invoice({"id": f"I{i}", "account": "A1", "amount": "0.10", "due": "2026-03-10"})
        inputs.settle()
    with db.transaction() as s:
        total = s.scalar(select(func.sum(InvoiceRow.balance)))
        inv = s.scalars(select(InvoiceRow).order_by(InvoiceRow.id)).first()
        assert inv is not None
        # Ten times 0.10 is exactly 1.00, as SQL sums it (a float would not say so).
        assert total == Decimal("1.00")
        assert inv.amount == Decimal("0.10")
        assert inv.issued_at == now
        assert inv.issued_at.utcoffset() == timedelta(0)
    # An instant given with another offset is stored as the same UTC instant.
    with db.transaction() as s:
        inv = s.scalars(select(InvoiceRow).order_by(InvoiceRow.id)).first()
        assert inv is not None
        inv.issued_at = datetime(2026, 3, 2, 9, 0, tzinfo=timezone(timedelta(hours=11)))
    with db.transaction() as s:
        inv = s.scalars(select(InvoiceRow).order_by(InvoiceRow.id)).first()
        assert inv is not None
        assert inv.issued_at == datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
