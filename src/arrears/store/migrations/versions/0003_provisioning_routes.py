"""Provisioning routes, the peer's reference, and each provider's last full pass.

Routes choose an adapter per provider and service type; `full_pass_on` is the
provider-local date of the last completed full pass, so among several workers
only one scans a provider each day.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("provisioning_requests") as batch:
        batch.add_column(sa.Column("reference", sa.String(length=200), nullable=True))
    with op.batch_alter_table("providers") as batch:
        batch.add_column(sa.Column("full_pass_on", sa.Date(), nullable=True))
    op.create_table(
        "provisioning_routes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("service_type", sa.String(length=50), nullable=False),
        sa.Column("adapter", sa.String(length=32), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_provisioning_routes_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provisioning_routes")),
        sa.UniqueConstraint(
            "provider_id", "service_type", name=op.f("uq_provisioning_routes_provider_id_service_type")
        ),
    )


def downgrade() -> None:
    op.drop_table("provisioning_routes")
    with op.batch_alter_table("providers") as batch:
        batch.drop_column("full_pass_on")
    with op.batch_alter_table("provisioning_requests") as batch:
        batch.drop_column("reference")
