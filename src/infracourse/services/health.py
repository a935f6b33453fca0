"""The health of every course service: its endpoint, what its probe says and who runs it. One table, shown by
`course status`, `course up` and a notebook's `notebook.status()`."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from infracourse.config import SERVICE_NAMES, endpoint
from infracourse.paths import state_dir
from infracourse.services import native
from infracourse.services.probes import probe

MODE_FILE = "mode"  # in the state folder: "native" or "compose", whichever `course up` used last


@dataclass(frozen=True)
class Health:
    service: str
    endpoint: str
    problem: str | None  # None when the probe succeeded
    mode: str  # native (started by us), external (answering, not ours), compose, or "-"

    @property
    def healthy(self) -> str:
        return "yes" if self.problem is None else f"no: {self.problem}"


def recorded_mode() -> str:
    path = state_dir() / MODE_FILE
    return path.read_text().strip() if path.exists() else "native"


def record_mode(mode: str) -> None:
    state_dir().mkdir(parents=True, exist_ok=True)
    (state_dir() / MODE_FILE).write_text(mode + "\n")


def check_all() -> list[Health]:
    """Probe every service at once (each probe gives up within a few seconds)."""
    with ThreadPoolExecutor(max_workers=len(SERVICE_NAMES)) as pool:
        problems = list(pool.map(probe, SERVICE_NAMES))
    mode = recorded_mode()
    rows = []
    for name, problem in zip(SERVICE_NAMES, problems, strict=True):
        if mode == "native":
            owner = "native" if native.our_pids(name) else ("external" if problem is None else "-")
        else:
            owner = mode
        rows.append(Health(name, endpoint(name).address, problem, owner))
    return rows
