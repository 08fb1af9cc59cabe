"""`arrears templates`: a provider's notice templates — list, show, set (checked first), preview, reset.

Every command works on one provider: the one named by `--provider`, or the only
one in the database. Errors name the option or argument they are about and exit 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session

from arrears.cli_support import CliError, cli_session, pick_provider
from arrears.config import ConfigError
from arrears.domain.events import EventKind
from arrears.notify import admin, rendering
from arrears.notify.templates import Rendered, TemplateError, TemplateSource
from arrears.store.tables import ProviderRow, TemplateRow

MAX_ACTOR = 100  # templates.updated_by

# What the fields of errors raised by `rendering` are called on this command line.
_OPTION_OF_FIELD = {"event": "EVENT", "channel": "CHANNEL", "account": "--account"}
_OPTION_OF_TEMPLATE_FIELD = {"subject": "--subject", "text": "--text-file", "html": "--html-file"}


# -- the commands --------------------------------------------------------------------------------


def list_command(database_url: str | None, *, provider: str | None, as_json: bool) -> int:
    def run(session: Session, out: _Output) -> None:
        p = pick_provider(session, provider)
        own = admin.own_templates(session, p)
        rows: list[dict[str, Any]] = []
        for event in EventKind:
            for channel in rendering.TEMPLATE_CHANNELS:
                row = own.get((event.value, channel))
                rows.append(
                    {
                        "event": event.value,
                        "channel": channel,
                        "template": "own" if row is not None else "default",
                        "updated_at": row.updated_at.isoformat() if row is not None else None,
                        "updated_by": row.updated_by if row is not None else None,
                    }
                )
        if as_json:
            out.json({"provider": p.key, "templates": rows})
            return
        table = Table(title=f"Templates of {p.key} ({len(own)} own, {len(rows) - len(own)} default)")
        for column in ("event", "channel", "template", "updated", "by"):
            table.add_column(column, overflow="fold")
        for r in rows:
            own_row = r["template"] == "own"
            table.add_row(
                r["event"],
                r["channel"],
                "[bold]own[/bold]" if own_row else "default",
                _when(own[(r["event"], r["channel"])].updated_at) if own_row else "",
                escape(r["updated_by"] or ""),
            )
        out.table(table)

    return _run(database_url, run)


def show_command(
    database_url: str | None, *, provider: str | None, event: str, channel: str, as_json: bool
) -> int:
    def run(session: Session, out: _Output) -> None:
        p = pick_provider(session, provider)
        _check_target(event, channel)
        row = admin.own_template(session, p, event, channel)
        source = rendering.template_for(session, p.id, event, channel)
        if as_json:
            out.json(
                {
                    "provider": p.key,
                    "event": event,
                    "channel": channel,
                    "template": "own" if row is not None else "default",
                    "updated_at": row.updated_at.isoformat() if row is not None else None,
                    "updated_by": row.updated_by if row is not None else None,
                    "subject": source.subject,
                    "text": source.text,
                    "html": source.html,
                }
            )
            return
        out.line(f"{p.key}: {event} {channel}, {_whose(row)}")
        if source.subject is not None:
            out.line(f"subject: {source.subject}")
        out.line("text:")
        out.line(_indent(source.text))
        if source.html is not None:
            out.line("html:")
            out.line(_indent(source.html))

    return _run(database_url, run)


def set_command(
    database_url: str | None,
    *,
    provider: str | None,
    event: str,
    channel: str,
    text_file: str,
    subject: str | None,
    html_file: str | None,
    actor: str,
) -> int:
    def run(session: Session, out: _Output) -> None:
        p = pick_provider(session, provider)
        _check_target(event, channel)
        if not actor.strip() or len(actor) > MAX_ACTOR:
            raise CliError("--actor", f"must be a name of 1 to {MAX_ACTOR} characters")
        source, kept_subject = _source(session, p, event, channel, text_file, subject, html_file)
        rendered = rendering.save_template(session, p, source, actor=actor, now=datetime.now(UTC))
        out.line(
            f"saved {p.key}'s own {event} {channel} template (by {actor}); the default no longer applies"
        )
        if kept_subject:
            out.line("(subject kept from the template it replaces; give --subject to change it)")
        if channel == "email" and source.html is None:
            out.line("(no --html-file: these emails go out as plain text only)")
        out.line("")
        out.line("rendered against a sample:")
        _print_rendered(out, rendered, show_html=False)

    return _run(database_url, run)


def preview_command(
    database_url: str | None,
    *,
    provider: str | None,
    event: str,
    channel: str,
    account: str | None,
    text_file: str | None,
    subject: str | None,
    html_file: str | None,
    show_html: bool,
    as_json: bool,
) -> int:
    def run(session: Session, out: _Output) -> None:
        p = pick_provider(session, provider)
        _check_target(event, channel)
        source: TemplateSource | None = None
        if text_file is not None:
            source, _ = _source(session, p, event, channel, text_file, subject, html_file)
            kind, which = "unsaved", "an unsaved template"
        else:
            if subject is not None or html_file is not None:
                option = "--subject" if subject is not None else "--html-file"
                raise CliError(option, "previewing an unsaved template needs its --text-file too")
            row = admin.own_template(session, p, event, channel)
            kind, which = ("default" if row is None else "own"), _whose(row)
        rendered = rendering.preview(
            session, p, event, channel, now=datetime.now(UTC), account=account, source=source
        )
        if as_json:
            out.json(
                {
                    "provider": p.key,
                    "event": event,
                    "channel": channel,
                    "account": account,
                    "template": kind,
                    **_rendered_json(rendered),
                }
            )
            return
        for_whom = f"account {account}" if account is not None else "a sample account"
        out.line(f"{p.key}: {event} {channel}, {which}, for {for_whom}")
        out.line("")
        _print_rendered(out, rendered, show_html=show_html)

    return _run(database_url, run)


def reset_command(database_url: str | None, *, provider: str | None, event: str, channel: str) -> int:
    def run(session: Session, out: _Output) -> None:
        p = pick_provider(session, provider)
        _check_target(event, channel)
        if admin.reset_template(session, p, event, channel):
            out.line(f"deleted {p.key}'s own {event} {channel} template: arrears' default applies again")
        else:
            out.line(
                f"{p.key} has no {event} {channel} template of its own: arrears' default already applies"
            )

    return _run(database_url, run)


# -- helpers -------------------------------------------------------------------------------------


def _run(database_url: str | None, body: Callable[[Session, _Output], None]) -> int:
    """Run `body` in one transaction, then print what it said; the exit status (2 for a mistake,
    with the reason on stderr). Nothing is printed before the transaction has committed."""
    out = _Output()
    try:
        with cli_session(database_url, TemplateRow.__tablename__) as session:
            body(session, out)
    except CliError as exc:
        _error(exc.option, exc.message)
        return 2
    except ConfigError as exc:
        _error(_OPTION_OF_FIELD.get(exc.field, exc.field), exc.message)
        return 2
    out.flush()
    return 0


class _Output:
    """What a command prints, held until its transaction has committed."""

    def __init__(self) -> None:
        self._parts: list[str | Table] = []

    def line(self, text: str) -> None:
        # Plain text, not rich: template text is full of brackets rich would read as markup.
        self._parts.append(text)

    def json(self, value: Any) -> None:
        self._parts.append(json.dumps(value, indent=2, ensure_ascii=False))

    def table(self, table: Table) -> None:
        self._parts.append(table)

    def flush(self) -> None:
        console = Console()
        for part in self._parts:
            if isinstance(part, str):
                sys.stdout.write(part + "\n")
            else:
                console.print(part)
        sys.stdout.flush()


def _check_target(event: str, channel: str) -> None:
    try:
        rendering.check_target(event, channel)
    except ConfigError as exc:
        raise CliError(_OPTION_OF_FIELD.get(exc.field, exc.field), exc.message) from None


def _source(
    session: Session,
    provider: ProviderRow,
    event: str,
    channel: str,
    text_file: str,
    subject: str | None,
    html_file: str | None,
) -> tuple[TemplateSource, bool]:
    """The template given on the command line; and whether its subject was kept from the current one."""
    if channel == "sms":
        if subject is not None:
            raise CliError("--subject", "an SMS has no subject")
        if html_file is not None:
            raise CliError("--html-file", "an SMS has no HTML body")
    text = _read("--text-file", text_file)
    html = _read("--html-file", html_file) if html_file is not None else None
    kept = False
    if channel == "email" and subject is None:
        subject = rendering.template_for(session, provider.id, event, channel).subject
        kept = True
    try:
        return TemplateSource(event=event, channel=channel, subject=subject, text=text, html=html), kept
    except TemplateError as exc:
        raise CliError(_OPTION_OF_TEMPLATE_FIELD.get(exc.field, exc.field), exc.reason) from None


def _read(option: str, path: str) -> str:
    """A template field from a UTF-8 file, or from standard input for `-`."""
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CliError(option, f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise CliError(option, f"cannot read {path}: {exc.strerror or exc}") from None


def _whose(row: TemplateRow | None) -> str:
    if row is None:
        return "default template (the provider has none of its own)"
    return f"own template (updated {_when(row.updated_at)} by {row.updated_by})"


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def sms_summary(rendered: Rendered) -> str | None:
    """`length 97 (GSM-7), 1 segment` for an SMS; None for an email."""
    sms = rendered.sms
    if sms is None:
        return None
    plural = "" if sms.segments == 1 else "s"
    return f"length {sms.units} ({sms.encoding}), {sms.segments} segment{plural}"


def _print_rendered(out: _Output, rendered: Rendered, *, show_html: bool) -> None:
    summary = sms_summary(rendered)
    if summary is not None:
        out.line(rendered.text)
        out.line("")
        out.line(summary)
        return
    out.line(f"subject: {rendered.subject}")
    out.line("")
    out.line(rendered.text)
    if rendered.html is not None:
        out.line("")
        if show_html:
            out.line("html:")
            out.line(rendered.html)
        else:
            out.line(f"(an HTML body too, {len(rendered.html)} characters: --html prints it)")


def _rendered_json(rendered: Rendered) -> dict[str, Any]:
    sms = rendered.sms
    return {
        "subject": rendered.subject if sms is None else None,
        "text": rendered.text,
        "html": rendered.html,
        "sms": None
        if sms is None
        else {
            "encoding": sms.encoding,
            "length": sms.units,
            "segments": sms.segments,
            "per_segment": sms.per_segment,
        },
    }


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" if line else "" for line in text.splitlines())


def _error(option: str, message: str) -> None:
    sys.stderr.write(f"error: {option}: {message}\n")
