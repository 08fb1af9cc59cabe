"""Provisioning requests over the API: the queue, confirmation by a provider's key, and the
signed callback of a webhook peer that answered 202 (SPEC §8; docs/provisioning.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears.api import responses, schemas, views
from arrears.api.context import Caller, api_state, provider_caller
from arrears.api.problems import ApiProblem, not_found
from arrears.config import ConfigError
from arrears.provisioning import service
from arrears.provisioning.webhook import SignatureError, callback_from_body, parse_callback
from arrears.store.tables import ProviderRow, ProvisioningRequestRow, ProvisioningRouteRow, ServiceRow

router = APIRouter(
    tags=["provisioning"],
    dependencies=[Depends(schemas.storable_params)],
    responses=responses.problems(401, 422, notes={401: "No valid API key, or a bad callback signature"}),
)
CallerDep = Annotated[Caller, Depends(provider_caller)]


class Settle(schemas.Body):
    state: str = Field(default="confirmed", pattern="^(confirmed|failed)$")
    detail: str = Field(default="", max_length=2000)


@router.get(
    "/provisioning-requests",
    summary="Provisioning requests, newest first",
    response_model=responses.ProvisioningRequestList,
    responses=responses.problems(403, 429),
)
def list_requests(
    caller: CallerDep,
    state: Annotated[str | None, Query(description="pending, sent, confirmed, failed or cancelled")] = None,
    account: Annotated[str | None, Query(description="Only this account's")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    with caller.read() as session:
        provider = session.get_one(ProviderRow, caller.provider_id)
        try:
            items = service.list_requests(session, service.RequestFilter(provider.key, account, state, limit))
        except ConfigError as exc:
            raise ApiProblem(422, exc.message, errors=[(exc.field, exc.message)]) from None
    return {"items": items}


@router.post(
    "/provisioning-requests/{request_id}/confirm",
    summary="Confirm (or fail) a request the network applied later",
    response_model=responses.Settled,
    responses=responses.problems(
        403, 404, 409, 413, 429, notes={409: "The request is not waiting to be settled"}
    ),
)
def confirm(
    request_id: Annotated[int, Path(ge=1, le=views.MAX_ID)], body: Settle, caller: CallerDep
) -> dict[str, Any]:
    """For adapters that answered "accepted": the network changed (or will not)."""
    with caller.write() as session:
        try:
            req = service.settle_by_hand(
                session,
                request_id,
                state=body.state,
                detail=body.detail,
                actor=caller.principal.actor,
                now=caller.now,
                provider_id=caller.provider_id,
            )
        except ConfigError as exc:
            if exc.field == "id":
                raise not_found("provisioning request", str(request_id)) from None
            raise ApiProblem(409, exc.message) from None
        return {"id": req.id, "state": req.state, "action": req.action, "key": req.key}


@router.post(
    "/callbacks/provisioning",
    summary="A webhook peer's signed confirmation",
    response_model=responses.CallbackSettled,
    responses=responses.problems(
        404, 409, 413, notes={404: "No such request", 409: "The request is not waiting to be settled"}
    ),
)
async def webhook_callback(request: Request) -> dict[str, Any]:
    """Signed like the provisioning webhook itself (`Arrears-Signature`, with the secret of
    the provider's webhook route), body `{"request_id", "key", "state", "detail"?}`. No API
    key: the signature is the credential."""
    body = await request.body()
    state = api_state(request)
    now = state.clock()
    with state.db.transaction() as session:
        try:
            unsigned = callback_from_body(body)
        except ValueError as exc:
            raise ApiProblem(422, str(exc)) from None
        in_range = 1 <= unsigned.request_id <= views.MAX_ID
        req = session.get(ProvisioningRequestRow, unsigned.request_id) if in_range else None
        if req is None or req.key != unsigned.key:
            raise not_found("provisioning request", str(unsigned.request_id))
        secrets = _webhook_secrets(session, req)
        try:
            callback = parse_callback(dict(request.headers), body, secrets, now)
        except SignatureError as exc:
            raise ApiProblem(401, f"bad signature: {exc.reason}") from None
        except ValueError as exc:
            raise ApiProblem(422, str(exc)) from None
        try:
            req = service.settle_by_hand(
                session,
                callback.request_id,
                state=callback.state.value,
                detail=callback.detail,
                actor="webhook callback",
                now=now,
            )
        except ConfigError as exc:
            raise ApiProblem(409, exc.message) from None
        return {"id": req.id, "state": req.state}


def _webhook_secrets(session: Session, req: ProvisioningRequestRow) -> list[str]:
    """The secrets of the provider's webhook routes (the request's own type first)."""
    from arrears.provisioning.registry import resolve_env

    service_type = session.scalar(select(ServiceRow.type).where(ServiceRow.id == req.service_id))
    routes = session.scalars(
        select(ProvisioningRouteRow).where(
            ProvisioningRouteRow.provider_id == req.provider_id, ProvisioningRouteRow.adapter == "webhook"
        )
    ).all()
    routes = sorted(routes, key=lambda r: r.service_type != service_type)
    secrets: list[str] = []
    for r in routes:
        try:
            secret = resolve_env(r.config).get("secret")
        except Exception:  # a route this machine cannot read cannot vouch for anything
            continue
        if isinstance(secret, str):
            secrets.append(secret)
    if not secrets:
        raise ApiProblem(401, "this provider has no webhook route to check the signature with")
    return secrets
