"""A full pass sets the garbage collector's heap aside while it runs, and puts it back."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import timedelta

import pytest

from arrears.bench import BENCH_NOW, Mix, populate
from arrears.engine.scan import due_pass, full_pass
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


def test_the_due_pass_too(overdue: Database) -> None:
    seen: list[int] = []

    def should_stop() -> bool:  # asked between batches, while the pass runs
        seen.append(gc.get_freeze_count())
        return False

    # The accounts' wake-ups (the day they pass the rules) have come a day later.
    result = due_pass(overdue, BENCH_NOW + timedelta(days=1), should_stop=should_stop)

    assert result.evaluated == 30
    assert seen and all(count > 0 for count in seen)
    assert gc.get_freeze_count() == 0
