"""The console in a real browser (Debian's chromium, headless, driven by Playwright): an
operator's day, a viewer's limits, a phone-width screen, the keyboard, and basic
accessibility checks. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .harness import OVERDUE, PASSWORD, SUSPENDED, Console

pytest.importorskip("playwright")

DESK = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}
PAGES = ["/", "/accounts", f"/accounts/{SUSPENDED}", "/activity", "/rules", "/events"]

# Contrast of every piece of visible text against the background behind it (WCAG 2 formula),
# and the form fields that have no label. Returns what fails, so the assertion can show it.
CHECKS_JS = """
() => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const el of document.querySelectorAll('body *')) {
    const style = getComputedStyle(el);
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || style.visibility === 'hidden' || el.offsetParent === null || el.closest('svg')) continue;
    const a = lum(rgb(style.color)), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) low.push(`${el.tagName}.${el.className} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
  }
  const unlabelled = [...document.querySelectorAll('input, select, textarea')]
    .filter((e) => e.type !== 'hidden' && e.labels.length === 0 && !e.getAttribute('aria-label'))
    .map((e) => e.name || e.id);
  return {
    low, unlabelled,
    h1: document.querySelectorAll('h1').length,
    lang: document.documentElement.lang,
    overflow: document.documentElement.scrollWidth - window.innerWidth,
  };
}
"""


def _sign_in(page: Any, console: Console, username: str) -> None:
    page.goto(f"{console.url}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{console.url}/")


@pytest.fixture
def desk(browser: Any) -> Any:
    context = browser.new_context(viewport=DESK)
    yield context.new_page()
    context.close()


def test_an_operator_suspends_and_restores_an_overdue_account(
    console: Console, desk: Any, screenshots: Path, request: pytest.FixtureRequest
) -> None:
    page = desk
    backend = request.node.callspec.params["database_url"]
    _sign_in(page, console, "olivia")

    # The dashboard: counts, the chart with its bars, and the week's forecast.
    assert page.get_by_role("heading", name="Dashboard", level=1).is_visible()
    assert page.locator("#by-status + .big").inner_text().startswith("4")
    assert page.locator("svg.chart rect.bar-suspend").count() == 2
    assert page.locator("svg.chart rect.bar-restore").count() == 1
    assert page.get_by_role("img", name="Suspensions and restorations per day, last 30 days").is_visible()
    forecast = page.locator("section[aria-labelledby=upcoming]")
    assert OVERDUE in forecast.inner_text() and "2026-03-07 00:00 AEDT" in forecast.inner_text()
    page.screenshot(path=screenshots / f"dashboard-{backend}.png", full_page=True)

    # Find the overdue account by its contact's name.
    page.get_by_role("link", name="Accounts").click()
    page.get_by_label("Search").fill("alice")
    page.get_by_role("button", name="Find").click()
    page.get_by_role("link", name=OVERDUE).click()
    page.wait_for_url(f"{console.url}/accounts/{OVERDUE}")
    assert page.locator("#projected").inner_text() == "2026-03-07 00:00 AEDT"
    assert "120.00 AUD" in page.locator("section[aria-labelledby=figures]").inner_text()

    # Suspend by hand (htmx posts and swaps the panel), with a reason.
    page.locator("#manual-reason").fill("customer asked to pause the service")
    page.get_by_role("button", name="Suspend account").click()
    page.get_by_role("status").filter(has_text="Account suspended by hand.").wait_for()
    assert "suspended (manual)" in page.get_by_role("heading", level=1).inner_text()
    assert page.url == f"{console.url}/accounts/{OVERDUE}"  # htmx swapped the panel: no reload
    timeline = page.locator("#timeline")
    assert "Manual suspend: “customer asked to pause the service”" in timeline.inner_text()
    assert "Account active → suspended (manual)" in timeline.inner_text()
    assert "Service S-1001 active → suspended" in timeline.inner_text()
    page.screenshot(path=screenshots / f"account-suspended-{backend}.png", full_page=True)

    # And restore it.
    page.locator("#manual-reason").fill("paused by mistake")
    page.get_by_role("button", name="Restore account").click()
    page.get_by_role("status").filter(has_text="Account restored by hand.").wait_for()
    assert "active" in page.get_by_role("heading", level=1).inner_text()
    assert "Account suspended → active" in page.locator("#timeline").inner_text()

    # The failed email needs a person: retry it from the activity page.
    page.get_by_role("link", name="Activity").click()
    page.get_by_label("Notification state").select_option("failed")
    page.get_by_role("button", name="Show").click()
    page.get_by_role("button", name="Retry notification").first.click()
    page.get_by_role("status").filter(has_text="Notification queued to be sent again.").wait_for()
    page.screenshot(path=screenshots / f"activity-{backend}.png", full_page=True)


def test_a_viewer_sees_no_actions(sqlite_console: Console, desk: Any) -> None:
    _sign_in(desk, sqlite_console, "vera")
    desk.goto(f"{sqlite_console.url}/accounts/{OVERDUE}")
    assert desk.locator("#projected").is_visible()
    assert desk.get_by_role("button", name="Suspend account").count() == 0
    assert desk.get_by_role("heading", name="Actions").count() == 0
    desk.goto(f"{sqlite_console.url}/activity")
    assert desk.get_by_role("button", name="Retry").count() == 0


def test_a_phone_width_screen_never_scrolls_sideways(
    sqlite_console: Console, browser: Any, screenshots: Path
) -> None:
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    try:
        _sign_in(page, sqlite_console, "olivia")
        for path in PAGES:
            page.goto(f"{sqlite_console.url}{path}")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} is {overflow}px wider than the screen"
        page.goto(f"{sqlite_console.url}/accounts/{SUSPENDED}")
        page.screenshot(path=screenshots / "account-phone.png", full_page=True)
        page.goto(f"{sqlite_console.url}/")
        page.screenshot(path=screenshots / "dashboard-phone.png", full_page=True)
    finally:
        context.close()


def test_the_keyboard_reaches_the_skip_link_and_signs_in(sqlite_console: Console, desk: Any) -> None:
    page = desk
    page.goto(f"{sqlite_console.url}/login")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    assert page.locator(".skip").bounding_box()["y"] >= 0  # shown when focused
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "arrears"  # the home link
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "username"
    page.keyboard.type("olivia")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Sign in"
    page.keyboard.press("Enter")
    page.wait_for_url(f"{sqlite_console.url}/")
    # Skip link on a signed-in page moves focus to the content.
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


def test_pages_pass_basic_accessibility_checks(sqlite_console: Console, desk: Any) -> None:
    desk.goto(f"{sqlite_console.url}/login")
    found = {"/login": desk.evaluate(CHECKS_JS)}
    _sign_in(desk, sqlite_console, "olivia")
    for path in PAGES:
        desk.goto(f"{sqlite_console.url}{path}")
        found[path] = desk.evaluate(CHECKS_JS)
    for path, result in found.items():
        assert result["lang"] == "en", path
        assert result["h1"] == 1, path
        assert result["unlabelled"] == [], (path, result["unlabelled"])
        assert result["low"] == [], (path, result["low"])
