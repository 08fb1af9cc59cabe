"""The billing feed: a provider's own records, addressed by its own ids and upserted with PUT.

Every PUT runs the engine's `Inputs` and settles in the same transaction, so the
answer shows the account as the input left it (a payment that clears the
arrears answers with the account already restored). Replaying a PUT changes
nothing: a billing system can resend its feed safely.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from arrears.api import records, responses, schemas, views
from arrears.api.context import Caller, provider_caller
from arrears.api.problems import not_found
from arrears.domain.model import AccountStatus, CaseStatus, InvoiceStatus, PlanStatus
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

router = APIRouter(dependencies=[Depends(schemas.storable_params)], responses=responses.PROVIDER_KEY)
CallerDep = Annotated[Caller, Depends(provider_caller)]
Limit = Annotated[int, Query(ge=1, le=views.MAX_LIMIT, description="Items per page")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]
AccountFilter = Annotated[str | None, Query(description="Only this account's")]
NOT_FOUND = responses.problems(404)


# -- helpers (no HTTP beyond the 404s) --------------------------------------------------------


def tenant(session: Session, caller: Caller) -> views.Tenant:
    return views.Tenant.of(session.get_one(ProviderRow, caller.provider_id))


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


@router.get("/accounts", tags=["accounts"], summary="List accounts", response_model=responses.AccountPage)
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


@router.put(
    "/accounts/{account_id}",
    tags=["accounts"],
    summary="Create or update an account",
    response_model=responses.Account,
    responses=responses.problems(409, 413),
)
def put_account(account_id: str, body: schemas.AccountIn, caller: CallerDep) -> dict[str, Any]:
    """Upsert: status, groups, contacts (replaced when given) and services (upserted)."""
    with caller.inputs() as inputs:
        row = records.put_account(inputs, account_id, body)
        inputs.settle()
        return views.account_detail(inputs.session, row, caller.now)


@router.get(
    "/accounts/{account_id}",
    tags=["accounts"],
    summary="An account as it stands",
    response_model=responses.Account,
    responses=NOT_FOUND,
)
def get_account(account_id: str, caller: CallerDep) -> dict[str, Any]:
    """Status, stage, services (with pending provisioning), figures, exclusions, the governing
    rule set and the projected suspension, evaluated now."""
    with caller.read() as s:
        return views.account_detail(s, caller.owned(s, AccountRow, account_id, "account"), caller.now)


@router.get(
    "/accounts/{account_id}/history",
    tags=["accounts"],
    summary="Episodes and history",
    response_model=responses.History,
    responses=NOT_FOUND,
)
def get_history(
    account_id: str, caller: CallerDep, limit: Limit = views.DEFAULT_LIMIT, cursor: Cursor = None
) -> dict[str, Any]:
    """Every episode, and the history lines (oldest first, paged), each with its reason."""
    with caller.read() as s:
        return views.history_page(
            s, caller.owned(s, AccountRow, account_id, "account"), tenant(s, caller), limit, cursor
        )


@router.put(
    "/accounts/{account_id}/services/{service_id}",
    tags=["accounts"],
    summary="Create or update a service",
    response_model=responses.Service,
    responses=responses.problems(404, 409, 413),
)
def put_service(
    account_id: str, service_id: str, body: schemas.ServiceIn, caller: CallerDep
) -> dict[str, Any]:
    with caller.inputs() as inputs:
        row = records.put_service(inputs, account_id, service_id, body)
        inputs.settle()
        return views.service_detail(inputs.session, row, tenant(inputs.session, caller))


@router.get(
    "/accounts/{account_id}/services/{service_id}",
    tags=["accounts"],
    summary="A service",
    response_model=responses.Service,
    responses=NOT_FOUND,
)
def get_service(account_id: str, service_id: str, caller: CallerDep) -> dict[str, Any]:
    with caller.read() as s:
        account = caller.owned(s, AccountRow, account_id, "account")
        row = caller.owned(s, ServiceRow, service_id, "service")
        if row.account_id != account.id:
            raise not_found("service", service_id)
        return views.service_detail(s, row, tenant(s, caller))


@router.put(
    "/accounts/{account_id}/flag",
    tags=["accounts"],
    summary="Set or clear the omit flag",
    response_model=responses.Flag,
    responses=responses.problems(404, 409, 413),
)
def put_flag(account_id: str, body: schemas.FlagIn, caller: CallerDep) -> dict[str, Any]:
    """Omit the account from automatic suspension (until a local date, inclusive), or stop omitting it."""
    with caller.inputs() as inputs:
        row = records.put_flag(inputs, account_id, body)
        if inputs.touched:  # an unchanged flag touched nothing: nothing to settle
            inputs.settle()
        return views.flag_view(row)


@router.get(
    "/accounts/{account_id}/flag",
    tags=["accounts"],
    summary="The omit flag",
    response_model=responses.Flag,
    responses=NOT_FOUND,
)
def get_flag(account_id: str, caller: CallerDep) -> dict[str, Any]:
    with caller.read() as s:
        return views.flag_view(caller.owned(s, AccountRow, account_id, "account"))


# -- invoices ---------------------------------------------------------------------------------------


@router.get("/invoices", tags=["invoices"], summary="List invoices", response_model=responses.InvoicePage)
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


@router.put(
    "/invoices/{invoice_id}",
    tags=["invoices"],
    summary="Create or update an invoice",
    response_model=responses.Invoice,
    responses=responses.problems(409, 413),
)
def put_invoice(invoice_id: str, body: schemas.InvoiceIn, caller: CallerDep) -> dict[str, Any]:
    """Upsert. Amounts already allocated to it stay allocated: its balance is the amount less them."""
    with caller.inputs() as inputs:
        row = records.put_invoice(inputs, invoice_id, body)
        inputs.settle()
        return views.invoice_view(row, body.account, tenant(inputs.session, caller))


@router.get(
    "/invoices/{invoice_id}",
    tags=["invoices"],
    summary="An invoice",
    response_model=responses.Invoice,
    responses=NOT_FOUND,
)
def get_invoice(invoice_id: str, caller: CallerDep) -> dict[str, Any]:
    with caller.read() as s:
        row = caller.owned(s, InvoiceRow, invoice_id, "invoice")
        return views.with_accounts(s, [row], lambda r, a: views.invoice_view(r, a, tenant(s, caller)))[0]


# -- payments ---------------------------------------------------------------------------------------


@router.get("/payments", tags=["payments"], summary="List payments", response_model=responses.PaymentPage)
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


@router.put(
    "/payments/{payment_id}",
    tags=["payments"],
    summary="Record a payment",
    response_model=responses.Payment,
    responses=responses.problems(409, 413),
)
def put_payment(payment_id: str, body: schemas.PaymentIn, caller: CallerDep) -> dict[str, Any]:
    """A payment is recorded once: the same payment again changes nothing (it is not allocated
    twice); the same id with another amount or account is refused."""
    with caller.inputs() as inputs:
        row = records.put_payment(inputs, payment_id, body)
        inputs.settle()
        return views.payment_views(inputs.session, [row], tenant(inputs.session, caller))[0]


@router.post(
    "/payments/{payment_id}/allocate",
    tags=["payments"],
    summary="Allocate what is unallocated",
    response_model=responses.Payment,
    responses=responses.problems(404, 409),
)
def allocate_payment(payment_id: str, caller: CallerDep) -> dict[str, Any]:
    """Allocate the payment's unallocated part to open invoices, oldest first."""
    with caller.inputs() as inputs:
        row = caller.owned(inputs.session, PaymentRow, payment_id, "payment")
        inputs.allocate_payment(payment_id)
        inputs.settle()
        return views.payment_views(inputs.session, [row], tenant(inputs.session, caller))[0]


@router.get(
    "/payments/{payment_id}",
    tags=["payments"],
    summary="A payment",
    response_model=responses.Payment,
    responses=NOT_FOUND,
)
def get_payment(payment_id: str, caller: CallerDep) -> dict[str, Any]:
    with caller.read() as s:
        row = caller.owned(s, PaymentRow, payment_id, "payment")
        return views.payment_views(s, [row], tenant(s, caller))[0]


# -- disputes -----------------------------------------------------------------------------------------


@router.get(
    "/disputes", tags=["disputes"], summary="List disputed invoices", response_model=responses.DisputePage
)
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
    response_model=responses.Dispute,
    responses=responses.problems(404, 409, 413),
)
def put_dispute(invoice_id: str, body: schemas.DisputeIn, caller: CallerDep) -> dict[str, Any]:
    with caller.inputs() as inputs:
        row = records.put_dispute(inputs, invoice_id, body)
        inputs.settle()
        return views.dispute_view(row, tenant(inputs.session, caller))


@router.get(
    "/disputes/{invoice_id}",
    tags=["disputes"],
    summary="An invoice's dispute",
    response_model=responses.Dispute,
    responses=NOT_FOUND,
)
def get_dispute(invoice_id: str, caller: CallerDep) -> dict[str, Any]:
    with caller.read() as s:
        row = caller.owned(s, InvoiceRow, invoice_id, "invoice")
        return views.dispute_view(row, tenant(s, caller))


# -- payment plans and complaint cases ------------------------------------------------------------------


@router.get("/plans", tags=["plans"], summary="List payment plans", response_model=responses.PlanPage)
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


@router.put(
    "/plans/{plan_id}",
    tags=["plans"],
    summary="Create or update a payment plan",
    response_model=responses.Plan,
    responses=responses.problems(409, 413),
)
def put_plan(plan_id: str, body: schemas.PlanIn, caller: CallerDep) -> dict[str, Any]:
    with caller.inputs() as inputs:
        row = records.put_plan(inputs, plan_id, body)
        inputs.settle()
        return views.with_accounts(inputs.session, [row], views.plan_view)[0]


@router.get(
    "/plans/{plan_id}",
    tags=["plans"],
    summary="A payment plan",
    response_model=responses.Plan,
    responses=NOT_FOUND,
)
def get_plan(plan_id: str, caller: CallerDep) -> dict[str, Any]:
    with caller.read() as s:
        row = caller.owned(s, PlanRow, plan_id, "plan")
        return views.with_accounts(s, [row], views.plan_view)[0]


@router.get("/cases", tags=["cases"], summary="List complaint cases", response_model=responses.CasePage)
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


@router.put(
    "/cases/{case_id}",
    tags=["cases"],
    summary="Create or update a complaint case",
    response_model=responses.Case,
    responses=responses.problems(409, 413),
)
def put_case(case_id: str, body: schemas.CaseIn, caller: CallerDep) -> dict[str, Any]:
    with caller.inputs() as inputs:
        row = records.put_case(inputs, case_id, body)
        inputs.settle()
        return views.with_accounts(inputs.session, [row], views.case_view)[0]


@router.get(
    "/cases/{case_id}",
    tags=["cases"],
    summary="A complaint case",
    response_model=responses.Case,
    responses=NOT_FOUND,
)
def get_case(case_id: str, caller: CallerDep) -> dict[str, Any]:
    with caller.read() as s:
        row = caller.owned(s, CaseRow, case_id, "case")
        return views.with_accounts(s, [row], views.case_view)[0]
