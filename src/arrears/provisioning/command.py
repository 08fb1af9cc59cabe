"""A local command: the operator's own script carries out each provisioning call.

The command is run directly (never through a shell) with the call as JSON on standard
input, and with `ARREARS_REQUEST_KEY`, `ARREARS_REQUEST_ID` and `ARREARS_ACTION` in its
environment. Its exit status is the answer:

- 0: done (CONFIRMED). If standard output is a JSON object, `"state": "accepted"` means
  the change will be confirmed later (ACCEPTED), and `"reference"`/`"detail"` are kept.
- 75 (EX_TEMPFAIL, from sysexits.h): try again later (RETRY).
- killed by a signal, or still running at the timeout: RETRY (a timed-out command's whole
  process group is terminated, then killed).
- anything else: FAILED, with the exit status and the end of standard error.

The same call may be run again (same key) after a crash or a RETRY, so scripts must be
safe to repeat; `ARREARS_REQUEST_KEY` is there to make that easy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from arrears.provisioning.base import ConfigError, ProvisioningCall, Result, State

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
EX_TEMPFAIL = 75
STDERR_TAIL = 500  # characters of standard error kept in a result's detail
# Only these are passed on from the worker's environment: it holds database URLs and
# credentials that an operator's script has no business seeing. More goes in `env`.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME")
_RESERVED_ENV = frozenset({"ARREARS_REQUEST_KEY", "ARREARS_REQUEST_ID", "ARREARS_ACTION"})
_SELECTOR_KEYS = frozenset({"type", "adapter"})  # choose the adapter; not ours to check


@dataclass(frozen=True)
class CommandSettings:
    argv: list[str]  # the program and its fixed arguments
    timeout: float = DEFAULT_TIMEOUT  # seconds before the command is stopped and the call retried
    env: dict[str, str] | None = None  # added to the few variables inherited (INHERITED_ENV)
    cwd: str | None = None  # working directory; a relative program path is resolved against it

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> CommandSettings:
        """Read `command` (a list, or a string split like a shell would), `timeout`, `env`, `cwd`.

        The program must exist and be executable now (a path), or be found on PATH (a bare
        name). `ConfigError` names the bad field; unknown keys are errors (`type`/`adapter` aside).
        """
        if not isinstance(cfg, Mapping):
            raise ConfigError("command", "the command adapter's settings must be a mapping")
        known = {"command", "timeout", "env", "cwd"}
        for key in cfg:
            if key not in known and key not in _SELECTOR_KEYS:
                raise ConfigError(str(key), f"unknown setting; known: {', '.join(sorted(known))}")
        env = _env(cfg.get("env"))
        cwd = _cwd(cfg.get("cwd"))
        argv = _argv(cfg.get("command"))
        _check_program(argv[0], cwd, _environment(env).get("PATH"))
        return cls(argv=argv, timeout=_timeout(cfg.get("timeout", DEFAULT_TIMEOUT)), env=env, cwd=cwd)


def _argv(value: object) -> list[str]:
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise ConfigError("command", f"cannot be split into arguments: {exc}") from None
    elif isinstance(value, list) and all(isinstance(part, str) for part in value):
        argv = list(value)
    elif value is None:
        raise ConfigError("command", "is required (the program to run, and its arguments)")
    else:
        raise ConfigError("command", "must be a string or a list of strings")
    if not argv or not argv[0]:
        raise ConfigError("command", "is empty")
    if any("\0" in part for part in argv):
        raise ConfigError("command", "contains a NUL character")
    return argv


def _check_program(program: str, cwd: str | None, path: str | None) -> None:
    if os.sep in program:
        # As subprocess does: a relative program path is looked up from the working directory.
        full = os.path.join(cwd, program) if cwd and not os.path.isabs(program) else program
        if not os.path.isfile(full):
            raise ConfigError("command", f"{program!r} does not exist (or is not a file)")
        if not os.access(full, os.X_OK):
            raise ConfigError("command", f"{program!r} is not executable (chmod +x)")
    elif shutil.which(program, path=path) is None:
        raise ConfigError("command", f"{program!r} is not found on PATH; give its full path")


def _timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError("timeout", f"must be a number of seconds, not {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError("timeout", f"must be a positive number of seconds, not {value!r}")
    return float(value)


def _env(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError("env", "must be a mapping of variable name to value")
    env: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or not name or "=" in name or "\0" in name:
            raise ConfigError("env", f"{name!r} is not a valid variable name")
        if name in _RESERVED_ENV:
            raise ConfigError(f"env.{name}", "is set by the adapter for each call")
        if not isinstance(text, str) or "\0" in text:
            raise ConfigError(f"env.{name}", "must be a string")
        env[name] = text
    return env


def _cwd(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError("cwd", "must be a directory path")
    if not os.path.isdir(value):
        raise ConfigError("cwd", f"{value!r} is not an existing directory")
    return value


def _environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name in INHERITED_ENV or name.startswith("LC_")  # locale, so the script decodes as we do
    }
    env.update(extra or {})
    return env


def _tail(data: bytes) -> str:
    """The last lines of `data`, at most STDERR_TAIL characters, cut at a line start if possible."""
    text = data.decode("utf-8", errors="replace").strip()
    if len(text) <= STDERR_TAIL:
        return text
    text = text[-(STDERR_TAIL - 1) :]
    newline = text.find("\n")
    if 0 <= newline < len(text) - 1:
        text = text[newline + 1 :]
    return "…" + text


def _with(detail: str, stderr: bytes) -> str:
    tail = _tail(stderr)
    return f"{detail}: {tail}" if tail else detail


class CommandAdapter:
    """Runs the configured command once per call (see the module docstring for the protocol).

    A program that cannot be started (missing, not executable, a bad working directory) is a
    configuration problem, not the customer's: the result is RETRY with the reason, so no call is
    lost while the operator fixes it, and the dispatcher's retry limit still ends it eventually.
    """

    name = "command"
    kill_grace = 2.0  # seconds between SIGTERM and SIGKILL for a timed-out command

    def __init__(self, settings: CommandSettings) -> None:
        self.settings = settings

    def execute(self, call: ProvisioningCall) -> Result:
        try:
            payload = json.dumps(call.as_json(), separators=(",", ":"), ensure_ascii=False).encode()
        except (TypeError, ValueError) as exc:
            # An attribute JSON cannot carry: the same call would fail the same way every time.
            return Result(State.FAILED, f"cannot encode the call as JSON: {exc}")
        env = _environment(self.settings.env)
        env.update(
            ARREARS_REQUEST_KEY=call.key, ARREARS_REQUEST_ID=str(call.request_id), ARREARS_ACTION=call.action
        )
        program = self.settings.argv[0]
        try:
            process = subprocess.Popen(
                self.settings.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=self.settings.cwd,
                start_new_session=True,  # its own process group, so a timeout can stop all it started
            )
        except OSError as exc:
            return Result(
                State.RETRY, f"cannot start {program!r} (check the command adapter's configuration): {exc}"
            )
        try:
            stdout, stderr = process.communicate(payload, timeout=self.settings.timeout)
        except subprocess.TimeoutExpired:
            exited = process.poll()
            stdout, stderr = self._stop(process)
            if exited is None:
                detail = f"{program!r} timed out after {self.settings.timeout:g} s and was stopped"
                return Result(State.RETRY, _with(detail, stderr))
            # It exited, but something it started kept its output open until the timeout (now stopped).
            log.warning("%r exited but its output stayed open; its process group was stopped", program)
        except BaseException:
            self._stop(process)  # e.g. KeyboardInterrupt: leave no process behind
            raise
        return self._classify(process.returncode, stdout, stderr)

    def _stop(self, process: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
        """Terminate, then kill, the command's process group; the output read so far."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                stdout, stderr = process.communicate(timeout=self.kill_grace)
            except subprocess.TimeoutExpired:
                continue
            # The leader is gone; sweep anything left in its group that closed its output.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            return stdout, stderr
        # A descendant left the group (setsid) and still holds the pipes: give up on the output.
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        process.wait()
        return b"", b""

    def _classify(self, code: int, stdout: bytes, stderr: bytes) -> Result:
        if code == 0:
            return _success(stdout)
        if code == EX_TEMPFAIL:
            return Result(State.RETRY, _with(f"exit {code} (temporary failure)", stderr))
        if code < 0:
            # Killed from outside (OOM killer, shutdown): nothing says trying again would fail too.
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return Result(State.RETRY, _with(f"killed by {name}", stderr))
        return Result(State.FAILED, _with(f"exit {code}", stderr))

    def close(self) -> None:
        pass  # nothing is kept between calls


def _success(stdout: bytes) -> Result:
    text = stdout.decode("utf-8", errors="replace").strip()
    data: object = None
    if text.startswith("{"):
        with contextlib.suppress(json.JSONDecodeError):
            data = json.loads(text)
    if not isinstance(data, dict):
        return Result(State.CONFIRMED, f"exit 0: {_tail(stdout)}" if text else "exit 0")
    state = State.ACCEPTED if data.get("state") == "accepted" else State.CONFIRMED
    reference = data.get("reference")
    if isinstance(reference, bool) or not isinstance(reference, str | int) or not str(reference):
        reference = None
    detail = data.get("detail")
    return Result(
        state,
        f"exit 0: {_tail(detail.encode())}" if isinstance(detail, str) and detail else "exit 0",
        reference=None if reference is None else str(reference),
    )
