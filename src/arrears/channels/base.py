"""The interface every delivery channel implements, and the values it exchanges."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True)
class Message:
    """One rendered notice to one address.

    `key` is the notification's idempotency key: channels derive stable
    identifiers from it (the email Message-ID, an HTTP idempotency header) so a
    peer that sees the same message twice can tell.
    """

    key: str
    to: str  # an email address, or a phone number in E.164
    sender: str  # the From address (email) or source address (SMS)
    text: str
    subject: str = ""
    html: str | None = None


class Result(StrEnum):
    SENT = "sent"  # the peer accepted it
    RETRY = "retry"  # a transient failure: try again later
    FAILED = "failed"  # permanent: a bad address, a 5xx SMTP reply; never retried


@dataclass(frozen=True)
class Outcome:
    result: Result
    detail: str = ""  # the peer's reply or the error, for operators
    reference: str | None = None  # the peer's id for the message (Message-ID, SMSC message_id)


@dataclass(frozen=True)
class Receipt:
    """A delivery receipt that arrived later for a message sent earlier (SMPP)."""

    reference: str
    state: str  # DELIVRD, UNDELIV, EXPIRED, REJECTD, ...
    detail: str = ""


class Channel(Protocol):
    """Sends batches of messages over one transport.

    `send` returns one outcome per message, in order. A batch shares one
    connection; an error that breaks the connection makes the rest of the batch
    `RETRY`, never an exception out of `send`.
    """

    name: str  # "email" or "sms"
    # A channel whose peer drops repeats of a message (by its key) sets
    # `redelivery_safe = True`: after a crash mid-send, the dispatcher sends
    # again instead of asking an operator. Read with getattr; default False.

    def send(self, messages: Sequence[Message]) -> list[Outcome]: ...

    def receipts(self) -> list[Receipt]:
        """Delivery receipts received since the last call (empty for most transports)."""
        ...

    def close(self) -> None: ...


def message_id(key: str, sender: str) -> str:
    """A stable RFC 5322 Message-ID for a notification: the same key, the same id."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    domain = sender.rpartition("@")[2] or "arrears.invalid"
    return f"<{digest}@{domain}>"
