"""What is coming and what went out: the forecast of suspensions and the notifications."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears.api import responses, schemas, views
from arrears.api.context import Caller, provider_caller
from arrears.api.problems import ApiProblem
from arrears.config import ConfigError
from arrears.domain.clock import parse_local
from arrears.notify import service as notices
from arrears.store.tables import AccountRow, ProviderRow

router = APIRouter(dependencies=[Depends(schemas.storable_params)], responses=responses.PROVIDER_KEY)
CallerDep = Annotated[Caller, Depends(provider_caller)]


@router.get(
    "/forecast", tags=["forecast"], summary="Who will be suspended when", response_model=responses.Forecast
)
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
        return {"until": views.instant(end, t.tz), "items": forecast_items(s, t, end, limit)}


def forecast_items(session: Session, t: views.Tenant, end: datetime, limit: int) -> list[dict[str, Any]]:
    """The provider's accounts projected to be suspended by `end`, soonest first (the console's too)."""
    rows = session.execute(
        select(AccountRow.ext_id, AccountRow.projected_suspension, AccountRow.stage, AccountRow.status)
        .where(
            AccountRow.provider_id == t.id,
            AccountRow.projected_suspension.is_not(None),
            AccountRow.projected_suspension <= end,
        )
        .order_by(AccountRow.projected_suspension, AccountRow.ext_id)
        .limit(limit)
    ).all()
    return [
        {
            "account": ext_id,
            "projected_suspension": views.instant(at, t.tz),
            "status": status,
            "stage": stage,
        }
        for ext_id, at, stage, status in rows
    ]


@router.get(
    "/notifications",
    tags=["notifications"],
    summary="Notifications, newest first",
    response_model=responses.NotificationList,
)
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
