"""Every scenario file passes through `arrears simulate` exactly as an operator runs it.

- examples/: the specification's examples (and ../shared/scenarios when present);
- library/: this project's scenarios, one behaviour each; a file may carry
  `# expect-lines:` comments, JSON fragments that must each match an output line;
- invalid/: files that must exit 2 with the field named in their `# field:` comment.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from arrears.config import ConfigError
from arrears.sim.runner import Simulation
from arrears.sim.scenario import load

HERE = Path(__file__).parent
SHARED = HERE.parents[2] / "shared" / "scenarios"
VALID = sorted(HERE.glob("examples/*.yaml")) + sorted(HERE.glob("library/*.yaml"))
if SHARED.is_dir():
    VALID += sorted(SHARED.glob("*.yaml"))
INVALID = sorted(HERE.glob("invalid/*.yaml"))


def simulate(path: Path) -> tuple[int, list[dict[str, Any]]]:
    out = io.StringIO()
    failures = Simulation(load(str(path)), out).run()
    return failures, [json.loads(line) for line in out.getvalue().splitlines()]


def _directives(path: Path, name: str) -> list[str]:
    prefix = f"# {name}:"
    return [ln[len(prefix) :].strip() for ln in path.read_text().splitlines() if ln.startswith(prefix)]


def _matches(fragment: dict[str, Any], line: dict[str, Any]) -> bool:
    return all(line.get(k) == v for k, v in fragment.items())


@pytest.mark.parametrize("path", VALID, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_scenario_passes(path: Path) -> None:
    failures, lines = simulate(path)
    failed = [ln for ln in lines if ln["kind"] == "expect_failed"]
    assert failures == 0, f"{path.name}: {failed}"
    for text in _directives(path, "expect-lines"):
        fragment = json.loads(text)
        assert any(_matches(fragment, ln) for ln in lines), f"no output line matches {fragment}"
    for text in _directives(path, "no-lines"):
        fragment = json.loads(text)
        hits = [ln for ln in lines if _matches(fragment, ln)]
        assert not hits, f"unexpected output lines {hits}"
    for text in _directives(path, "count-lines"):
        count, _, rest = text.partition(" ")
        fragment = json.loads(rest)
        hits = [ln for ln in lines if _matches(fragment, ln)]
        assert len(hits) == int(count), f"expected {count} lines like {fragment}, got {hits}"


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_scenario_names_the_field(path: Path) -> None:
    (field,) = _directives(path, "field")
    with pytest.raises(ConfigError) as info:
        Simulation(load(str(path)), io.StringIO()).run()
    assert info.value.field == field, str(info.value)


def test_cli_exit_codes(tmp_path: Path) -> None:
    """The command itself: 0 on success, 1 on a failed expect, 2 on an invalid file."""
    example = HERE / "examples" / "01-basic.yaml"
    ok = subprocess.run(
        [sys.executable, "-m", "arrears", "simulate", str(example)], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert all(json.loads(line)["at"] for line in ok.stdout.splitlines())

    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(
        example.read_text().replace("status: suspended, stage: suspend", "status: active, stage: suspend")
    )
    failed = subprocess.run(
        [sys.executable, "-m", "arrears", "simulate", str(wrong)], capture_output=True, text=True
    )
    assert failed.returncode == 1
    lines = [json.loads(line) for line in failed.stdout.splitlines()]
    assert {
        "kind": "expect_failed",
        "field": "status",
        "expected": "active",
        "actual": "suspended",
    }.items() <= next(ln for ln in lines if ln["kind"] == "expect_failed").items()

    bad = tmp_path / "bad.yaml"
    bad.write_text(example.read_text().replace("min_overdue_days: 14", 'min_overdue_days: "soon"'))
    invalid = subprocess.run(
        [sys.executable, "-m", "arrears", "simulate", str(bad)], capture_output=True, text=True
    )
    assert invalid.returncode == 2
    assert "rules.min_overdue_days" in invalid.stderr
