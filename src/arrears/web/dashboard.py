"""The dashboard: accounts by status and stage, suspensions and restorations per day, who is
about to be suspended, and what needs a person (failed notices and provisioning)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from arrears.api.activity import forecast_items
from arrears.api.views import Tenant
from arrears.notify import service as notices
from arrears.provisioning import service as provisioning
from arrears.store.tables import AccountRow, HistoryRow, NotificationRow, ProvisioningRequestRow
from arrears.web.chart import Day, bar_chart
from arrears.web.context import ViewerPage

router = APIRouter()
CHART_DAYS = 30
FORECAST_DAYS = 7
# What a person must look at: notices that failed or may have gone out, requests that failed
# or wait for the network's word.
NOTICE_ATTENTION = ("failed", "uncertain")
REQUEST_ATTENTION = ("failed", "sent")


def status_and_stage(session: Session, provider_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(AccountRow.status, AccountRow.stage, func.count())
        .where(AccountRow.provider_id == provider_id)
        .group_by(AccountRow.status, AccountRow.stage)
        .order_by(AccountRow.status, AccountRow.stage)
    ).all()
    return [{"status": status, "stage": stage or "none", "count": n} for status, stage, n in rows]


def per_day(session: Session, t: Tenant, today: date, days: int) -> list[Day]:
    """Accounts suspended and restored on each of the last `days` local days (from the history)."""
    first = today - timedelta(days=days - 1)
    # A day's margin for any timezone; lines outside the local days are left out below.
    since = datetime.combine(first - timedelta(days=1), time(), tzinfo=UTC)
    rows = session.execute(
        select(HistoryRow.at, HistoryRow.data).where(
            HistoryRow.provider_id == t.id,
            HistoryRow.kind == "account_status",
            HistoryRow.at >= since,
        )
    ).all()
    suspended: Counter[date] = Counter()
    restored: Counter[date] = Counter()
    for at, data in rows:
        local = at.astimezone(t.tz).date()
        if data.get("to") == "suspended" and data.get("from") != "suspended":
            suspended[local] += 1
        elif data.get("from") == "suspended" and data.get("to") == "active":
            restored[local] += 1
    return [Day(d, suspended[d], restored[d]) for d in (first + timedelta(days=i) for i in range(days))]


def _counts(session: Session, model: Any, provider_id: int, states: tuple[str, ...]) -> dict[str, int]:
    found: dict[str, int] = dict(
        session.execute(
            select(model.state, func.count())
            .where(model.provider_id == provider_id, model.state.in_(states))
            .group_by(model.state)
        ).all()
    )
    return {s: int(found.get(s, 0)) for s in states}


@router.get("/")
def dashboard(page: ViewerPage) -> Response:
    t = page.tenant
    today = page.now.astimezone(t.tz).date()
    with page.read() as s:
        matrix = status_and_stage(s, t.id)
        days = per_day(s, t, today, CHART_DAYS)
        upcoming = forecast_items(s, t, page.now + timedelta(days=FORECAST_DAYS), 50)
        notice_counts = _counts(s, NotificationRow, t.id, NOTICE_ATTENTION)
        request_counts = _counts(s, ProvisioningRequestRow, t.id, REQUEST_ATTENTION)
        failed_notices = [
            n
            for state in NOTICE_ATTENTION
            for n in notices.list_notifications(
                s, notices.NotificationFilter(page.provider.key, state=state, limit=5)
            )
        ]
        failed_requests = [
            r
            for state in REQUEST_ATTENTION
            for r in provisioning.list_requests(
                s, provisioning.RequestFilter(page.provider.key, state=state, limit=5)
            )
        ]
    statuses = Counter[str]()
    stages = Counter[str]()
    for row in matrix:
        statuses[row["status"]] += row["count"]
        stages[row["stage"]] += row["count"]
    total_s = sum(d.suspensions for d in days)
    total_r = sum(d.restorations for d in days)
    chart = bar_chart(
        days,
        f"Suspensions and restorations per day, last {CHART_DAYS} days",
        f"{total_s} accounts suspended and {total_r} restored between {days[0].day} and {days[-1].day}.",
    )
    return page.render(
        "dashboard.html",
        title="Dashboard",
        nav="dashboard",
        statuses=sorted(statuses.items()),
        stages=sorted(stages.items()),
        matrix=matrix,
        total=sum(statuses.values()),
        days=days,
        chart=chart,
        total_suspended=total_s,
        total_restored=total_r,
        upcoming=upcoming,
        forecast_days=FORECAST_DAYS,
        notice_counts=notice_counts,
        request_counts=request_counts,
        failed_notices=failed_notices,
        failed_requests=failed_requests,
    )
