"""The sandbox a submission's kernel runs in: bubblewrap (`bwrap`) with its own pid, IPC and UTS namespaces, a
read-only view of the system and of the course code, a fresh /proc, tmpfs /tmp and HOME, only the submission's
working folder writable, a minimal environment, an unprivileged uid and prlimit's resource caps.

Run by root, bwrap builds the mounts as root (it can bind the Python install even under a 0700 /root) and
setpriv, inside, drops to nobody for good; run by anyone else, bwrap maps the user to nobody in a user
namespace. With a network folder the kernel gets a network namespace of its own that reaches only the course
services (network.py)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import infracourse
from infracourse import config
from infracourse.grading import network

SANDBOX_UID = SANDBOX_GID = 65534  # nobody / nogroup
HOME = "/home/learner"
INSTALL_HINT = "install bubblewrap (`apt-get install bubblewrap`, or `course setup`), or pass --trust-submissions"
PASSED_ENV = ("LANG", "MPLBACKEND", "INFRACOURSE_NS_SUFFIX", "INFRACOURSE_RESULTS", "INFRACOURSE_HOME")
SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/opt")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Policy:
    """How `course grade` runs kernels: sandboxed (the default) with these caps, or trusted (no sandbox)."""

    sandboxed: bool = True
    memory_mb: int = 2048  # RLIMIT_AS
    processes: int = 256  # RLIMIT_NPROC, counted for the sandbox uid
    file_mb: int = 256  # RLIMIT_FSIZE: the largest file the kernel may write
    cpu_s: int | None = None  # RLIMIT_CPU; None: the notebook time limit


_active = Policy()


@contextmanager
def use(policy: Policy) -> Iterator[None]:
    """POLICY for the kernels started meanwhile (one `course grade` run has one; run.grade does not carry it)."""
    global _active
    before, _active = _active, policy
    try:
        yield
    finally:
        _active = before


def active() -> Policy:
    return _active


def as_root() -> bool:
    return os.geteuid() == 0


def hand_over(path: Path) -> None:
    """Give the sandbox's group the access the grader has to PATH and to what is in it (a results folder it may
    write to but not list stays so): needed when bwrap runs as root and the kernel as the real nobody. Without
    root the sandbox uid maps to the grader's own, which has that access already."""
    if not as_root():
        return
    for item in [path, *(path.rglob("*") if path.is_dir() else ())]:
        mode = item.lstat().st_mode
        os.chown(item, -1, SANDBOX_GID, follow_symlinks=False)
        if not item.is_symlink():
            item.chmod(mode & 0o7777 | (mode & 0o700) >> 3)


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(name)
    return found


def _system_view() -> list[str]:
    """The system, read-only; merged-/usr symlinks (/bin -> usr/bin) stay symlinks."""
    args: list[str] = []
    for folder in SYSTEM_DIRS:
        if os.path.islink(folder):
            args += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            args += ["--ro-bind", folder, folder]
    return args


def _editable_apps() -> list[Path]:
    """Source folders of the course's apps installed editable beside the package (the orders service)."""
    spec = importlib.util.find_spec("orders_service")
    return [Path(p).parent for p in spec.submodule_search_locations] if spec and spec.submodule_search_locations else []


def code_paths() -> list[str]:
    """The Python install, the venv and the package's source folder (src/, not the repository: solutions/ and
    the rest stay out), each bound read-only at its own path; parents of each other collapse."""
    sources = (sys.base_prefix, sys.prefix, Path(infracourse.__file__).parents[1], *_editable_apps())
    wanted = sorted({str(Path(p).resolve()) for p in sources})
    kept: list[str] = []
    for path in wanted:
        if not any(path == k or path.startswith(k + "/") for k in kept + list(SYSTEM_DIRS)):
            kept.append(path)
    return kept


def _parents(path: str, made: set[str]) -> list[str]:
    """Traversable folders above PATH: bwrap makes missing ones 0700, which nobody could not enter."""
    args: list[str] = []
    for parent in reversed(Path(path).parents):
        if str(parent) not in made:
            made.add(str(parent))
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


def minimal_env(env: Mapping[str, str]) -> dict[str, str]:
    """What the kernel may see of ENV: the course endpoints and the grader's per-submission variables. `course
    grade` runs kernels with the admin logins, so on a hardened server they get its secrets, which they cannot
    read themselves; a learner's grading (`course classroom grade`: a namespace prefix and that learner's own
    credentials) gets none of them."""
    secrets = {} if config.on_a_class_server(env) else config.instructor_secrets()
    kept = {k: v for k, v in {**secrets, **env}.items() if k in PASSED_ENV or k.startswith("COURSE_")}
    # the kernel's parent is the sandbox's init (pid 1): ipykernel then keeps no parent poller of its own (bwrap
    # ends the tree) and prints no connection banner into the kernel log
    return {**kept, "PATH": f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": HOME,
            "LANG": kept.get("LANG", "C.UTF-8"), "JPY_PARENT_PID": "1"}


def _identity() -> tuple[list[str], list[str]]:
    """(bwrap options, the command prefix inside) that make the kernel nobody."""
    if as_root():
        drop = [_binary("setpriv"), f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_GID}", "--clear-groups",
                "--bounding-set=-all", "--"]
        return [], drop
    return ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID)], []


def command(argv: list[str], workdir: Path, readable: list[Path], env: Mapping[str, str], policy: Policy,
            cpu_s: int, net: Path | None = None, views: Mapping[Path, Path] | None = None) -> list[str]:
    """ARGV run in the sandbox: WORKDIR read-write (and the working directory), READABLE read-only (the
    connection file's folder), VIEWS {path inside: path outside} read-only, ENV reduced to minimal_env; with
    NET (a folder, read-write), in a network namespace that reaches the course services through it."""
    bwrap = _binary("bwrap")  # first: the one a fresh machine lacks, named in the refusal
    bwrap_identity, inside = _identity()
    limits = [_binary("prlimit"), f"--as={policy.memory_mb * MIB}", f"--nproc={policy.processes}",
              f"--cpu={policy.cpu_s or cpu_s}", f"--fsize={policy.file_mb * MIB}", "--"]
    mounts = [*_system_view(), "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm", "--proc", "/proc",
              "--perms", "1777", "--tmpfs", "/tmp",
              "--perms", "0777", "--tmpfs", HOME]
    made = {"/", "/tmp", HOME}
    binds = [("--ro-bind", path) for path in code_paths()] + [("--bind", str(workdir))]
    binds += [("--ro-bind", str(p)) for p in readable] + ([("--bind", str(net))] if net else [])
    for option, path in binds:
        mounts += [*_parents(path, made), option, path, path]
    for inside_path, outside_path in (views or {}).items():
        mounts += [*_parents(str(inside_path), made), "--ro-bind", str(outside_path), str(inside_path)]
    env = {**env, **network.kernel_env(net)} if net else env
    variables = [arg for k, v in minimal_env(env).items() for arg in ("--setenv", k, v)]
    isolation = ["--unshare-net", *mounts] if net else mounts
    first = network.entry_command(net) if net else []
    return [*limits, bwrap, *bwrap_identity, "--die-with-parent", "--new-session", "--unshare-pid",
            "--unshare-ipc", "--unshare-uts", "--hostname", "sandbox", *isolation, "--clearenv", *variables,
            "--chdir", str(workdir), "--", *inside, *first, *argv]


def unavailable() -> str | None:
    """Why the sandbox cannot run here (one line naming what to do), or None when it can: a real sandbox that
    runs `true`, so a kernel that refuses user namespaces or mounts is found before any submission runs."""
    try:
        with tempfile.TemporaryDirectory(prefix="infracourse-probe-") as probe:
            net = Path(probe) / "net"
            net.mkdir()
            hand_over(Path(probe))
            done = subprocess.run(command(["true"], Path(probe), [], {}, Policy(), cpu_s=10, net=net),
                                  capture_output=True, text=True, timeout=30)
    except FileNotFoundError as missing:
        return f"`{missing}` is not installed; {INSTALL_HINT}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the sandbox did not start ({exc}); {INSTALL_HINT}"
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return f"the sandbox did not start ({why}: user namespaces refused?); {INSTALL_HINT}"
    return None
