"""Upserting one of a provider's billing records, as the feed's `PUT`s and the bulk import both do.

Each function takes the ids a `PUT` has in its path and the validated body, and
changes the store through the engine's `Inputs` (which marks the account
touched); the caller settles and commits. Errors name the field at fault
(`ConfigError`), or say that the record addressed does not exist (`NotFound`,
a 404 to a `PUT`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from arrears.api import schemas, views
from arrears.api.problems import ApiProblem
from arrears.config import ConfigError
from arrears.domain.clock import at_local
from arrears.engine.inputs import Inputs
from arrears.store.tables import AccountRow, CaseRow, InvoiceRow, PaymentRow, PlanRow, ServiceRow


class NotFound(ApiProblem):
    """The record a write is addressed to is not the provider's (unknown, or another provider's)."""

    def __init__(self, what: str, ext_id: str, field: str):
        # The same answer whether the id is unknown or another provider's: nothing leaks.
        super().__init__(404, f"no {what} {ext_id!r}")
        self.field = field
        self.message = f"unknown {what} {ext_id!r}"


def same_id(body: schemas.Body, path_id: str) -> None:
    given = getattr(body, "id", None)
    if given is not None and given != path_id:
        raise ConfigError(f"{body.resource}.id", f"{given!r} is not the id in the path ({path_id!r})")


def instant(value: datetime, tz: ZoneInfo) -> datetime:
    """An instant from the feed; one without a UTC offset is provider-local (SPEC §9)."""
    if value.tzinfo is None:
        return at_local(value.date(), value.time(), tz)
    return value.astimezone(UTC)


def account(inputs: Inputs, ext_id: str, field: str = "account") -> AccountRow:
    row = views.owned(inputs.session, AccountRow, inputs.provider.id, ext_id)
    if row is None:
        raise NotFound("account", ext_id, field)
    return row


def put_account(inputs: Inputs, account_id: str, body: schemas.AccountIn) -> AccountRow:
    same_id(body, account_id)
    return inputs.put_account({**body.data(), "id": account_id})


def put_service(inputs: Inputs, account_id: str, service_id: str, body: schemas.ServiceIn) -> ServiceRow:
    same_id(body, service_id)
    if body.account is not None and body.account != account_id:
        raise ConfigError("service.account", f"{body.account!r} is not the account in the path")
    account(inputs, account_id)
    return inputs.put_service({**body.data(), "id": service_id, "account": account_id})


def put_flag(inputs: Inputs, account_id: str, body: schemas.FlagIn) -> AccountRow:
    row = account(inputs, account_id)
    until = body.until if body.omit else None
    reason = body.reason if body.omit else None
    # The same flag again is no new operator action: a replay changes nothing.
    if (row.omit, row.omit_until, row.omit_reason or None) != (body.omit, until, reason or None):
        inputs.set_flag(account_id, body.omit, until, body.reason)
    return row


def put_invoice(inputs: Inputs, invoice_id: str, body: schemas.InvoiceIn) -> InvoiceRow:
    same_id(body, invoice_id)
    data = {**body.data(), "id": invoice_id}
    if body.issued_at is not None:
        data["issued_at"] = instant(body.issued_at, inputs.provider.tz)
    else:
        existing = views.owned(inputs.session, InvoiceRow, inputs.provider.id, invoice_id)
        # Received again without an issue instant: it keeps the one it got first.
        data["issued_at"] = existing.issued_at if existing is not None else inputs.now
    return inputs.put_invoice(data)


def put_payment(inputs: Inputs, payment_id: str, body: schemas.PaymentIn) -> PaymentRow:
    same_id(body, payment_id)
    data = {**body.data(), "id": payment_id}
    data["received_at"] = instant(body.received_at, inputs.provider.tz) if body.received_at else inputs.now
    return inputs.put_payment(data)


def put_dispute(inputs: Inputs, invoice_id: str, body: schemas.DisputeIn) -> InvoiceRow:
    row = views.owned(inputs.session, InvoiceRow, inputs.provider.id, invoice_id)
    if row is None:
        raise NotFound("invoice", invoice_id, "invoice")
    inputs.set_dispute(invoice_id, body.amount)
    return row


def put_plan(inputs: Inputs, plan_id: str, body: schemas.PlanIn) -> PlanRow:
    same_id(body, plan_id)
    inputs.put_plan({**body.data(), "id": plan_id})
    row = views.owned(inputs.session, PlanRow, inputs.provider.id, plan_id)
    assert row is not None
    return row


def put_case(inputs: Inputs, case_id: str, body: schemas.CaseIn) -> CaseRow:
    same_id(body, case_id)
    inputs.put_case({**body.data(), "id": case_id})
    row = views.owned(inputs.session, CaseRow, inputs.provider.id, case_id)
    assert row is not None
    return row
