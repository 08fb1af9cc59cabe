"""The console's tests: a real server (uvicorn in a thread) on a seeded database, and for the
browser tests Debian's chromium driven by Playwright.

Without /usr/bin/chromium the browser tests are skipped, and the run says so at the end;
with ARREARS_REQUIRE_BROWSER=1 (CI) they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import Console, console_on

CHROMIUM = os.environ.get("ARREARS_TEST_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("ARREARS_REQUIRE_BROWSER") == "1"
BROWSER_SKIP = "browser tests skipped: chromium not installed"
# The same flags CI uses: nothing that reaches out to the network or needs a GPU or sandbox.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture
def console(database_url: str) -> Iterator[Console]:
    """The console on a fresh seeded database, once on SQLite and once on PostgreSQL."""
    with console_on(database_url) as running:
        yield running


@pytest.fixture
def sqlite_console(sqlite_url: str) -> Iterator[Console]:
    with console_on(sqlite_url) as running:
        yield running


def need_browser() -> None:
    if Path(CHROMIUM).exists():
        return
    if REQUIRE_BROWSER:
        pytest.fail(f"chromium is required (ARREARS_REQUIRE_BROWSER=1) but {CHROMIUM} is missing")
    pytest.skip(f"{BROWSER_SKIP} ({CHROMIUM} is missing; `apt-get install chromium`)")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
