"""The command adapter running real scripts (Python, with a shebang) written to tmp_path."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from arrears.provisioning.base import ConfigError, ProvisioningCall, State
from arrears.provisioning.command import STDERR_TAIL, CommandAdapter, CommandSettings

NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def a_call(*, key: str = "req-17-suspended", **attributes: Any) -> ProvisioningCall:
    return ProvisioningCall(
        request_id=17,
        key=key,
        action="suspended",
        provider="acme",
        account="A-100",
        service="S-200 ☎",
        service_type="nbn",
        attempt=2,
        created_at=NOW,
        attributes=attributes,
    )


def script(tmp_path: Path, body: str, name: str = "provision") -> Path:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def run(argv: list[str], call: ProvisioningCall | None = None, **settings: Any) -> Any:
    adapter = CommandAdapter(CommandSettings(argv, **settings))
    try:
        return adapter.execute(call or a_call())
    finally:
        adapter.close()


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (PID 1 in a container may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_gone(*pids: int, within: float = 1.0) -> list[int]:
    deadline = time.monotonic() + within
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.01)
    return left


@pytest.fixture(autouse=True)
def no_leftover_children() -> Iterator[None]:
    yield
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    if children.exists():
        assert children.read_text().split() == [], "child processes left behind"


# -- the protocol -----------------------------------------------------------------------


def test_call_on_stdin_and_key_in_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARREARS_DATABASE_URL", "postgresql://arrears:hunter2@db/arrears")
    got = tmp_path / "got.json"
    prog = script(
        tmp_path,
        """
        import json, os, sys
        out = {"stdin": sys.stdin.read(), "argv": sys.argv[1:], "cwd": os.getcwd(),
               "env": {k: v for k, v in os.environ.items() if k.startswith(("ARREARS", "SITE"))}}
        open(sys.argv[1], "w").write(json.dumps(out))
        """,
    )
    call = a_call(radius_user="u@isp")

    result = run([str(prog), str(got), "--dry"], call, env={"SITE": "syd-1"}, cwd=str(tmp_path))

    assert (result.state, result.detail, result.reference) == (State.CONFIRMED, "exit 0", None)
    seen = json.loads(got.read_text())
    assert json.loads(seen["stdin"]) == call.as_json()
    assert seen["argv"] == [str(got), "--dry"]
    assert seen["cwd"] == str(tmp_path)
    assert seen["env"] == {
        "ARREARS_REQUEST_KEY": "req-17-suspended",
        "ARREARS_REQUEST_ID": "17",
        "ARREARS_ACTION": "suspended",
        "SITE": "syd-1",
    }  # and not the worker's database URL


def test_no_shell_is_involved(tmp_path: Path) -> None:
    got = tmp_path / "argv.json"
    prog = script(tmp_path, "import json, sys\nopen(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))\n")
    settings = CommandSettings.from_config({"command": f"{prog} {got} '$HOME; rm -rf x' \"a b\""})
    adapter = CommandAdapter(settings)
    assert adapter.execute(a_call()).state is State.CONFIRMED
    assert json.loads(got.read_text()) == ["$HOME; rm -rf x", "a b"]


@pytest.mark.parametrize(
    ("stdout", "state", "reference", "detail"),
    [
        ('{"state": "accepted", "reference": "job-9"}', State.ACCEPTED, "job-9", "exit 0"),
        ('{"reference": 42, "detail": "port 3 shut"}', State.CONFIRMED, "42", "exit 0: port 3 shut"),
        ('{"state": "weird", "reference": true}', State.CONFIRMED, None, "exit 0"),
        ("done, port shut\n", State.CONFIRMED, None, "exit 0: done, port shut"),
        ("{not json", State.CONFIRMED, None, "exit 0: {not json"),
    ],
)
def test_stdout_json(tmp_path: Path, stdout: str, state: State, reference: str | None, detail: str) -> None:
    prog = script(tmp_path, f"import sys\nsys.stdin.read()\nsys.stdout.write({stdout!r})\n")
    result = run([str(prog)])
    assert (result.state, result.reference, result.detail) == (state, reference, detail)


def test_a_script_that_ignores_its_input(tmp_path: Path) -> None:
    prog = script(tmp_path, "import sys\nsys.exit(0)\n")
    result = run([str(prog)], a_call(blob="x" * 300_000))  # more than a pipe holds
    assert result.state is State.CONFIRMED


# -- exit statuses ----------------------------------------------------------------------


def test_tempfail_is_retried(tmp_path: Path) -> None:
    prog = script(tmp_path, "import sys\nsys.stderr.write('router busy\\n')\nsys.exit(75)\n")
    result = run([str(prog)])
    assert (result.state, result.detail) == (State.RETRY, "exit 75 (temporary failure): router busy")


def test_other_exits_fail_with_the_end_of_stderr(tmp_path: Path) -> None:
    prog = script(
        tmp_path,
        """
        import sys
        for n in range(200):
            print(f"trace line {n:03}", file=sys.stderr)
        print("ValueError: no such service S-200", file=sys.stderr)
        sys.exit(3)
        """,
    )
    result = run([str(prog)])
    assert result.state is State.FAILED
    assert result.detail.startswith("exit 3: …trace line ")
    assert result.detail.endswith("trace line 199\nValueError: no such service S-200")
    assert "trace line 000" not in result.detail
    assert len(result.detail) <= len("exit 3: ") + STDERR_TAIL
    assert result.detail.split("…")[1].startswith("trace line")  # cut at a line start


def test_killed_by_a_signal_is_retried(tmp_path: Path) -> None:
    prog = script(tmp_path, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    result = run([str(prog)])
    assert (result.state, result.detail) == (State.RETRY, "killed by SIGKILL")


def test_timeout_stops_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    prog = script(
        tmp_path,
        f"""
        import os, sys, time
        child = os.fork()  # a child in the same process group, which must be stopped too
        if child == 0:
            time.sleep(30)
            os._exit(0)
        open({str(pids)!r}, "w").write(f"{{child}} {{os.getpid()}}")
        print("halfway", file=sys.stderr, flush=True)
        time.sleep(30)
        """,
    )
    started = time.monotonic()
    result = run([str(prog)], timeout=0.5)
    elapsed = time.monotonic() - started

    assert result.state is State.RETRY
    assert result.detail == f"{str(prog)!r} timed out after 0.5 s and was stopped: halfway"
    assert elapsed < 1.5
    child, leader = map(int, pids.read_text().split())
    assert wait_gone(child, leader) == []


def test_a_command_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    prog = script(
        tmp_path,
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(30)
        """,
    )
    adapter = CommandAdapter(CommandSettings([str(prog)], timeout=0.5))
    adapter.kill_grace = 0.2
    started = time.monotonic()
    result = adapter.execute(a_call())
    assert result.state is State.RETRY and "timed out" in result.detail
    assert time.monotonic() - started < 1.5


def test_a_background_child_holding_stdout_does_not_hide_the_exit(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    prog = script(
        tmp_path,
        f"""
        import os, time
        print('{{"reference": "r1"}}', flush=True)
        child = os.fork()  # keeps stdout open after its parent exits
        if child == 0:
            time.sleep(30)
            os._exit(0)
        open({str(pid_file)!r}, "w").write(str(child))
        """,
    )
    result = run([str(prog)], timeout=0.5)
    assert (result.state, result.reference) == (State.CONFIRMED, "r1")
    assert wait_gone(int(pid_file.read_text())) == []


# -- a program that cannot be started ---------------------------------------------------


def test_a_missing_program_is_retried_with_a_clear_detail(tmp_path: Path) -> None:
    gone = tmp_path / "deleted-script"
    result = run([str(gone)])
    assert result.state is State.RETRY
    assert str(gone) in result.detail and "check the command adapter's configuration" in result.detail


def test_a_program_that_is_not_executable_is_retried(tmp_path: Path) -> None:
    prog = script(tmp_path, "pass\n")
    prog.chmod(0o644)
    result = run([str(prog)])
    assert result.state is State.RETRY and "Permission denied" in result.detail


def test_a_call_json_cannot_carry_fails(tmp_path: Path) -> None:
    prog = script(tmp_path, "raise SystemExit(0)\n")
    result = run([str(prog)], a_call(since=datetime(2025, 1, 1)))
    assert result.state is State.FAILED and result.detail.startswith("cannot encode the call as JSON")


# -- configuration ----------------------------------------------------------------------


def test_settings_from_config(tmp_path: Path) -> None:
    prog = script(tmp_path, "pass\n")
    settings = CommandSettings.from_config(
        {"type": "command", "command": [str(prog), "--site", "a b"], "timeout": 5, "env": {"X": "1"}}
    )
    assert settings == CommandSettings([str(prog), "--site", "a b"], 5.0, {"X": "1"}, None)
    assert CommandSettings.from_config({"command": f"'{prog}' -v"}).argv == [str(prog), "-v"]
    # A relative program path is found from the working directory, as subprocess does.
    relative = CommandSettings.from_config({"command": "./provision", "cwd": str(tmp_path)})
    assert run(relative.argv, cwd=relative.cwd).state is State.CONFIRMED
    # A bare name is looked up on PATH.
    assert CommandSettings.from_config({"command": "true"}).timeout == 30.0


@pytest.mark.parametrize(
    ("cfg", "field", "message"),
    [
        ({}, "command", "is required"),
        ({"command": ""}, "command", "is empty"),
        ({"command": []}, "command", "is empty"),
        ({"command": [1, 2]}, "command", "list of strings"),
        ({"command": "'unbalanced"}, "command", "cannot be split"),
        ({"command": "/nonexistent/provision.sh"}, "command", "does not exist"),
        ({"command": "no-such-program-anywhere-xyz"}, "command", "not found on PATH"),
        ({"command": "true", "timeout": 0}, "timeout", "positive"),
        ({"command": "true", "timeout": "30"}, "timeout", "number of seconds"),
        ({"command": "true", "env": ["A=1"]}, "env", "mapping"),
        ({"command": "true", "env": {"A=B": "1"}}, "env", "not a valid variable name"),
        ({"command": "true", "env": {"A": 1}}, "env.A", "must be a string"),
        (
            {"command": "true", "env": {"ARREARS_REQUEST_KEY": "x"}},
            "env.ARREARS_REQUEST_KEY",
            "set by the adapter",
        ),
        ({"command": "true", "cwd": "/nonexistent/dir"}, "cwd", "not an existing directory"),
        ({"command": "true", "comand": "x"}, "comand", "unknown setting"),
    ],
)
def test_config_errors_name_the_field(cfg: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        CommandSettings.from_config(cfg)
    assert caught.value.field == field


def test_a_script_that_is_not_executable_is_a_config_error(tmp_path: Path) -> None:
    prog = script(tmp_path, "pass\n")
    prog.chmod(0o644)
    with pytest.raises(ConfigError, match="is not executable") as caught:
        CommandSettings.from_config({"command": [str(prog)]})
    assert caught.value.field == "command"
