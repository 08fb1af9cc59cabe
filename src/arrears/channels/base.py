"""The interface every delivery channel implements, and the values it exchanges."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parseaddr
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


class SendLog(Protocol):
    """Where a channel reports progress through a batch, as it happens.

    The dispatcher records each call before it returns, so a crash at any
    point leaves a record that says whether a message may have gone out.
    An exception from either method propagates out of `send`, and the channel
    must not send the message whose `committing` raised.
    """

    def committing(self, index: int) -> None:
        """Message `index` is about to become irrevocable (the SMTP DATA, the SMPP submit_sm)."""

    def outcome(self, index: int, outcome: Outcome) -> None:
        """Message `index`'s outcome is known."""


class LogFailed(Exception):
    """A SendLog call failed: the channel stopped before the message it was about."""


class NoLog:
    """A SendLog that records nothing (for callers that only want the outcomes)."""

    def committing(self, index: int) -> None:
        pass

    def outcome(self, index: int, outcome: Outcome) -> None:
        pass


class Channel(Protocol):
    """Sends batches of messages over one transport.

    `send` returns one outcome per message, in order. A batch shares one
    connection; an error that breaks the connection makes the rest of the batch
    `RETRY`, never an exception out of `send` (except one raised by `progress`).
    Before the step that makes message i irrevocable the channel calls
    `progress.committing(i)`; once its outcome is known, `progress.outcome(i, outcome)`.
    Messages that never reach that step (refused early, or the batch broke
    before them) need no `committing` call.
    """

    name: str  # "email" or "sms"
    # A channel whose peer drops repeats of a message (by its key) sets
    # `redelivery_safe = True`: after a crash mid-send, the dispatcher sends
    # again instead of asking an operator. Read with getattr; default False.

    def send(self, messages: Sequence[Message], progress: SendLog | None = None) -> list[Outcome]: ...

    def receipts(self) -> list[Receipt]:
        """Delivery receipts received since the last call (empty for most transports)."""
        ...

    def close(self) -> None: ...


def message_id(key: str, sender: str) -> str:
    """A stable RFC 5322 Message-ID for a notification: the same key, the same id."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "arrears.invalid"
    return f"<{digest}@{domain}>"
