"""Which adapter carries out a provider's requests for a service type, built from config.

A route is (provider, service type or `*`) → adapter name and its settings.
Secrets need not sit in the database: a setting written as `env:NAME` is read
from the worker's environment when the adapter is built.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from arrears.provisioning.base import Adapter, ConfigError, ProvisioningCall, Result, State

ADAPTERS = ("log", "webhook", "radius", "command")


class LogAdapter:
    """Records the request and confirms it at once: the default, and the simulation's."""

    name = "log"

    def execute(self, call: ProvisioningCall) -> Result:
        return Result(State.CONFIRMED, "recorded by the log adapter")

    def close(self) -> None:
        pass


def resolve_env(config: Mapping[str, Any], field: str = "config") -> dict[str, Any]:
    """`env:NAME` values replaced by the environment's NAME (missing: a ConfigError)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, str) and value.startswith("env:"):
            name = value[4:]
            if name not in os.environ:
                raise ConfigError(f"{field}.{key}", f"environment variable {name} is not set")
            out[key] = os.environ[name]
        else:
            out[key] = value
    return out


def adapter_from_config(name: str, config: Mapping[str, Any], field: str = "config") -> Adapter:
    """An adapter of kind `name` with its settings; ConfigError names a bad setting."""
    cfg = resolve_env(config, field)
    if name == "log":
        return LogAdapter()
    try:
        if name == "webhook":
            from arrears.provisioning.webhook import WebhookAdapter, WebhookSettings

            return WebhookAdapter(WebhookSettings.from_config(cfg))
        if name == "radius":
            from arrears.provisioning.radius import RadiusAdapter, RadiusSettings

            return RadiusAdapter(RadiusSettings.from_config(cfg))
        if name == "command":
            from arrears.provisioning.command import CommandAdapter, CommandSettings

            return CommandAdapter(CommandSettings.from_config(cfg))
    except ConfigError as exc:
        raise ConfigError(f"{field}.{exc.field}", exc.message) from None
    raise ConfigError("adapter", f"unknown adapter {name!r} (known: {', '.join(ADAPTERS)})")


def check_config(name: str, config: Mapping[str, Any]) -> None:
    """Build and close the adapter once, so a bad route is refused when it is saved."""
    adapter_from_config(name, config).close()
