"""History lines: every change and why, in the shape the simulation prints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from arrears.store.tables import EpisodeRow, HistoryRow


class Journal:
    """Appends history rows inside the caller's transaction."""

    def __init__(self, session: Session, provider_id: int, now: datetime, actor: str = "arrears"):
        self.session = session
        self.provider_id = provider_id
        self.now = now
        self.actor = actor

    def write(
        self,
        kind: str,
        account_id: int | None,
        *,
        episode: EpisodeRow | None = None,
        episode_id: int | None = None,
        rule_set_id: int | None = None,
        at: datetime | None = None,
        **data: Any,
    ) -> HistoryRow:
        row = HistoryRow(
            provider_id=self.provider_id,
            account_id=account_id,
            at=at or self.now,
            kind=kind,
            data=data,
            episode_id=episode_id,
            rule_set_id=rule_set_id,
            actor=self.actor,
        )
        if episode is not None:
            # By reference: the episode may not have its id until the flush.
            row.episode = episode
        self.session.add(row)
        return row


def moved(before: str, after: str) -> dict[str, Any]:
    """The `from`/`to` fields of a change line (`from` is a keyword in Python)."""
    return {"from": before, "to": after}
