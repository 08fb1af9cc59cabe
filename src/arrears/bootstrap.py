"""Settings and wiring: the one place that decides which adapters run."""

from __future__ import annotations

import os
from dataclasses import dataclass

from arrears.engine.provisioning import LogAdapter, ProvisioningAdapter, ProvisioningDispatcher
from arrears.store.db import Database, database_url


@dataclass(frozen=True)
class Settings:
    database_url: str
    scan_interval_s: float = 60.0

    @classmethod
    def from_env(cls, database_url_override: str | None = None) -> Settings:
        return cls(
            database_url=database_url(database_url_override),
            scan_interval_s=float(os.environ.get("ARREARS_SCAN_INTERVAL", "60")),
        )


def database(settings: Settings) -> Database:
    return Database(settings.database_url)


def provisioning_dispatcher() -> ProvisioningDispatcher:
    adapters: dict[str, ProvisioningAdapter] = {"log": LogAdapter()}
    return ProvisioningDispatcher(adapters)
