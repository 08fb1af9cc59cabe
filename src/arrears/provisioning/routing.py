"""Adapters for requests: the provider's route for the service type, built once and reused.

Routes are read per batch (cheap: a provider has a handful); an adapter is
rebuilt only when its route changed. A route that cannot be built (an
`env:` secret missing on this machine) makes its requests wait and retry with
the reason, rather than fail: it is a configuration problem, not the
customer's.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears import backoff
from arrears.provisioning.base import Adapter, ConfigError, ProvisioningCall, Result, State
from arrears.provisioning.registry import LogAdapter, adapter_from_config
from arrears.store.tables import ProvisioningRouteRow

ANY_TYPE = "*"


@dataclass(frozen=True)
class ProvisioningPolicy:
    max_attempts: int = 8
    first_retry: timedelta = timedelta(minutes=1)
    max_retry: timedelta = timedelta(hours=1)

    def retry_delay(self, attempts: int, rng: random.Random) -> timedelta:
        return backoff.retry_delay(attempts, self.first_retry, self.max_retry, rng)


class _Broken:
    """Stands in for a route that cannot be built: every call waits, with the reason."""

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason

    def execute(self, call: ProvisioningCall) -> Result:
        return Result(State.RETRY, f"the {self.name} route is misconfigured: {self.reason}")

    def close(self) -> None:
        pass


@dataclass
class Routes:
    default: Adapter = field(default_factory=LogAdapter)
    _built: dict[int, tuple[datetime, Adapter]] = field(default_factory=dict)
    _rows: dict[tuple[int, str], ProvisioningRouteRow] = field(default_factory=dict)

    def prepare(self, session: Session, provider_ids: Iterable[int]) -> None:
        """Read the routes of these providers (once per batch)."""
        self._rows = {
            (r.provider_id, r.service_type): r
            for r in session.scalars(
                select(ProvisioningRouteRow).where(ProvisioningRouteRow.provider_id.in_(list(provider_ids)))
            )
        }

    def adapter(self, provider_id: int, service_type: str) -> Adapter:
        """The adapter of the route prepared for this provider and service type."""
        route = self._rows.get((provider_id, service_type)) or self._rows.get((provider_id, ANY_TYPE))
        if route is None:
            return self.default
        cached = self._built.get(route.id)
        if cached is not None and cached[0] == route.updated_at:
            return cached[1]
        if cached is not None:
            cached[1].close()
        adapter: Adapter
        try:
            adapter = adapter_from_config(route.adapter, route.config)
        except ConfigError as exc:
            adapter = _Broken(route.adapter, str(exc))
        self._built[route.id] = (route.updated_at, adapter)
        return adapter

    def close(self) -> None:
        for _, adapter in self._built.values():
            adapter.close()
        self._built.clear()
        self.default.close()
