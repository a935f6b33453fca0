"""A test must not leave a thread behind that keeps burning CPU (CI lost a worker to one: an endless loop left
running by a wrong-answer test grew to 23 GB and slowed the whole run ~25x before the OOM killer ended it)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

SETTLE_S = 0.5  # time_limit.stop interrupts at once; give unwinding code a moment
SAMPLE_S = 0.3
BUSY_SHARE = 0.5  # of one core


def _cpu_ticks(native_id: int) -> int:
    try:
        fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0  # the thread has ended
    return int(fields[11]) + int(fields[12])  # utime + stime


def busy_threads(started_after: set[int]) -> list[str]:
    """Names of the threads not in STARTED_AFTER that still use more than BUSY_SHARE of a core."""
    new = [t for t in threading.enumerate() if t.ident not in started_after and t.native_id]
    if not new or not Path("/proc/self/task").is_dir():
        return []
    time.sleep(SETTLE_S)
    before = {t.native_id: _cpu_ticks(t.native_id) for t in new}
    time.sleep(SAMPLE_S)
    limit = BUSY_SHARE * SAMPLE_S * os.sysconf("SC_CLK_TCK")
    return [t.name for t in new if t.is_alive() and _cpu_ticks(t.native_id) - before[t.native_id] > limit]
