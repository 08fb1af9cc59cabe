"""Make the hypothesis examples of tests/unit a function of each test alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _no_local_constants(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`derandomize=True` seeds each test from its own code, but Hypothesis (6.131 and later)
    also mixes literal constants from every local module already imported into what it
    draws, so the examples would change with the set of test files collected, or with any
    edit to src/. For these tests that pool is kept empty, and restored afterwards.

    Private Hypothesis API: if it moves, this does nothing and the tests still run.
    """
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover
        yield
        return
    cache = getattr(getattr(providers, "CONSTANTS_CACHE", None), "cache", None)
    if not hasattr(providers, "_get_local_constants") or not hasattr(providers, "Constants") or cache is None:
        yield
        return
    empty = providers.Constants()
    monkeypatch.setattr(providers, "_get_local_constants", lambda: empty)
    cache.clear()
    yield
    cache.clear()
