"""Per-learner memory and CPU limits on a single-server hub, enforced by the kernel: a cgroup per learner (v2 when
the unified hierarchy is mounted, else the v1 memory and cpu controllers) that the learner's server is moved into
as soon as it starts; its kernels and their children inherit it. JupyterHub's LocalProcessSpawner only passes
MEM_LIMIT/CPU_LIMIT along; this is what makes them hold."""

from __future__ import annotations

from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
GROUP = "infracourse"
CPU_PERIOD_US = 100_000


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _v2(name: str, memory_bytes: int, cpus: float) -> list[Path]:
    parent = ROOT / GROUP
    parent.mkdir(exist_ok=True)
    _write(ROOT / "cgroup.subtree_control", "+memory +cpu")
    _write(parent / "cgroup.subtree_control", "+memory +cpu")
    group = parent / name
    group.mkdir(exist_ok=True)
    _write(group / "memory.max", str(memory_bytes))
    _write(group / "cpu.max", f"{int(cpus * CPU_PERIOD_US)} {CPU_PERIOD_US}")
    return [group / "cgroup.procs"]


def _v1(name: str, memory_bytes: int, cpus: float) -> list[Path]:
    memory, cpu = ROOT / "memory" / GROUP / name, ROOT / "cpu" / GROUP / name
    for group in (memory, cpu):
        group.mkdir(parents=True, exist_ok=True)
    _write(memory / "memory.limit_in_bytes", str(memory_bytes))
    _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
    _write(cpu / "cpu.cfs_quota_us", str(int(cpus * CPU_PERIOD_US)))
    return [memory / "cgroup.procs", cpu / "cgroup.procs"]


def prepare(name: str, memory_bytes: int, cpus: float) -> tuple[list[str], str]:
    """NAME's cgroup with these limits: (a command prefix that enters it and then execs the rest, so nothing
    the server starts runs outside it even for a moment; how the limits are enforced, or why they are not:
    then MEM_LIMIT/CPU_LIMIT in the server's environment are advisory only)."""
    try:
        if (ROOT / "cgroup.controllers").exists():
            procs, how = _v2(name, memory_bytes, cpus), "cgroup v2"
        elif (ROOT / "memory").is_dir() and (ROOT / "cpu").is_dir():
            procs, how = _v1(name, memory_bytes, cpus), "cgroup v1"
        else:
            return [], "not enforced (no cgroup hierarchy mounted)"
    except OSError as exc:
        return [], f"not enforced ({exc.strerror}: the hub needs root and a writable cgroup hierarchy)"
    enter = 'for procs in "$1" "$2"; do [ -z "$procs" ] || echo $$ > "$procs"; done; shift 2; exec "$@"'
    paths = [str(p) for p in procs] + [""] * (2 - len(procs))
    return ["/bin/sh", "-c", enter, "enter-cgroup", *paths], f"{how} {procs[0].parent}"


def _groups(name: str) -> list[Path]:
    return [ROOT / GROUP / name, ROOT / "memory" / GROUP / name, ROOT / "cpu" / GROUP / name]


def memory_limit(name: str) -> int | None:
    """The memory limit NAME's cgroup holds (None: no cgroup)."""
    for path in (ROOT / GROUP / name / "memory.max", ROOT / "memory" / GROUP / name / "memory.limit_in_bytes"):
        if path.exists():
            return int(path.read_text().strip())
    return None


def release(name: str) -> None:
    """Remove NAME's (empty) cgroups once their processes are gone."""
    for group in _groups(name):
        try:
            group.rmdir()
        except OSError:
            pass  # absent, or still holding a process: the next spawn reuses it
