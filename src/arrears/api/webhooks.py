"""Webhook endpoints a provider registers for its state-change events, and their deliveries
(docs/webhooks.md)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from arrears.api import responses, schemas, views
from arrears.api.context import Caller, provider_caller
from arrears.api.problems import CONFLICT, ApiProblem, not_found
from arrears.api.schemas import Body
from arrears.store.tables import ProviderRow, WebhookDeliveryRow
from arrears.webhooks import service
from arrears.webhooks.events import EVENT_TYPES

router = APIRouter(
    tags=["webhooks"],
    dependencies=[Depends(schemas.storable_params)],
    responses=responses.PROVIDER_KEY,
)
CallerDep = Annotated[Caller, Depends(provider_caller)]
NOT_FOUND = responses.problems(404, notes={404: "No such record (of this provider)"})
CONFLICTS = responses.problems(409, notes={409: "Not possible in the record's present state"})
# Ids beyond the id columns' range name nothing: a 422, never a database error.
RowId = Annotated[int, Path(ge=1, le=views.MAX_ID)]
EVENTS_HELP = "Event types to receive (empty: every type): " + ", ".join(EVENT_TYPES)


# -- bodies ----------------------------------------------------------------------------------


class EndpointIn(Body):
    resource: ClassVar[str] = "endpoint"
    url: str = Field(description="The http:// or https:// address events are POSTed to")
    secret: str | None = Field(
        None,
        description="Signs every request; at least 16 characters. Omitted: one is generated and "
        "returned in this answer only",
    )
    events: list[str] = Field(default_factory=list, description=EVENTS_HELP)
    description: str = Field("", description="What it is for")


class EndpointPatch(Body):
    resource: ClassVar[str] = "endpoint"
    url: str | None = None
    secret: str | None = Field(None, description="A new signing secret (at least 16 characters)")
    events: list[str] | None = Field(None, description=EVENTS_HELP)
    description: str | None = None
    enabled: bool | None = Field(None, description="false stops its events; true starts them again")


# -- answers ---------------------------------------------------------------------------------


class EndpointOut(BaseModel):
    id: int
    url: str
    events: list[str] = Field(description="The event types it receives; empty: every type")
    description: str
    enabled: bool
    created_at: str


class EndpointCreated(EndpointOut):
    secret: str | None = Field(
        description="The generated signing secret, shown only this once (null when you gave one)"
    )


class EndpointList(BaseModel):
    items: list[EndpointOut]
    next_cursor: str | None = None


class DeliveryOut(BaseModel):
    id: int
    endpoint: int
    event_id: str = Field(description="The event's id: the same on every attempt and endpoint")
    event_type: str
    status: str = Field(description="pending, delivered or failed")
    attempts: int
    created_at: str
    next_attempt_at: str | None = Field(description="When it is tried next (pending only)")
    last_attempt_at: str | None
    response_status: int | None = Field(description="The HTTP status of the last answer, if any")
    last_error: str | None
    delivered_at: str | None
    payload: dict[str, Any] = Field(description="The body that is POSTed")


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


# -- endpoints -------------------------------------------------------------------------------


@router.post(
    "/webhook-endpoints",
    status_code=201,
    response_model=EndpointCreated,
    summary="Register a webhook endpoint",
    responses=CONFLICTS,
)
def post_endpoint(body: EndpointIn, caller: CallerDep) -> dict[str, Any]:
    """From now on, each event it subscribes to is POSTed to it, signed with its secret."""
    with caller.write(201) as s:
        t = views.Tenant.of(s.get_one(ProviderRow, caller.provider_id))
        try:
            row, generated = service.create_endpoint(s, caller.provider_id, body.data(), caller.now)
        except service.Conflict as exc:
            raise ApiProblem(409, str(exc), type_=CONFLICT) from None
        return {**service.endpoint_view(row, t.tz), "secret": generated}


@router.get("/webhook-endpoints", response_model=EndpointList, summary="Webhook endpoints")
def list_endpoints(caller: CallerDep) -> dict[str, Any]:
    """All of the provider's endpoints, enabled or not (never their secrets)."""
    with caller.read() as s:
        t = views.Tenant.of(s.get_one(ProviderRow, caller.provider_id))
        rows = service.list_endpoints(s, caller.provider_id)
        return {"items": [service.endpoint_view(r, t.tz) for r in rows], "next_cursor": None}


@router.get(
    "/webhook-endpoints/{endpoint_id}",
    response_model=EndpointOut,
    summary="A webhook endpoint",
    responses=NOT_FOUND,
)
def get_endpoint(endpoint_id: RowId, caller: CallerDep) -> dict[str, Any]:
    with caller.read() as s:
        t = views.Tenant.of(s.get_one(ProviderRow, caller.provider_id))
        row = service.get_endpoint(s, caller.provider_id, endpoint_id)
        if row is None:
            raise not_found("webhook endpoint", str(endpoint_id))
        return service.endpoint_view(row, t.tz)


@router.patch(
    "/webhook-endpoints/{endpoint_id}",
    response_model=EndpointOut,
    summary="Change a webhook endpoint",
    responses={**NOT_FOUND, **CONFLICTS},
)
def patch_endpoint(endpoint_id: RowId, body: EndpointPatch, caller: CallerDep) -> dict[str, Any]:
    """Change the fields given. Disabling it fails its pending deliveries (they stay listed)."""
    with caller.write() as s:
        t = views.Tenant.of(s.get_one(ProviderRow, caller.provider_id))
        row = service.get_endpoint(s, caller.provider_id, endpoint_id)
        if row is None:
            raise not_found("webhook endpoint", str(endpoint_id))
        try:
            service.change_endpoint(s, row, body.data(), caller.now)
        except service.Conflict as exc:
            raise ApiProblem(409, str(exc), type_=CONFLICT) from None
        return service.endpoint_view(row, t.tz)


@router.delete(
    "/webhook-endpoints/{endpoint_id}",
    response_model=EndpointOut,
    summary="Disable a webhook endpoint",
    responses=NOT_FOUND,
)
def delete_endpoint(endpoint_id: RowId, caller: CallerDep) -> dict[str, Any]:
    """Disabled, not erased: its deliveries stay listable, and PATCH `enabled: true` undoes it.
    Its pending deliveries fail."""
    with caller.write() as s:
        t = views.Tenant.of(s.get_one(ProviderRow, caller.provider_id))
        row = service.get_endpoint(s, caller.provider_id, endpoint_id)
        if row is None:
            raise not_found("webhook endpoint", str(endpoint_id))
        if row.enabled:
            service.disable_endpoint(s, row, caller.now, service.DISABLED)
        return service.endpoint_view(row, t.tz)


# -- deliveries ------------------------------------------------------------------------------


@router.get(
    "/webhook-deliveries",
    response_model=DeliveryPage,
    summary="Webhook deliveries, oldest first",
    responses=NOT_FOUND,
)
def list_deliveries(
    caller: CallerDep,
    endpoint: Annotated[int | None, Query(ge=1, le=views.MAX_ID, description="Only this endpoint's")] = None,
    status: Annotated[str | None, Query(description="pending, delivered or failed")] = None,
    event: Annotated[str | None, Query(description="Only this event id's")] = None,
    cursor: Annotated[str | None, Query(description="From `next_cursor` of the page before")] = None,
    limit: Annotated[int, Query(ge=1, le=views.MAX_LIMIT)] = views.DEFAULT_LIMIT,
) -> dict[str, Any]:
    """Each event for each endpoint with its status, attempts, the last answer or error and the
    next attempt; `next_cursor` pages on."""
    with caller.read() as s:
        t = views.Tenant.of(s.get_one(ProviderRow, caller.provider_id))
        if endpoint is not None and service.get_endpoint(s, caller.provider_id, endpoint) is None:
            raise not_found("webhook endpoint", str(endpoint))
        stmt = service.deliveries_query(caller.provider_id, endpoint=endpoint, status=status, event=event)
        rows, next_cursor = views.page_rows(s, stmt, WebhookDeliveryRow.id, limit, cursor)
        return {"items": [service.delivery_view(r, t.tz) for r in rows], "next_cursor": next_cursor}


@router.post(
    "/webhook-deliveries/{delivery_id}/retry",
    response_model=DeliveryOut,
    summary="Send a failed delivery again",
    responses={**NOT_FOUND, **CONFLICTS},
)
def retry_delivery(delivery_id: RowId, caller: CallerDep) -> dict[str, Any]:
    """Pending again and due at once, with the same event id. Past its three days it gets this
    one attempt. Only a failed delivery of an enabled endpoint can be retried."""
    with caller.write() as s:
        t = views.Tenant.of(s.get_one(ProviderRow, caller.provider_id))
        row = service.get_delivery(s, caller.provider_id, delivery_id)
        if row is None:
            raise not_found("webhook delivery", str(delivery_id))
        try:
            service.retry_delivery(s, row, caller.now)
        except service.Conflict as exc:
            raise ApiProblem(409, str(exc), type_=CONFLICT) from None
        return service.delivery_view(row, t.tz)
