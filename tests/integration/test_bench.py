"""`python -m arrears.bench` prints its one JSON line, on SQLite and on PostgreSQL (shared among processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

FIGURES = {
    "accounts",
    "backend",
    "full_scan_s",
    "bare_aggregate_s",
    "scan_ratio",
    "apply_per_s",
    "incremental_scan_s",
    "peak_rss_mb",
    "peak_rss_this_process_mb",
    "scan_processes",
    "candidates",
    "decisions",
}


def _bench(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "arrears.bench", "--json", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout  # one line on stdout; progress went to stderr
    assert "full scan (dry run)" in done.stderr
    figures: dict[str, Any] = json.loads(lines[0])
    assert set(figures) >= FIGURES
    return figures


def _consistent(figures: dict[str, Any], accounts: int) -> None:
    assert figures["accounts"] == accounts
    # About 10 % of the accounts are candidates; 8 % are past the rules and are suspended.
    assert 0.05 * accounts < figures["candidates"] < 0.15 * accounts
    assert 0.05 * accounts < figures["decisions"] < figures["candidates"]
    # The ratio is of the unrounded times; each printed time is rounded to the millisecond.
    ratio = figures["scan_ratio"]
    assert ratio * figures["bare_aggregate_s"] == pytest.approx(
        figures["full_scan_s"], abs=ratio * 0.0005 + 0.001
    )
    assert figures["apply_per_s"] > 0 and figures["incremental_scan_s"] >= 0
    assert figures["peak_rss_mb"] >= figures["peak_rss_this_process_mb"] > 10


def test_the_benchmark_on_sqlite() -> None:
    figures = _bench("--accounts", "600")
    assert figures["backend"] == "sqlite"
    assert figures["scan_processes"] == 1
    _consistent(figures, 600)


@pytest.mark.postgres
def test_the_benchmark_on_postgres_shares_the_pass(postgres_url: str) -> None:
    # Two processes asked for, though so few accounts would stay in one by default.
    figures = _bench("--accounts", "5000", "--database-url", postgres_url, "--processes", "2")
    assert figures["backend"] == "postgresql"
    assert figures["scan_processes"] == 2
    _consistent(figures, 5000)
