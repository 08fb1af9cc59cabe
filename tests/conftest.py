"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL comes from $ARREARS_TEST_POSTGRES_URL (default: the local server).
Each PostgreSQL test gets a schema of its own, so tests can run in parallel.
Without a server the PostgreSQL variants are skipped, and the run says so at
the end; with ARREARS_REQUIRE_POSTGRES=1 (CI) they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cache

import pytest
from sqlalchemy import create_engine, text

from arrears.store.db import Database
from pg_schemas import POSTGRES_URL, postgres_schema

REQUIRE_POSTGRES = os.environ.get("ARREARS_REQUIRE_POSTGRES") == "1"
_skipped_postgres: list[str] = []


@cache
def postgres_problem() -> str | None:
    """None when the PostgreSQL server answers, else why not."""
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means: no server here
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


def need_postgres(request: pytest.FixtureRequest) -> None:
    problem = postgres_problem()
    if problem is None:
        return
    if REQUIRE_POSTGRES:
        pytest.fail(f"PostgreSQL is required (ARREARS_REQUIRE_POSTGRES=1) but not reachable: {problem}")
    _skipped_postgres.append(request.node.nodeid)
    pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {problem}")


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL to a fresh, empty schema on the PostgreSQL server, dropped afterwards."""
    need_postgres(request)
    with postgres_schema() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    return f"sqlite:///{tmp_path}/arrears-test.db"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Both backends: the test runs once on each."""
    name = "postgres_url" if request.param == "postgres" else "sqlite_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.create_all()
    yield database
    database.dispose()


@pytest.fixture
def pg_db(postgres_url: str) -> Iterator[Database]:
    database = Database(postgres_url)
    database.create_all()
    yield database
    database.dispose()


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = [
        r for r in terminalreporter.stats.get("skipped", []) if "PostgreSQL not reachable" in str(r.longrepr)
    ]
    if skipped:
        terminalreporter.write_sep(
            "!", f"PostgreSQL suites SKIPPED ({len(skipped)} tests): no server reachable"
        )
        terminalreporter.write_line(
            f"Set ARREARS_TEST_POSTGRES_URL (now {POSTGRES_URL}) to run them; CI (.ci/run) always does."
        )
    browser = [
        r for r in terminalreporter.stats.get("skipped", []) if "browser tests skipped" in str(r.longrepr)
    ]
    if browser:
        terminalreporter.write_sep(
            "!", f"browser tests skipped: chromium not installed ({len(browser)} tests)"
        )
        terminalreporter.write_line(
            "Install Debian's chromium (apt-get install chromium) to run them; CI (.ci/run) does."
        )


@pytest.fixture
def no_leftover_threads() -> Iterator[None]:
    """Fails a test that leaves a thread behind (a peer server not shut down, a client not closed)."""
    import threading
    import time

    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2
    while (left := set(threading.enumerate()) - before) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not left, f"threads left behind: {left}"
