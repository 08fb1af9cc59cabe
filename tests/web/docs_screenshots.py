"""Regenerate the console screenshots in docs/ (the seeded test data, desktop width):

.venv/bin/python tests/web/docs_screenshots.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from playwright.sync_api import sync_playwright  # noqa: E402

from web.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from web.harness import OVERDUE, PASSWORD, console_on  # noqa: E402
from web.test_configuration_browser import RULES_7_DAYS  # noqa: E402


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        console_on(f"sqlite:///{tmp}/docs.db") as console,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{console.url}/login")
        page.get_by_label("Username").fill("olivia")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{console.url}/")
        page.screenshot(path=ROOT / "docs" / "console-dashboard.png", full_page=True)
        page.goto(f"{console.url}/accounts/{OVERDUE}")
        page.locator("#manual-reason").fill("customer asked to pause the service")
        page.get_by_role("button", name="Suspend account").click()
        page.get_by_role("status").filter(has_text="Account suspended by hand.").wait_for()
        page.screenshot(path=ROOT / "docs" / "console-account.png", full_page=True)

        # An admin: a new rule-set version checked against today's accounts, and an SMS template.
        admin = browser.new_page(viewport={"width": 1280, "height": 900})
        admin.goto(f"{console.url}/login")
        admin.get_by_label("Username").fill("ada")
        admin.get_by_label("Password").fill(PASSWORD)
        admin.get_by_role("button", name="Sign in").click()
        admin.wait_for_url(f"{console.url}/")
        admin.goto(f"{console.url}/rules")
        admin.get_by_role("link", name="Write a new version of default").click()
        admin.get_by_label("Rule set (YAML)").fill(RULES_7_DAYS)
        admin.locator("#rule-check .message").filter(has_text="Valid.").wait_for()
        admin.get_by_role("button", name="What would change").click()
        admin.get_by_role("region", name="Accounts whose decision would change").wait_for()
        admin.screenshot(path=ROOT / "docs" / "console-rules.png", full_page=True)
        admin.goto(f"{console.url}/templates/auto_suspend/sms")
        message = admin.get_by_label("Message")
        message.fill("Service {{ service.id }} is paused: please pay {{ account.overdue_balance }}.")
        admin.get_by_text("is paused: please pay A$").wait_for()  # the live preview caught up
        admin.screenshot(path=ROOT / "docs" / "console-template-sms.png", full_page=True)
        browser.close()
    print("wrote docs/console-{dashboard,account,rules,template-sms}.png")


if __name__ == "__main__":
    main()
