"""A learner's progress: the last result of every check they ran in a lab, kept on their machine (in the
checkout's state folder), for `course progress` and lesson 00. Graded and CI runs do not write it."""

from __future__ import annotations

import fcntl
import json
import time
from pathlib import Path
from typing import Protocol

from infracourse.paths import state_dir


class _Declared(Protocol):
    number: str
    label: str
    module: str


def path() -> Path:
    return state_dir() / "progress.json"


def _lab_of(module: str) -> str:
    return module.rsplit(".lab", 1)[-1] if ".checks.lab" in module else ""


def read() -> dict[str, dict[str, dict[str, str]]]:
    """{lab number: {exercise number: {"status", "title", "at"}}}; empty when nothing was recorded (or the
    file is unreadable: progress is a convenience, never a reason for a check to fail)."""
    try:
        return json.loads(path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def record(spec: _Declared, status: str) -> None:
    lab = _lab_of(spec.module)
    if not lab:
        return
    try:
        path().parent.mkdir(parents=True, exist_ok=True)
        with open(path().with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two lab kernels may record at once
            known = read()
            known.setdefault(lab, {})[spec.number] = {
                "status": status, "title": spec.label, "at": time.strftime("%Y-%m-%d %H:%M")}
            temporary = path().with_suffix(".tmp")
            temporary.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            temporary.replace(path())
    except OSError:
        pass  # a read-only checkout: the check's verdict still shows, only the record is lost
