"""The initial schema: every table of arrears.store.tables as of version 0.1.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Types are written as stored: money (`Money`) is BIGINT ten-thousandths and
instants (`UTCDateTime`) are naive-UTC DATETIME/TIMESTAMP, so this file never
depends on the application's type classes. Names come from the metadata's
naming convention. accounts.episode_id and episodes.account_id refer to each
other: on PostgreSQL the accounts -> episodes key is added once both tables
exist (and dropped first on the way down); SQLite, which cannot add a
constraint with ALTER and does not check references at CREATE TABLE, gets it
inline.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"


def _accounts_episode_fk_inline() -> list[sa.ForeignKeyConstraint]:
    if not _sqlite():
        return []
    return [
        sa.ForeignKeyConstraint(["episode_id"], ["episodes.id"], name=op.f("fk_accounts_episode_id_episodes"))
    ]


def upgrade() -> None:
    op.create_table(
        "providers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("sms", sa.Boolean(), nullable=False),
        sa.Column("send_time", sa.String(length=5), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_providers")),
        sa.UniqueConstraint("key", name=op.f("uq_providers_key")),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("ext_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.String(length=16), nullable=True),
        sa.Column("omit", sa.Boolean(), nullable=False),
        sa.Column("omit_reason", sa.Text(), nullable=True),
        sa.Column("omit_until", sa.Date(), nullable=True),
        sa.Column("episode_id", sa.Integer(), nullable=True),
        sa.Column("operator_restored_at", sa.DateTime(), nullable=True),
        sa.Column("path_started_at", sa.DateTime(), nullable=True),
        sa.Column("excluded_reasons", sa.String(length=200), nullable=True),
        sa.Column("shadow_stage", sa.String(length=64), nullable=True),
        sa.Column("next_wakeup_at", sa.DateTime(), nullable=True),
        sa.Column("evaluated_at", sa.DateTime(), nullable=True),
        sa.Column("stage", sa.String(length=64), nullable=True),
        sa.Column("projected_suspension", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        *_accounts_episode_fk_inline(),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_accounts_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("provider_id", "ext_id", name=op.f("uq_accounts_provider_id_ext_id")),
    )
    op.create_index("ix_accounts_wakeup", "accounts", ["provider_id", "next_wakeup_at"], unique=False)
    op.create_table(
        "event_mappings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_event_mappings_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_mappings")),
        sa.UniqueConstraint("provider_id", "key", name=op.f("uq_event_mappings_provider_id_key")),
    )
    op.create_index(op.f("ix_event_mappings_provider_id"), "event_mappings", ["provider_id"], unique=False)
    op.create_table(
        "rule_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("effective_at", sa.DateTime(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_rule_sets_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_sets")),
        sa.UniqueConstraint(
            "provider_id", "name", "version", name=op.f("uq_rule_sets_provider_id_name_version")
        ),
    )
    op.create_index(op.f("ix_rule_sets_provider_id"), "rule_sets", ["provider_id"], unique=False)
    op.create_table(
        "account_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_groups_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_groups")),
        sa.UniqueConstraint("account_id", "name", name=op.f("uq_account_groups_account_id_name")),
    )
    op.create_index(op.f("ix_account_groups_account_id"), "account_groups", ["account_id"], unique=False)
    op.create_table(
        "account_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("author", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_notes_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_notes")),
    )
    op.create_index(op.f("ix_account_notes_account_id"), "account_notes", ["account_id"], unique=False)
    op.create_table(
        "complaint_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("ext_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_complaint_cases_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_complaint_cases_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaint_cases")),
        sa.UniqueConstraint("provider_id", "ext_id", name=op.f("uq_complaint_cases_provider_id_ext_id")),
    )
    op.create_index(op.f("ix_complaint_cases_account_id"), "complaint_cases", ["account_id"], unique=False)
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("service_ext_id", sa.String(length=100), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_contacts_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
    )
    op.create_index(op.f("ix_contacts_account_id"), "contacts", ["account_id"], unique=False)
    op.create_table(
        "episodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.Column("rule_set_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_episodes_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["rule_set_id"], ["rule_sets.id"], name=op.f("fk_episodes_rule_set_id_rule_sets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_episodes")),
    )
    op.create_index(op.f("ix_episodes_account_id"), "episodes", ["account_id"], unique=False)
    if not _sqlite():
        op.create_foreign_key(
            op.f("fk_accounts_episode_id_episodes"), "accounts", "episodes", ["episode_id"], ["id"]
        )
    op.create_table(
        "invoices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("ext_id", sa.String(length=100), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("disputed", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_invoices_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_invoices_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("provider_id", "ext_id", name=op.f("uq_invoices_provider_id_ext_id")),
    )
    op.create_index("ix_invoices_open", "invoices", ["account_id", "status", "due_date"], unique=False)
    op.create_table(
        "operator_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_operator_actions_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_operator_actions_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_actions")),
    )
    op.create_index(op.f("ix_operator_actions_account_id"), "operator_actions", ["account_id"], unique=False)
    op.create_table(
        "payment_plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("ext_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("invoice_ext_ids", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_payment_plans_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_payment_plans_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_plans")),
        sa.UniqueConstraint("provider_id", "ext_id", name=op.f("uq_payment_plans_provider_id_ext_id")),
    )
    op.create_index(op.f("ix_payment_plans_account_id"), "payment_plans", ["account_id"], unique=False)
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("ext_id", sa.String(length=100), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("unallocated", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_payments_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_payments_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("provider_id", "ext_id", name=op.f("uq_payments_provider_id_ext_id")),
    )
    op.create_index(op.f("ix_payments_account_id"), "payments", ["account_id"], unique=False)
    op.create_table(
        "allocations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_allocations_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_allocations_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocations")),
    )
    op.create_index(op.f("ix_allocations_invoice_id"), "allocations", ["invoice_id"], unique=False)
    op.create_index(op.f("ix_allocations_payment_id"), "allocations", ["payment_id"], unique=False)
    op.create_table(
        "history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("episode_id", sa.Integer(), nullable=True),
        sa.Column("rule_set_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_history_account_id_accounts")),
        sa.ForeignKeyConstraint(["episode_id"], ["episodes.id"], name=op.f("fk_history_episode_id_episodes")),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_history_provider_id_providers")
        ),
        sa.ForeignKeyConstraint(
            ["rule_set_id"], ["rule_sets.id"], name=op.f("fk_history_rule_set_id_rule_sets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_history")),
    )
    op.create_index("ix_history_account", "history", ["account_id", "id"], unique=False)
    op.create_index(op.f("ix_history_provider_id"), "history", ["provider_id"], unique=False)
    op.create_table(
        "services",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("ext_id", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=50), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("changed_by", sa.String(length=16), nullable=False),
        sa.Column("episode_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_services_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["episode_id"], ["episodes.id"], name=op.f("fk_services_episode_id_episodes")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_services_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_services")),
        sa.UniqueConstraint("provider_id", "ext_id", name=op.f("uq_services_provider_id_ext_id")),
    )
    op.create_index(op.f("ix_services_account_id"), "services", ["account_id"], unique=False)
    op.create_table(
        "provisioning_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("episode_id", sa.Integer(), nullable=True),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("adapter", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("not_before", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_provisioning_requests_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["episode_id"], ["episodes.id"], name=op.f("fk_provisioning_requests_episode_id_episodes")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_provisioning_requests_provider_id_providers")
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_provisioning_requests_service_id_services")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provisioning_requests")),
        sa.UniqueConstraint("provider_id", "key", name=op.f("uq_provisioning_requests_provider_id_key")),
    )
    op.create_index(
        op.f("ix_provisioning_requests_account_id"), "provisioning_requests", ["account_id"], unique=False
    )
    op.create_index(
        op.f("ix_provisioning_requests_service_id"), "provisioning_requests", ["service_id"], unique=False
    )
    op.create_index("ix_provisioning_state", "provisioning_requests", ["state", "not_before"], unique=False)
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("mapping_key", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("recipient_role", sa.String(length=16), nullable=True),
        sa.Column("to_address", sa.String(length=320), nullable=True),
        sa.Column("service_ext_id", sa.String(length=100), nullable=True),
        sa.Column("invoice_ext_id", sa.String(length=100), nullable=True),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("provisioning_request_id", sa.Integer(), nullable=True),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_notifications_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_notifications_provider_id_providers")
        ),
        sa.ForeignKeyConstraint(
            ["provisioning_request_id"],
            ["provisioning_requests.id"],
            name=op.f("fk_notifications_provisioning_request_id_provisioning_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("provider_id", "key", name=op.f("uq_notifications_provider_id_key")),
    )
    op.create_index(op.f("ix_notifications_account_id"), "notifications", ["account_id"], unique=False)
    op.create_index("ix_notifications_state", "notifications", ["state", "due_at"], unique=False)


def downgrade() -> None:
    if not _sqlite():
        op.drop_constraint(op.f("fk_accounts_episode_id_episodes"), "accounts", type_="foreignkey")
    op.drop_index("ix_notifications_state", table_name="notifications")
    op.drop_index(op.f("ix_notifications_account_id"), table_name="notifications")
    op.drop_table("notifications")
    op.drop_index("ix_provisioning_state", table_name="provisioning_requests")
    op.drop_index(op.f("ix_provisioning_requests_service_id"), table_name="provisioning_requests")
    op.drop_index(op.f("ix_provisioning_requests_account_id"), table_name="provisioning_requests")
    op.drop_table("provisioning_requests")
    op.drop_index(op.f("ix_services_account_id"), table_name="services")
    op.drop_table("services")
    op.drop_index(op.f("ix_history_provider_id"), table_name="history")
    op.drop_index("ix_history_account", table_name="history")
    op.drop_table("history")
    op.drop_index(op.f("ix_allocations_payment_id"), table_name="allocations")
    op.drop_index(op.f("ix_allocations_invoice_id"), table_name="allocations")
    op.drop_table("allocations")
    op.drop_index(op.f("ix_payments_account_id"), table_name="payments")
    op.drop_table("payments")
    op.drop_index(op.f("ix_payment_plans_account_id"), table_name="payment_plans")
    op.drop_table("payment_plans")
    op.drop_index(op.f("ix_operator_actions_account_id"), table_name="operator_actions")
    op.drop_table("operator_actions")
    op.drop_index("ix_invoices_open", table_name="invoices")
    op.drop_table("invoices")
    op.drop_index(op.f("ix_episodes_account_id"), table_name="episodes")
    op.drop_table("episodes")
    op.drop_index(op.f("ix_contacts_account_id"), table_name="contacts")
    op.drop_table("contacts")
    op.drop_index(op.f("ix_complaint_cases_account_id"), table_name="complaint_cases")
    op.drop_table("complaint_cases")
    op.drop_index(op.f("ix_account_notes_account_id"), table_name="account_notes")
    op.drop_table("account_notes")
    op.drop_index(op.f("ix_account_groups_account_id"), table_name="account_groups")
    op.drop_table("account_groups")
    op.drop_index(op.f("ix_rule_sets_provider_id"), table_name="rule_sets")
    op.drop_table("rule_sets")
    op.drop_index(op.f("ix_event_mappings_provider_id"), table_name="event_mappings")
    op.drop_table("event_mappings")
    op.drop_index("ix_accounts_wakeup", table_name="accounts")
    op.drop_table("accounts")
    op.drop_table("providers")
