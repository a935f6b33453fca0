"""Native mode: start, stop and inspect the services as processes of our own, from installed packages.

State lives in .services/<name>/ (git-ignored): data, service.log and the record of the processes we started
(see processes.py). Only processes that are provably still those are ever signalled, so a service someone
else runs on the same port, or a process that inherited a stale pid, is never touched. Starting and stopping a
service hold a lock on its folder, so two `course up` at once wait for each other instead of racing.
"""

from __future__ import annotations

import fcntl
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from infracourse.config import endpoint
from infracourse.errors import CourseError
from infracourse.paths import state_dir
from infracourse.services import processes
from infracourse.services.probes import probe
from infracourse.services.recipes import SPECS, NativeSpec, ServiceDirs


class StartFailed(CourseError):
    pass


def dirs_of(name: str) -> ServiceDirs:
    return ServiceDirs(state_dir() / name)


def our_processes(name: str) -> list[processes.Process]:
    """The processes we started for NAME that are still running (and still those processes)."""
    return [p for p in processes.read(dirs_of(name).pids).processes if processes.still_running(p)]


def our_pids(name: str) -> list[int]:
    return [p.pid for p in our_processes(name)]


def record_problem(name: str) -> str:
    """Why NAME's pid record cannot be trusted ('' when it can or there is none)."""
    recorded = processes.read(dirs_of(name).pids)
    port = endpoint(name).port
    if recorded.problem:
        return recorded.problem
    if recorded.port is not None and recorded.port != port and our_pids(name):
        return f"{name} was started on port {recorded.port}, but the course now expects {port}"
    return ""


@contextmanager
def _locked(dirs: ServiceDirs) -> Iterator[None]:
    dirs.root.mkdir(parents=True, exist_ok=True)
    with open(dirs.root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _log_tail(dirs: ServiceDirs, lines: int = 8) -> str:
    if not dirs.log.exists():
        return "(no log)"
    return "\n".join(dirs.log.read_text(errors="replace").splitlines()[-lines:])


def _spawn(spec: NativeSpec, dirs: ServiceDirs, command: list[str], log) -> processes.Process:
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        cwd=dirs.root, env=spec.environment(dirs), start_new_session=True, user=spec.run_as,
    )
    return processes.identify(proc.pid) or processes.Process(proc.pid, -1, "")


def start_one(name: str) -> str:
    """Start NAME unless it already answers; return what happened in a few words."""
    with _locked(dirs_of(name)):
        return _start_locked(name)


def _start_locked(name: str) -> str:
    spec = SPECS[name]
    if probe(name) is None:
        return "already running" + (" (ours)" if our_pids(name) else " (started outside the course)")
    missing = spec.missing()
    if missing:
        raise StartFailed(f"{name}: not installed ({', '.join(missing)}). Run `course setup` first.")
    port = endpoint(name).port
    if _port_open(port) and not our_pids(name):
        raise StartFailed(
            f"{name}: port {port} is taken by another program that is not a healthy {name}. "
            f"Stop it, or move the course with COURSE_{name.upper()}_PORT."
        )
    dirs = dirs_of(name)
    spec.prepare(dirs)
    started_here = our_processes(name)
    with open(dirs.log, "ab") as log:
        for helper_port, command in spec.helper_commands():
            if not _port_open(helper_port):
                started_here.append(_spawn(spec, dirs, command, log))
        main = _spawn(spec, dirs, spec.command(dirs), log)
        started_here.append(main)
    processes.write(dirs.pids, port, started_here)
    started = time.monotonic()
    deadline = started + spec.start_timeout_s
    while (reason := spec.not_ready()) is not None:
        if not processes.still_running(main):
            raise StartFailed(f"{name} exited during start-up. Last lines of {dirs.log}:\n{_log_tail(dirs)}")
        if time.monotonic() > deadline:
            raise StartFailed(
                f"{name} did not become healthy within {spec.start_timeout_s:.0f} s ({reason}). "
                f"Last lines of {dirs.log}:\n{_log_tail(dirs)}"
            )
        time.sleep(0.2)
    spec.after_start(dirs)
    return f"started in {time.monotonic() - started:.1f} s"


def start(names: list[str], report: Callable[[str, str], None] | None = None) -> dict[str, str]:
    """Start NAMES in parallel; return name -> outcome ('started in 1.2 s', 'already running', or an error).
    REPORT(name, outcome) is called as each one finishes, so a slow service does not hide the fast ones."""

    def attempt(name: str) -> str:
        try:
            outcome = start_one(name)
        except (CourseError, OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            outcome = f"FAILED: {exc}" + (f"\n{detail.decode(errors='replace')}" if detail else "")
        if report:
            report(name, outcome)
        return outcome

    with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        return dict(zip(names, pool.map(attempt, names), strict=True))


def stop_one(name: str, grace_s: float = 20.0) -> str:
    with _locked(dirs_of(name)):
        ours = our_processes(name)
        if not ours:
            dirs_of(name).pids.unlink(missing_ok=True)
            return "not running (ours)"
        for process in reversed(ours):  # the service first, then its helpers
            processes.signal_tree(process, SPECS[name].stop_signal)
        deadline = time.monotonic() + grace_s
        while any(processes.still_running(p) for p in ours) and time.monotonic() < deadline:
            time.sleep(0.1)
        for process in ours:
            processes.signal_tree(process, signal.SIGKILL)
        dirs_of(name).pids.unlink(missing_ok=True)
        return "stopped"


def stop(names: list[str]) -> dict[str, str]:
    with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        return dict(zip(names, pool.map(stop_one, names), strict=True))
