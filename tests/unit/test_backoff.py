"""The dispatchers' shared retry schedule."""

from __future__ import annotations

import random
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from arrears.backoff import retry_delay

FIRST = timedelta(seconds=30)
CEILING = timedelta(hours=1)


@given(st.integers(min_value=0, max_value=10_000), st.integers())
def test_a_delay_is_half_to_all_of_its_ceiling_for_any_number_of_attempts(attempts: int, seed: int) -> None:
    delay = retry_delay(attempts, FIRST, CEILING, random.Random(seed))
    full = min(CEILING, FIRST * 2 ** max(0, min(attempts, 40) - 1))
    assert full / 2 <= delay <= full


def test_delays_double_until_the_ceiling() -> None:
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    delays = [retry_delay(n, FIRST, CEILING, Top()) for n in range(1, 10)]
    assert delays[:4] == [FIRST, FIRST * 2, FIRST * 4, FIRST * 8]
    assert delays[-1] == CEILING
