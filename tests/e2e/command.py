"""Running the `arrears` command as an operator would: a fresh process, on the database its flags name."""

from __future__ import annotations

import os
import subprocess
import sys


def arrears(
    *args: str, stdin: str | None = None, columns: int | None = 200, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`arrears ARGS...`; $ARREARS_DATABASE_URL is dropped so only `--database-url` counts.

    `columns`: the terminal width rich lays tables out for (in a pipe it folds them
    to 80); None leaves it unset.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("ARREARS_DATABASE_URL", "COLUMNS")}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run(
        [sys.executable, "-m", "arrears", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        input=stdin,
    )
