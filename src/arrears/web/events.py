"""Events: each event's mappings with their switches, offsets, channels and recipients (SPEC §7).

A change goes the API's way (`api.configuration.set_event_mappings`): the event's whole list
of mappings is parsed as `PUT /event-mappings/{event}` parses it (an SMS channel without the
provider's SMS subscription is refused there) and replaces the stored one. The switches of
`auto_suspend` and `auto_unsuspend` turn automatic suspension and restoration on and off.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears.api.configuration import set_event_mappings
from arrears.config import ConfigError
from arrears.domain.events import MULTI_EVENTS, EventKind
from arrears.store.tables import EventMappingRow
from arrears.web.context import AdminForm, ConsoleError, Page, ViewerPage, is_htmx, see_other

router = APIRouter()
SERVICE_EVENTS = (EventKind.AUTO_SUSPEND, EventKind.AUTO_UNSUSPEND)
# The offset each event with several mappings takes, and how the page says it.
OFFSETS = {
    EventKind.INVOICE_DUE: ("days_before", "Days before the due date"),
    EventKind.INVOICE_OVERDUE: ("days_after", "Days after the due date"),
    EventKind.SUSPENSION_WARNING: ("hours_before", "Hours before the projected suspension"),
}
ABOUT = {
    EventKind.INVOICE_DUE: "A reminder that an invoice falls due, at the provider's send time.",
    EventKind.INVOICE_OVERDUE: "A notice that an invoice is overdue, at the provider's send time.",
    EventKind.SUSPENSION_WARNING: "A warning before the projected suspension; enforced, it delays the suspension.",
    EventKind.AUTO_SUSPEND: (
        "A service restricted or suspended by arrears. Its switch turns automatic suspension on: "
        "while it is off, arrears only records what it would suspend."
    ),
    EventKind.AUTO_UNSUSPEND: "A service restored by arrears. Its switch turns automatic restoration on.",
}
CHANNELS = ("email", "sms", "note")
ROLES = ("primary", "billing", "service")
# What a plain form's redirect says happened (a code, so nothing from the request is echoed).
DONE = {"on": "turned on", "off": "turned off", "saved": "saved"}


def _position(key: str) -> int:
    return int(key.rsplit("#", 1)[1]) if "#" in key else 0


def _input(event: EventKind, body: dict[str, Any]) -> dict[str, Any]:
    """A stored mapping as the API takes it: only the fields that apply to its event."""
    out: dict[str, Any] = {
        "enabled": bool(body.get("enabled", False)),
        "channels": list(body.get("channels", [])),
        "recipients": list(body.get("recipients", [])),
        "quiet_hours": bool(body.get("quiet_hours", True)),
    }
    if event in OFFSETS:
        name = OFFSETS[event][0]
        out[name] = int(body.get(name) or 0)
    if event is EventKind.SUSPENSION_WARNING:
        out["enforce"] = bool(body.get("enforce", False))
    if event in SERVICE_EVENTS:
        out["after_provisioning"] = bool(body.get("after_provisioning", False))
    return out


def _stored(session: Session, provider_id: int, event: EventKind) -> list[dict[str, Any]]:
    """The event's mappings in their order, as inputs (one, disabled, for an unmapped event)."""
    rows = session.scalars(
        select(EventMappingRow).where(
            EventMappingRow.provider_id == provider_id, EventMappingRow.event == event.value
        )
    ).all()
    by_position = {_position(r.key): r for r in rows}
    count = max(by_position) + 1 if by_position else 0
    items = []
    for i in range(count):
        row = by_position.get(i)
        items.append(_input(event, {**row.body, "enabled": row.enabled} if row else {}))
    if not items and event not in MULTI_EVENTS:
        items.append(_input(event, {}))
    return items


def _event(session: Session, page: Page, event: EventKind) -> dict[str, Any]:
    rows = {
        r.key: r
        for r in session.scalars(
            select(EventMappingRow).where(
                EventMappingRow.provider_id == page.provider.id, EventMappingRow.event == event.value
            )
        )
    }
    mappings = []
    for i, body in enumerate(_stored(session, page.provider.id, event)):
        key = f"{event.value}#{i}" if event in MULTI_EVENTS else event.value
        row = rows.get(key)
        mappings.append(
            {"index": i, "body": body, "since": row.since if row else None, "stored": row is not None}
        )
    offset = OFFSETS.get(event)
    return {
        "event": event.value,
        "about": ABOUT[event],
        "multi": event in MULTI_EVENTS,
        "offset": offset[0] if offset else None,
        "offset_label": offset[1] if offset else None,
        "service": event in SERVICE_EVENTS,
        "enforce": event is EventKind.SUSPENSION_WARNING,
        "mappings": mappings,
        "new": _input(event, {"enabled": True}),
        "roles": ROLES if event in SERVICE_EVENTS else ROLES[:2],
    }


def _kind(event: str) -> EventKind:
    try:
        return EventKind(event)
    except ValueError:
        raise ConsoleError(404, f"There is no event {event!r}.") from None


def _render_event(
    page: Page,
    event: EventKind,
    *,
    status: int = 200,
    message: str | None = None,
    errors: dict[int, str] | None = None,
    values: dict[int, dict[str, Any]] | None = None,
) -> Response:
    with page.read() as s:
        e = _event(s, page, event)
    for m in e["mappings"]:
        if values and m["index"] in values:
            m["body"] = values[m["index"]]
    if values and len(e["mappings"]) in values:
        e["new"] = values[len(e["mappings"])]
    context: dict[str, Any] = {"message": message, "errors": errors or {}, "sms": page.provider.sms}
    if is_htmx(page.request):
        return page.render("_event.html", status=status, e=e, **context)
    with page.read() as s:
        events = [e if k is event else _event(s, page, k) for k in EventKind]
    return page.render("events.html", status=status, title="Events", nav="events", events=events, **context)


@router.get("/events")
def events(page: ViewerPage, done: str = "", event: str = "") -> Response:
    message = None
    if done in DONE and event in {k.value for k in EventKind}:
        message = f"{event.replace('_', ' ').capitalize()} {DONE[done]}."
    with page.read() as s:
        items = [_event(s, page, k) for k in EventKind]
    return page.render(
        "events.html",
        title="Events",
        nav="events",
        events=items,
        message=message,
        errors={},
        sms=page.provider.sms,
    )


def _change(
    request: Request, page: Page, event: EventKind, index: int, body: dict[str, Any], done: str
) -> Response:
    """Replace mapping `index` of `event` (or add it, one past the end) in one transaction."""
    try:
        with page.inputs() as inputs:
            items = _stored(inputs.session, page.provider.id, event)
            if not 0 <= index <= len(items) or (index == len(items) and event not in MULTI_EVENTS):
                raise ConsoleError(404, f"{event.value} has no mapping {index}.")
            items[index : index + 1] = [body]
            set_event_mappings(inputs, event.value, items if event in MULTI_EVENTS else items[0], page.now)
    except ConfigError as exc:
        return _render_event(
            page, event, status=422, errors={index: f"{exc.field}: {exc.message}"}, values={index: body}
        )
    label = event.value.replace("_", " ")
    if is_htmx(request):
        return _render_event(page, event, message=f"{label.capitalize()} {DONE[done]}.")
    return see_other(request, f"/events?done={done}&event={event.value}#event-{event.value}")


@router.post("/events/{event}/{index}/switch")
def switch(
    request: Request, page: AdminForm, event: str, index: int, enabled: Annotated[str, Form()] = ""
) -> Response:
    """Turn one mapping on or off, leaving the rest of it as it is."""
    kind = _kind(event)
    if enabled not in ("true", "false"):
        raise ConsoleError(422, f"enabled: {enabled!r} is not one of: true, false")
    with page.read() as s:
        items = _stored(s, page.provider.id, kind)
    if not 0 <= index < len(items):
        raise ConsoleError(404, f"{kind.value} has no mapping {index}.")
    body = {**items[index], "enabled": enabled == "true"}
    return _change(request, page, kind, index, body, "on" if enabled == "true" else "off")


@router.post("/events/{event}/{index}")
def save_mapping(
    request: Request,
    page: AdminForm,
    event: str,
    index: int,
    enabled: Annotated[str, Form()] = "",
    channels: Annotated[list[str] | None, Form()] = None,
    recipients: Annotated[list[str] | None, Form()] = None,
    offset: Annotated[str, Form()] = "",
    enforce: Annotated[str, Form()] = "",
    after_provisioning: Annotated[str, Form()] = "",
    quiet_hours: Annotated[str, Form()] = "",
) -> Response:
    """One mapping as its form gives it; checkboxes send a value only when they are ticked."""
    kind = _kind(event)
    body: dict[str, Any] = {
        "enabled": bool(enabled),
        "channels": channels or [],
        "recipients": recipients or [],
        "quiet_hours": bool(quiet_hours),
    }
    if kind in OFFSETS:
        name = OFFSETS[kind][0]
        text = offset.strip() or "0"
        if not text.isdigit():
            path = f"events.{kind.value}[{index}].{name}"
            return _render_event(
                page,
                kind,
                status=422,
                errors={index: f"{path}: {offset!r} is not a whole number of 0 or more"},
                values={index: {**body, name: offset}},
            )
        body[name] = int(text)
    if kind is EventKind.SUSPENSION_WARNING:
        body["enforce"] = bool(enforce)
    if kind in SERVICE_EVENTS:
        body["after_provisioning"] = bool(after_provisioning)
    return _change(request, page, kind, index, body, "saved")
