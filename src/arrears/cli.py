"""The `arrears` command line: thin commands over the engine, wired in bootstrap."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="arrears: automatic restriction, suspension and restoration of services in arrears.",
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(db_app, name="db")

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url", help="SQLAlchemy URL; default $ARREARS_DATABASE_URL or sqlite:///arrears.db"
    ),
]


@app.callback()
def _root() -> None:
    """arrears: automatic restriction, suspension and restoration of services in arrears."""


@app.command()
def simulate(path: Annotated[str, typer.Argument(help="Scenario file (YAML, SPEC §9)")]) -> None:
    """Run a scenario on a virtual clock and print what happens, one JSON object per line.

    Exit status: 0 when every expect held, 1 when one failed, 2 when the file is invalid.
    """
    from arrears.config import ConfigError
    from arrears.sim.runner import Simulation
    from arrears.sim.scenario import load

    try:
        scenario = load(path)
        failures = Simulation(scenario, sys.stdout).run()
    except ConfigError as exc:
        typer.echo(f"invalid scenario: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(1 if failures else 0)


@db_app.command("upgrade")
def db_upgrade(
    database_url: DatabaseOpt = None,
    revision: Annotated[str, typer.Option(help="Target revision")] = "head",
) -> None:
    """Create or migrate the schema to the latest version (Alembic)."""
    from arrears.bootstrap import Settings
    from arrears.store.migrate import current, upgrade

    settings = Settings.from_env(database_url)
    upgrade(settings.database_url, revision)
    typer.echo(f"database at revision {current(settings.database_url)}: {_safe_url(settings.database_url)}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. base or -1")],
    database_url: DatabaseOpt = None,
) -> None:
    """Migrate the schema down to an earlier revision."""
    from arrears.bootstrap import Settings
    from arrears.store.migrate import current, downgrade

    settings = Settings.from_env(database_url)
    downgrade(settings.database_url, revision)
    typer.echo(f"database at revision {current(settings.database_url)}: {_safe_url(settings.database_url)}")


@app.command()
def demo(
    database_url: DatabaseOpt = None,
    accounts: Annotated[int, typer.Option(help="Accounts per provider")] = 150,
    days: Annotated[int, typer.Option(help="Simulated days")] = 120,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same demo)")] = 7,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
    smtp: Annotated[
        str | None,
        typer.Option(
            help="Deliver the demo's emails through this SMTP server, e.g. smtp://localhost:1025?starttls=false"
        ),
    ] = None,
) -> None:
    """Build a demo database (two providers, realistic billing) and run simulated days."""
    from arrears.demo import run_demo

    raise typer.Exit(
        run_demo(
            database_url=database_url, accounts=accounts, days=days, seed=seed, as_json=json_out, smtp=smtp
        )
    )


@app.command()
def worker(
    database_url: DatabaseOpt = None,
    interval: Annotated[
        float | None, typer.Option(help="Seconds between scans (default $ARREARS_SCAN_INTERVAL or 60)")
    ] = None,
    once: Annotated[bool, typer.Option(help="Run one scan and the dispatchers, then stop")] = False,
    ops_port: Annotated[
        int | None,
        typer.Option(help="Port of /healthz and /metrics (default $ARREARS_OPS_PORT or 9464; -1: off)"),
    ] = None,
) -> None:
    """Run the scanner and the dispatchers until stopped (SIGTERM/SIGINT stop gracefully)."""
    from arrears.bootstrap import Settings
    from arrears.worker import run_worker

    raise typer.Exit(
        run_worker(Settings.from_env(database_url), interval=interval, once=once, ops_port=ops_port)
    )


@app.command()
def scan(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would happen; change nothing")
    ] = False,
    database_url: DatabaseOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
    at: Annotated[str | None, typer.Option(help="Evaluate at this ISO instant instead of now")] = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider (its key)")] = None,
) -> None:
    """One full evaluation pass now: every account whose decision changes."""
    from arrears.bootstrap import Settings
    from arrears.worker import scan_command

    raise typer.Exit(
        scan_command(
            Settings.from_env(database_url), dry_run=dry_run, as_json=json_out, at=at, provider=provider
        )
    )


notifications_app = typer.Typer(
    invoke_without_command=True, help="Notifications: list them; retry or cancel one by hand."
)
app.add_typer(notifications_app, name="notifications")


@notifications_app.callback()
def notifications(
    ctx: typer.Context,
    database_url: DatabaseOpt = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider (its key)")] = None,
    account: Annotated[str | None, typer.Option(help="Only this account (the provider's id)")] = None,
    event: Annotated[str | None, typer.Option(help="Only this event, e.g. invoice_overdue")] = None,
    state: Annotated[
        str | None, typer.Option(help="Only this state: pending, sent, failed, skipped, uncertain, ...")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 100,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
) -> None:
    """List notifications, newest first (with no subcommand)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = database_url
        return
    from arrears.cli_notifications import list_command

    raise typer.Exit(
        list_command(
            database_url,
            provider=provider,
            account=account,
            event=event,
            state=state,
            limit=limit,
            as_json=json_out,
        )
    )


@notifications_app.command("retry")
def notifications_retry(
    ctx: typer.Context,
    notification_id: Annotated[int, typer.Argument(help="The notification's id")],
    actor: Annotated[str, typer.Option(help="Who asks (recorded in the history)")] = "operator",
    database_url: DatabaseOpt = None,
) -> None:
    """Send a failed or interrupted notification again at the next delivery round."""
    from arrears.cli_notifications import change_command

    raise typer.Exit(change_command(database_url or ctx.obj, "retry", notification_id, actor))


@notifications_app.command("cancel")
def notifications_cancel(
    ctx: typer.Context,
    notification_id: Annotated[int, typer.Argument(help="The notification's id")],
    actor: Annotated[str, typer.Option(help="Who asks (recorded in the history)")] = "operator",
    database_url: DatabaseOpt = None,
) -> None:
    """Call off a notification that has not gone out (or may not have)."""
    from arrears.cli_notifications import change_command

    raise typer.Exit(change_command(database_url or ctx.obj, "cancel", notification_id, actor))


templates_app = typer.Typer(
    no_args_is_help=True,
    help="A provider's notice templates: list, show, set (checked first), preview, reset.",
)
app.add_typer(templates_app, name="templates")

TemplateProviderOpt = Annotated[
    str | None,
    typer.Option("--provider", help="The provider (its key); may be left out when the database has only one"),
]
EventArg = Annotated[str, typer.Argument(help="The event, e.g. invoice_overdue")]
ChannelArg = Annotated[str, typer.Argument(help="email or sms")]
TemplateJsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]
SubjectOpt = Annotated[
    str | None,
    typer.Option("--subject", help="Email subject template (default: keep the current template's)"),
]
HtmlFileOpt = Annotated[
    str | None, typer.Option("--html-file", help="File with the email's HTML body template (optional)")
]


@templates_app.command("list")
def templates_list(
    database_url: DatabaseOpt = None, provider: TemplateProviderOpt = None, json_out: TemplateJsonOpt = False
) -> None:
    """Every event and channel: the provider's own template, or the default."""
    from arrears.cli_templates import list_command

    raise typer.Exit(list_command(database_url, provider=provider, as_json=json_out))


@templates_app.command("show")
def templates_show(
    event: EventArg,
    channel: ChannelArg,
    database_url: DatabaseOpt = None,
    provider: TemplateProviderOpt = None,
    json_out: TemplateJsonOpt = False,
) -> None:
    """The template in effect (subject, text, html), as written."""
    from arrears.cli_templates import show_command

    raise typer.Exit(
        show_command(database_url, provider=provider, event=event, channel=channel, as_json=json_out)
    )


@templates_app.command("set")
def templates_set(
    event: EventArg,
    channel: ChannelArg,
    text_file: Annotated[
        str, typer.Option("--text-file", help="File with the text (or SMS) template; - for stdin")
    ],
    subject: SubjectOpt = None,
    html_file: HtmlFileOpt = None,
    actor: Annotated[str, typer.Option(help="Who changes it (recorded with the template)")] = "operator",
    database_url: DatabaseOpt = None,
    provider: TemplateProviderOpt = None,
) -> None:
    """Save the provider's own template, once it renders against a sample of its event.

    Exit status 2 when it does not, with the field and line on stderr.
    """
    from arrears.cli_templates import set_command

    raise typer.Exit(
        set_command(
            database_url,
            provider=provider,
            event=event,
            channel=channel,
            text_file=text_file,
            subject=subject,
            html_file=html_file,
            actor=actor,
        )
    )


@templates_app.command("preview")
def templates_preview(
    event: EventArg,
    channel: ChannelArg,
    account: Annotated[
        str | None, typer.Option(help="Render for this account (the provider's id) instead of a sample")
    ] = None,
    text_file: Annotated[
        str | None, typer.Option("--text-file", help="Preview this unsaved text (or SMS) template instead")
    ] = None,
    subject: SubjectOpt = None,
    html_file: HtmlFileOpt = None,
    html: Annotated[bool, typer.Option("--html", help="Print the rendered HTML body too")] = False,
    database_url: DatabaseOpt = None,
    provider: TemplateProviderOpt = None,
    json_out: TemplateJsonOpt = False,
) -> None:
    """Render the template in effect (or an unsaved one) for a real account or a sample."""
    from arrears.cli_templates import preview_command

    raise typer.Exit(
        preview_command(
            database_url,
            provider=provider,
            event=event,
            channel=channel,
            account=account,
            text_file=text_file,
            subject=subject,
            html_file=html_file,
            show_html=html,
            as_json=json_out,
        )
    )


@templates_app.command("reset")
def templates_reset(
    event: EventArg,
    channel: ChannelArg,
    database_url: DatabaseOpt = None,
    provider: TemplateProviderOpt = None,
) -> None:
    """Delete the provider's own template: arrears' default applies again."""
    from arrears.cli_templates import reset_command

    raise typer.Exit(reset_command(database_url, provider=provider, event=event, channel=channel))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    database_url: DatabaseOpt = None,
) -> None:
    """Serve the REST API (/api/v1, docs at /api/v1/docs) until stopped (SIGTERM/SIGINT).

    $ARREARS_PLATFORM_KEY is accepted as a platform key; $ARREARS_API_RATE and
    $ARREARS_API_BURST set the rate limit per key.
    """
    from arrears.cli_api import serve_command

    raise typer.Exit(serve_command(database_url, host, port))


@app.command()
def run(
    host: Annotated[str, typer.Option(help="Address the API listens on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the API listens on")] = 8000,
    interval: Annotated[
        float | None, typer.Option(help="Seconds between scans (default $ARREARS_SCAN_INTERVAL or 60)")
    ] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """The API and the worker in one process, for small installs (SIGTERM stops both)."""
    from arrears.bootstrap import Settings
    from arrears.worker import run_all

    raise typer.Exit(run_all(Settings.from_env(database_url), host, port, interval))


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="A .jsonl file (each line names its type) or a .csv file")],
    provider: Annotated[
        str | None, typer.Option(help="The provider's key (needed when there are several)")
    ] = None,
    kind: Annotated[
        str | None, typer.Option("--type", help="The kind of record every CSV row is (invoice, payment, ...)")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Import billing records in bulk, each line as its API `PUT` would be (see docs/api.md).

    Good lines are kept; refused ones are listed with the field at fault. Exits 1
    when some lines were refused.
    """
    from arrears.cli_import import import_file

    raise typer.Exit(import_file(database_url, path, provider, kind, json_out))


keys_app = typer.Typer(no_args_is_help=True, help="API keys: create (printed once), list, revoke.")
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    platform: Annotated[bool, typer.Option("--platform", help="A platform key (manages providers)")] = False,
    provider: Annotated[
        str | None, typer.Option("--provider", help="A key of this provider (its key)")
    ] = None,
    name: Annotated[str, typer.Option(help="What the key is for")] = "",
    database_url: DatabaseOpt = None,
) -> None:
    """Create an API key and print it; only its hash is stored, so it is shown this once."""
    from arrears.cli_api import keys_create as create

    raise typer.Exit(create(database_url, platform=platform, provider=provider, name=name))


@keys_app.command("list")
def keys_list(
    provider: Annotated[str | None, typer.Option("--provider", help="Only this provider's keys")] = None,
    database_url: DatabaseOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
) -> None:
    """Every key by its prefix (never the key itself), with its provider and whether it is revoked."""
    from arrears.cli_api import keys_list as list_

    raise typer.Exit(list_(database_url, provider=provider, as_json=json_out))


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (as `arrears keys list` shows it)")],
    database_url: DatabaseOpt = None,
) -> None:
    """Revoke a key at once."""
    from arrears.cli_api import keys_revoke as revoke

    raise typer.Exit(revoke(database_url, prefix))


users_app = typer.Typer(no_args_is_help=True, help="Web console users: create, list, disable.")
app.add_typer(users_app, name="users")


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="The name they sign in with")],
    provider: Annotated[
        str | None, typer.Option("--provider", help="A user of this provider (its key)")
    ] = None,
    platform: Annotated[
        bool, typer.Option("--platform", help="A platform user, who picks the provider to look at")
    ] = False,
    role: Annotated[
        str, typer.Option(help="viewer (reads), operator (acts) or admin (also configures)")
    ] = "viewer",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (one line)")
    ] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Create a console user; the password is asked for (or read with --password-stdin) and stored hashed."""
    from arrears.cli_users import create_command

    raise typer.Exit(
        create_command(
            database_url,
            username,
            provider=provider,
            platform=platform,
            role=role,
            password_stdin=password_stdin,
        )
    )


@users_app.command("list")
def users_list(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Every console user with their provider, role and whether they are disabled."""
    from arrears.cli_users import list_command

    raise typer.Exit(list_command(database_url, as_json=json_out))


@users_app.command("disable")
def users_disable(
    username: Annotated[str, typer.Argument(help="The user to disable")],
    database_url: DatabaseOpt = None,
) -> None:
    """Disable a user at once: they cannot sign in, and their open sessions end."""
    from arrears.cli_users import disable_command

    raise typer.Exit(disable_command(database_url, username))


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


provisioning_app = typer.Typer(
    no_args_is_help=True, help="Provisioning: routes to adapters, the request queue."
)
routes_app = typer.Typer(no_args_is_help=True, help="Which adapter serves which services.")
provisioning_app.add_typer(routes_app, name="routes")
app.add_typer(provisioning_app, name="provisioning")
ProviderOpt = Annotated[str | None, typer.Option(help="The provider's key (needed when there are several)")]


@routes_app.command("set")
def routes_set(
    service_type: Annotated[str, typer.Option("--service-type", help="A service type, or * for any other")],
    adapter: Annotated[str, typer.Option(help="log, webhook, radius or command")],
    config: Annotated[
        str, typer.Option(help="The adapter's settings: a JSON object or a file holding one")
    ] = "{}",
    provider: ProviderOpt = None,
    actor: Annotated[str, typer.Option(help="Who sets it (recorded)")] = "operator",
    database_url: DatabaseOpt = None,
) -> None:
    """Route a provider's services of a type to an adapter (the settings are checked first)."""
    from arrears.cli_provisioning import route_set

    raise typer.Exit(route_set(database_url, provider, service_type, adapter, config, actor))


@routes_app.command("remove")
def routes_remove(
    service_type: Annotated[str, typer.Option("--service-type", help="The route's service type")],
    provider: ProviderOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Remove a route (those services fall back to the * route, or the log adapter)."""
    from arrears.cli_provisioning import route_remove

    raise typer.Exit(route_remove(database_url, provider, service_type))


@routes_app.command("list")
def routes_list(
    provider: ProviderOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """A provider's routes (settings shown by name only: they may hold secrets)."""
    from arrears.cli_provisioning import route_list

    raise typer.Exit(route_list(database_url, provider, json_out))


@provisioning_app.command("requests")
def provisioning_requests(
    provider: ProviderOpt = None,
    account: Annotated[str | None, typer.Option(help="Only this account (the provider's id)")] = None,
    state: Annotated[str | None, typer.Option(help="pending, sent, confirmed, failed or cancelled")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 100,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Provisioning requests, newest first, with their state and last error."""
    from arrears.cli_provisioning import requests
    from arrears.provisioning.service import RequestFilter

    raise typer.Exit(requests(database_url, RequestFilter(provider, account, state, limit), json_out))


@provisioning_app.command("confirm")
def provisioning_confirm(
    request_id: Annotated[int, typer.Argument(help="The request's id")],
    actor: Annotated[str, typer.Option(help="Who confirms (recorded)")] = "operator",
    database_url: DatabaseOpt = None,
) -> None:
    """Confirm a request the network applied (one waiting for its callback, or one that failed)."""
    from arrears.cli_provisioning import settle

    raise typer.Exit(settle(database_url, request_id, "confirmed", "", actor))


@provisioning_app.command("fail")
def provisioning_fail(
    request_id: Annotated[int, typer.Argument(help="The request's id")],
    reason: Annotated[str, typer.Option(help="Why (shown to operators)")],
    actor: Annotated[str, typer.Option(help="Who fails it (recorded)")] = "operator",
    database_url: DatabaseOpt = None,
) -> None:
    """Mark a waiting request failed: the network will not apply it."""
    from arrears.cli_provisioning import settle

    raise typer.Exit(settle(database_url, request_id, "failed", reason, actor))


webhooks_app = typer.Typer(
    no_args_is_help=True, help="Webhooks: endpoints for state-change events, deliveries."
)
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Option(help="The http:// or https:// address events are posted to")],
    event: Annotated[
        list[str] | None, typer.Option(help="An event type to send (repeat it; none: every event)")
    ] = None,
    secret: Annotated[
        str | None, typer.Option(help="The signing secret, or env:NAME (omitted: generated, printed once)")
    ] = None,
    description: Annotated[str, typer.Option(help="What it is for")] = "",
    provider: ProviderOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Register a webhook endpoint of a provider."""
    from arrears.cli_webhooks import add

    raise typer.Exit(add(database_url, provider, url, secret, event or [], description))


@webhooks_app.command("list")
def webhooks_list(
    provider: ProviderOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """A provider's webhook endpoints (never their secrets)."""
    from arrears.cli_webhooks import endpoints

    raise typer.Exit(endpoints(database_url, provider, json_out))


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    provider: ProviderOpt = None,
    endpoint: Annotated[int | None, typer.Option(help="Only this endpoint's")] = None,
    status: Annotated[str | None, typer.Option(help="pending, delivered or failed")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 100,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Webhook deliveries, newest first, with their status, attempts and last answer."""
    from arrears.cli_webhooks import deliveries

    raise typer.Exit(deliveries(database_url, provider, endpoint, status, limit, json_out))


@webhooks_app.command("retry")
def webhooks_retry(
    delivery_id: Annotated[int, typer.Argument(help="The delivery's id")],
    provider: ProviderOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Send a failed delivery again (same event id) at the worker's next round."""
    from arrears.cli_webhooks import retry

    raise typer.Exit(retry(database_url, provider, delivery_id))


def main() -> None:
    app()
