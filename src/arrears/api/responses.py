"""The shapes of the API's answers, for its OpenAPI schema (SPEC §10).

`views.py` builds the JSON as plain dicts; these models say what is in them, field by
field and in the same order, so a route's `response_model` documents its answer without
changing it. Money is a string in the provider's currency ("12.50"); instants are ISO 8601
strings; dates are `YYYY-MM-DD`. Errors are `Problem`s (see `problems`).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from arrears.api.problems import Problem
from arrears.domain.model import (
    AccountStatus,
    CaseStatus,
    ChangedBy,
    ContactRole,
    InvoiceStatus,
    PlanStatus,
    ServiceStatus,
    StatusReason,
)

__all__ = ["Problem", "problems"]

Money = Annotated[str, Field(description="An amount in the provider's currency", examples=["12.50"])]
Instant = Annotated[str, Field(description="ISO 8601 instant with the provider's UTC offset")]
Day = Annotated[str, Field(description="A calendar date, YYYY-MM-DD")]
Id = Annotated[str, Field(description="The provider's own id")]
T = TypeVar("T")


class Shape(BaseModel):
    """A closed shape: every field the view writes, and no other."""

    model_config = ConfigDict(extra="forbid")


class Page(Shape, Generic[T]):
    """One page of a list; `next_cursor` asks for the next (null on the last page)."""

    items: list[T]
    next_cursor: str | None


class Items(Shape, Generic[T]):
    """A whole list in one answer."""

    items: list[T]


# -- providers and keys ------------------------------------------------------------------------


class QuietHours(Shape):
    start: str = Field(examples=["21:00"])
    end: str = Field(examples=["08:00"])


class Provider(Shape):
    id: int
    key: str
    name: str
    timezone: str
    currency: str
    sms: bool
    send_time: str = Field(examples=["09:00"])
    locale: str
    quiet_hours: QuietHours | None = Field(description="No SMS in these local hours; null: none")
    email_from: str | None
    sms_from: str | None
    payment_link: str | None
    operations_email: str | None
    created_at: Instant


class NewProvider(Provider):
    api_key: str = Field(description="The provider's first API key, shown only this once")


class ProviderPage(Page[Provider]):
    pass


class ApiKey(Shape):
    prefix: str = Field(description="Shown in lists; the start of the key after `arr_`")
    name: str
    provider_id: int | None
    created_at: str = Field(description="ISO 8601 instant in UTC")
    created_by: str
    revoked_at: str | None = Field(description="ISO 8601 instant in UTC; null while the key is valid")


class NewApiKey(ApiKey):
    api_key: str = Field(description="The key itself, shown only this once")


class ApiKeyPage(Page[ApiKey]):
    pass


# -- billing records ---------------------------------------------------------------------------


class AccountSummary(Shape):
    id: Id
    status: AccountStatus
    status_reason: StatusReason | None
    stage: str = Field(description='The stage of the account\'s episode as of its last evaluation, or "none"')
    projected_suspension: Instant | None
    omit: bool


class AccountPage(Page[AccountSummary]):
    pass


class PendingProvisioning(Shape):
    id: int
    action: str
    state: str
    adapter: str
    attempts: int
    last_error: str | None
    created_at: Instant


class Service(Shape):
    id: Id
    account: Id
    type: str
    status: ServiceStatus
    changed_by: ChangedBy
    pending_provisioning: list[PendingProvisioning] = Field(
        description="Provisioning requests still on their way to the network"
    )


class Contact(Shape):
    role: ContactRole
    service: Id | None
    name: str
    email: str | None
    phone: str | None = Field(description="E.164")


class AccountFlag(Shape):
    omit: bool
    until: Day | None
    reason: str | None


class Figures(Shape):
    total_owing: Money
    overdue_balance: Money
    days_overdue: int
    disputed: Money
    unallocated: Money


class RuleSetRef(Shape):
    name: str
    version: int


class AccountEpisode(Shape):
    id: int
    stage: str
    started_at: Instant
    ended_at: Instant | None
    end_reason: str | None
    rule_set_id: int | None


class Account(Shape):
    """An account as it stands, evaluated at `as_of`."""

    id: Id
    status: AccountStatus
    status_reason: StatusReason | None
    stage: str
    groups: list[str]
    contacts: list[Contact]
    services: list[Service]
    flag: AccountFlag
    figures: Figures
    exclusions: list[str] = Field(description="Why automatic action is held off now")
    rule_set: RuleSetRef | None = Field(description="The rule set governing the account now")
    target_stage: str | None
    projected_suspension: Instant | None
    episode: AccountEpisode | None = Field(description="The episode the account is in, if any")
    as_of: Instant


class Flag(Shape):
    account: Id
    omit: bool
    until: Day | None = Field(description="Last local day the flag holds (inclusive)")
    reason: str | None


class Episode(Shape):
    id: int
    stage: str
    started_at: Instant
    ended_at: Instant | None
    end_reason: str | None
    rule_set: RuleSetRef | None


class HistoryLine(BaseModel):
    """A history line: these fields, and the line's own (`from`, `to`, `reason`, `reasons`,
    `service`, ...) as the engine wrote them."""

    model_config = ConfigDict(extra="allow")
    id: int
    at: Instant
    kind: str
    actor: str
    episode: int | None
    rule_set: RuleSetRef | None


class History(Shape):
    account: Id
    episodes: list[Episode]
    items: list[HistoryLine] = Field(description="History lines, oldest first")
    next_cursor: str | None


class Invoice(Shape):
    id: Id
    account: Id
    amount: Money
    balance: Money = Field(description="What is still owed on it")
    disputed: Money
    due: Day
    issued_at: Instant
    status: InvoiceStatus


class InvoicePage(Page[Invoice]):
    pass


class Allocation(Shape):
    invoice: Id
    amount: Money
    at: Instant


class Payment(Shape):
    id: Id
    account: Id
    amount: Money
    unallocated: Money
    received_at: Instant
    allocations: list[Allocation]


class PaymentPage(Page[Payment]):
    pass


class Dispute(Shape):
    invoice: Id
    amount: Money = Field(description="The disputed part of the invoice")
    balance: Money


class DisputePage(Page[Dispute]):
    pass


class Plan(Shape):
    id: Id
    account: Id
    status: PlanStatus
    invoices: list[Id]


class PlanPage(Page[Plan]):
    pass


class Case(Shape):
    id: Id
    account: Id
    status: CaseStatus


class CasePage(Page[Case]):
    pass


# -- configuration -----------------------------------------------------------------------------


class RuleSetVersion(Shape):
    name: str
    version: int
    effective_at: Instant
    created_at: Instant
    created_by: str
    body: dict[str, Any] = Field(description="The rule set as given (the simulation's `rules`)")


class RuleSetList(Items[RuleSetVersion]):
    pass


class RuleSetVersions(Shape):
    name: str
    versions: list[RuleSetVersion] = Field(description="Every version, oldest first")


class EventMapping(BaseModel):
    """One mapping of an event as stored (the simulation's `events.<event>` shape)."""

    # Open: the stored body may carry fields of later versions.
    model_config = ConfigDict(extra="allow")
    key: str
    enabled: bool
    channels: list[str]
    recipients: list[str]
    days_before: int
    days_after: int
    hours_before: int
    enforce: bool
    after_provisioning: bool
    quiet_hours: bool
    since: Instant


class EventMappings(Shape):
    event: str
    enabled: bool = Field(description="Whether any of its mappings is enabled")
    mappings: list[EventMapping]


class EventMappingList(Items[EventMappings]):
    pass


class Template(Shape):
    event: str
    channel: str
    own: bool = Field(description="The provider's own template (true) or arrears' default (false)")
    subject: str | None
    text: str
    html: str | None


class SmsLength(Shape):
    encoding: str = Field(examples=["GSM-7", "UCS-2"])
    units: int
    segments: int
    per_segment: int


class Preview(Shape):
    """A template rendered."""

    subject: str | None
    text: str
    html: str | None
    sms: SmsLength | None


class SavedTemplate(Template):
    sample: Preview = Field(description="The template rendered for a sample of its event")


# -- what is coming and what went out ------------------------------------------------------------


class ForecastItem(Shape):
    account: Id
    projected_suspension: Instant
    status: AccountStatus
    stage: str | None


class Forecast(Shape):
    until: Instant
    items: list[ForecastItem] = Field(description="Soonest first")


class Notification(Shape):
    id: int
    account: Id
    event: str
    channel: str
    to: str | None
    service: Id | None
    invoice: Id | None
    state: str
    reason: str | None
    due_at: str = Field(description="ISO 8601 instant in UTC")
    attempts: int
    next_attempt_at: str | None
    sent_at: str | None
    reference: str | None = Field(description="The peer's message id")
    delivery: str | None = Field(description="The state of a delivery receipt")
    key: str


class NotificationList(Items[Notification]):
    pass


class ProvisioningRequest(Shape):
    id: int
    provider: str
    account: Id
    service: Id
    action: str
    adapter: str
    state: str
    attempts: int
    last_error: str | None
    reference: str | None = Field(description="The peer's id for the change")
    not_before: str = Field(description="ISO 8601 instant in UTC")
    created_at: str
    updated_at: str
    key: str


class ProvisioningRequestList(Items[ProvisioningRequest]):
    pass


class Settled(Shape):
    id: int
    state: str
    action: str
    key: str


class CallbackSettled(Shape):
    id: int
    state: str


# -- problems ----------------------------------------------------------------------------------

PROBLEMS = {
    401: "No valid API key",
    403: "The wrong kind of key for this endpoint",
    404: "No such record (of this provider)",
    409: "A conflicting write; `detail` says what",
    413: "The request body is too large",
    415: "The request body is of a media type this endpoint does not take",
    422: "Invalid input; `errors` names each field",
    429: "Over the key's rate limit; see Retry-After",
}


def problems(*statuses: int, notes: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """`responses=` for these problem statuses (`application/problem+json`, see `problems.install`),
    described by `notes` where a route says more than the usual words."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        text = (notes or {}).get(status) or PROBLEMS.get(status) or HTTPStatus(status).phrase
        out[status] = {"model": Problem, "description": text}
    return out


# What every route for a provider's key may answer (the routers' `responses=`).
PROVIDER_KEY = problems(401, 403, 422, 429, notes={403: "Not a provider's key"})
