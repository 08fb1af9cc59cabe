"""`arrears templates` end to end: the real command line on a SQLite file made by `arrears db upgrade`."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from arrears.config import NoticeSettingsSpec, parse_mappings
from arrears.engine.inputs import Inputs, create_provider
from arrears.notify.templates import default_template
from arrears.store.db import Database

from .command import arrears

START = datetime(2026, 3, 1, 0, 0, tzinfo=ZoneInfo("Australia/Sydney")).astimezone(UTC)


def add_provider(
    db: Database, key: str, name: str, timezone: str, currency: str, locale: str, accounts: dict[str, str]
) -> None:
    """A provider with one contact and one open invoice per account ({account id: invoice amount})."""
    with db.transaction() as s:
        p = create_provider(
            s,
            key=key,
            name=name,
            timezone=timezone,
            currency=currency,
            sms=True,
            notices=NoticeSettingsSpec(locale=locale),
            now=START,
        )
        inputs = Inputs.open(s, p.id, START)
        inputs.put_rule_set({"min_overdue_amount": "50.00", "min_overdue_days": 30, "restore_threshold": "0"})
        events = {"invoice_overdue": [{"days_after": 1, "channels": ["email", "sms"]}]}
        inputs.put_mappings(parse_mappings(events, sms=True, since=START))
        for account, amount in accounts.items():
            inputs.put_account(
                {
                    "id": account,
                    "contacts": [
                        {"role": "primary", "name": f"Holder of {account}", "email": f"{account}@example.com"}
                    ],
                    "services": [{"id": f"{account}-S1", "type": "broadband"}],
                }
            )
            inputs.put_invoice(
                {"id": f"INV-{account}", "account": account, "amount": amount, "due": "2026-03-02"}
            )
        inputs.settle()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with two providers, Harbour (AUD, en_AU) and Rhein (EUR, de_DE), made once."""
    path = tmp_path_factory.mktemp("templates") / "templates.db"
    database_url = f"sqlite:///{path}"
    done = arrears("db", "upgrade", "--database-url", database_url)
    assert done.returncode == 0, done.stderr
    db = Database(database_url)
    try:
        add_provider(
            db,
            "harbour",
            "Harbour Telco",
            "Australia/Sydney",
            "AUD",
            "en_AU",
            {"A1": "1234.50", "A2": "80.00"},
        )
        add_provider(db, "rhein", "Rhein Netz", "Europe/Berlin", "EUR", "de_DE", {"R1": "1234.50"})
    finally:
        db.dispose()  # the last connection closed: the WAL is checkpointed into the file
    return path


@pytest.fixture
def url(prepared: Path, tmp_path: Path) -> str:
    """A fresh copy of the prepared database for each test."""
    copy = tmp_path / "templates.db"
    shutil.copyfile(prepared, copy)
    return f"sqlite:///{copy}"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def templates(url: str, *args: str, provider: str | None = "harbour") -> subprocess.CompletedProcess[str]:
    chosen = ("--provider", provider) if provider is not None else ()
    return arrears("templates", *args, "--database-url", url, *chosen)


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def listed(url: str, provider: str = "harbour") -> dict[tuple[str, str], dict[str, Any]]:
    out = as_json(templates(url, "list", "--json", provider=provider))
    assert out["provider"] == provider
    return {(t["event"], t["channel"]): t for t in out["templates"]}


def test_a_valid_template_is_saved_and_shown_rendered_against_a_sample(url: str, tmp_path: Path) -> None:
    text = write(tmp_path, "overdue.txt", "Dear {{ contact.name }},\n\n{{ invoice.balance }} is overdue.\n")
    done = templates(
        url,
        "set",
        "invoice_overdue",
        "email",
        "--text-file",
        text,
        "--subject",
        "Overdue: {{ invoice.id }}",
        "--actor",
        "alice",
    )
    assert done.returncode == 0, done.stderr
    assert "subject: Overdue: INV-3017" in done.stdout  # the sample invoice
    assert "Dear Jordan Example,\n\n$182.50 is overdue." in done.stdout  # AUD, en_AU

    shown = as_json(templates(url, "show", "invoice_overdue", "email", "--json"))
    assert (shown["template"], shown["updated_by"]) == ("own", "alice")
    assert shown["subject"] == "Overdue: {{ invoice.id }}"
    assert shown["text"] == Path(text).read_text()
    assert shown["html"] is None  # no --html-file: plain text only, as `set` said
    assert "plain text only" in done.stdout

    # The other provider is untouched.
    assert listed(url, "rhein")[("invoice_overdue", "email")]["template"] == "default"


def test_a_template_with_an_undefined_variable_is_refused_with_its_field_and_line(
    url: str, tmp_path: Path
) -> None:
    text = write(tmp_path, "typo.txt", "Dear {{ contact.name }},\n\nAccount:\n{{ account.nmae }}\n")
    done = templates(url, "set", "invoice_overdue", "email", "--text-file", text)
    assert done.returncode == 2
    assert done.stderr == "error: template.text: text, line 4: 'account' has no attribute 'nmae'\n"
    assert done.stdout == ""
    assert listed(url)[("invoice_overdue", "email")]["template"] == "default"  # nothing saved

    subject = templates(
        url, "set", "invoice_due", "email", "--text-file", text, "--subject", "{% if invoice %}Due"
    )
    assert subject.returncode == 2
    assert subject.stderr.startswith("error: template.subject: subject, line 1: ")


def test_preview_for_a_real_account_shows_its_figures_in_the_providers_currency(url: str) -> None:
    done = templates(url, "preview", "invoice_overdue", "email", "--account", "A1")
    assert done.returncode == 0, done.stderr
    assert "for account A1" in done.stdout
    assert "Dear Holder of A1," in done.stdout
    assert "Invoice INV-A1 was due on 2 Mar 2026" in done.stdout
    assert "$1,234.50" in done.stdout
    assert "182.50" not in done.stdout  # none of the sample's figures
    assert "--html prints it" in done.stdout
    assert "<html" not in done.stdout
    with_html = templates(url, "preview", "invoice_overdue", "email", "--account", "A1", "--html")
    assert "$1,234.50" in with_html.stdout.split("html:", 1)[1]

    euro = as_json(
        templates(url, "preview", "invoice_overdue", "email", "--account", "R1", "--json", provider="rhein")
    )
    assert (euro["account"], euro["template"]) == ("R1", "default")
    assert "1.234,50\xa0€" in euro["text"]  # de_DE: the euro sign after, a no-break space
    assert "1.234,50&nbsp;€" in euro["html"]  # the same, as HTML writes it
    assert euro["subject"] == "Invoice INV-R1 is overdue"

    unknown = templates(
        url, "preview", "invoice_overdue", "email", "--account", "R1"
    )  # Rhein's, not Harbour's
    assert unknown.returncode == 2
    assert unknown.stderr == "error: --account: no account 'R1'\n"


def test_sms_preview_counts_segments_and_a_non_gsm_character_switches_to_ucs2(
    url: str, tmp_path: Path
) -> None:
    plain = write(
        tmp_path, "plain.txt", "{{ provider.name }}: {{ account.total_owing }} owing on {{ account.id }}."
    )
    done = templates(url, "preview", "invoice_overdue", "sms", "--account", "A1", "--text-file", plain)
    assert done.returncode == 0, done.stderr
    message = "Harbour Telco: $1,234.50 owing on A1."
    assert done.stdout.rstrip().endswith(f"{message}\n\nlength {len(message)} (GSM-7), 1 segment")

    curly = write(tmp_path, "curly.txt", "{{ provider.name }}\u2019s bill: {{ account.total_owing }}.")
    out = as_json(
        templates(url, "preview", "invoice_overdue", "sms", "--account", "A1", "--text-file", curly, "--json")
    )
    assert out["text"] == "Harbour Telco\u2019s bill: $1,234.50."
    assert out["sms"] == {"encoding": "UCS-2", "length": 32, "segments": 1, "per_segment": 70}

    long = write(tmp_path, "long.txt", "{{ account.id }} " + "x" * 160)
    assert (
        "length 163 (GSM-7), 2 segments"
        in templates(url, "preview", "invoice_overdue", "sms", "--account", "A1", "--text-file", long).stdout
    )
    # The stored (default) SMS of a German provider: the amount's no-break space becomes a plain
    # space and € is in GSM-7's extension table, so the message stays GSM-7.
    rhein = as_json(
        templates(url, "preview", "invoice_overdue", "sms", "--account", "R1", "--json", provider="rhein")
    )
    assert "1.234,50 €" in rhein["text"]
    assert rhein["sms"]["encoding"] == "GSM-7" and rhein["sms"]["segments"] == 1

    # A saved SMS template reports the same when it is set.
    saved = templates(url, "set", "invoice_overdue", "sms", "--text-file", curly)
    assert saved.returncode == 0, saved.stderr
    sample = "Harbour Telco\u2019s bill: $182.50."
    assert f"{sample}\n\nlength {len(sample)} (UCS-2), 1 segment" in saved.stdout
    subject = templates(url, "set", "invoice_overdue", "sms", "--text-file", curly, "--subject", "Hi")
    assert (subject.returncode, subject.stderr) == (2, "error: --subject: an SMS has no subject\n")


def test_reset_brings_the_default_back(url: str, tmp_path: Path) -> None:
    text = write(tmp_path, "due.txt", "{{ invoice.id }} is due.")
    assert templates(url, "set", "invoice_due", "sms", "--text-file", text).returncode == 0
    assert (
        as_json(templates(url, "show", "invoice_due", "sms", "--json"))["text"] == "{{ invoice.id }} is due."
    )
    assert "INV-A2 is due." in templates(url, "preview", "invoice_due", "sms", "--account", "A2").stdout

    done = templates(url, "reset", "invoice_due", "sms")
    assert done.returncode == 0, done.stderr
    assert "default applies again" in done.stdout
    shown = as_json(templates(url, "show", "invoice_due", "sms", "--json"))
    assert shown["template"] == "default"
    assert shown["text"] == default_template("invoice_due", "sms").text

    again = templates(url, "reset", "invoice_due", "sms")
    assert again.returncode == 0
    assert "default already applies" in again.stdout


def test_list_shows_own_and_default_templates(url: str, tmp_path: Path) -> None:
    text = write(tmp_path, "warn.txt", "Suspension on {{ projected_suspension }}.")
    assert (
        templates(url, "set", "suspension_warning", "sms", "--text-file", text, "--actor", "bob").returncode
        == 0
    )

    rows = listed(url)
    assert len(rows) == 10  # 5 events x email, sms
    own = {k for k, v in rows.items() if v["template"] == "own"}
    assert own == {("suspension_warning", "sms")}
    mine = rows[("suspension_warning", "sms")]
    assert mine["updated_by"] == "bob"
    assert datetime.fromisoformat(mine["updated_at"]).tzinfo is not None
    assert all(v["updated_at"] is None and v["updated_by"] is None for k, v in rows.items() if k not in own)

    table = templates(url, "list")
    assert table.returncode == 0, table.stderr
    assert "Templates of harbour (1 own, 9 default)" in table.stdout
    line = next(ln for ln in table.stdout.splitlines() if "suspension_warning" in ln and "sms" in ln)
    assert "own" in line and "bob" in line


def test_mistakes_name_the_option_and_exit_2(url: str, tmp_path: Path) -> None:
    which = templates(url, "list", provider=None)
    assert which.returncode == 2
    assert which.stderr == "error: --provider: this database has 2 providers (harbour, rhein): name one\n"

    nobody = templates(url, "list", provider="tide")
    assert (nobody.returncode, nobody.stderr) == (
        2,
        "error: --provider: no provider 'tide' (known: harbour, rhein)\n",
    )

    event = templates(url, "show", "invoice_late", "email")
    assert event.returncode == 2 and event.stderr.startswith("error: EVENT: unknown event 'invoice_late'")

    channel = templates(url, "show", "invoice_due", "fax")
    assert (channel.returncode, channel.stderr) == (
        2,
        "error: CHANNEL: templates are for email and sms, not 'fax'\n",
    )

    missing = templates(url, "set", "invoice_due", "sms", "--text-file", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2 and missing.stderr.startswith("error: --text-file: cannot read ")

    nowhere = arrears("templates", "list", "--database-url", f"sqlite:///{tmp_path}/absent.db")
    assert nowhere.returncode == 2 and "--database-url" in nowhere.stderr
    assert not (tmp_path / "absent.db").exists()


def test_the_only_provider_needs_no_provider_option(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path}/one.db"
    assert arrears("db", "upgrade", "--database-url", database_url).returncode == 0
    db = Database(database_url)
    try:
        add_provider(db, "solo", "Solo Net", "Europe/London", "GBP", "en_GB", {"S1": "42.00"})
    finally:
        db.dispose()
    text = "{{ account.id }} owes {{ account.total_owing }}."
    done = arrears(
        "templates", "preview", "auto_suspend", "sms", "--account", "S1", "--text-file", "-", "--database-url",
        database_url, stdin=text,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "S1 owes £42.00." in done.stdout
