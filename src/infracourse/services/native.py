"""Native mode: start, stop and inspect the services as processes of our own, from installed packages.

State lives in .services/<name>/ (git-ignored): data, service.log and the pids we started. Only those
pids are ever signalled, so a service someone else runs on the same port is never touched.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from infracourse.config import endpoint
from infracourse.errors import CourseError
from infracourse.paths import state_dir
from infracourse.services.probes import probe
from infracourse.services.recipes import SPECS, NativeSpec, ServiceDirs


class StartFailed(CourseError):
    pass


def dirs_of(name: str) -> ServiceDirs:
    return ServiceDirs(state_dir() / name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie still answers kill(0) but is gone for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def our_pids(name: str) -> list[int]:
    """Pids we started for NAME that are still alive."""
    path = dirs_of(name).pids
    if not path.exists():
        return []
    pids = [int(line) for line in path.read_text().split() if line.isdigit()]
    return [pid for pid in pids if _alive(pid)]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _log_tail(dirs: ServiceDirs, lines: int = 8) -> str:
    if not dirs.log.exists():
        return "(no log)"
    return "\n".join(dirs.log.read_text(errors="replace").splitlines()[-lines:])


def _spawn(spec: NativeSpec, dirs: ServiceDirs, command: list[str], log) -> int:
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        cwd=dirs.root, env=spec.environment(dirs), start_new_session=True, user=spec.run_as,
    )
    return proc.pid


def start_one(name: str) -> str:
    """Start NAME unless it already answers; return what happened in a few words."""
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
    dirs.root.mkdir(parents=True, exist_ok=True)
    spec.prepare(dirs)
    pids = our_pids(name)
    with open(dirs.log, "ab") as log:
        for helper_port, command in spec.helper_commands():
            if not _port_open(helper_port):
                pids.append(_spawn(spec, dirs, command, log))
        main_pid = _spawn(spec, dirs, spec.command(dirs), log)
        pids.append(main_pid)
    dirs.pids.write_text("\n".join(map(str, pids)) + "\n")
    started = time.monotonic()
    deadline = started + spec.start_timeout_s
    while (reason := spec.not_ready()) is not None:
        if not _alive(main_pid):
            raise StartFailed(f"{name} exited during start-up. Last lines of {dirs.log}:\n{_log_tail(dirs)}")
        if time.monotonic() > deadline:
            raise StartFailed(
                f"{name} did not become healthy within {spec.start_timeout_s:.0f} s ({reason}). "
                f"Last lines of {dirs.log}:\n{_log_tail(dirs)}"
            )
        time.sleep(0.2)
    spec.after_start(dirs)
    return f"started in {time.monotonic() - started:.1f} s"


def start(names: list[str]) -> dict[str, str]:
    """Start NAMES in parallel; return name -> outcome ('started in 1.2 s', 'already running', or an error)."""

    def attempt(name: str) -> str:
        try:
            return start_one(name)
        except (CourseError, OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            return f"FAILED: {exc}" + (f"\n{detail.decode(errors='replace')}" if detail else "")

    with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        return dict(zip(names, pool.map(attempt, names), strict=True))


def stop_one(name: str, grace_s: float = 20.0) -> str:
    pids = our_pids(name)
    if not pids:
        dirs_of(name).pids.unlink(missing_ok=True)
        return "not running (ours)"
    sig = SPECS[name].stop_signal
    for pid in reversed(pids):  # the service first, then its helpers
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    deadline = time.monotonic() + grace_s
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    dirs_of(name).pids.unlink(missing_ok=True)
    return "stopped"


def stop(names: list[str]) -> dict[str, str]:
    with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        return dict(zip(names, pool.map(stop_one, names), strict=True))
