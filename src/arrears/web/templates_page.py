"""Templates: the wording of each event's email and SMS, with a live preview for a chosen account
(or a sample) that shows the subject, text and HTML, and for SMS its length, encoding and
segments; admins edit, save and reset them to arrears' default.

Saving and previewing go through `notify.rendering` as the API's template routes do: a template
that does not render for a sample of its event (an undefined variable, a syntax error) is
refused with its field and line, and `updated_by` records the person.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from arrears.config import ConfigError
from arrears.domain.events import EventKind
from arrears.notify import rendering
from arrears.notify.templates import Rendered, TemplateError, TemplateSource
from arrears.store.tables import AccountRow, ProviderRow, TemplateRow
from arrears.web.context import (
    SECURITY_HEADERS,
    AdminForm,
    ConsoleError,
    Page,
    ViewerPage,
    is_htmx,
    see_other,
)

router = APIRouter()
ACCOUNT_CHOICES = 100  # account ids offered for the preview (any other can be typed)
DONE = {"saved": "Template saved.", "reset": "Template reset to arrears' default."}
# The HTML preview is a sandboxed `srcdoc` frame (no scripts, no requests of its own), which
# inherits the page's policy: an email's inlined `style` attributes need 'unsafe-inline' there.
PREVIEW_HEADERS = {
    "Content-Security-Policy": SECURITY_HEADERS["Content-Security-Policy"].replace(
        "style-src 'self'", "style-src 'self' 'unsafe-inline'"
    )
}


def _target(event: str, channel: str) -> tuple[str, str]:
    try:
        rendering.check_target(event, channel)
    except ConfigError as exc:
        raise ConsoleError(404, f"There is no template for {exc.message}.") from None
    return event, channel


def _say(exc: ConfigError) -> str:
    """`template.text, line 3: 'x' is undefined`: the field, the line when known, and why."""
    part = exc.field.rsplit(".", 1)[-1]
    if exc.field.startswith("template.") and exc.message.startswith(part):
        return "template." + exc.message
    return f"{exc.field}: {exc.message}"


def _source(event: str, channel: str, subject: str, text: str, html: str) -> TemplateSource:
    email = channel == "email"
    try:
        return TemplateSource(
            event=event,
            channel=channel,
            subject=subject if email else None,
            text=text,
            html=(html or None) if email else None,
        )
    except TemplateError as exc:
        raise ConfigError(f"template.{exc.field}", str(exc)) from None


class TemplateDraft(BaseModel):
    """The editor's form: the template as typed, and the account to preview it for."""

    subject: str = ""
    text: str = ""
    html: str = ""
    account: str = ""

    def values(self) -> dict[str, str]:
        return {"subject": self.subject, "text": self.text, "html": self.html}


def _draft_preview(
    session: Session, page: Page, event: str, channel: str, draft: TemplateDraft
) -> dict[str, Any]:
    """The unsaved template rendered for the draft's account: the preview's fields, or its error."""
    try:
        source = _source(event, channel, draft.subject, draft.text, draft.html)
    except ConfigError as exc:
        return {"error": _say(exc)}
    return _preview(session, page, event, channel, draft.account.strip(), source)


def _rendered(r: Rendered) -> dict[str, Any]:
    return {"subject": r.subject, "text": r.text, "html": r.html, "sms": r.sms}


def _preview(
    session: Session, page: Page, event: str, channel: str, account: str, source: TemplateSource | None
) -> dict[str, Any]:
    """The template rendered for `account` (or a sample): the preview's fields, or its error."""
    provider = session.get_one(ProviderRow, page.provider.id)
    try:
        r = rendering.preview(
            session, provider, event, channel, now=page.now, account=account or None, source=source
        )
    except ConfigError as exc:
        return {"error": _say(exc)}
    return _rendered(r)


def _template(session: Session, page: Page, event: str, channel: str) -> dict[str, Any]:
    row = session.scalar(
        select(TemplateRow).where(
            TemplateRow.provider_id == page.provider.id,
            TemplateRow.event == event,
            TemplateRow.channel == channel,
        )
    )
    source = rendering.template_for(session, page.provider.id, event, channel)
    return {
        "event": event,
        "channel": channel,
        "own": row is not None,
        "updated_at": row.updated_at if row else None,
        "updated_by": row.updated_by if row else None,
        "subject": source.subject or "",
        "text": source.text,
        "html": source.html or "",
    }


@router.get("/templates")
def template_list(page: ViewerPage) -> Response:
    with page.read() as s:
        own = {
            (r.event, r.channel): r
            for r in s.scalars(select(TemplateRow).where(TemplateRow.provider_id == page.provider.id))
        }
    items = [
        {
            "event": e.value,
            "channel": c,
            "own": (e.value, c) in own,
            "updated_at": own[(e.value, c)].updated_at if (e.value, c) in own else None,
            "updated_by": own[(e.value, c)].updated_by if (e.value, c) in own else None,
        }
        for e in EventKind
        for c in rendering.TEMPLATE_CHANNELS
    ]
    return page.render("templates.html", title="Templates", nav="templates", items=items)


def _render_editor(
    page: Page,
    event: str,
    channel: str,
    *,
    status: int = 200,
    message: str | None = None,
    error: str | None = None,
    draft: TemplateDraft | None = None,
    account: str = "",
) -> Response:
    """The editor, with the stored template, or with `draft` (as typed) when given."""
    with page.read() as s:
        template = _template(s, page, event, channel)
        if draft is None:
            preview = _preview(s, page, event, channel, account, None)
        else:
            template.update(draft.values())
            account = draft.account.strip()
            preview = _draft_preview(s, page, event, channel, draft)
        accounts = list(
            s.scalars(
                select(AccountRow.ext_id)
                .where(AccountRow.provider_id == page.provider.id)
                .order_by(AccountRow.ext_id)
                .limit(ACCOUNT_CHOICES)
            )
        )
    return page.render(
        "template.html",
        status=status,
        headers=PREVIEW_HEADERS,
        title=f"Template: {event.replace('_', ' ')} ({channel})",
        nav="templates",
        t=template,
        preview=preview,
        accounts=accounts,
        account=account,
        message=message,
        error=error,
    )


@router.get("/templates/{event}/{channel}")
def template_page(page: ViewerPage, event: str, channel: str, account: str = "", done: str = "") -> Response:
    event, channel = _target(event, channel)
    return _render_editor(page, event, channel, message=DONE.get(done), account=account.strip())


@router.post("/templates/{event}/{channel}/preview")
def preview_template(
    request: Request, page: AdminForm, event: str, channel: str, draft: Annotated[TemplateDraft, Form()]
) -> Response:
    """The unsaved template in the editor, rendered as it is typed; nothing is stored."""
    event, channel = _target(event, channel)
    if not is_htmx(request):
        return _render_editor(page, event, channel, draft=draft)
    with page.read() as s:
        preview = _draft_preview(s, page, event, channel, draft)
    status = 422 if "error" in preview else 200
    return page.render("_template_preview.html", status=status, preview=preview, t={"channel": channel})


@router.post("/templates/{event}/{channel}")
def save(
    request: Request, page: AdminForm, event: str, channel: str, draft: Annotated[TemplateDraft, Form()]
) -> Response:
    event, channel = _target(event, channel)
    try:
        source = _source(event, channel, draft.subject, draft.text, draft.html)
        with page.write() as s:
            provider = s.get_one(ProviderRow, page.provider.id)
            rendering.save_template(s, provider, source, actor=page.who.actor, now=page.now)
    except ConfigError as exc:
        return _render_editor(page, event, channel, status=422, error=_say(exc), draft=draft)
    return see_other(request, f"/templates/{event}/{channel}?done=saved")


@router.post("/templates/{event}/{channel}/reset")
def reset(request: Request, page: AdminForm, event: str, channel: str) -> Response:
    """Back to arrears' default: the provider's own template is removed."""
    event, channel = _target(event, channel)
    with page.write() as s:
        s.execute(
            delete(TemplateRow).where(
                TemplateRow.provider_id == page.provider.id,
                TemplateRow.event == event,
                TemplateRow.channel == channel,
            )
        )
    return see_other(request, f"/templates/{event}/{channel}?done=reset")
