"""What a learner's server runs inside on a single-server hub: the grading sandbox's view of the machine
(grading/sandbox.py: the system read-only, a fresh /proc in a pid namespace of its own, a private /tmp) with
the course read-only and the learner's home read-write, entered as root by bubblewrap and left as the learner's
own uid by setpriv. Root builds the mounts, so the course can live anywhere (even under a 0700 /root); the
learner sees only their own processes and files."""

from __future__ import annotations

import pwd
import shutil
import sys
from pathlib import Path

from infracourse.grading import sandbox
from infracourse.paths import repo_root


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if found is None:
        raise FileNotFoundError(f"{name} is not installed (`course setup` installs bubblewrap)")
    return found


def command(name: str, home: Path) -> list[str]:
    """The prefix that runs a command as NAME in the learner's sandbox, working directory HOME."""
    account = pwd.getpwnam(name)
    # /dev/shm of its own: multiprocessing's locks and queues live there (lab 06 runs a consumer in a child)
    mounts = [*sandbox._system_view(), "--dev", "/dev", "--proc", "/proc", "--perms", "1777", "--tmpfs", "/tmp",
              "--perms", "1777", "--tmpfs", "/dev/shm"]
    made = {"/", "/tmp", "/dev/shm"}
    wanted = sorted({str(Path(p).resolve()) for p in (sys.base_prefix, sys.prefix, repo_root())})
    kept = [p for p in wanted if not any(p.startswith(k + "/") for k in wanted if k != p)]
    for path in kept:
        if not any(path == d or path.startswith(d + "/") for d in sandbox.SYSTEM_DIRS):
            mounts += [*sandbox._parents(path, made), "--ro-bind", path, path]
    mounts += [*sandbox._parents(str(home), made), "--bind", str(home), str(home)]
    return [_binary("bwrap"), "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname",
            f"course-{name}", *mounts, "--chdir", str(home), "--",
            _binary("setpriv"), f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups",
            "--bounding-set=-all", "--no-new-privs", "--"]  # no setuid program gets root back
