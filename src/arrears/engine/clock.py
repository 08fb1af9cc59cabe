"""Moving time forward: the virtual clock shared by the simulation and the demo.

It stops at every instant a decision becomes due (the earliest wake-up of any
account) and runs the same scan and provisioning dispatch production runs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from arrears.engine.provisioning import ProvisioningDispatcher
from arrears.engine.service import next_wakeup, run_due, run_provisioning
from arrears.store.db import Database

# A guard against a wake-up that never moves on (it would be a bug in the engine).
MAX_PASSES_PER_INSTANT = 50


class SimulationStuck(RuntimeError):
    pass


class VirtualClock:
    def __init__(
        self,
        db: Database,
        start: datetime,
        *,
        provider_id: int | None = None,
        dispatcher: ProvisioningDispatcher | None = None,
        after: Callable[[datetime], None] | None = None,
    ):
        self.db = db
        self.now = start
        self.provider_id = provider_id
        self.dispatcher = dispatcher or ProvisioningDispatcher()
        self._after = after

    def settle(self) -> None:
        """Run what the last change left for the dispatchers, at the current instant."""
        run_provisioning(self.db, self.dispatcher, self.now)
        if self._after is not None:
            self._after(self.now)

    def advance(self, limit: datetime, *, inclusive: bool = True) -> None:
        """Move to `limit`, stopping at every wake-up before it (and at it, if inclusive)."""
        passes = 0
        last: datetime | None = None
        while True:
            with self.db.transaction() as s:
                t = next_wakeup(s, self.provider_id)
            if t is None or t > limit or (t == limit and not inclusive):
                break
            passes = passes + 1 if t == last else 0
            if passes > MAX_PASSES_PER_INSTANT:
                raise SimulationStuck(f"accounts keep waking at {t.isoformat()}")
            last = t
            self.now = max(t, self.now)
            run_due(self.db, self.now, provider_id=self.provider_id)
            self.settle()
        self.now = max(self.now, limit)
