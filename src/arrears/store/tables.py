"""The database schema. Domain objects are built from these rows by `repository`."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    and_,
    literal_column,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from arrears.store.types import Money, UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ZERO = Decimal("0")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), Decimal: Money(), dict[str, Any]: JSON}


class ProviderRow(Base):
    __tablename__ = "providers"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    timezone: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    sms: Mapped[bool] = mapped_column(Boolean, default=False)
    send_time: Mapped[str] = mapped_column(String(5), default="09:00")
    created_at: Mapped[datetime]
    # How notices look and go out (SPEC §7; docs/notifications.md).
    locale: Mapped[str] = mapped_column(String(16), default="en", server_default=text("'en'"))
    # No SMS from quiet_start until quiet_end; both NULL: none. No column default: a
    # default would also fill in a deliberate None (create_provider sets them).
    quiet_start: Mapped[str | None] = mapped_column(String(5))
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    email_from: Mapped[str | None] = mapped_column(String(320))
    sms_from: Mapped[str | None] = mapped_column(String(32))
    payment_link: Mapped[str | None] = mapped_column(Text)
    operations_email: Mapped[str | None] = mapped_column(String(320))
    # The provider-local date of the last completed full pass (by any worker).
    full_pass_on: Mapped[date | None] = mapped_column(Date)


class AccountRow(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("provider_id", "ext_id"),
        Index("ix_accounts_wakeup", "provider_id", "next_wakeup_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    ext_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="active")
    status_reason: Mapped[str | None] = mapped_column(String(16))
    omit: Mapped[bool] = mapped_column(Boolean, default=False)
    omit_reason: Mapped[str | None] = mapped_column(Text)
    omit_until: Mapped[date | None] = mapped_column(Date)
    episode_id: Mapped[int | None] = mapped_column(ForeignKey("episodes.id", use_alter=True))
    operator_restored_at: Mapped[datetime | None]
    path_started_at: Mapped[datetime | None]
    excluded_reasons: Mapped[str | None] = mapped_column(String(200))
    shadow_stage: Mapped[str | None] = mapped_column(String(64))
    next_wakeup_at: Mapped[datetime | None]
    evaluated_at: Mapped[datetime | None]
    # Figures as of the last evaluation, for lists and the dashboard (not for decisions).
    stage: Mapped[str | None] = mapped_column(String(64))
    projected_suspension: Mapped[datetime | None]
    created_at: Mapped[datetime]

    groups: Mapped[list[GroupRow]] = relationship(cascade="all, delete-orphan", lazy="raise")
    contacts: Mapped[list[ContactRow]] = relationship(cascade="all, delete-orphan", lazy="raise")
    services: Mapped[list[ServiceRow]] = relationship(
        cascade="all, delete-orphan", lazy="raise", order_by="ServiceRow.id"
    )
    invoices: Mapped[list[InvoiceRow]] = relationship(lazy="raise", order_by="InvoiceRow.id")
    payments: Mapped[list[PaymentRow]] = relationship(lazy="raise", order_by="PaymentRow.id")
    plans: Mapped[list[PlanRow]] = relationship(lazy="raise", order_by="PlanRow.id")
    cases: Mapped[list[CaseRow]] = relationship(lazy="raise", order_by="CaseRow.id")
    # post_update: accounts and episodes point at each other; the account's
    # pointer is written after the episode row exists, in the same flush.
    episode: Mapped[EpisodeRow | None] = relationship(
        foreign_keys=[episode_id], lazy="raise", post_update=True
    )


class GroupRow(Base):
    __tablename__ = "account_groups"
    __table_args__ = (UniqueConstraint("account_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))


class ContactRow(Base):
    __tablename__ = "contacts"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    service_ext_id: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))


class ServiceRow(Base):
    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("provider_id", "ext_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    ext_id: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(16), default="active")
    changed_by: Mapped[str] = mapped_column(String(16), default="external")
    episode_id: Mapped[int | None] = mapped_column(ForeignKey("episodes.id"))
    episode: Mapped[EpisodeRow | None] = relationship(foreign_keys=[episode_id], lazy="raise")


# The predicates of the partial indexes below, as the indexes declare them.
# Queries use `owing_invoice()` / `unallocated_payment()`, the same conditions
# with literals rather than bound parameters, so that PostgreSQL can match the
# index even in a prepared statement's generic plan.
OWING = "status = 'open' AND balance > 0"
UNALLOCATED = "unallocated > 0"


class InvoiceRow(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("provider_id", "ext_id"),
        Index("ix_invoices_open", "account_id", "status", "due_date"),
        # What the full pass's candidate query aggregates: the invoices still owed.
        # They are a small, steady share of a table that grows every month, and
        # the included columns let the query read the index alone.
        Index(
            "ix_invoices_owing",
            "provider_id",
            "account_id",
            postgresql_include=["due_date", "balance", "issued_at"],
            postgresql_where=text(OWING),
            sqlite_where=text(OWING),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    ext_id: Mapped[str] = mapped_column(String(100))
    issued_at: Mapped[datetime]
    due_date: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal]
    balance: Mapped[Decimal]
    disputed: Mapped[Decimal] = mapped_column(default=ZERO)
    status: Mapped[str] = mapped_column(String(16), default="open")


class PaymentRow(Base):
    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("provider_id", "ext_id"),
        # Unallocated credit is rare: reading it need not visit every payment.
        Index(
            "ix_payments_unallocated",
            "account_id",
            postgresql_include=["unallocated"],
            postgresql_where=text(UNALLOCATED),
            sqlite_where=text(UNALLOCATED),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    ext_id: Mapped[str] = mapped_column(String(100))
    amount: Mapped[Decimal]
    unallocated: Mapped[Decimal]
    received_at: Mapped[datetime]
    allocations: Mapped[list[AllocationRow]] = relationship(lazy="raise", cascade="all, delete-orphan")


def owing_invoice() -> ColumnElement[bool]:
    """`OWING`, for queries."""
    c = InvoiceRow.__table__.c
    return and_(c.status == literal_column("'open'"), c.balance > literal_column("0"))


def unallocated_payment() -> ColumnElement[bool]:
    """`UNALLOCATED`, for queries."""
    return PaymentRow.__table__.c.unallocated > literal_column("0")


class AllocationRow(Base):
    __tablename__ = "allocations"
    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount: Mapped[Decimal]
    at: Mapped[datetime]


class PlanRow(Base):
    __tablename__ = "payment_plans"
    __table_args__ = (UniqueConstraint("provider_id", "ext_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    ext_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    invoice_ext_ids: Mapped[list[str]] = mapped_column(JSON, default=list)


class CaseRow(Base):
    __tablename__ = "complaint_cases"
    __table_args__ = (UniqueConstraint("provider_id", "ext_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    ext_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))


class RuleSetRow(Base):
    """One version of a named rule set. Versions are appended, never edited."""

    __tablename__ = "rule_sets"
    __table_args__ = (UniqueConstraint("provider_id", "name", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    effective_at: Mapped[datetime]
    body: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100), default="system")


class EventMappingRow(Base):
    __tablename__ = "event_mappings"
    __table_args__ = (UniqueConstraint("provider_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    body: Mapped[dict[str, Any]]
    since: Mapped[datetime]


class EpisodeRow(Base):
    __tablename__ = "episodes"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    stage: Mapped[str] = mapped_column(String(64))
    end_reason: Mapped[str | None] = mapped_column(String(32))
    rule_set_id: Mapped[int | None] = mapped_column(ForeignKey("rule_sets.id"))


class HistoryRow(Base):
    """Every change and why: the record the simulation prints and operators read."""

    __tablename__ = "history"
    __table_args__ = (Index("ix_history_account", "account_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]]
    episode_id: Mapped[int | None] = mapped_column(ForeignKey("episodes.id"))
    rule_set_id: Mapped[int | None] = mapped_column(ForeignKey("rule_sets.id"))
    actor: Mapped[str] = mapped_column(String(100), default="arrears")
    episode: Mapped[EpisodeRow | None] = relationship(foreign_keys=[episode_id], lazy="raise")


class NotificationRow(Base):
    """One notice to one address on one channel, keyed so it exists at most once."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("provider_id", "key"),
        Index("ix_notifications_state", "state", "due_at"),
        Index("ix_notifications_claim", "state", "claimed_until"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    key: Mapped[str] = mapped_column(String(400))
    event: Mapped[str] = mapped_column(String(32))
    mapping_key: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    recipient_role: Mapped[str | None] = mapped_column(String(16))
    to_address: Mapped[str | None] = mapped_column(String(320))
    service_ext_id: Mapped[str | None] = mapped_column(String(100))
    invoice_ext_id: Mapped[str | None] = mapped_column(String(100))
    due_at: Mapped[datetime]
    # waiting (for provisioning) / pending (to deliver) / sent / failed / skipped
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(200))
    # Indexed: the provisioning dispatcher releases a request's waiting notices by it.
    provisioning_request_id: Mapped[int | None] = mapped_column(
        ForeignKey("provisioning_requests.id"), index=True
    )
    context: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    # Delivery (arrears.notify.dispatcher): attempts so far, when the next may
    # start, who holds the row while it is being sent, and what came of it.
    # A server default: the engine bulk-inserts (COPY) rows without this column.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    reference: Mapped[str | None] = mapped_column(String(200))  # the peer's message id
    delivery: Mapped[str | None] = mapped_column(String(16))  # a delivery receipt's state
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)  # the text as rendered for the customer
    provisioning_request: Mapped[ProvisioningRequestRow | None] = relationship(lazy="raise")


class NotificationAttemptRow(Base):
    """One try at delivering a notification, written before the message leaves.

    An attempt without a result after a crash is how the dispatcher knows a
    message may have gone out, so it is never sent twice blindly.
    """

    __tablename__ = "notification_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime]
    # prepared: nothing has left yet; committing: the irrevocable step (SMTP DATA,
    # SMPP submit_sm) has begun, so after a crash the message may have gone out.
    phase: Mapped[str] = mapped_column(String(16), default="prepared")
    finished_at: Mapped[datetime | None]
    result: Mapped[str | None] = mapped_column(String(16))  # sent / retry / failed / interrupted
    detail: Mapped[str | None] = mapped_column(Text)


class TemplateRow(Base):
    """A provider's own template for one event and channel (the defaults live in code)."""

    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("provider_id", "event", "channel"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    event: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(100), default="system")


class ProvisioningRequestRow(Base):
    __tablename__ = "provisioning_requests"
    __table_args__ = (
        UniqueConstraint("provider_id", "key"),
        Index("ix_provisioning_state", "state", "not_before"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    episode_id: Mapped[int | None] = mapped_column(ForeignKey("episodes.id"))
    key: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    adapter: Mapped[str] = mapped_column(String(32), default="log")
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    not_before: Mapped[datetime]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    reference: Mapped[str | None] = mapped_column(String(200))  # the peer's id for the change
    episode: Mapped[EpisodeRow | None] = relationship(foreign_keys=[episode_id], lazy="raise")


class ProvisioningRouteRow(Base):
    """Which adapter serves a provider's services of one type (`*`: any other type)."""

    __tablename__ = "provisioning_routes"
    __table_args__ = (UniqueConstraint("provider_id", "service_type"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    service_type: Mapped[str] = mapped_column(String(50))
    adapter: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(100), default="system")


class OperatorActionRow(Base):
    __tablename__ = "operator_actions"
    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]]


class NoteRow(Base):
    __tablename__ = "account_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    at: Mapped[datetime]
    author: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)


class ApiKeyRow(Base):
    """An API key: the platform's (provider_id NULL) or one provider's. Only a hash is kept."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("prefix"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str] = mapped_column(String(32))  # shown in lists; finds the key to check
    hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100), default="system")
    revoked_at: Mapped[datetime | None]


class ApiWriteRow(Base):
    """Every write through the API, with the key that made it."""

    __tablename__ = "api_writes"
    __table_args__ = (Index("ix_api_writes_provider", "provider_id", "at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id"))
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    at: Mapped[datetime]
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(500))
    status: Mapped[int] = mapped_column(Integer)


class WebhookEndpointRow(Base):
    """Where a provider wants its state-change events posted (docs/webhooks.md)."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    # The shared signing secret (or `env:NAME`); it must be kept to sign, so not hashed.
    secret: Mapped[str] = mapped_column(String(200))
    # The event types it wants; empty: all of them.
    events: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(String(200), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class WebhookDeliveryRow(Base):
    """One event for one endpoint: recorded with the change, posted until it is taken."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_provider", "provider_id", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    # The same id on every attempt and every endpoint: receivers drop repeats by it.
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    response_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None]


class ConsoleUserRow(Base):
    """A person who signs in to the web console: a provider's (or, provider_id NULL, the platform's)."""

    __tablename__ = "console_users"
    __table_args__ = (UniqueConstraint("username"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id"), index=True)
    username: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # viewer|operator|admin
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class ConsoleSessionRow(Base):
    """A signed-in browser. Only the token's hash is kept; ending the row ends the session."""

    __tablename__ = "console_sessions"
    __table_args__ = (UniqueConstraint("token_hash"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("console_users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
