"""`course run`: execute a notebook top to bottom in a fresh kernel (cwd = its folder) and save it
normalised. That is how lessons and solutions get the outputs nbval later compares."""

from __future__ import annotations

import os
import time
from pathlib import Path

from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

from infracourse.authoring import notebook_format


def execute(path: Path, timeout_s: int = 300, extra_env: dict[str, str] | None = None):
    """Execute PATH in a fresh python3 kernel; return the executed notebook (raises on a cell error)."""
    nb = notebook_format.read(path)
    client = NotebookClient(
        nb, timeout=timeout_s, kernel_name="python3", allow_errors=False,
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    return client.execute(env={**os.environ, **(extra_env or {})})


def run_and_save(path: Path, timeout_s: int = 300) -> tuple[float, str | None]:
    """Execute and overwrite PATH; return (seconds, None) or (seconds, short error) leaving PATH as it was."""
    started = time.monotonic()
    try:
        nb = execute(path, timeout_s)
    except (CellExecutionError, CellTimeoutError) as exc:
        summary = str(exc).strip().splitlines()
        return time.monotonic() - started, "\n".join(summary[-15:])
    notebook_format.write(nb, path)
    return time.monotonic() - started, None
