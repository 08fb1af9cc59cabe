"""Providers (managed with a platform key) and each provider's own API keys."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from arrears.api import auth, responses, schemas, views
from arrears.api.context import Caller, platform_caller, provider_caller
from arrears.api.problems import CONFLICT, ApiProblem
from arrears.config import NOTICE_SETTINGS, ConfigError, check_timezone, parse_notice_settings
from arrears.engine.inputs import apply_notice_settings, create_provider
from arrears.store.tables import AccountRow, ProviderRow

router = APIRouter(
    dependencies=[Depends(schemas.storable_params)],
    responses=responses.problems(401, 403, 422, 429),
)
Platform = Annotated[Caller, Depends(platform_caller)]
ProviderKey = Annotated[Caller, Depends(provider_caller)]
NOT_FOUND = responses.problems(404, notes={404: "No such provider"})


def _provider(session: Session, ref: str) -> ProviderRow:
    row = views.find_provider(session, ref)
    if row is None:
        raise ApiProblem(404, f"no provider {ref!r}")
    return row


@router.post(
    "/providers",
    status_code=201,
    tags=["providers"],
    summary="Create a provider (platform)",
    response_model=responses.NewProvider,
    responses=responses.problems(409, 413, notes={409: "A provider with this key exists"}),
)
def post_provider(body: schemas.ProviderIn, caller: Platform) -> dict[str, Any]:
    """A new provider and its first API key (`api_key`, shown only this once)."""
    notices = parse_notice_settings(body.data(), prefix="provider")
    with caller.write(201) as s:
        if s.scalar(select(ProviderRow.id).where(ProviderRow.key == body.key)) is not None:
            raise ApiProblem(
                409, f"a provider {body.key!r} exists", errors=[("provider.key", "is taken")], type_=CONFLICT
            )
        row = create_provider(
            s,
            key=body.key,
            name=body.name,
            timezone=body.timezone,
            currency=body.currency,
            sms=body.sms,
            send_time=body.send_time,
            notices=notices,
            now=caller.now,
        )
        _, api_key = auth.create_key(s, row.id, "first key", caller.principal.actor, caller.now)
        return {**views.provider_view(row), "api_key": api_key}


@router.get(
    "/providers",
    tags=["providers"],
    summary="List providers (platform)",
    response_model=responses.ProviderPage,
)
def list_providers(
    caller: Platform,
    limit: Annotated[int, Query(ge=1, le=views.MAX_LIMIT)] = views.DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    with caller.read() as s:
        rows, next_cursor = views.page_rows(s, select(ProviderRow), ProviderRow.id, limit, cursor)
        return {"items": [views.provider_view(r) for r in rows], "next_cursor": next_cursor}


@router.get(
    "/providers/{provider}",
    tags=["providers"],
    summary="A provider (platform)",
    response_model=responses.Provider,
    responses=NOT_FOUND,
)
def get_provider(provider: str, caller: Platform) -> dict[str, Any]:
    """By numeric id or key."""
    with caller.read() as s:
        return views.provider_view(_provider(s, provider))


@router.patch(
    "/providers/{provider}",
    tags=["providers"],
    summary="Change a provider (platform)",
    response_model=responses.Provider,
    responses={**NOT_FOUND, **responses.problems(413)},
)
def patch_provider(provider: str, body: schemas.ProviderPatch, caller: Platform) -> dict[str, Any]:
    """Change the fields given. The key and the currency never change (amounts are stored in it)."""
    data = body.data()
    with caller.write() as s:
        row = _provider(s, provider)
        apply_changes(s, row, data, caller.now)
        return views.provider_view(row)


def apply_changes(session: Session, row: ProviderRow, data: dict[str, Any], now: Any) -> None:
    """A provider's changed settings; a change that moves decisions re-evaluates its accounts."""
    for name in ("name", "sms", "send_time", "timezone"):
        if name in data and data[name] is None:
            raise ConfigError(f"provider.{name}", "must not be null")
    if "timezone" in data:
        check_timezone(data["timezone"], "provider.timezone")
    if "send_time" in data:
        from datetime import time

        try:
            time.fromisoformat(data["send_time"])
        except ValueError:
            raise ConfigError(
                "provider.send_time", f'{data["send_time"]!r} is not a time of day as "HH:MM"'
            ) from None
    if any(k in data for k in NOTICE_SETTINGS):
        current = {
            "locale": row.locale,
            "quiet_hours": {"start": row.quiet_start, "end": row.quiet_end} if row.quiet_start else None,
            "email_from": row.email_from,
            "sms_from": row.sms_from,
            "payment_link": row.payment_link,
            "operations_email": row.operations_email,
        }
        merged = {**current, **{k: v for k, v in data.items() if k in NOTICE_SETTINGS}}
        apply_notice_settings(row, parse_notice_settings(merged, prefix="provider"))
    decisions_move = any(k in data and data[k] != getattr(row, k) for k in ("timezone", "send_time"))
    for name in ("name", "sms", "send_time", "timezone"):
        if name in data:
            setattr(row, name, data[name])
    if decisions_move:
        # Local days and send times moved: every account is looked at again by the next scan.
        session.execute(update(AccountRow).where(AccountRow.provider_id == row.id).values(next_wakeup_at=now))


@router.get("/provider", tags=["provider"], summary="The calling provider", response_model=responses.Provider)
def get_own_provider(caller: ProviderKey) -> dict[str, Any]:
    with caller.read() as s:
        return views.provider_view(s.get_one(ProviderRow, caller.provider_id))


@router.post(
    "/provider/keys",
    status_code=201,
    tags=["provider"],
    summary="Create an API key",
    response_model=responses.NewApiKey,
    responses=responses.problems(413),
)
def post_key(body: schemas.KeyIn, caller: ProviderKey) -> dict[str, Any]:
    """A new key of the calling provider; `api_key` is shown only this once."""
    with caller.write(201) as s:
        row, api_key = auth.create_key(s, caller.provider_id, body.name, caller.principal.actor, caller.now)
        return {**views.key_view(row), "api_key": api_key}


@router.get("/provider/keys", tags=["provider"], summary="List API keys", response_model=responses.ApiKeyPage)
def list_keys(caller: ProviderKey) -> dict[str, Any]:
    with caller.read() as s:
        return {
            "items": [views.key_view(r) for r in auth.list_keys(s, caller.provider_id)],
            "next_cursor": None,
        }


@router.delete(
    "/provider/keys/{prefix}",
    tags=["provider"],
    summary="Revoke an API key",
    response_model=responses.ApiKey,
    responses=responses.problems(404, notes={404: "No such key of this provider"}),
)
def revoke_key(prefix: str, caller: ProviderKey) -> dict[str, Any]:
    """Revoked at once (also the key making this call); the key stays listed as revoked."""
    with caller.write() as s:
        row = auth.revoke(s, prefix, caller.now, provider_id=caller.provider_id)
        if row is None:
            raise ApiProblem(404, f"no key {prefix!r}")
        return views.key_view(row)
