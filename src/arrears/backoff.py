"""The one retry schedule the dispatchers share (notifications, provisioning, webhooks)."""

from __future__ import annotations

import random
from datetime import timedelta

# 2^32 minutes is far beyond any ceiling; a larger exponent would overflow a timedelta.
_MAX_EXPONENT = 32


def retry_delay(attempts: int, first: timedelta, ceiling: timedelta, rng: random.Random) -> timedelta:
    """Exponential backoff with jitter: half to all of min(ceiling, first·2^(attempts-1)).

    The jitter keeps workers that failed together from retrying together.
    """
    exponent = min(max(0, attempts - 1), _MAX_EXPONENT)
    return min(ceiling, first * (1 << exponent)) * rng.uniform(0.5, 1.0)
