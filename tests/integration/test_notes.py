"""The `note` channel writes an entry in the account's notes, also when the
notice waited for provisioning (`after_provisioning: true`)."""

from __future__ import annotations

import io

from sqlalchemy import select

from arrears.sim.runner import Simulation
from arrears.sim.scenario import parse
from arrears.store.tables import NoteRow

SCENARIO = {
    "name": "notes",
    "provider": {"timezone": "Europe/London", "currency": "GBP"},
    "rules": {"min_overdue_amount": "50.00", "min_overdue_days": 14, "restore_threshold": "0.00"},
    "events": {
        "auto_suspend": {"channels": ["note"], "after_provisioning": True},
        "auto_unsuspend": {"channels": ["note"]},
    },
    "accounts": [{"id": "A1", "services": [{"id": "S1", "type": "broadband"}, {"id": "S2", "type": "voip"}]}],
    "start": "2026-01-01T00:00",
    "timeline": [
        {
            "at": "2026-01-01T08:00",
            "invoice": {"id": "I1", "account": "A1", "amount": "80.00", "due": "2026-01-05"},
        },
        {"at": "2026-01-25T10:00", "payment": {"id": "P1", "account": "A1", "amount": "80.00"}},
    ],
}


def test_note_channel_writes_account_notes_when_released_by_provisioning() -> None:
    sim = Simulation(parse(SCENARIO), io.StringIO())
    assert sim.run() == 0
    with sim.db.transaction() as s:
        bodies = sorted(s.scalars(select(NoteRow.body)).all())
    # One per service for the suspension (released once provisioning confirmed) and the restoration.
    assert bodies == ["auto suspend S1", "auto suspend S2", "auto unsuspend S1", "auto unsuspend S2"]
