"""What is coming and what went out: the forecast of suspensions and the notifications."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from arrears.api import views
from arrears.api.context import Caller, provider_caller
from arrears.api.problems import ApiProblem, Problem
from arrears.config import ConfigError
from arrears.domain.clock import parse_local
from arrears.notify import service as notices
from arrears.store.tables import AccountRow, ProviderRow

router = APIRouter(
    responses={
        401: {"model": Problem, "description": "No valid API key"},
        422: {"model": Problem, "description": "Invalid input; `errors` names each field"},
    },
)
CallerDep = Annotated[Caller, Depends(provider_caller)]


@router.get("/forecast", tags=["forecast"], summary="Who will be suspended when")
def forecast(
    caller: CallerDep,
    until: Annotated[str, Query(description="ISO instant (provider-local without an offset)")],
    limit: Annotated[int, Query(ge=1, le=views.MAX_LIMIT)] = views.DEFAULT_LIMIT,
) -> dict[str, Any]:
    """Accounts heading for suspension by `until`, soonest first, with the projected instant.

    As of each account's last evaluation: the worker evaluates every account whose
    next wake-up has come, so the projection is at most a scan interval old.
    """
    with caller.read() as s:
        t = views.Tenant.of(s.get_one(ProviderRow, caller.provider_id))
        try:
            parsed = datetime.fromisoformat(until)
            end = parsed.astimezone(UTC) if parsed.tzinfo else parse_local(until, t.tz)
        except ValueError:
            raise ApiProblem(
                422, "not an ISO 8601 instant", errors=[("until", f"{until!r} is not an instant")]
            ) from None
        rows = s.execute(
            select(AccountRow.ext_id, AccountRow.projected_suspension, AccountRow.stage, AccountRow.status)
            .where(
                AccountRow.provider_id == caller.provider_id,
                AccountRow.projected_suspension.is_not(None),
                AccountRow.projected_suspension <= end,
            )
            .order_by(AccountRow.projected_suspension, AccountRow.ext_id)
            .limit(limit)
        ).all()
        return {
            "until": views.instant(end, t.tz),
            "items": [
                {
                    "account": ext_id,
                    "projected_suspension": views.instant(at, t.tz),
                    "status": status,
                    "stage": stage,
                }
                for ext_id, at, stage, status in rows
            ],
        }


@router.get("/notifications", tags=["notifications"], summary="Notifications, newest first")
def list_notifications(
    caller: CallerDep,
    account: Annotated[str | None, Query(description="Only this account's")] = None,
    event: Annotated[str | None, Query(description="Only this event, e.g. invoice_overdue")] = None,
    state: Annotated[str | None, Query(description="pending, sent, failed, skipped, uncertain, ...")] = None,
    limit: Annotated[int, Query(ge=1, le=views.MAX_LIMIT)] = views.DEFAULT_LIMIT,
) -> dict[str, Any]:
    """Each notification with its delivery state, attempts and the peer's reference."""
    with caller.read() as s:
        key = s.get_one(ProviderRow, caller.provider_id).key
        try:
            items = notices.list_notifications(
                s, notices.NotificationFilter(key, account, event, state, limit)
            )
        except ConfigError as exc:
            raise ApiProblem(422, exc.message, errors=[(exc.field, exc.message)]) from None
        for item in items:
            del item["provider"]  # always the caller's own
        return {"items": items}
