"""The processes native mode started, recorded so that only they are ever signalled.

A pid alone proves nothing: after a reboot, or once a service died, the same number may belong to anyone. Each
record keeps the process's start time (field 22 of /proc/PID/stat, in clock ticks since boot) and executable, and
a pid is trusted only while both still match; pids <= 1 and our own process group are never signalled. The pid
file is JSON ({"port": ..., "processes": [...]}) and read leniently: a file that is corrupt, from an older
course version or unreadable yields no trusted process, with a reason, never a crash.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Process:
    pid: int
    started: int  # clock ticks after boot, from /proc/PID/stat
    exe: str  # the executable's path ("" when the kernel would not say)


@dataclass(frozen=True)
class Recorded:
    port: int | None
    processes: tuple[Process, ...]
    problem: str = ""  # why the file could not be trusted, when it could not


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()  # the command name in parentheses may contain spaces


def identify(pid: int) -> Process | None:
    """PID as it is now (None if there is no such live process)."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":
        return None
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        exe = ""
    return Process(pid, int(fields[19]), exe)


def still_running(record: Process) -> bool:
    """RECORD's process is alive and is the same process (start time and executable unchanged)."""
    if record.pid <= 1 or record.pid == os.getpid():
        return False
    now = identify(record.pid)
    return now is not None and now.started == record.started and (not record.exe or now.exe in ("", record.exe))


def read(path: Path) -> Recorded:
    if not path.exists():
        return Recorded(None, ())
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
        processes = tuple(Process(int(p["pid"]), int(p["started"]), str(p.get("exe", "")))
                          for p in data["processes"])
        port = int(data["port"]) if data.get("port") is not None else None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        return Recorded(None, (), f"{path} is not a pid record of this course ({type(exc).__name__}); "
                                  "its processes are not trusted")
    return Recorded(port, processes)


def write(path: Path, port: int, processes: list[Process]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"port": port, "processes": [asdict(p) for p in processes]}) + "\n")
    temporary.replace(path)


def signal_tree(record: Process, sig: int) -> None:
    """Send SIG to RECORD's process group (we start each service in a session of its own), or to the process
    alone when it leads no group; nothing when it is no longer that process, or the group is ours."""
    if not still_running(record):
        return
    try:
        if os.getpgid(record.pid) == record.pid and record.pid != os.getpgrp():
            os.killpg(record.pid, sig)
        else:
            os.kill(record.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def descendants(pid: int) -> list[Process]:
    """PID's children, theirs and so on, as they are now (a parent may start them in sessions of their own, so its
    process group alone would miss them)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        fields = _stat_fields(int(entry.name)) if entry.name.isdigit() else None
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], list(children.get(pid, []))
    while queue:
        child = queue.pop()
        if (process := identify(child)) is not None:
            found.append(process)
        queue += children.get(child, [])
    return found
