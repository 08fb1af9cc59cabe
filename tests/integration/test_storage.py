"""Storage guarantees the engine relies on, on SQLite and PostgreSQL, on the migrated schema."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from arrears.config import parse_mappings
from arrears.domain.decisions import Action
from arrears.engine.inputs import Inputs, InvalidInput, create_provider
from arrears.store import migrate
from arrears.store.db import Database
from arrears.store.repository import load_accounts, notice_memory, snapshot
from arrears.store.tables import (
    AccountRow,
    Base,
    ContactRow,
    EpisodeRow,
    HistoryRow,
    InvoiceRow,
    NotificationRow,
    PaymentRow,
    ProviderRow,
    ProvisioningRequestRow,
    RuleSetRow,
    ServiceRow,
)
from arrears.store.types import money_from_sql

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Boom(Exception):
    pass


@pytest.fixture
def store(database_url: str) -> Iterator[Database]:
    """A database built by the migrations (not create_all), as production has it."""
    migrate.upgrade(database_url)
    database = Database(database_url)
    yield database
    database.dispose()


def provider(db: Database, key: str = "p") -> int:
    with db.transaction() as s:
        return create_provider(s, key=key, timezone="Australia/Sydney", currency="AUD", now=NOW).id


def count(db: Database, row: type[Base]) -> int:
    with db.transaction() as s:
        return s.scalar(select(func.count()).select_from(row)) or 0


# -- transactions ---------------------------------------------------------------------


def test_an_input_failing_half_way_leaves_nothing(store: Database) -> None:
    pid = provider(store)
    with store.transaction() as s:  # rules that suspend at once, committed beforehand
        inputs = Inputs.open(s, pid, NOW)
        inputs.put_rule_set(
            {"min_overdue_amount": "50.00", "min_overdue_days": 14, "restore_threshold": "10"}
        )
        inputs.put_mappings(
            parse_mappings({"auto_suspend": {"enabled": True, "channels": ["email"]}}, sms=False, since=NOW)
        )
    written: list[type[Base]] = [AccountRow, ServiceRow, ContactRow, InvoiceRow, EpisodeRow]
    written += [HistoryRow, ProvisioningRequestRow, NotificationRow]
    with pytest.raises(Boom), store.transaction() as s:
        inputs = Inputs.open(s, pid, NOW)
        inputs.put_account(
            {
                "id": "A1",
                "contacts": [{"role": "primary", "email": "jo@example.com"}],
                "services": [{"id": "S1", "type": "mobile"}],
            }
        )
        inputs.put_invoice({"id": "I1", "account": "A1", "amount": "99.00", "due": "2026-02-01"})
        [evaluation] = inputs.settle()
        # Flushed and acted on: inside the transaction, every kind of row exists.
        assert evaluation.action is Action.ESCALATE
        for row in written:
            assert s.scalar(select(func.count()).select_from(row)), row
        raise Boom
    for row in written:
        assert count(store, row) == 0, row
    assert count(store, ProviderRow) == 1  # committed by their own, earlier transactions
    assert count(store, RuleSetRow) == 1


def test_an_invalid_input_rolls_back_what_came_before_it(store: Database) -> None:
    pid = provider(store)
    with pytest.raises(InvalidInput, match="unknown account"), store.transaction() as s:
        inputs = Inputs.open(s, pid, NOW)
        inputs.put_account({"id": "A1"})
        inputs.put_invoice({"id": "I1", "account": "A1", "amount": "10.00", "due": "2026-02-01"})
        inputs.put_invoice({"id": "I2", "account": "NOPE", "amount": "10.00", "due": "2026-02-01"})
    assert count(store, AccountRow) == 0
    assert count(store, InvoiceRow) == 0


# -- identity -------------------------------------------------------------------------------


def test_ids_are_unique_per_provider(store: Database) -> None:
    p1, p2 = provider(store, "p1"), provider(store, "p2")
    for pid in (p1, p2):
        with store.transaction() as s:
            inputs = Inputs.open(s, pid, NOW)
            inputs.put_account({"id": "A1"})
            inputs.put_invoice({"id": "INV-1", "account": "A1", "amount": "10.00", "due": "2026-03-10"})
    # The same invoice again in one provider updates it: a replayed or corrected feed.
    with store.transaction() as s:
        inputs = Inputs.open(s, p1, NOW)
        inputs.put_invoice({"id": "INV-1", "account": "A1", "amount": "12.00", "due": "2026-03-11"})
    with store.transaction() as s:
        rows = s.execute(
            select(InvoiceRow.provider_id, InvoiceRow.amount, InvoiceRow.balance).order_by(
                InvoiceRow.provider_id
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        (p1, Decimal("12.00"), Decimal("12.00")),
        (p2, Decimal("10.00"), Decimal("10.00")),
    ]
    assert count(store, AccountRow) == 2


def test_the_database_itself_refuses_a_duplicate_id(store: Database) -> None:
    pid = provider(store)
    with store.transaction() as s:
        inputs = Inputs.open(s, pid, NOW)
        account = inputs.put_account({"id": "A1"})
        account_id = account.id
    with pytest.raises(IntegrityError), store.transaction() as s:
        s.add(AccountRow(provider_id=pid, ext_id="A1", created_at=NOW))
    with pytest.raises(IntegrityError), store.transaction() as s:
        for ext in ("I1", "I1"):
            s.add(
                InvoiceRow(
                    provider_id=pid,
                    account_id=account_id,
                    ext_id=ext,
                    issued_at=NOW,
                    due_date=NOW.date(),
                    amount=Decimal("1"),
                    balance=Decimal("1"),
                )
            )
    assert count(store, InvoiceRow) == 0


# -- money ------------------------------------------------------------------------------


def _invoices(db: Database, amounts: list[str]) -> None:
    pid = provider(db)
    with db.transaction() as s:
        inputs = Inputs.open(s, pid, NOW)
        inputs.put_account({"id": "A1"})
        for i, amount in enumerate(amounts):
            inputs.put_invoice({"id": f"I{i}", "account": "A1", "amount": amount, "due": "2026-03-10"})


def test_money_sums_exactly_in_sql(store: Database) -> None:
    _invoices(store, ["0.10"] * 10 + ["0.01"] * 3)
    with store.transaction() as s:
        total = s.scalar(select(func.sum(InvoiceRow.balance)))
        raw = s.scalar(text("SELECT SUM(balance) FROM invoices"))
    assert total == Decimal("1.03")  # 0.1 * 10 as floats is 0.9999999999999999
    assert money_from_sql(raw) == Decimal("1.03")
    assert int(raw) == 10300  # stored as ten-thousandths


def test_large_and_fine_amounts_round_trip(store: Database) -> None:
    # Far beyond a float's 15-16 significant digits, and to storage's fourth decimal
    # place (finer than any currency's minor unit, so written as rows, not as inputs).
    amounts = [Decimal("123456789012345.6789"), Decimal("0.0001"), Decimal("-0.0001")]
    _invoices(store, [])
    with store.transaction() as s:
        account_id = s.scalars(select(AccountRow.id)).one()
        for i, amount in enumerate(amounts):
            s.add(
                InvoiceRow(
                    provider_id=s.scalars(select(ProviderRow.id)).one(),
                    account_id=account_id,
                    ext_id=f"I{i}",
                    issued_at=NOW,
                    due_date=NOW.date(),
                    amount=amount,
                    balance=amount,
                )
            )
    with store.transaction() as s:
        got = s.scalars(select(InvoiceRow.amount).order_by(InvoiceRow.id)).all()
        total = s.scalar(select(func.sum(InvoiceRow.amount)))
    assert got == amounts
    assert total == Decimal("123456789012345.6789")


def test_an_amount_finer_than_storage_is_refused(store: Database) -> None:
    pid = provider(store)
    with pytest.raises(StatementError, match="more than 4 decimal places"), store.transaction() as s:
        inputs = Inputs.open(s, pid, NOW)
        account = inputs.put_account({"id": "A1"})
        s.add(
            PaymentRow(
                provider_id=pid,
                account_id=account.id,
                ext_id="P1",
                amount=Decimal("1.00005"),
                unallocated=Decimal("1.00005"),
                received_at=NOW,
            )
        )
        s.flush()
    assert count(store, PaymentRow) == 0


# -- instants ---------------------------------------------------------------------------------


def test_instants_come_back_aware_utc(store: Database) -> None:
    _invoices(store, ["5.00"])
    sydney = timezone(timedelta(hours=11))
    with store.transaction() as s:
        inv = s.scalars(select(InvoiceRow)).one()
        inv.issued_at = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=sydney)
    with store.transaction() as s:
        inv = s.scalars(select(InvoiceRow)).one()
        issued = inv.issued_at
        raw = s.scalar(text("SELECT issued_at FROM invoices"))
        # Comparisons in SQL bind through the same conversion, whatever the offset given.
        found = s.scalar(
            select(func.count())
            .select_from(InvoiceRow)
            .where(InvoiceRow.issued_at == datetime(2026, 3, 1, 22, 30, 15, 123456, tzinfo=UTC))
        )
        later = s.scalar(
            select(func.count())
            .select_from(InvoiceRow)
            .where(InvoiceRow.issued_at > datetime(2026, 3, 2, 9, 30, tzinfo=sydney))
        )
    assert issued == datetime(2026, 3, 1, 22, 30, 15, 123456, tzinfo=UTC)
    assert issued.tzinfo is UTC
    assert found == 1
    assert later == 1
    # Stored as naive UTC: what a reporting query reads directly.
    raw_dt = raw if isinstance(raw, datetime) else datetime.fromisoformat(raw)
    assert raw_dt == datetime(2026, 3, 1, 22, 30, 15, 123456)


def test_a_naive_instant_is_refused(store: Database) -> None:
    _invoices(store, ["5.00"])
    with pytest.raises(StatementError, match="naive datetime"), store.transaction() as s:
        inv = s.scalars(select(InvoiceRow)).one()
        inv.issued_at = datetime(2026, 3, 2, 9, 30)
        s.flush()


# -- reading snapshots --------------------------------------------------------------------------


def _account_with_history(db: Database) -> tuple[int, int]:
    """A1: open, paid, void, draft and part-paid invoices, allocated and unallocated payments; A2 apart."""
    pid = provider(db)
    with db.transaction() as s:
        inputs = Inputs.open(s, pid, NOW)
        inputs.put_account({"id": "A1", "services": [{"id": "S1", "type": "mobile"}]})
        inputs.put_account({"id": "A2"})
        for ext, amount, due, status in [
            ("OLD", "50.00", "2026-01-10", "open"),
            ("CUR", "30.00", "2026-02-10", "open"),
            ("VOID", "20.00", "2026-01-15", "void"),
            ("PAID", "10.00", "2026-01-01", "paid"),
            ("DRAFT", "5.00", "2026-03-10", "draft"),
        ]:
            inputs.put_invoice({"id": ext, "account": "A1", "amount": amount, "due": due, "status": status})
        inputs.put_invoice({"id": "OTHER", "account": "A2", "amount": "7.00", "due": "2026-01-01"})
        # 60.00 pays OLD (oldest due first) and 10.00 of CUR; nothing is left over.
        inputs.put_payment({"id": "P1", "account": "A1", "amount": "60.00"})
        # Unallocated money: left for an operator to allocate.
        inputs.put_payment({"id": "P2", "account": "A1", "amount": "12.34", "allocate": False})
        inputs.put_payment({"id": "P3", "account": "A1", "amount": "0.66", "allocate": False})
        inputs.put_payment({"id": "P4", "account": "A2", "amount": "100.00", "allocate": False})
        inputs.settle()
        a1, a2 = inputs.account("A1").id, inputs.account("A2").id
    return a1, a2


@pytest.mark.parametrize("lock", [False, True])
def test_snapshot_reads_open_invoices_and_unallocated_money(store: Database, lock: bool) -> None:
    a1, a2 = _account_with_history(store)
    with store.transaction() as s:
        rows = load_accounts(s, [a2, a1], lock=lock)
        assert [r.id for r in rows] == [a1, a2]
        memory = notice_memory(s, rows)
        snap1, snap2 = (snapshot(r, memory[r.id]) for r in rows)
        # Only what decisions read was loaded: open invoices, payments with money left.
        assert sorted(i.ext_id for i in rows[0].invoices) == ["CUR"]
        assert sorted(p.ext_id for p in rows[0].payments) == ["P2", "P3"]

    assert snap1.id == "A1"
    assert [(i.id, i.amount, i.balance) for i in snap1.invoices] == [
        ("CUR", Decimal("30.00"), Decimal("20.00"))
    ]
    assert snap1.unallocated == Decimal("13.00")
    assert [s.id for s in snap1.services] == ["S1"]
    assert [(i.id, i.balance) for i in snap2.invoices] == [("OTHER", Decimal("7.00"))]
    assert snap2.unallocated == Decimal("100.00")


def test_load_accounts_sees_unflushed_work_of_its_transaction(store: Database) -> None:
    a1, _ = _account_with_history(store)
    with store.transaction() as s:
        first = load_accounts(s, [a1])[0]
        assert [i.ext_id for i in first.invoices] == ["CUR"]
        inputs = Inputs.open(s, first.provider_id, NOW)
        inputs.set_invoice_status("CUR", "paid")
        inputs.put_invoice({"id": "NEW", "account": "A1", "amount": "1.50", "due": "2026-03-20"})
        again = load_accounts(s, [a1])[0]
        snap = snapshot(again, notice_memory(s, [again])[a1])
    assert [(i.id, i.balance) for i in snap.invoices] == [("NEW", Decimal("1.50"))]
    with store.transaction() as s:
        assert load_accounts(s, []) == []
