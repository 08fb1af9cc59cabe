"""What the dispatchers (notifications, webhooks) share: counts of a round, and rounds until idle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Self, TypeVar


@dataclass
class Counts:
    """A report of integer counts; a subclass declares the fields (all `int = 0`)."""

    def add(self, other: Self) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def handled(self) -> int:
        """Rows dealt with: a round that handled none means nothing more is due."""
        return sum(getattr(self, f.name) for f in fields(self))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def instant(now: datetime | None, clock: Callable[[], datetime] | None) -> datetime:
    """`now` when given, else the clock's time (a dispatcher without a clock must be given `now`)."""
    if now is not None:
        return now
    if clock is None:
        raise ValueError("a dispatcher without a clock needs `now`")
    return clock()


R = TypeVar("R", bound="Counts")


def until_idle(
    round_: Callable[[datetime], R],
    when: Callable[[], datetime],
    total: R,
    should_stop: Callable[[], bool] | None,
) -> R:
    """Run rounds until one handles nothing (or `should_stop` says so), adding each into `total`."""
    while should_stop is None or not should_stop():
        report = round_(when())
        total.add(report)
        if report.handled == 0:
            break
    return total
