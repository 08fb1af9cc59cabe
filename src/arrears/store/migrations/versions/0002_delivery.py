"""Notification delivery: provider notice settings, attempts, templates.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Adds what delivering notices needs (issue 3): the provider's locale, SMS quiet
hours, senders, payment link and operations address; a notification's
attempts, claim, outcome and rendered text; one row per delivery attempt; and
the providers' own templates. New columns have server defaults where existing
rows need a value.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PROVIDER_COLUMNS = (
    ("locale", sa.String(length=16), False, "en"),
    ("quiet_start", sa.String(length=5), True, "21:00"),
    ("quiet_end", sa.String(length=5), True, "08:00"),
    ("email_from", sa.String(length=320), True, None),
    ("sms_from", sa.String(length=32), True, None),
    ("payment_link", sa.Text(), True, None),
    ("operations_email", sa.String(length=320), True, None),
)

_NOTIFICATION_COLUMNS = (
    ("attempts", sa.Integer(), False, "0"),
    ("next_attempt_at", sa.DateTime(), True, None),
    ("claimed_by", sa.String(length=100), True, None),
    ("claimed_until", sa.DateTime(), True, None),
    ("sent_at", sa.DateTime(), True, None),
    ("reference", sa.String(length=200), True, None),
    ("delivery", sa.String(length=16), True, None),
    ("subject", sa.Text(), True, None),
    ("body", sa.Text(), True, None),
)


def upgrade() -> None:
    # batch_alter_table: SQLite cannot add a NOT NULL column without rebuilding the table.
    for table, columns in (("providers", _PROVIDER_COLUMNS), ("notifications", _NOTIFICATION_COLUMNS)):
        with op.batch_alter_table(table) as batch:
            for name, type_, nullable, default in columns:
                batch.add_column(
                    sa.Column(
                        name,
                        type_,
                        nullable=nullable,
                        server_default=sa.text(default if default.isdigit() else f"'{default}'")
                        if default is not None and not nullable
                        else None,
                    )
                )
    # Existing providers keep the default quiet hours, as new ones get them.
    op.execute("UPDATE providers SET quiet_start = '21:00', quiet_end = '08:00'")
    op.create_index("ix_notifications_claim", "notifications", ["state", "claimed_until"], unique=False)
    op.create_table(
        "notification_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notification_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("result", sa.String(length=16), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name=op.f("fk_notification_attempts_notification_id_notifications"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_attempts")),
    )
    op.create_index(
        op.f("ix_notification_attempts_notification_id"),
        "notification_attempts",
        ["notification_id"],
        unique=False,
    )
    op.create_table(
        "templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_templates_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_templates")),
        sa.UniqueConstraint(
            "provider_id", "event", "channel", name=op.f("uq_templates_provider_id_event_channel")
        ),
    )


def downgrade() -> None:
    op.drop_table("templates")
    op.drop_index(op.f("ix_notification_attempts_notification_id"), table_name="notification_attempts")
    op.drop_table("notification_attempts")
    op.drop_index("ix_notifications_claim", table_name="notifications")
    for table, columns in (("notifications", _NOTIFICATION_COLUMNS), ("providers", _PROVIDER_COLUMNS)):
        with op.batch_alter_table(table) as batch:
            for name, *_ in reversed(columns):
                batch.drop_column(name)
