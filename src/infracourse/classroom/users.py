"""The learners' Unix accounts on a single-server hub: the hub's spawner starts each learner's server as its own
user, so one learner's files, processes and environment (their credentials) are closed to the others. Homes
are 0700; the course itself is installed once, read-only, for all of them."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from infracourse.classroom import limits
from infracourse.paths import repo_root

COPIED = ("notebooks", "labs")  # what a learner works on, copied into a new home once


def exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def home(name: str) -> Path:
    """NAME's home folder (KeyError: no such account)."""
    return Path(pwd.getpwnam(name).pw_dir)


def ensure(name: str) -> Path:
    """NAME's account (made if missing: no password, no login shell) with a 0700 home holding the notebooks."""
    if not exists(name):
        subprocess.run(["useradd", "--create-home", "--user-group", "--shell", "/usr/sbin/nologin", name],
                       check=True, capture_output=True)
    account = pwd.getpwnam(name)
    home = Path(account.pw_dir)
    home.mkdir(mode=0o700, exist_ok=True)
    os.chown(home, account.pw_uid, account.pw_gid)
    home.chmod(0o700)
    for folder in COPIED:
        if not (home / folder).exists():
            shutil.copytree(repo_root() / folder, home / folder)
            for path in [home / folder, *(home / folder).rglob("*")]:
                os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)
    return home


def remove(name: str) -> None:
    """NAME's account, home and processes (benchmark and test learners only)."""
    if exists(name):
        for pid in pids_of(name):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["userdel", "--remove", name], capture_output=True)
    limits.release(name)


def pids_of(name: str) -> list[int]:
    """The processes running as NAME (its server, kernels and whatever they started)."""
    uid = pwd.getpwnam(name).pw_uid
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                found.append(int(entry.name))
        except OSError:
            pass  # gone meanwhile
    return found


def memory_mib(name: str) -> float:
    """What NAME's processes use, shared pages split among their users (the sum of their Pss)."""
    total_kib = 0
    for pid in pids_of(name):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kib += int(line.split()[1])
        except OSError:
            pass
    return total_kib / 1024
