"""Run the buf CLI (lint, breaking, curl) that the buf-bin wheel installs next to this Python interpreter.

A notebook kernel's PATH need not include the virtual environment's bin folder, so `buf` is looked up in the
scripts folder of the running interpreter first.
"""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path


class BufNotFound(RuntimeError):
    pass


def executable() -> Path:
    """The buf binary: this environment's scripts folder first, then PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / "buf"
    if candidate.exists():
        return candidate
    found = shutil.which("buf")
    if found is None:
        raise BufNotFound("buf is not installed: `pip install buf-bin` (it is a dependency of this course)")
    return Path(found)


def run(*args: str, cwd: Path | None = None, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """`buf ARGS...` in CWD; returns the finished process (exit code, stdout, stderr) without raising on failure."""
    return subprocess.run(
        [str(executable()), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False
    )
