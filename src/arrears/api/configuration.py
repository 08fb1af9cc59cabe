"""A provider's configuration over the API: rule sets, event mappings, templates, and the
operator's own actions on an account (SPEC §4, §6, §7, §9).

Shapes are the simulation's: a rule set is the body of `rules`, an event mapping the body
of `events.<event>`. Every error names the field (`rule_set.stages[0].status`,
`events.auto_suspend.channels`, `template.text`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query
from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from arrears.api import responses, schemas, views
from arrears.api.context import Caller, provider_caller
from arrears.api.problems import not_found
from arrears.config import ConfigError, parse_mappings
from arrears.domain.clock import at_local
from arrears.domain.events import EventKind
from arrears.engine.inputs import Inputs
from arrears.notify import rendering
from arrears.notify.templates import Rendered, TemplateError, TemplateSource
from arrears.store.tables import AccountRow, EventMappingRow, ProviderRow, RuleSetRow, TemplateRow

router = APIRouter(dependencies=[Depends(schemas.storable_params)], responses=responses.PROVIDER_KEY)
CallerDep = Annotated[Caller, Depends(provider_caller)]
NOT_FOUND = responses.problems(404)
# What any write may also answer: a concurrent write won (409), a body over the limit (413).
WRITE = responses.problems(409, 413)
RULE_SET_EXAMPLE = {
    "min_overdue_amount": "50.00",
    "min_overdue_days": 14,
    "restore_threshold": "10.00",
    "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}],
    "stages": [{"name": "restrict", "min_overdue_days": 14, "status": "restricted"}],
}


class TemplateIn(schemas.Body):
    resource = "template"
    subject: str | None = Field(None, description="Email only, required there")
    text: str = Field(description="The plain-text email body, or the SMS body")
    html: str | None = Field(None, description="Email only, optional")


class ActionIn(schemas.Body):
    resource = "action"
    action: Literal["suspend", "restore"]
    reason: str = Field(min_length=1, max_length=2000, description="Why; kept in the account's history")


# -- helpers --------------------------------------------------------------------------------------


def _tenant(session: Session, caller: Caller) -> views.Tenant:
    return views.Tenant.of(session.get_one(ProviderRow, caller.provider_id))


def _effective_at(raw: Any, t: views.Tenant, now: datetime) -> datetime:
    """`effective_at` of a rule set: an ISO instant, provider-local without an offset; default now."""
    if raw is None:
        return now
    if not isinstance(raw, str):
        raise ConfigError("rule_set.effective_at", "must be an ISO 8601 instant")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError("rule_set.effective_at", f"{raw!r} is not an ISO 8601 instant") from None
    if value.tzinfo is None:
        return at_local(value.date(), value.time(), t.tz)
    return value.astimezone(UTC)


def check_rule_set_name(name: str, body: dict[str, Any]) -> None:
    if body.get("name", name) != name:
        raise ConfigError("rule_set.name", f"{body['name']!r} is not the name in the path ({name!r})")


def rule_set_input(
    name: str, body: dict[str, Any], t: views.Tenant, now: datetime
) -> tuple[dict[str, Any], datetime]:
    """A rule set version as `put_rule_set` takes it: the body with its name, and its instant."""
    check_rule_set_name(name, body)
    return {**body, "name": name}, _effective_at(body.get("effective_at"), t, now)


def add_rule_set_version(
    inputs: Inputs, t: views.Tenant, name: str, body: dict[str, Any], now: datetime
) -> RuleSetRow:
    """Append a version of rule set `name` (the API's PUT and the console's editor)."""
    raw, effective = rule_set_input(name, body, t, now)
    row = inputs.put_rule_set(raw, effective, prefix="rule_set")
    inputs.session.flush()
    inputs.settle()
    return row


def set_event_mappings(inputs: Inputs, event: str, body: Any, now: datetime) -> ProviderRow:
    """Replace an event's mappings (the API's PUT and the console's Events page)."""
    provider = inputs.session.get_one(ProviderRow, inputs.provider.id)
    parsed = parse_mappings({event: body}, sms=provider.sms, since=now, prefix="events")
    inputs.put_mappings(parsed)
    inputs.session.flush()
    inputs.settle()
    return provider


def _rule_set_view(row: RuleSetRow, t: views.Tenant) -> dict[str, Any]:
    return {
        "name": row.name,
        "version": row.version,
        "effective_at": views.instant(row.effective_at, t.tz),
        "created_at": views.instant(row.created_at, t.tz),
        "created_by": row.created_by,
        "body": row.body,
    }


def _mapping_view(row: EventMappingRow, t: views.Tenant) -> dict[str, Any]:
    return {"key": row.key, **row.body, "enabled": row.enabled, "since": views.instant(row.since, t.tz)}


def _mappings(session: Session, provider_id: int, t: views.Tenant) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(EventMappingRow)
        .where(EventMappingRow.provider_id == provider_id)
        .order_by(EventMappingRow.key)
    ).all()
    out = []
    for event in EventKind:
        mine = [_mapping_view(r, t) for r in rows if r.event == event.value]
        out.append({"event": event.value, "enabled": any(m["enabled"] for m in mine), "mappings": mine})
    return out


def _source(event: str, channel: str, body: TemplateIn) -> TemplateSource:
    rendering.check_target(event, channel)
    try:
        return TemplateSource(
            event=event, channel=channel, subject=body.subject, text=body.text, html=body.html
        )
    except TemplateError as exc:
        raise ConfigError(f"template.{exc.field}", str(exc)) from None


def _rendered_view(r: Rendered) -> dict[str, Any]:
    sms = None
    if r.sms is not None:
        sms = {
            "encoding": r.sms.encoding,
            "units": r.sms.units,
            "segments": r.sms.segments,
            "per_segment": r.sms.per_segment,
        }
    return {"subject": r.subject or None, "text": r.text, "html": r.html, "sms": sms}


def _template_view(session: Session, provider_id: int, event: str, channel: str) -> dict[str, Any]:
    rendering.check_target(event, channel)
    own = session.scalar(
        select(TemplateRow.id).where(
            TemplateRow.provider_id == provider_id, TemplateRow.event == event, TemplateRow.channel == channel
        )
    )
    source = rendering.template_for(session, provider_id, event, channel)
    return {
        "event": event,
        "channel": channel,
        "own": own is not None,
        "subject": source.subject,
        "text": source.text,
        "html": source.html,
    }


# -- rule sets ------------------------------------------------------------------------------------


@router.put(
    "/rule-sets/{name}",
    tags=["rule sets"],
    summary="Add a new version of a rule set",
    response_model=responses.RuleSetVersion,
    responses=WRITE,
)
def put_rule_set(
    name: str,
    caller: CallerDep,
    body: Annotated[dict[str, Any], Body(examples=[RULE_SET_EXAMPLE])],
) -> dict[str, Any]:
    """Every PUT appends a version (versions are never edited), in force from `effective_at`
    (default: now). Every account of the provider is looked at again by the worker's next pass."""
    check_rule_set_name(name, body)
    with caller.inputs() as inputs:
        t = _tenant(inputs.session, caller)
        row = add_rule_set_version(inputs, t, name, body, caller.now)
        return _rule_set_view(row, t)


@router.get(
    "/rule-sets",
    tags=["rule sets"],
    summary="Rule sets, each with its latest version",
    response_model=responses.RuleSetList,
)
def list_rule_sets(caller: CallerDep) -> dict[str, Any]:
    with caller.read() as s:
        t = _tenant(s, caller)
        latest = (
            select(RuleSetRow.name, func.max(RuleSetRow.version).label("version"))
            .where(RuleSetRow.provider_id == caller.provider_id)
            .group_by(RuleSetRow.name)
            .subquery()
        )
        rows = s.scalars(
            select(RuleSetRow)
            .join(latest, (RuleSetRow.name == latest.c.name) & (RuleSetRow.version == latest.c.version))
            .where(RuleSetRow.provider_id == caller.provider_id)
            .order_by(RuleSetRow.name)
        ).all()
        return {"items": [_rule_set_view(r, t) for r in rows]}


@router.get(
    "/rule-sets/{name}",
    tags=["rule sets"],
    summary="Every version of a rule set",
    response_model=responses.RuleSetVersions,
    responses=NOT_FOUND,
)
def get_rule_set(name: str, caller: CallerDep) -> dict[str, Any]:
    with caller.read() as s:
        t = _tenant(s, caller)
        rows = s.scalars(
            select(RuleSetRow)
            .where(RuleSetRow.provider_id == caller.provider_id, RuleSetRow.name == name)
            .order_by(RuleSetRow.version)
        ).all()
        if not rows:
            raise not_found("rule set", name)
        return {"name": name, "versions": [_rule_set_view(r, t) for r in rows]}


# -- event mappings -------------------------------------------------------------------------------


@router.put(
    "/event-mappings/{event}",
    tags=["event mappings"],
    summary="Set an event's mappings",
    response_model=responses.EventMappings,
    responses=WRITE,
)
def put_event_mappings(
    event: str,
    caller: CallerDep,
    body: Annotated[
        dict[str, Any] | list[dict[str, Any]],
        Body(examples=[{"channels": ["email", "note"], "recipients": ["primary"]}]),
    ],
) -> dict[str, Any]:
    """The shape of the simulation's `events.<event>`: one mapping, or a list of them for
    `invoice_due`, `invoice_overdue` and `suspension_warning`. Replaces the event's mappings
    (those no longer given are disabled)."""
    with caller.inputs() as inputs:
        provider = set_event_mappings(inputs, event, body, caller.now)
        t = views.Tenant.of(provider)
        return next(e for e in _mappings(inputs.session, caller.provider_id, t) if e["event"] == event)


@router.get(
    "/event-mappings",
    tags=["event mappings"],
    summary="Every event with its mappings",
    response_model=responses.EventMappingList,
)
def list_event_mappings(caller: CallerDep) -> dict[str, Any]:
    with caller.read() as s:
        return {"items": _mappings(s, caller.provider_id, _tenant(s, caller))}


# -- templates ------------------------------------------------------------------------------------


@router.get(
    "/templates/{event}/{channel}",
    tags=["templates"],
    summary="The template in effect",
    response_model=responses.Template,
)
def get_template(event: str, channel: str, caller: CallerDep) -> dict[str, Any]:
    """The provider's own template (`own: true`) or arrears' default (`own: false`)."""
    with caller.read() as s:
        return _template_view(s, caller.provider_id, event, channel)


@router.put(
    "/templates/{event}/{channel}",
    tags=["templates"],
    summary="Save the provider's own template",
    response_model=responses.SavedTemplate,
    responses=WRITE,
)
def put_template(event: str, channel: str, body: TemplateIn, caller: CallerDep) -> dict[str, Any]:
    """Rendered against a sample of the event first: a template that does not render is refused
    (`template.text` etc., with the line). Answers the template and the rendered `sample`."""
    source = _source(event, channel, body)
    with caller.write() as s:
        provider = s.get_one(ProviderRow, caller.provider_id)
        sample = rendering.save_template(s, provider, source, actor=caller.principal.actor, now=caller.now)
        return {**_template_view(s, caller.provider_id, event, channel), "sample": _rendered_view(sample)}


@router.post(
    "/templates/{event}/{channel}/preview",
    tags=["templates"],
    summary="Render a template",
    response_model=responses.Preview,
    responses={**NOT_FOUND, **responses.problems(413)},
)
def preview_template(
    event: str,
    channel: str,
    caller: CallerDep,
    body: Annotated[TemplateIn | None, Body()] = None,
    account: Annotated[str | None, Query(description="Render for this account (default: a sample)")] = None,
) -> dict[str, Any]:
    """The template in effect, or the unsaved one in the body, rendered for a sample of the
    event or for a real account (`?account=`). Nothing is stored."""
    source = _source(event, channel, body) if body is not None else None
    rendering.check_target(event, channel)
    with caller.read() as s:
        if account is not None:
            caller.owned(s, AccountRow, account, "account")
        provider = s.get_one(ProviderRow, caller.provider_id)
        rendered = rendering.preview(
            s, provider, event, channel, now=caller.now, account=account, source=source
        )
        return _rendered_view(rendered)


# -- operator actions -----------------------------------------------------------------------------


@router.post(
    "/accounts/{account_id}/actions",
    tags=["accounts"],
    summary="Suspend or restore an account by hand",
    response_model=responses.Account,
    responses={**NOT_FOUND, **WRITE},
)
def account_action(account_id: str, body: ActionIn, caller: CallerDep) -> dict[str, Any]:
    """An operator action (SPEC §6): recorded with its reason in the account's history.
    arrears does not restore an account an operator suspended; an operator restore starts the
    re-suspend grace. Answers the account as it now stands."""
    reason = body.reason.strip()
    if not reason:
        raise ConfigError("action.reason", "is required")
    with caller.inputs() as inputs:
        row = caller.owned(inputs.session, AccountRow, account_id, "account")
        inputs.manual(account_id, body.action, reason, field="action")
        inputs.settle()
        return views.account_detail(inputs.session, row, caller.now)
