"""Log lines are one JSON object each, carrying the ids passed as `extra`."""

from __future__ import annotations

import io
import json
import logging

from arrears.ops.logs import JsonFormatter


def _logger() -> tuple[logging.Logger, io.StringIO]:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger(f"test-logs-{id(buf)}")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return log, buf


def test_extra_fields_sit_beside_the_message() -> None:
    log, buf = _logger()
    log.warning("provisioning %s", "failed", extra={"provider": 7, "account": 42, "request": 9001})
    line = json.loads(buf.getvalue())
    assert line["message"] == "provisioning failed" and line["level"] == "warning"
    assert (line["provider"], line["account"], line["request"]) == (7, 42, 9001)
    assert line["ts"].endswith("+00:00")


def test_a_json_message_is_merged_and_exceptions_are_kept() -> None:
    log, buf = _logger()
    try:
        raise RuntimeError("database away")
    except RuntimeError:
        log.exception('{"event": "pass_failed", "pass": "due"}')
    line = json.loads(buf.getvalue())
    assert line["event"] == "pass_failed" and line["pass"] == "due"
    assert "database away" in line["exception"]
    assert buf.getvalue().count("\n") == 1  # one line, tracebacks included
