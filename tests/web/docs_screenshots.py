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
        browser.close()
    print("wrote docs/console-dashboard.png and docs/console-account.png")


if __name__ == "__main__":
    main()
