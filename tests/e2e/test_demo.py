"""`arrears demo` end to end: a real subprocess, a real SQLite file, the JSON summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select

from arrears.store.tables import AccountRow, EpisodeRow, HistoryRow, NotificationRow, ProviderRow


def run_demo(db_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ARREARS_DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "arrears", "demo", "--database-url", f"sqlite:///{db_path}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=db_path.parent,
    )


def test_demo_json_summary_matches_the_database(tmp_path: Path) -> None:
    db_path = tmp_path / "demo.db"
    done = run_demo(db_path, "--accounts", "20", "--days", "60", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    summary: dict[str, Any] = json.loads(done.stdout)
    providers = summary["providers"]
    assert [p["key"] for p in providers] == ["koala-mobile", "thames-fibre"]
    assert all(p["accounts"] == 20 for p in providers)

    suspensions = sum(p["suspensions"] for p in providers)
    restorations = sum(p["restorations"] for p in providers)
    assert suspensions >= 1
    assert restorations >= 1
    reasons = {r for p in providers for r in p["exclusions"]}
    assert reasons, "no account was held back by an exclusion"
    assert sum(p["notifications_total"] for p in providers) > 0
    events = {e for p in providers for e in p["notifications"]}
    assert {"auto_suspend", "auto_unsuspend"} <= events
    # The two-stage ladder of the UK provider is climbed, and (at this size and seed) a
    # customer paying invoice by invoice takes it down a stage with a part payment.
    assert providers[1]["stages_reached"].get("suspend", 0) >= 1
    assert providers[0]["moves_down_a_stage"] == 0  # one stage: nowhere to go down to
    assert providers[1]["moves_down_a_stage"] >= 1

    engine = create_engine(f"sqlite:///{db_path}")
    try:
        with engine.connect() as conn:
            for p in providers:
                pid = conn.scalar(select(ProviderRow.id).where(ProviderRow.key == p["key"]))
                accounts = select(AccountRow.id).where(AccountRow.provider_id == pid).scalar_subquery()
                started = conn.scalar(
                    select(func.count()).select_from(EpisodeRow).where(EpisodeRow.account_id.in_(accounts))
                )
                assert started == p["suspensions"]
                ended = conn.execute(
                    select(EpisodeRow.end_reason, func.count())
                    .where(EpisodeRow.account_id.in_(accounts), EpisodeRow.ended_at.is_not(None))
                    .group_by(EpisodeRow.end_reason)
                ).all()
                restored = {r: n for r, n in ended if r != "manual_suspend"}
                assert restored == p["restorations_by_reason"]
                assert sum(restored.values()) == p["restorations"]
                open_episodes = conn.scalar(
                    select(func.count())
                    .select_from(AccountRow)
                    .where(AccountRow.provider_id == pid, AccountRow.episode_id.is_not(None))
                )
                assert open_episodes == sum(p["currently_in_episode"].values())
                assert open_episodes == started - sum(n for _, n in ended)
                notices = conn.scalar(
                    select(func.count())
                    .select_from(NotificationRow)
                    .where(
                        NotificationRow.provider_id == pid,
                        NotificationRow.channel != "none",
                        NotificationRow.state != "skipped",
                    )
                )
                assert notices == p["notifications_total"]
                excluded = conn.scalar(
                    select(func.count())
                    .select_from(HistoryRow)
                    .where(HistoryRow.provider_id == pid, HistoryRow.kind == "excluded")
                )
                assert bool(excluded) == bool(p["exclusions"])
                moves = conn.scalars(
                    select(HistoryRow.data).where(HistoryRow.provider_id == pid, HistoryRow.kind == "stage")
                ).all()
                down = [d for d in moves if (d.get("from"), d.get("to")) == ("suspend", "restrict")]
                assert len(down) == p["moves_down_a_stage"]
    finally:
        engine.dispose()

    # The histories shown are real accounts, with times in their provider's timezone.
    assert summary["histories"], "no account history in the summary"
    for h in summary["histories"]:
        assert h["lines"]
        offsets = {line["at"][-6:] for line in h["lines"]}
        expected = {"+11:00", "+10:00"} if h["timezone"] == "Australia/Sydney" else {"+00:00", "+01:00"}
        assert offsets <= expected


def test_demo_refuses_to_wipe_a_database_named_only_by_the_environment(tmp_path: Path) -> None:
    db_path = tmp_path / "other.db"
    first = run_demo(db_path, "--accounts", "2", "--days", "2", "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    env = {**os.environ, "ARREARS_DATABASE_URL": f"sqlite:///{db_path}"}
    again = subprocess.run(
        [sys.executable, "-m", "arrears", "demo", "--accounts", "2", "--days", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert again.returncode == 2
    assert "--database-url" in again.stderr
    assert not (tmp_path / "arrears-demo.db").exists()
