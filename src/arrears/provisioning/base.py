"""The interface every provisioning adapter implements, and the values it exchanges."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


@dataclass(frozen=True)
class ProvisioningCall:
    """One provisioning request, as an adapter sees it: plain data, no database rows.

    `key` is the request's idempotency key: the same request retried carries the
    same key, so a peer that already applied it can answer "done" again.
    """

    request_id: int
    key: str
    action: str  # "restricted", "suspended", "deactivated" or "restore"
    provider: str  # the provider's key
    account: str  # the provider's own account id
    service: str  # the provider's own service id
    service_type: str  # e.g. "mobile", "nbn", "broadband"
    attempt: int  # 1 for the first try
    created_at: datetime  # when the decision was taken (UTC)
    # Whatever else the provider keeps about the service that an adapter may need
    # (e.g. a RADIUS user name); empty when there is none.
    attributes: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "key": self.key,
            "action": self.action,
            "provider": self.provider,
            "account": self.account,
            "service": self.service,
            "service_type": self.service_type,
            "attempt": self.attempt,
            "created_at": self.created_at.isoformat(),
            "attributes": dict(self.attributes),
        }


class State(StrEnum):
    CONFIRMED = "confirmed"  # the network changed
    ACCEPTED = "accepted"  # the peer took it and will confirm later (a callback)
    RETRY = "retry"  # a transient failure: try again later
    FAILED = "failed"  # permanent: never retried


@dataclass(frozen=True)
class Result:
    state: State
    detail: str = ""  # the peer's answer or the error, shown to operators
    reference: str | None = None  # the peer's id for the change, if it gave one


class Adapter(Protocol):
    """Carries out provisioning calls against one kind of peer.

    `execute` never raises for anything the peer or the network does: every
    problem is a `Result` (RETRY when trying again may help, FAILED when it
    cannot). It may be called again with the same call (same `key`) after a
    crash, so it must be safe to repeat.
    """

    name: str

    def execute(self, call: ProvisioningCall) -> Result: ...

    def close(self) -> None: ...


class ConfigError(ValueError):
    """An adapter's configuration is wrong; `field` names the setting."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
