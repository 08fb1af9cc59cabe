"""The API tests run against a real server, once on SQLite and once on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .harness import Api, api_on


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    """The API on a fresh database, once on SQLite and once on PostgreSQL."""
    with api_on(database_url) as running_api:
        yield running_api
