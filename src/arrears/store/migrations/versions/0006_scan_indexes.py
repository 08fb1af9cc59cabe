"""Partial indexes for the full pass: the invoices still owed, and unallocated credit.

The candidate query aggregates open invoices with a balance; the batch reads
sum each account's unallocated credit. Both are small, steady shares of tables
that grow every month. On PostgreSQL the included columns let the candidate
query read the index alone (once VACUUM has marked the pages all-visible).
Building them locks the two tables against writes for a few seconds on a
million accounts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWING = "status = 'open' AND balance > 0"
UNALLOCATED = "unallocated > 0"


def upgrade() -> None:
    op.create_index(
        "ix_invoices_owing",
        "invoices",
        ["provider_id", "account_id"],
        postgresql_include=["due_date", "balance", "issued_at"],
        postgresql_where=sa.text(OWING),
        sqlite_where=sa.text(OWING),
    )
    op.create_index(
        "ix_payments_unallocated",
        "payments",
        ["account_id"],
        postgresql_include=["unallocated"],
        postgresql_where=sa.text(UNALLOCATED),
        sqlite_where=sa.text(UNALLOCATED),
    )


def downgrade() -> None:
    op.drop_index("ix_payments_unallocated", table_name="payments")
    op.drop_index("ix_invoices_owing", table_name="invoices")
