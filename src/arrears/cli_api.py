"""`arrears serve` and `arrears keys`: the implementations behind the thin commands in cli.py."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from sqlalchemy import inspect, select

from arrears.bootstrap import Settings, database
from arrears.cli_support import Column, show
from arrears.store.db import Database
from arrears.store.tables import ProviderRow


def _has_schema(db: Database) -> bool:
    if inspect(db.engine).has_table("api_keys"):
        return True
    typer.echo("no arrears schema with API keys here: run `arrears db upgrade` first", err=True)
    return False


def serve_command(database_url: str | None, host: str, port: int) -> int:
    from arrears.api.serve import serve

    db = database(Settings.from_env(database_url))
    try:
        return serve(db, host, port)
    finally:
        db.dispose()


def keys_create(database_url: str | None, *, platform: bool, provider: str | None, name: str) -> int:
    """Create a key and print it, once: only its hash is kept."""
    from arrears.api.auth import create_key
    from arrears.worker import prepare_schema

    if platform == (provider is not None):
        typer.echo("give exactly one of --platform or --provider KEY", err=True)
        return 2
    db = database(Settings.from_env(database_url))
    try:
        prepare_schema(db)
        with db.transaction() as s:
            provider_id = None
            if provider is not None:
                provider_id = s.scalar(select(ProviderRow.id).where(ProviderRow.key == provider))
                if provider_id is None:
                    typer.echo(f"--provider: no provider {provider!r}", err=True)
                    return 2
            row, key = create_key(s, provider_id, name, "cli", datetime.now(UTC))
    finally:
        db.dispose()
    typer.echo(
        f"created {'platform' if platform else provider} key {row.prefix}; it is shown only now:", err=True
    )
    typer.echo(key)
    return 0


def keys_list(database_url: str | None, *, provider: str | None, as_json: bool) -> int:
    from arrears.api.auth import list_keys
    from arrears.api.views import key_view

    db = database(Settings.from_env(database_url))
    try:
        if not _has_schema(db):
            return 2
        with db.transaction() as s:
            keys = {p.id: p.key for p in s.scalars(select(ProviderRow))}
            rows = list_keys(s, None, everything=True)
            items = [
                {**key_view(r), "provider": keys.get(r.provider_id) if r.provider_id else None} for r in rows
            ]
    finally:
        db.dispose()
    if provider is not None:
        items = [i for i in items if i["provider"] == provider]
    columns: list[Column] = [
        ("prefix", "prefix"),
        ("provider", lambda r: r["provider"] or "(platform)"),
        ("name", "name"),
        ("created", "created_at"),
        ("revoked", "revoked_at"),
    ]
    return show(items, "API keys", columns, as_json=as_json)


def keys_revoke(database_url: str | None, prefix: str) -> int:
    from arrears.api.auth import revoke

    db = database(Settings.from_env(database_url))
    try:
        if not _has_schema(db):
            return 2
        with db.transaction() as s:
            row = revoke(s, prefix, datetime.now(UTC))
    finally:
        db.dispose()
    if row is None:
        typer.echo(f"no key {prefix!r}", err=True)
        return 2
    typer.echo(f"revoked key {prefix}")
    return 0
