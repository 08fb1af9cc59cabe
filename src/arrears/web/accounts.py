"""Accounts: search and filter, one account as it stands with its history, and the operator's
actions on it (suspend, restore, omit flag, groups), each with a required reason.

The actions go through the same path as the API's `POST /accounts/{id}/actions`
(`Inputs.manual`, `set_flag`, `change_group`, then `settle`), so an action, its history
lines, provisioning requests and notices commit together.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from arrears.api import views
from arrears.config import ConfigError
from arrears.domain.model import AccountStatus
from arrears.engine.inputs import Inputs
from arrears.notify import service as notices
from arrears.provisioning import service as provisioning
from arrears.store.tables import AccountRow, ContactRow, GroupRow, InvoiceRow, PaymentRow
from arrears.web.context import ConsoleError, OperatorForm, Page, ViewerPage, is_htmx, see_other

router = APIRouter()
PAGE_SIZE = 50
HISTORY_PAGE = 200
LIST_LIMIT = 100
MAX_REASON = 2000
# What a plain form's redirect says happened (a code, so nothing from the request is echoed).
DONE = {
    "suspend": "Account suspended by hand.",
    "restore": "Account restored by hand.",
    "flag": "Omit flag set.",
    "unflag": "Omit flag cleared.",
    "group-add": "Group added.",
    "group-remove": "Group removed.",
}


# -- the list -----------------------------------------------------------------------------------


def _search(provider_id: int, q: str, status: str, stage: str, group: str) -> Any:
    stmt = select(AccountRow).where(AccountRow.provider_id == provider_id)
    if q:
        needle = q.lower()
        by_contact = select(ContactRow.account_id).where(
            or_(
                func.lower(ContactRow.name).contains(needle, autoescape=True),
                func.lower(ContactRow.email).contains(needle, autoescape=True),
            )
        )
        stmt = stmt.where(
            or_(
                func.lower(AccountRow.ext_id).contains(needle, autoescape=True), AccountRow.id.in_(by_contact)
            )
        )
    if status:
        stmt = stmt.where(AccountRow.status == status)
    if stage == "none":
        stmt = stmt.where(AccountRow.stage.is_(None))
    elif stage:
        stmt = stmt.where(AccountRow.stage == stage)
    if group:
        stmt = stmt.where(AccountRow.id.in_(select(GroupRow.account_id).where(GroupRow.name == group)))
    return stmt


def _primary_contacts(session: Session, ids: list[int]) -> dict[int, ContactRow]:
    out: dict[int, ContactRow] = {}
    if not ids:
        return out
    rows = session.scalars(
        select(ContactRow)
        .where(ContactRow.account_id.in_(ids))
        .order_by(ContactRow.role != "primary", ContactRow.id)
    )
    for c in rows:
        out.setdefault(c.account_id, c)
    return out


@router.get("/accounts")
def account_list(
    page: ViewerPage,
    q: str = "",
    status: str = "",
    stage: str = "",
    group: str = "",
    cursor: str | None = None,
) -> Response:
    q = q.strip()
    statuses = [s.value for s in AccountStatus]
    if status and status not in statuses:
        raise ConsoleError(422, f"status: {status!r} is not one of: {', '.join(statuses)}")
    t = page.tenant
    with page.read() as s:
        try:
            rows, next_cursor = views.page_rows(
                s, _search(t.id, q, status, stage, group), AccountRow.id, PAGE_SIZE, cursor or None
            )
        except views.BadCursor:
            raise ConsoleError(422, "cursor: this link is not one the console gave out") from None
        contacts = _primary_contacts(s, [r.id for r in rows])
        stages = sorted(
            x
            for x in s.scalars(select(AccountRow.stage).where(AccountRow.provider_id == t.id).distinct())
            if x
        )
        groups = list(
            s.scalars(
                select(GroupRow.name)
                .join(AccountRow, AccountRow.id == GroupRow.account_id)
                .where(AccountRow.provider_id == t.id)
                .distinct()
                .order_by(GroupRow.name)
            )
        )
        items = [
            {
                **views.account_summary(r, t),
                "name": contacts[r.id].name if r.id in contacts else "",
                "email": (contacts[r.id].email or "") if r.id in contacts else "",
            }
            for r in rows
        ]
    filters = {"q": q, "status": status, "stage": stage, "group": group}
    return page.render(
        "accounts.html",
        title="Accounts",
        nav="accounts",
        items=items,
        next_cursor=next_cursor,
        first_page=bool(cursor),
        filters=filters,
        statuses=statuses,
        stages=["none", *stages],
        groups=groups,
    )


# -- one account ----------------------------------------------------------------------------------


def _account(session: Session, page: Page, ext_id: str) -> AccountRow:
    row = views.owned(session, AccountRow, page.provider.id, ext_id)
    if row is None:
        raise ConsoleError(404, f"There is no account {ext_id!r}.")
    return row


def account_context(
    session: Session, page: Page, row: AccountRow, history: str | None = None
) -> dict[str, Any]:
    """Everything the account page shows, through the API's read side."""
    t = page.tenant
    invoices = session.scalars(
        select(InvoiceRow)
        .where(InvoiceRow.account_id == row.id)
        .order_by(InvoiceRow.due_date.desc(), InvoiceRow.id.desc())
        .limit(LIST_LIMIT)
    ).all()
    payments = session.scalars(
        select(PaymentRow)
        .where(PaymentRow.account_id == row.id)
        .order_by(PaymentRow.received_at.desc(), PaymentRow.id.desc())
        .limit(LIST_LIMIT)
    ).all()
    try:
        timeline = views.history_page(session, row, t, HISTORY_PAGE, history)
    except views.BadCursor:
        raise ConsoleError(422, "history: this link is not one the console gave out") from None
    detail = views.account_detail(session, row, page.now)
    restorable = (
        detail["status"] == "suspended"
        or detail["stage"] != "none"
        or any(s["status"] in ("suspended", "restricted") for s in detail["services"])
    )
    return {
        "account": detail,
        "invoices": [views.invoice_view(i, row.ext_id, t) for i in invoices],
        "payments": views.payment_views(session, payments, t),
        "timeline": timeline,
        "history_cursor": history,
        "notifications": notices.list_notifications(
            session, notices.NotificationFilter(page.provider.key, account=row.ext_id, limit=LIST_LIMIT)
        ),
        "requests": provisioning.list_requests(
            session, provisioning.RequestFilter(page.provider.key, account=row.ext_id, limit=LIST_LIMIT)
        ),
        "can_suspend": detail["status"] != "suspended" or detail["status_reason"] != "manual",
        "can_restore": restorable,
    }


def _render_account(
    page: Page,
    ext_id: str,
    *,
    status: int = 200,
    message: str | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    history: str | None = None,
) -> Response:
    with page.read() as s:
        row = _account(s, page, ext_id)
        context = account_context(s, page, row, history)
    template = "_account.html" if is_htmx(page.request) else "account.html"
    return page.render(
        template,
        status=status,
        title=f"Account {ext_id}",
        nav="accounts",
        message=message,
        errors=errors or {},
        values=values or {},
        **context,
    )


@router.get("/accounts/{ext_id}")
def account_page(page: ViewerPage, ext_id: str, done: str = "", history: str | None = None) -> Response:
    return _render_account(page, ext_id, message=DONE.get(done), history=history)


def _reason(raw: str) -> str:
    reason = raw.strip()
    if not reason:
        raise ConfigError("reason", "is required: say why, it is kept in the account's history")
    if len(reason) > MAX_REASON:
        raise ConfigError("reason", f"must be at most {MAX_REASON} characters")
    return reason


def _act(
    request: Request,
    page: Page,
    ext_id: str,
    form: str,
    values: dict[str, str],
    change: Callable[[Inputs], str],
) -> Response:
    """Carry out one operator action in one transaction, then show the account again.

    A refused action shows the page again with the message next to its form (422)."""
    try:
        with page.inputs() as inputs:
            _account(inputs.session, page, ext_id)
            done = change(inputs)
            inputs.settle()
    except ConfigError as exc:
        field = exc.field.rsplit(".", 1)[-1]
        return _render_account(
            page,
            ext_id,
            status=422,
            errors={form: f"{field}: {exc.message}"},
            values={"form": form, **values},
        )
    if is_htmx(request):
        return _render_account(page, ext_id, message=DONE[done])
    return see_other(request, f"/accounts/{ext_id}?done={done}")


@router.post("/accounts/{ext_id}/manual")
def manual(
    request: Request,
    page: OperatorForm,
    ext_id: str,
    action: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    def change(inputs: Inputs) -> str:
        if action not in ("suspend", "restore"):
            raise ConfigError("action", f"{action!r} is not one of: suspend, restore")
        inputs.manual(ext_id, action, _reason(reason), field="action")
        return action

    return _act(request, page, ext_id, "manual", {"reason": reason}, change)


@router.post("/accounts/{ext_id}/flag")
def flag(
    request: Request,
    page: OperatorForm,
    ext_id: str,
    omit: Annotated[str, Form()] = "",
    until: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    def change(inputs: Inputs) -> str:
        if omit not in ("set", "clear"):
            raise ConfigError("omit", f"{omit!r} is not one of: set, clear")
        day = None
        if omit == "set" and until.strip():
            try:
                day = date.fromisoformat(until.strip())
            except ValueError:
                raise ConfigError("until", f"{until!r} is not a date as YYYY-MM-DD") from None
            if day < page.now.astimezone(page.tz).date():
                raise ConfigError("until", "is in the past")
        inputs.set_flag(ext_id, omit == "set", day, _reason(reason))
        return "flag" if omit == "set" else "unflag"

    return _act(request, page, ext_id, "flag", {"until": until, "reason": reason}, change)


@router.post("/accounts/{ext_id}/groups")
def groups(
    request: Request,
    page: OperatorForm,
    ext_id: str,
    change: Annotated[str, Form()] = "",
    group: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    def apply(inputs: Inputs) -> str:
        if change not in ("add", "remove"):
            raise ConfigError("change", f"{change!r} is not one of: add, remove")
        name = group.strip()
        if not name or len(name) > 100:
            raise ConfigError("group", "a group name of 1 to 100 characters is required")
        why = _reason(reason)
        row = _account(inputs.session, page, ext_id)
        have = set(inputs.session.scalars(select(GroupRow.name).where(GroupRow.account_id == row.id)))
        if change == "remove" and name not in have:
            raise ConfigError("group", f"the account is not in group {name!r}")
        if change == "add" and name in have:
            raise ConfigError("group", f"the account is in group {name!r} already")
        if change == "add":
            inputs.change_group(ext_id, name, None, reason=why)
        else:
            inputs.change_group(ext_id, None, name, reason=why)
        return f"group-{change}"

    return _act(request, page, ext_id, "groups", {"group": group, "reason": reason}, apply)
