"""Activity: notifications and provisioning requests with their states; operators retry or
cancel a notice that failed (or may not have gone out), and confirm or fail a provisioning
request that waits for the network's word."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from arrears.config import ConfigError
from arrears.notify import service as notices
from arrears.provisioning import service as provisioning
from arrears.web.context import ConsoleError, OperatorForm, Page, ViewerPage, is_htmx, see_other

router = APIRouter()
LIMIT = 100
DONE = {
    "retry": "Notification queued to be sent again.",
    "cancel": "Notification cancelled.",
    "confirmed": "Provisioning request confirmed.",
    "failed": "Provisioning request marked failed.",
}


def _render(
    page: Page,
    notice_state: str,
    request_state: str,
    *,
    status: int = 200,
    message: str | None = None,
    error: str | None = None,
) -> Response:
    key = page.provider.key
    with page.read() as s:
        try:
            items = notices.list_notifications(
                s, notices.NotificationFilter(key, state=notice_state or None, limit=LIMIT)
            )
            requests = provisioning.list_requests(
                s, provisioning.RequestFilter(key, state=request_state or None, limit=LIMIT)
            )
        except ConfigError as exc:
            raise ConsoleError(422, f"{exc.field}: {exc.message}") from None
    template = "_activity.html" if is_htmx(page.request) else "activity.html"
    return page.render(
        template,
        status=status,
        title="Activity",
        nav="activity",
        notifications=items,
        requests=requests,
        notice_state=notice_state,
        request_state=request_state,
        notice_states=notices.STATES,
        request_states=provisioning.STATES,
        retryable=notices.RETRYABLE,
        cancellable=notices.CANCELLABLE,
        message=message,
        error=error,
    )


@router.get("/activity")
def activity(page: ViewerPage, notice_state: str = "", request_state: str = "", done: str = "") -> Response:
    return _render(page, notice_state, request_state, message=DONE.get(done))


def _change(
    request: Request,
    page: Page,
    notice_state: str,
    request_state: str,
    change: Callable[[Session], str],
    missing: str,
) -> Response:
    """Run `change`; a refusal is shown (409), and a row the services do not find for this
    provider (another provider's answers as if it did not exist) is the 404 page `missing`."""
    try:
        with page.write() as s:
            done = change(s)
    except ConfigError as exc:
        if exc.field == "id":
            raise ConsoleError(404, missing) from None
        return _render(page, notice_state, request_state, status=409, error=exc.message)
    if is_htmx(request):
        return _render(page, notice_state, request_state, message=DONE[done])
    query = urlencode({"notice_state": notice_state, "request_state": request_state, "done": done})
    return see_other(request, f"/activity?{query}")


@router.post("/activity/notifications/{notification_id}/{action}")
def notification_action(
    request: Request,
    page: OperatorForm,
    notification_id: int,
    action: str,
    notice_state: Annotated[str, Form()] = "",
    request_state: Annotated[str, Form()] = "",
) -> Response:
    if action not in ("retry", "cancel"):
        raise ConsoleError(404, "There is no such page.")

    def change(s: Session) -> str:
        do = notices.retry if action == "retry" else notices.cancel
        do(s, notification_id, actor=page.who.actor, now=page.now, provider_id=page.provider.id)
        return action

    missing = f"There is no notification {notification_id}."
    return _change(request, page, notice_state, request_state, change, missing)


@router.post("/activity/provisioning/{request_id}/{action}")
def provisioning_action(
    request: Request,
    page: OperatorForm,
    request_id: int,
    action: str,
    reason: Annotated[str, Form()] = "",
    notice_state: Annotated[str, Form()] = "",
    request_state: Annotated[str, Form()] = "",
) -> Response:
    if action not in ("confirm", "fail"):
        raise ConsoleError(404, "There is no such page.")
    state = "confirmed" if action == "confirm" else "failed"

    def change(s: Session) -> str:
        detail = reason.strip()
        if state == "failed" and not detail:
            raise ConfigError("reason", "reason: is required to fail a request")
        provisioning.settle_by_hand(
            s,
            request_id,
            state=state,
            detail=detail,
            actor=page.who.actor,
            now=page.now,
            provider_id=page.provider.id,
        )
        return state

    missing = f"There is no provisioning request {request_id}."
    return _change(request, page, notice_state, request_state, change, missing)
