"""The configuration pages in a real browser: an admin turns on a provider's automatic
suspension from the console alone (a new rule set version written in the editor and checked
as typed, its "what would change", the auto_suspend switch, the notices' wording), and the
worker's next pass suspends the overdue account. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arrears.config import parse_mappings
from arrears.engine.inputs import Inputs
from arrears.engine.scan import due_pass

from .harness import OVERDUE, Console
from .test_browser import CHECKS_JS, DESK, PHONE, _sign_in

pytest.importorskip("playwright")

RULES_7_DAYS = 'min_overdue_amount: "50.00"\nmin_overdue_days: 7\nrestore_threshold: "10.00"\n'
PAGES = ["/rules", "/events", "/templates", "/templates/auto_suspend/email", "/templates/auto_suspend/sms"]


@pytest.fixture
def shadow_console(sqlite_console: Console) -> Iterator[Console]:
    """The seeded provider with auto_suspend off, as a new provider starts (SPEC §7)."""
    console = sqlite_console
    with console.db.transaction() as s:
        inputs = Inputs.open(s, console.provider_id, console.clock())
        off = {"auto_suspend": {"enabled": False, "channels": ["note", "email"]}}
        inputs.put_mappings(parse_mappings(off, sms=False, since=console.clock()))
    due_pass(console.db, console.clock())
    yield console


@pytest.fixture
def desk(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=DESK)
    yield context.new_page()
    context.close()


def test_an_admin_runs_auto_suspension_from_the_console(
    shadow_console: Console, desk: Any, screenshots: Path
) -> None:
    console, page = shadow_console, desk
    _sign_in(page, console, "ada")

    # Rules: the editor starts from the latest version; a typo is named as it is typed.
    page.get_by_role("link", name="Rules").click()
    page.get_by_role("link", name="Write a new version of default").click()
    editor = page.get_by_label("Rule set (YAML)")
    assert "min_overdue_days: 14" in editor.input_value()
    editor.fill(RULES_7_DAYS.replace("7", "seven"))
    alert = page.locator("#rule-check [role=alert]")
    alert.wait_for()
    assert alert.inner_text().startswith("rule_set.min_overdue_days:")
    page.screenshot(path=screenshots / "rules-editor-error.png", full_page=True)
    editor.fill(RULES_7_DAYS)
    page.locator("#rule-check .message").filter(has_text="Valid. Version 2 of default").wait_for()
    assert page.locator("#rule-check [role=alert]").count() == 0

    # What would change: the overdue account, which version 1 leaves alone until day 14.
    page.get_by_role("button", name="What would change").click()
    differences = page.get_by_role("region", name="Accounts whose decision would change")
    differences.wait_for()
    row = differences.locator("tr", has_text=OVERDUE)
    assert "nothing to do" in row.inner_text()  # while auto_suspend is off, nothing is projected
    assert "would suspend (stage suspend) but auto_suspend is off" in row.inner_text()
    assert page.locator("#would-suspend").inner_text() == "1"
    page.screenshot(path=screenshots / "rules-what-would-change.png", full_page=True)

    page.get_by_role("button", name="Save as a new version").click()
    page.wait_for_url(f"{console.url}/rules?done=2")
    assert "Version 2 added." in page.get_by_role("status").first.inner_text()
    versions = page.get_by_role("region", name="Versions of rule set default side by side")
    assert "Version 2 (latest)" in versions.inner_text() and "changed" in versions.inner_text()
    page.screenshot(path=screenshots / "rules-versions.png", full_page=True)

    # Events: a refused change (here an expired form) is said, not swallowed.
    page.get_by_role("link", name="Events").click()
    switch = page.get_by_role("switch", name="auto suspend")
    assert switch.get_attribute("aria-checked") == "false"
    page.evaluate("""document.body.setAttribute('hx-headers', '{"X-CSRF-Token": "expired"}')""")
    switch.click()
    refused = page.locator("#refused")
    refused.wait_for()
    assert "this form has expired" in refused.inner_text() and "403" in refused.inner_text()
    page.reload()

    # The switch that turns automatic suspension on.
    switch = page.get_by_role("switch", name="auto suspend")
    switch.click()
    page.get_by_role("status").filter(has_text="Auto suspend turned on.").wait_for()
    assert page.get_by_role("switch", name="auto suspend").get_attribute("aria-checked") == "true"
    assert page.locator("#refused").is_hidden()
    page.screenshot(path=screenshots / "events.png", full_page=True)

    # The email it sends: the preview follows the typing, for the chosen account.
    page.get_by_role("link", name="Templates").click()
    page.get_by_role("row", name="auto suspend email").get_by_role("link").click()
    page.get_by_label("Subject").fill("Service paused: {{ account.id }}")
    subject = page.locator("#preview-subject")
    subject.filter(has_text="Service paused: ACME-10042").wait_for()  # the sample account
    page.get_by_label("Preview for account").fill(OVERDUE)
    subject.filter(has_text=f"Service paused: {OVERDUE}").wait_for()
    assert "Alice Overdue" in page.locator("#preview-text").inner_text()
    frame = page.frame_locator("iframe[title='HTML preview']")
    assert "Alice Overdue" in frame.locator("body").inner_text()
    # Leave the account field first: its suggestion list would take the next click.
    page.get_by_label("Preview for account").blur()
    page.screenshot(path=screenshots / "template-email.png", full_page=True)
    page.get_by_role("button", name="Save template").click()
    page.get_by_role("status").filter(has_text="Template saved.").wait_for()

    # And its SMS: length, encoding and segments as typed.
    page.goto(f"{console.url}/templates/auto_suspend/sms")
    message = page.get_by_label("Message")
    message.fill("Service {{ service.id }} is paused: please pay {{ account.overdue_balance }}.")
    segments = page.locator("#sms-segments")
    segments.filter(has_text="1 segment").wait_for()
    message.fill("Service {{ service.id }} is paused. " * 6)
    segments.filter(has_text="2 segments").wait_for()
    assert "GSM-7" in page.locator("#sms-length").inner_text()
    page.screenshot(path=screenshots / "template-sms.png", full_page=True)

    # The worker's next pass (every account is due after the configuration changed).
    due_pass(console.db, console.clock())
    page.goto(f"{console.url}/accounts/{OVERDUE}")
    assert "suspended (auto)" in page.get_by_role("heading", level=1).inner_text()
    timeline = page.locator("#timeline").inner_text()
    assert "Account active → suspended (auto)" in timeline
    page.screenshot(path=screenshots / "account-auto-suspended.png", full_page=True)


def test_configuration_pages_fit_a_phone_and_pass_basic_checks(
    shadow_console: Console, browser: Any, desk: Any
) -> None:
    _sign_in(desk, shadow_console, "ada")
    found = {}
    for path in PAGES:
        desk.goto(f"{shadow_console.url}{path}")
        found[path] = desk.evaluate(CHECKS_JS)
    for path, result in found.items():
        assert result["h1"] == 1, path
        assert result["unlabelled"] == [], (path, result["unlabelled"])
        assert result["low"] == [], (path, result["low"])
    phone = browser.new_context(viewport=PHONE)
    try:
        page = phone.new_page()
        _sign_in(page, shadow_console, "ada")
        for path in PAGES:
            page.goto(f"{shadow_console.url}{path}")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} is {overflow}px wider than the screen"
    finally:
        phone.close()
