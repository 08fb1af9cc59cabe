"""The billing feed: a provider's own records, addressed by its own ids and upserted with PUT.

Every PUT runs the engine's `Inputs` and settles in the same transaction, so the
answer shows the account as the input left it (a payment that clears the
arrears answers with the account already restored). Replaying a PUT changes
nothing: a billing system can resend its feed safely.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from arrears.api import schemas, views
from arrears.api.context import Caller, provider_caller
from arrears.api.problems import Problem, not_found
from arrears.config import ConfigError
from arrears.domain.clock import at_local
from arrears.domain.model import AccountStatus, CaseStatus, InvoiceStatus, PlanStatus
from arrears.engine.inputs import Inputs
from arrears.store.tables import (
    AccountRow,
    CaseRow,
    GroupRow,
    InvoiceRow,
    PaymentRow,
    PlanRow,
    ProviderRow,
    ServiceRow,
)

router = APIRouter(
    responses={
        401: {"model": Problem, "description": "No valid API key"},
        403: {"model": Problem, "description": "Not a provider's key"},
        422: {"model": Problem, "description": "Invalid input; `errors` names each field"},
        429: {"model": Problem, "description": "Over the key's rate limit; see Retry-After"},
    },
)
CallerDep = Annotated[Caller, Depends(provider_caller)]
Limit = Annotated[int, Query(ge=1, le=views.MAX_LIMIT, description="Items per page")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]
AccountFilter = Annotated[str | None, Query(description="Only this account's")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such record (of this provider)"}
}


# -- helpers (no HTTP beyond the 404s) --------------------------------------------------------


def tenant(session: Session, caller: Caller) -> views.Tenant:
    return views.Tenant.of(session.get_one(ProviderRow, caller.provider_id))


def _same_id(body: schemas.Body, path_id: str) -> None:
    given = getattr(body, "id", None)
    if given is not None and given != path_id:
        raise ConfigError(f"{body.resource}.id", f"{given!r} is not the id in the path ({path_id!r})")


def _instant(value: datetime, tz: ZoneInfo) -> datetime:
    """An instant from the feed; one without a UTC offset is provider-local (SPEC §9)."""
    if value.tzinfo is None:
        return at_local(value.date(), value.time(), tz)
    return value.astimezone(UTC)


def _account(session: Session, caller: Caller, ext_id: str) -> AccountRow:
    row = views.owned(session, AccountRow, caller.provider_id, ext_id)
    if row is None:
        raise not_found("account", ext_id)
    return row


def _account_id_filter(session: Session, caller: Caller, ext_id: str | None) -> int | None:
    """The internal id an `?account=` filter stands for (-1 matches nothing)."""
    if ext_id is None:
        return None
    row = views.owned(session, AccountRow, caller.provider_id, ext_id)
    return row.id if row is not None else -1


def _owned_query(
    session: Session, caller: Caller, row_type: Any, account: str | None, status: Any = None, *where: Any
) -> Select[Any]:
    """The caller's rows of `row_type`, narrowed by `?account=` and `?status=` when given."""
    stmt = select(row_type).where(row_type.provider_id == caller.provider_id, *where)
    account_id = _account_id_filter(session, caller, account)
    if account_id is not None:
        stmt = stmt.where(row_type.account_id == account_id)
    if status is not None:
        stmt = stmt.where(row_type.status == status.value)
    return stmt


def _listing(
    session: Session,
    stmt: Select[Any],
    id_column: Any,
    limit: int,
    cursor: str | None,
    view: Any,
) -> dict[str, Any]:
    rows, next_cursor = views.page_rows(session, stmt, id_column, limit, cursor)
    return {"items": views.with_accounts(session, rows, view), "next_cursor": next_cursor}


# -- accounts ---------------------------------------------------------------------------------------


@router.get("/accounts", tags=["accounts"], summary="List accounts")
def list_accounts(
    caller: CallerDep,
    limit: Limit = views.DEFAULT_LIMIT,
    cursor: Cursor = None,
    status: Annotated[AccountStatus | None, Query(description="Only accounts in this status")] = None,
    group: Annotated[str | None, Query(description="Only accounts in this group")] = None,
) -> dict[str, Any]:
    """Accounts in id order; stage and projected suspension as of each account's last evaluation."""
    with caller.read() as s:
        t = tenant(s, caller)
        stmt = select(AccountRow).where(AccountRow.provider_id == caller.provider_id)
        if status is not None:
            stmt = stmt.where(AccountRow.status == status.value)
        if group is not None:
            stmt = stmt.where(AccountRow.id.in_(select(GroupRow.account_id).where(GroupRow.name == group)))
        rows, next_cursor = views.page_rows(s, stmt, AccountRow.id, limit, cursor)
        return {"items": [views.account_summary(r, t) for r in rows], "next_cursor": next_cursor}


@router.put("/accounts/{account_id}", tags=["accounts"], summary="Create or update an account")
def put_account(account_id: str, body: schemas.AccountIn, caller: CallerDep) -> dict[str, Any]:
    """Upsert: status, groups, contacts (replaced when given) and services (upserted)."""
    _same_id(body, account_id)
    with caller.inputs() as inputs:
        row = inputs.put_account({**body.data(), "id": account_id})
        inputs.settle()
        return views.account_detail(inputs.session, row, caller.now)


@router.get(
    "/accounts/{account_id}", tags=["accounts"], summary="An account as it stands", responses=NOT_FOUND
)
def get_account(account_id: str, caller: CallerDep) -> dict[str, Any]:
    """Status, stage, services (with pending provisioning), figures, exclusions, the governing
    rule set and the projected suspension, evaluated now."""
    with caller.read() as s:
        return views.account_detail(s, _account(s, caller, account_id), caller.now)


@router.get(
    "/accounts/{account_id}/history", tags=["accounts"], summary="Episodes and history", responses=NOT_FOUND
)
def get_history(
    account_id: str, caller: CallerDep, limit: Limit = views.DEFAULT_LIMIT, cursor: Cursor = None
) -> dict[str, Any]:
    """Every episode, and the history lines (oldest first, paged), each with its reason."""
    with caller.read() as s:
        return views.history_page(s, _account(s, caller, account_id), tenant(s, caller), limit, cursor)


@router.put(
    "/accounts/{account_id}/services/{service_id}",
    tags=["accounts"],
    summary="Create or update a service",
    responses=NOT_FOUND,
)
def put_service(
    account_id: str, service_id: str, body: schemas.ServiceIn, caller: CallerDep
) -> dict[str, Any]:
    _same_id(body, service_id)
    if body.account is not None and body.account != account_id:
        raise ConfigError("service.account", f"{body.account!r} is not the account in the path")
    with caller.inputs() as inputs:
        _account(inputs.session, caller, account_id)
        row = inputs.put_service({**body.data(), "id": service_id, "account": account_id})
        inputs.settle()
        return views.service_detail(inputs.session, row, tenant(inputs.session, caller))


@router.get(
    "/accounts/{account_id}/services/{service_id}",
    tags=["accounts"],
    summary="A service",
    responses=NOT_FOUND,
)
def get_service(account_id: str, service_id: str, caller: CallerDep) -> dict[str, Any]:
    with caller.read() as s:
        account = _account(s, caller, account_id)
        row = views.owned(s, ServiceRow, caller.provider_id, service_id)
        if row is None or row.account_id != account.id:
            raise not_found("service", service_id)
        return views.service_detail(s, row, tenant(s, caller))


@router.put(
    "/accounts/{account_id}/flag",
    tags=["accounts"],
    summary="Set or clear the omit flag",
    responses=NOT_FOUND,
)
def put_flag(account_id: str, body: schemas.FlagIn, caller: CallerDep) -> dict[str, Any]:
    """Omit the account from automatic suspension (until a local date, inclusive), or stop omitting it."""
    with caller.inputs() as inputs:
        row = _account(inputs.session, caller, account_id)
        until = body.until if body.omit else None
        reason = body.reason if body.omit else None
        # The same flag again is no new operator action: a replay changes nothing.
        if (row.omit, row.omit_until, row.omit_reason or None) != (body.omit, until, reason or None):
            inputs.set_flag(account_id, body.omit, until, body.reason)
            inputs.settle()
        return views.flag_view(row)


@router.get("/accounts/{account_id}/flag", tags=["accounts"], summary="The omit flag", responses=NOT_FOUND)
def get_flag(account_id: str, caller: CallerDep) -> dict[str, Any]:
    with caller.read() as s:
        return views.flag_view(_account(s, caller, account_id))


# -- invoices ---------------------------------------------------------------------------------------


@router.get("/invoices", tags=["invoices"], summary="List invoices")
def list_invoices(
    caller: CallerDep,
    limit: Limit = views.DEFAULT_LIMIT,
    cursor: Cursor = None,
    account: AccountFilter = None,
    status: Annotated[InvoiceStatus | None, Query(description="Only invoices in this status")] = None,
) -> dict[str, Any]:
    with caller.read() as s:
        t = tenant(s, caller)
        stmt = _owned_query(s, caller, InvoiceRow, account, status)
        return _listing(s, stmt, InvoiceRow.id, limit, cursor, lambda r, a: views.invoice_view(r, a, t))


@router.put("/invoices/{invoice_id}", tags=["invoices"], summary="Create or update an invoice")
def put_invoice(invoice_id: str, body: schemas.InvoiceIn, caller: CallerDep) -> dict[str, Any]:
    """Upsert. Amounts already allocated to it stay allocated: its balance is the amount less them."""
    _same_id(body, invoice_id)
    with caller.inputs() as inputs:
        data = {**body.data(), "id": invoice_id}
        if body.issued_at is not None:
            data["issued_at"] = _instant(body.issued_at, inputs.provider.tz)
        else:
            existing = views.owned(inputs.session, InvoiceRow, caller.provider_id, invoice_id)
            # Received again without an issue instant: it keeps the one it got first.
            data["issued_at"] = existing.issued_at if existing is not None else caller.now
        row = inputs.put_invoice(data)
        inputs.settle()
        return views.invoice_view(row, body.account, tenant(inputs.session, caller))


@router.get("/invoices/{invoice_id}", tags=["invoices"], summary="An invoice", responses=NOT_FOUND)
def get_invoice(invoice_id: str, caller: CallerDep) -> dict[str, Any]:
    with caller.read() as s:
        row = views.owned(s, InvoiceRow, caller.provider_id, invoice_id)
        if row is None:
            raise not_found("invoice", invoice_id)
        return views.with_accounts(s, [row], lambda r, a: views.invoice_view(r, a, tenant(s, caller)))[0]


# -- payments ---------------------------------------------------------------------------------------


@router.get("/payments", tags=["payments"], summary="List payments")
def list_payments(
    caller: CallerDep,
    limit: Limit = views.DEFAULT_LIMIT,
    cursor: Cursor = None,
    account: AccountFilter = None,
) -> dict[str, Any]:
    with caller.read() as s:
        stmt = _owned_query(s, caller, PaymentRow, account)
        rows, next_cursor = views.page_rows(s, stmt, PaymentRow.id, limit, cursor)
        return {"items": views.payment_views(s, rows, tenant(s, caller)), "next_cursor": next_cursor}


@router.put("/payments/{payment_id}", tags=["payments"], summary="Record a payment")
def put_payment(payment_id: str, body: schemas.PaymentIn, caller: CallerDep) -> dict[str, Any]:
    """A payment is recorded once: the same payment again changes nothing (it is not allocated
    twice); the same id with another amount or account is refused."""
    _same_id(body, payment_id)
    with caller.inputs() as inputs:
        data = {**body.data(), "id": payment_id}
        data["received_at"] = (
            _instant(body.received_at, inputs.provider.tz) if body.received_at else caller.now
        )
        row = inputs.put_payment(data)
        inputs.settle()
        return views.payment_views(inputs.session, [row], tenant(inputs.session, caller))[0]


@router.post(
    "/payments/{payment_id}/allocate",
    tags=["payments"],
    summary="Allocate what is unallocated",
    responses=NOT_FOUND,
)
def allocate_payment(payment_id: str, caller: CallerDep) -> dict[str, Any]:
    """Allocate the payment's unallocated part to open invoices, oldest first."""
    with caller.inputs() as inputs:
        row = views.owned(inputs.session, PaymentRow, caller.provider_id, payment_id)
        if row is None:
            raise not_found("payment", payment_id)
        inputs.allocate_payment(payment_id)
        inputs.settle()
        return views.payment_views(inputs.session, [row], tenant(inputs.session, caller))[0]


@router.get("/payments/{payment_id}", tags=["payments"], summary="A payment", responses=NOT_FOUND)
def get_payment(payment_id: str, caller: CallerDep) -> dict[str, Any]:
    with caller.read() as s:
        row = views.owned(s, PaymentRow, caller.provider_id, payment_id)
        if row is None:
            raise not_found("payment", payment_id)
        return views.payment_views(s, [row], tenant(s, caller))[0]


# -- disputes -----------------------------------------------------------------------------------------


@router.get("/disputes", tags=["disputes"], summary="List disputed invoices")
def list_disputes(
    caller: CallerDep,
    limit: Limit = views.DEFAULT_LIMIT,
    cursor: Cursor = None,
    account: AccountFilter = None,
) -> dict[str, Any]:
    with caller.read() as s:
        t = tenant(s, caller)
        stmt = _owned_query(s, caller, InvoiceRow, account, None, InvoiceRow.disputed > 0)
        rows, next_cursor = views.page_rows(s, stmt, InvoiceRow.id, limit, cursor)
        return {"items": [views.dispute_view(r, t) for r in rows], "next_cursor": next_cursor}


@router.put(
    "/disputes/{invoice_id}",
    tags=["disputes"],
    summary="Set an invoice's disputed amount",
    responses=NOT_FOUND,
)
def put_dispute(invoice_id: str, body: schemas.DisputeIn, caller: CallerDep) -> dict[str, Any]:
    with caller.inputs() as inputs:
        row = views.owned(inputs.session, InvoiceRow, caller.provider_id, invoice_id)
        if row is None:
            raise not_found("invoice", invoice_id)
        inputs.set_dispute(invoice_id, body.amount)
        inputs.settle()
        return views.dispute_view(row, tenant(inputs.session, caller))


@router.get("/disputes/{invoice_id}", tags=["disputes"], summary="An invoice's dispute", responses=NOT_FOUND)
def get_dispute(invoice_id: str, caller: CallerDep) -> dict[str, Any]:
    with caller.read() as s:
        row = views.owned(s, InvoiceRow, caller.provider_id, invoice_id)
        if row is None:
            raise not_found("invoice", invoice_id)
        return views.dispute_view(row, tenant(s, caller))


# -- payment plans and complaint cases ------------------------------------------------------------------


@router.get("/plans", tags=["plans"], summary="List payment plans")
def list_plans(
    caller: CallerDep,
    limit: Limit = views.DEFAULT_LIMIT,
    cursor: Cursor = None,
    account: AccountFilter = None,
    status: Annotated[PlanStatus | None, Query(description="Only plans in this status")] = None,
) -> dict[str, Any]:
    with caller.read() as s:
        stmt = _owned_query(s, caller, PlanRow, account, status)
        return _listing(s, stmt, PlanRow.id, limit, cursor, views.plan_view)


@router.put("/plans/{plan_id}", tags=["plans"], summary="Create or update a payment plan")
def put_plan(plan_id: str, body: schemas.PlanIn, caller: CallerDep) -> dict[str, Any]:
    _same_id(body, plan_id)
    with caller.inputs() as inputs:
        inputs.put_plan({**body.data(), "id": plan_id})
        inputs.settle()
        return _plan(inputs, plan_id)


def _plan(inputs: Inputs, plan_id: str) -> dict[str, Any]:
    row = views.owned(inputs.session, PlanRow, inputs.provider.id, plan_id)
    assert row is not None
    return views.with_accounts(inputs.session, [row], views.plan_view)[0]


@router.get("/plans/{plan_id}", tags=["plans"], summary="A payment plan", responses=NOT_FOUND)
def get_plan(plan_id: str, caller: CallerDep) -> dict[str, Any]:
    with caller.read() as s:
        row = views.owned(s, PlanRow, caller.provider_id, plan_id)
        if row is None:
            raise not_found("plan", plan_id)
        return views.with_accounts(s, [row], views.plan_view)[0]


@router.get("/cases", tags=["cases"], summary="List complaint cases")
def list_cases(
    caller: CallerDep,
    limit: Limit = views.DEFAULT_LIMIT,
    cursor: Cursor = None,
    account: AccountFilter = None,
    status: Annotated[CaseStatus | None, Query(description="Only cases in this status")] = None,
) -> dict[str, Any]:
    with caller.read() as s:
        stmt = _owned_query(s, caller, CaseRow, account, status)
        return _listing(s, stmt, CaseRow.id, limit, cursor, views.case_view)


@router.put("/cases/{case_id}", tags=["cases"], summary="Create or update a complaint case")
def put_case(case_id: str, body: schemas.CaseIn, caller: CallerDep) -> dict[str, Any]:
    _same_id(body, case_id)
    with caller.inputs() as inputs:
        inputs.put_case({**body.data(), "id": case_id})
        inputs.settle()
        row = views.owned(inputs.session, CaseRow, caller.provider_id, case_id)
        assert row is not None
        return views.with_accounts(inputs.session, [row], views.case_view)[0]


@router.get("/cases/{case_id}", tags=["cases"], summary="A complaint case", responses=NOT_FOUND)
def get_case(case_id: str, caller: CallerDep) -> dict[str, Any]:
    with caller.read() as s:
        row = views.owned(s, CaseRow, caller.provider_id, case_id)
        if row is None:
            raise not_found("case", case_id)
        return views.with_accounts(s, [row], views.case_view)[0]
