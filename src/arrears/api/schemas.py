"""Request bodies: the simulation's field names and status words (SPEC §9).

Each body names itself (`resource`) so a validation error reads `invoice.amount`.
Fields left out of an upsert are left as they are; the engine's `Inputs` checks
what a schema cannot (amounts in the provider's currency, known accounts). Text the
database cannot keep is refused here, in bodies and parameters alike (`storable_params`).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, ClassVar

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from arrears.api.problems import INVALID, ApiProblem
from arrears.config import QuietHoursSpec
from arrears.domain.model import (
    AccountStatus,
    CaseStatus,
    ContactRole,
    InvoiceStatus,
    PlanStatus,
    ServiceStatus,
)

Money = Annotated[
    str,
    Field(
        description='An amount in the provider\'s currency, as a string ("12.50"); never a float',
        examples=["12.50"],
    ),
]
Id = Annotated[str, Field(min_length=1, max_length=100, description="The provider's own id")]
Instant = Annotated[
    datetime,
    Field(description="ISO 8601 instant; without a UTC offset it is the provider's local time"),
]


def unstorable(text: str) -> str | None:
    """Why the database cannot keep `text`, or None: PostgreSQL refuses the NUL character (in
    a value or a comparison alike), and a lone surrogate is no UTF-8 at all."""
    if "\x00" in text:
        return "must not contain the NUL character"
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            return "is not valid Unicode text"
    return None


def storable_params(request: Request) -> None:
    """A router dependency: path and query parameters the database can keep (422 naming the
    parameter otherwise, rather than an error from the database)."""
    for name, value in [*request.path_params.items(), *request.query_params.multi_items()]:
        why = unstorable(str(value))
        if why is not None:
            raise ApiProblem(422, f"{name}: {why}", errors=[(name, why)], type_=INVALID)


def _storable(value: Any) -> Any:
    """`unstorable` for a text field of a body, or for each text of a list field."""
    for text in value if isinstance(value, list) else [value]:
        if isinstance(text, str) and (why := unstorable(text)) is not None:
            raise ValueError(why)
    return value


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resource: ClassVar[str] = "body"

    # Every text field of every body, and lists of them (ids, groups); nested bodies check their own.
    _text = field_validator("*")(_storable)

    def data(self) -> dict[str, Any]:
        """The fields the caller sent, as `Inputs` takes them."""
        return self.model_dump(exclude_unset=True)


class ContactIn(Body):
    role: ContactRole = ContactRole.PRIMARY
    service: str | None = Field(None, description="The service a `service` contact is for")
    name: str | None = None
    email: str | None = None
    phone: str | None = Field(None, description="Stored in E.164")


class AccountServiceIn(Body):
    id: Id
    type: str | None = Field(None, examples=["mobile"])
    status: ServiceStatus = ServiceStatus.ACTIVE


class AccountIn(Body):
    resource = "account"
    id: Id | None = Field(None, description="If given, must equal the id in the path")
    status: AccountStatus = AccountStatus.ACTIVE
    groups: list[str] | None = None
    contacts: list[ContactIn] | None = Field(None, description="Replaces the account's contacts")
    services: list[AccountServiceIn] | None = Field(None, description="Upserted; services not listed stay")


class ServiceIn(Body):
    resource = "service"
    id: Id | None = None
    account: Id | None = None
    type: str | None = Field(None, examples=["broadband"])
    status: ServiceStatus = ServiceStatus.ACTIVE


class InvoiceIn(Body):
    resource = "invoice"
    id: Id | None = None
    account: Id
    amount: Money
    due: date = Field(description="The due date, a calendar date in the provider's timezone")
    issued_at: Instant | None = Field(None, description="Default: when it is first received")
    status: InvoiceStatus = InvoiceStatus.OPEN


class PaymentIn(Body):
    resource = "payment"
    id: Id | None = None
    account: Id
    amount: Money
    received_at: Instant | None = None
    allocate: bool = Field(
        True, description="false leaves it unallocated (the billing system applies it later)"
    )
    allocate_to: list[Id] = Field([], description="Pay these invoices first, in order, then oldest first")


class DisputeIn(Body):
    resource = "dispute"
    amount: Money = Field(description='The disputed part of the invoice\'s balance ("0" ends the dispute)')


class PlanIn(Body):
    resource = "plan"
    id: Id | None = None
    account: Id
    invoices: list[Id] = []
    status: PlanStatus = PlanStatus.IN_PROGRESS


class CaseIn(Body):
    resource = "case"
    id: Id | None = None
    account: Id
    status: CaseStatus = CaseStatus.OPEN


class FlagIn(Body):
    resource = "flag"
    omit: bool
    until: date | None = Field(None, description="Last local day the flag holds (inclusive)")
    reason: str = ""


_PROVIDER_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class NoticeFields(Body):
    locale: str | None = Field(None, examples=["en_AU"])
    quiet_hours: QuietHoursSpec | None = None
    email_from: str | None = None
    sms_from: str | None = None
    payment_link: str | None = None
    operations_email: str | None = None


class ProviderIn(NoticeFields):
    resource = "provider"
    key: str = Field(description="A short unique name, e.g. `au-mobile`", examples=["au-mobile"])
    name: str = ""
    timezone: str = Field(examples=["Australia/Sydney"])
    currency: str = Field(examples=["AUD"])
    sms: bool = False
    send_time: str = "09:00"

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        # Not all digits: /providers/{id} takes the numeric id or the key.
        if not _PROVIDER_KEY.match(value) or value.isdigit():
            raise ValueError("letters, digits, '_', '.', '-' (at most 64, not all digits)")
        return value


class ProviderPatch(NoticeFields):
    resource = "provider"
    name: str | None = None
    timezone: str | None = None
    sms: bool | None = None
    send_time: str | None = None


class KeyIn(Body):
    resource = "key"
    name: str = Field("", max_length=100)
