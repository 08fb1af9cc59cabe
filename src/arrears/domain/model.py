"""Domain words and the snapshot of one account that every decision reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum


class AccountStatus(StrEnum):
    PREACTIVE = "preactive"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    INACTIVE = "inactive"
    CANCELLED = "cancelled"


class StatusReason(StrEnum):
    AUTO = "auto"
    MANUAL = "manual"


class ServiceStatus(StrEnum):
    PREACTIVE = "preactive"
    ACTIVE = "active"
    RESTRICTED = "restricted"
    SUSPENDED = "suspended"
    DEACTIVATED = "deactivated"
    CANCELLED = "cancelled"


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    WRITTEN_OFF = "written_off"


class PlanStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    BROKEN = "broken"


class CaseStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class ContactRole(StrEnum):
    PRIMARY = "primary"
    BILLING = "billing"
    SERVICE = "service"


class ChangedBy(StrEnum):
    """Who put a service in its current status."""

    EPISODE = "episode"
    OPERATOR = "operator"
    EXTERNAL = "external"


# Statuses a stage may move services to.
STAGE_STATUSES = (ServiceStatus.RESTRICTED, ServiceStatus.SUSPENDED, ServiceStatus.DEACTIVATED)


@dataclass(frozen=True)
class Invoice:
    id: str
    issued_at: datetime
    due: date
    amount: Decimal
    balance: Decimal
    status: InvoiceStatus
    disputed: Decimal = Decimal("0")

    def is_open_at(self, t: datetime) -> bool:
        return self.issued_at <= t and self.status is InvoiceStatus.OPEN and self.balance > 0


@dataclass(frozen=True)
class Service:
    id: str
    type: str
    status: ServiceStatus
    changed_by: ChangedBy = ChangedBy.EXTERNAL
    in_episode: bool = False  # the current episode put it in its status


@dataclass(frozen=True)
class Contact:
    role: ContactRole
    name: str = ""
    email: str | None = None
    phone: str | None = None
    service: str | None = None  # for role `service`: the service it is the contact of


@dataclass(frozen=True)
class PaymentPlan:
    id: str
    status: PlanStatus
    invoices: frozenset[str]


@dataclass(frozen=True)
class OmitFlag:
    reason: str
    until: date | None = None  # holds through the end of this local date

    def holds_on(self, today: date) -> bool:
        return self.until is None or today <= self.until


@dataclass(frozen=True)
class Episode:
    id: int
    stage: str
    started_at: datetime


@dataclass(frozen=True)
class AccountSnapshot:
    """Everything the decision for one account reads, at one instant."""

    id: str
    status: AccountStatus
    status_reason: StatusReason | None = None
    groups: frozenset[str] = frozenset()
    contacts: tuple[Contact, ...] = ()
    services: tuple[Service, ...] = ()
    invoices: tuple[Invoice, ...] = ()
    unallocated: Decimal = Decimal("0")
    plans: tuple[PaymentPlan, ...] = ()
    open_cases: int = 0
    omit: OmitFlag | None = None
    episode: Episode | None = None
    # The last operator restore of an auto-suspended account (for resuspend_grace).
    operator_restored_at: datetime | None = None
    # When the account set out on its current path to suspension (None: not heading).
    path_started_at: datetime | None = None
    # Sent suspension warnings of the current path: mapping key -> instant it went out.
    warnings_sent: dict[str, datetime] = field(default_factory=dict)
    # Keys of invoice notice occurrences already recorded (sent or skipped).
    notices_recorded: frozenset[str] = frozenset()
    # What was last written about holding it back, so the history speaks only of changes.
    excluded_reasons: tuple[str, ...] | None = None
    shadow_stage: str | None = None
