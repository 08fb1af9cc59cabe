"""The configuration pages over plain HTTP: the rule set editor (its check as you type, "what
would change", saving a version), event mappings (switches, SMS without the subscription) and
templates (the preview, an undefined variable refused with its line, reset), and that only an
admin may change any of it. On SQLite and PostgreSQL where marked by the `console` fixture."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from arrears.store.tables import AccountRow, Base, EventMappingRow, RuleSetRow, TemplateRow

from .harness import OVERDUE, Console

RULES_7_DAYS = 'min_overdue_amount: "50.00"\nmin_overdue_days: 7\nrestore_threshold: "10.00"\n'
HTMX = {"HX-Request": "true"}


def _post(c: httpx.Client, csrf: str, url: str, data: dict[str, Any], **kw: Any) -> httpx.Response:
    return c.post(url, data={**data, "csrf_token": csrf}, **kw)


def _rows(console: Console) -> dict[str, int]:
    """How many rows each table holds (but the sessions of signing in), and the accounts'
    evaluation columns."""
    with console.db.transaction() as s:
        counts = {
            t.name: s.scalar(select(func.count()).select_from(t)) or 0
            for t in Base.metadata.sorted_tables
            if t.name != "console_sessions"
        }
        accounts = s.execute(
            select(AccountRow.id, AccountRow.evaluated_at, AccountRow.next_wakeup_at, AccountRow.stage)
        ).all()
    return {**counts, "accounts-state": hash(tuple(accounts))}


def _mapping(console: Console, key: str) -> tuple[bool, dict[str, Any]] | None:
    with console.db.transaction() as s:
        row = s.scalar(select(EventMappingRow).where(EventMappingRow.key == key))
        return (row.enabled, dict(row.body)) if row else None


def test_the_rule_editor_names_the_field_at_fault(console: Console) -> None:
    c, csrf = console.signed_in("ada")
    page = c.get("/rules")
    assert 'id="rs-body"' in page.text and "What would change" in page.text

    def check(body: str, **extra: str) -> httpx.Response:
        return _post(c, csrf, "/rules/check", {"name": "default", "body": body, **extra}, headers=HTMX)

    r = check(RULES_7_DAYS.replace("7", "seven"))
    assert r.status_code == 422
    assert 'role="alert"' in r.text and "rule_set.min_overdue_days:" in r.text
    r = check(RULES_7_DAYS.replace('"50.00"', "50.00"))
    assert r.status_code == 422 and "rule_set.min_overdue_amount:" in r.text and "not floats" in r.text
    r = check(RULES_7_DAYS + "windows: [{days: [mon], start: '09:00', end: '08:00'}]\n")
    assert r.status_code == 422 and "rule_set.windows[0].end:" in r.text
    r = check(RULES_7_DAYS + "stages: [\n")
    assert r.status_code == 422 and "rule_set: is not valid YAML at line" in r.text
    r = check(RULES_7_DAYS + "colour: blue\n")
    assert r.status_code == 422 and "rule_set.colour:" in r.text
    r = check(RULES_7_DAYS, effective_at="not a time")
    assert r.status_code == 422 and "rule_set.effective_at:" in r.text
    r = check(RULES_7_DAYS)
    assert r.status_code == 200
    assert "Valid. Version 2 of default" in r.text and "more than 7 days overdue" in r.text


def test_what_would_change_lists_the_overdue_account_and_writes_nothing(console: Console) -> None:
    c, csrf = console.signed_in("ada")
    before = _rows(console)
    r = _post(c, csrf, "/rules/preview", {"name": "default", "body": RULES_7_DAYS}, headers=HTMX)
    assert r.status_code == 200, r.text
    assert _rows(console) == before
    assert 'id="would-suspend">1<' in r.text and 'id="unchanged">3<' in r.text
    assert f">{OVERDUE}</a>" in r.text
    assert "suspension projected 2026-03-07 00:00 AEDT" in r.text  # under version 1
    assert "suspend now (stage suspend)" in r.text  # under the candidate
    # Without JavaScript the whole page comes back, the editor keeping what was typed.
    r = _post(c, csrf, "/rules/preview", {"name": "default", "body": RULES_7_DAYS})
    assert r.status_code == 200 and "<h1>Rules</h1>" in r.text and "min_overdue_days: 7" in r.text
    assert f">{OVERDUE}</a>" in r.text
    # A candidate that does not parse compares nothing.
    r = _post(c, csrf, "/rules/preview", {"name": "default", "body": "min_overdue_days: -1"}, headers=HTMX)
    assert r.status_code == 422 and "Nothing to compare: rule_set.min_overdue_amount" in r.text
    assert _rows(console) == before


def test_an_admin_adds_a_rule_set_version(console: Console) -> None:
    c, csrf = console.signed_in("ada")
    r = _post(c, csrf, "/rules", {"name": "default", "body": RULES_7_DAYS, "effective_at": ""})
    assert r.status_code == 303 and r.headers["location"] == "/rules?done=2"
    with console.db.transaction() as s:
        row = s.scalar(select(RuleSetRow).where(RuleSetRow.version == 2))
        assert row is not None
        assert row.created_by == "console:ada" and row.body["min_overdue_days"] == 7
        assert row.effective_at == console.clock()
        # As the API's PUT: every account is looked at again at the worker's next pass.
        assert set(s.scalars(select(AccountRow.next_wakeup_at))) == {console.clock()}
    page = c.get(r.headers["location"]).text
    assert "Version 2 added." in page
    assert "Version 2 (latest)" in page and "Version 1" in page
    assert '<td class="text changed"><code>7</code>' in page and "<code>14</code>" in page
    # A refused version keeps the text and says why, and nothing is added.
    r = _post(c, csrf, "/rules", {"name": "", "body": RULES_7_DAYS})
    assert r.status_code == 422 and "name: is required" in r.text and "min_overdue_days: 7" in r.text
    with console.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(RuleSetRow)) == 2


def test_only_an_admin_changes_the_configuration(console: Console) -> None:
    before = _rows(console)
    for username in ("vera", "olivia"):
        c, csrf = console.signed_in(username)
        rules = c.get("/rules").text
        assert "Rule set default" in rules and 'id="rs-body"' not in rules
        events = c.get("/events").text
        assert "Auto suspend" in events and 'role="switch"' not in events
        template = c.get("/templates/auto_suspend/email").text
        assert "Preview" in template and "Save template" not in template
        crafted = [
            ("/rules", {"name": "default", "body": RULES_7_DAYS}),
            ("/rules/check", {"name": "default", "body": RULES_7_DAYS}),
            ("/rules/preview", {"name": "default", "body": RULES_7_DAYS}),
            ("/events/auto_suspend/0/switch", {"enabled": "false"}),
            ("/events/auto_suspend/0", {"channels": "note"}),
            ("/templates/auto_suspend/sms", {"text": "Suspended."}),
            ("/templates/auto_suspend/sms/preview", {"text": "Suspended."}),
            ("/templates/auto_suspend/sms/reset", {}),
        ]
        for url, data in crafted:
            r = _post(c, csrf, url, data)
            assert r.status_code == 403, (username, url)
            assert "only an admin may do this" in r.text
    assert _rows(console) == before


def test_a_template_with_an_undefined_variable_is_refused_with_its_line(console: Console) -> None:
    c, csrf = console.signed_in("ada")
    url = "/templates/auto_suspend/email"
    form = {"subject": "Service paused", "text": "Hello {{ contact.name }},\n{{ nope }}\n", "html": ""}
    r = _post(c, csrf, url, form)
    assert r.status_code == 422
    assert "template.text, line 2:" in r.text and "nope" in r.text
    assert "{{ nope }}" in r.text  # the editor keeps what was typed
    with console.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(TemplateRow)) == 0

    r = _post(c, csrf, url, {**form, "text": "Hello {{ contact.name }}, account {{ account.id }} is paused."})
    assert r.status_code == 303 and r.headers["location"] == f"{url}?done=saved"
    with console.db.transaction() as s:
        row = s.scalar(select(TemplateRow))
        assert row is not None and row.updated_by == "console:ada" and row.html is None
    page = c.get(f"{url}?done=saved&account={OVERDUE}").text
    assert "Template saved." in page and "The provider's own template" in page
    assert f"Hello Alice Overdue, account {OVERDUE} is paused." in page

    r = _post(c, csrf, f"{url}/reset", {})
    assert r.status_code == 303
    with console.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(TemplateRow)) == 0
    assert "arrears' default template." in c.get(r.headers["location"]).text


def test_the_template_preview_renders_as_typed(sqlite_console: Console) -> None:
    console = sqlite_console
    c, csrf = console.signed_in("ada")
    before = _rows(console)
    url = "/templates/auto_suspend/sms/preview"
    r = _post(c, csrf, url, {"text": "Hi {{ contact.name }}", "account": OVERDUE}, headers=HTMX)
    assert r.status_code == 200
    assert "Hi Alice Overdue" in r.text
    assert "GSM-7" in r.text and 'id="sms-segments">1 segment<' in r.text
    r = _post(c, csrf, url, {"text": "€" * 81}, headers=HTMX)  # two septets each: 162 > 160
    assert 'id="sms-segments">2 segments<' in r.text and "162 characters" in r.text
    r = _post(c, csrf, url, {"text": "Grüße 👋 " * 10}, headers=HTMX)
    assert "UCS-2" in r.text and "2 segments" in r.text
    r = _post(c, csrf, url, {"text": "{% if %}"}, headers=HTMX)
    assert r.status_code == 422 and "template.text, line 1:" in r.text
    r = _post(c, csrf, url, {"text": "Hi", "account": "NOPE"}, headers=HTMX)
    assert r.status_code == 422 and "account: no account &#39;NOPE&#39;" in r.text
    # Email: the HTML body goes into a sandboxed frame.
    r = _post(
        c,
        csrf,
        "/templates/auto_suspend/email/preview",
        {"subject": "About {{ account.id }}", "text": "Hi", "html": "<p>Hi <b>{{ contact.name }}</b></p>"},
        headers=HTMX,
    )
    assert r.status_code == 200 and 'id="preview-subject">About ACME-10042<' in r.text  # the sample
    assert 'sandbox=""' in r.text and "srcdoc=" in r.text and "&lt;b&gt;Jordan Example&lt;/b&gt;" in r.text
    assert _rows(console) == before


def test_event_switches_and_mappings(console: Console) -> None:
    c, csrf = console.signed_in("ada")
    assert _mapping(console, "auto_suspend") is not None
    r = _post(c, csrf, "/events/auto_suspend/0/switch", {"enabled": "false"})
    assert (
        r.status_code == 303
        and r.headers["location"] == "/events?done=off&event=auto_suspend#event-auto_suspend"
    )
    enabled, body = _mapping(console, "auto_suspend")  # type: ignore[misc]
    assert not enabled and body["channels"] == ["note", "email"]  # only the switch changed
    assert "Auto suspend turned off." in c.get(r.headers["location"]).text

    # With htmx, the event's section comes back with the switch turned.
    r = _post(c, csrf, "/events/auto_suspend/0/switch", {"enabled": "true"}, headers=HTMX)
    assert r.status_code == 200 and 'id="event-auto_suspend"' in r.text
    assert 'aria-checked="true"' in r.text and "Auto suspend turned on." in r.text
    assert _mapping(console, "auto_suspend")[0] is True  # type: ignore[index]

    # An event without a mapping gets its first one; a bad offset names the field.
    r = _post(c, csrf, "/events/invoice_due/0", {"enabled": "on", "offset": "x", "channels": "email"})
    assert r.status_code == 422 and "events.invoice_due[0].days_before:" in r.text
    assert _mapping(console, "invoice_due#0") is None
    form = {
        "enabled": "on",
        "offset": "3",
        "channels": ["email", "note"],
        "recipients": "billing",
        "quiet_hours": "on",
    }
    r = _post(c, csrf, "/events/invoice_due/0", form)
    assert r.status_code == 303
    assert _mapping(console, "invoice_due#0") == (
        True,
        {
            "enabled": True,
            "channels": ["email", "note"],
            "recipients": ["billing"],
            "days_before": 3,
            "days_after": 0,
            "hours_before": 0,
            "enforce": False,
            "after_provisioning": False,
            "quiet_hours": True,
        },
    )
    # A second one for the same event.
    r = _post(c, csrf, "/events/invoice_due/1", {**form, "offset": "0"})
    assert r.status_code == 303 and _mapping(console, "invoice_due#1") is not None
    page = c.get("/events").text
    assert "3 days before: email, note to billing" in page and "0 days before: email, note" in page


def test_sms_is_refused_without_the_subscription(console: Console) -> None:
    c, csrf = console.signed_in("ada")
    before = _mapping(console, "auto_suspend")
    assert "needs the SMS subscription" in c.get("/events").text
    r = _post(
        c,
        csrf,
        "/events/auto_suspend/0",
        {"enabled": "on", "channels": ["email", "sms"], "quiet_hours": "on"},
    )
    assert r.status_code == 422
    assert "events.auto_suspend.channels: the provider has no SMS subscription" in r.text
    assert _mapping(console, "auto_suspend") == before


def test_a_refused_htmx_change_is_shown(sqlite_console: Console) -> None:
    """htmx does not swap a 403: console.js puts its message in the page's alert region."""
    c = sqlite_console.client()
    script = c.get("/static/console.js")
    assert script.status_code == 200 and "htmx:responseError" in script.text
    page_c, _ = sqlite_console.signed_in("ada")
    page = page_c.get("/rules").text
    assert '<script src="/static/console.js" defer></script>' in page
    assert '<p id="refused" class="error" role="alert" hidden></p>' in page
