"""A full pass sets the garbage collector's heap aside while it runs, and puts it back."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from arrears.bench import BENCH_NOW, Mix, populate
from arrears.engine.scan import full_pass
from arrears.store.db import Database

OVERDUE_ONLY = Mix(past_rules=1.0, excluded_group=0.0, disputed=0.0, not_yet_due=0.0, past_episode=0.0)


@pytest.fixture
def overdue(db: Database) -> Iterator[Database]:
    populate(db, 30, mix=OVERDUE_ONLY, key="gc")
    yield db


def test_a_pass_leaves_the_collector_as_it_found_it(overdue: Database) -> None:
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(gc.get_freeze_count())

    result = full_pass(overdue, BENCH_NOW, progress=progress)

    assert result.actions == {"escalate": 30}
    # The objects that existed before the pass were frozen while it ran ...
    assert seen and all(count > 0 for count in seen)
    # ... and are back in the collector's care after it.
    assert gc.get_freeze_count() == 0


def test_a_process_that_froze_objects_itself_keeps_them_frozen(overdue: Database) -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        full_pass(overdue, BENCH_NOW, dry_run=True)
        # Neither unfrozen nor frozen further (frozen objects freed meanwhile leave the count).
        assert 0 < gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()
