"""The `arrears` command line: thin commands over the engine, wired in bootstrap."""

from __future__ import annotations

import sys
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
    typer.Option("--database-url", help="SQLAlchemy URL; default $ARREARS_DATABASE_URL or sqlite:///arrears.db"),
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
    from arrears.store.migrate import upgrade

    settings = Settings.from_env(database_url)
    upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}: {_safe_url(settings.database_url)}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. base or -1")],
    database_url: DatabaseOpt = None,
) -> None:
    """Migrate the schema down to an earlier revision."""
    from arrears.bootstrap import Settings
    from arrears.store.migrate import downgrade

    settings = Settings.from_env(database_url)
    downgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}: {_safe_url(settings.database_url)}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    app()
