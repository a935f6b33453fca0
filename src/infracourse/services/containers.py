"""The container runtime for lesson 17: Docker where its engine answers, Debian's Podman otherwise.

Podman is probed before use and fixed only where the probe fails (crun that cannot set rlimits or cgroups here:
runc, with ulimits no higher than the host's, in a containers.conf of the course's own). The base image is built
once per machine from Debian packages (mmdebstrap with the host's own apt sources, then `import`), because the
course cannot rely on a public image registry; Docker users may pull the official image of the same Python.
Builds get the host's CA bundle and package-index settings as build secrets: mounted for one RUN, never in a layer.
"""

from __future__ import annotations

import fcntl
import functools
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from infracourse import config
from infracourse.errors import CourseError
from infracourse.paths import state_dir
from infracourse.services import system_packages
from infracourse.services.build_secrets import build_secrets

BASE_IMAGE = "localhost/course-python:3.11-bookworm"
OFFICIAL_BASE_IMAGE = "python:3.11-slim-bookworm"  # what Docker users may pull instead: the same Python minor
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
APT_PACKAGES = ("podman", "mmdebstrap", "runc", "uidmap", "slirp4netns", "fuse-overlayfs")
_NO_DOCS = [f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("man", "doc", "locale", "info")] + [
    "--dpkgopt=path-include=/usr/share/doc/*/copyright"]  # licences stay


class ContainerError(CourseError):
    pass


@dataclass
class Runtime:
    """`rt("ps", "-a")` runs the runtime's CLI and returns its stdout; a failure raises one readable line."""

    name: str  # "docker" or "podman"
    binary: str
    base_image: str = BASE_IMAGE
    env: dict[str, str] = field(default_factory=dict)  # e.g. CONTAINERS_CONF where the probe needed it

    def __call__(self, *args: str, timeout_s: float = 180, check: bool = True) -> str:
        result = self.run(*args, timeout_s=timeout_s)
        if check and result.returncode != 0:
            raise ContainerError(f"{self.name} {' '.join(args[:2])} failed: {_last_line(result.stderr)}")
        return result.stdout.strip()

    def run(self, *args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run([self.binary, *args], capture_output=True, text=True, timeout=timeout_s,
                                  env={**os.environ, **self.env})
        except subprocess.TimeoutExpired:
            raise ContainerError(f"{self.name} {' '.join(args[:2])} did not finish within {timeout_s:.0f} s") from None

    def build(self, context: Path, tag: str, *, file: Path | None = None, target: str | None = None,
              no_cache: bool = False, extra: tuple[str, ...] = ()) -> float:
        """Build TAG from CONTEXT with the base image and the host's index settings; return the seconds it took."""
        args = ["build", "-q", "--network", "host", "-t", tag, "--build-arg", f"BASE={self.base_image}",
                *build_secrets(), *(["--format", "docker"] if self.name == "podman" else [])]
        args += [*(["-f", str(file)] if file else []), *(["--target", target] if target else []),
                 *(["--no-cache"] if no_cache else []), *extra, str(context)]
        began = time.perf_counter()
        self(*args, timeout_s=600)
        return time.perf_counter() - began

    def compose(self, file: Path, project: str, *args: str, env: dict[str, str] | None = None) -> str:
        """`docker compose` or, with Podman, podman-compose (a Python package of the course); stdout and stderr."""
        tool = [self.binary, "compose"] if self.name == "docker" else [str(Path(sys.executable).with_name(
            "podman-compose"))]
        result = subprocess.run([*tool, "-p", project, "-f", str(file), *args], capture_output=True, text=True,
                                timeout=180, env={**os.environ, **self.env, **(env or {})})
        if result.returncode != 0:
            raise ContainerError(f"compose {' '.join(args[:1])} failed: {_last_line(result.stderr)}")
        return result.stdout + result.stderr

    def size_mb(self, image: str) -> float:
        return int(self("image", "inspect", "--format", "{{.Size}}", image)) / 1e6

    def healthy(self, container: str) -> bool:
        """Podman without systemd never runs health checks on a schedule: run one now. Docker runs them itself."""
        if self.name == "podman":
            return self.run("healthcheck", "run", container, timeout_s=30).returncode == 0
        return self("inspect", "--format", "{{.State.Health.Status}}", container) == "healthy"

    def wait_healthy(self, container: str, timeout_s: float = 30) -> float:
        """Seconds until CONTAINER reported healthy; a ContainerError with its last log line otherwise."""
        began = time.perf_counter()
        while not self.healthy(container):
            state = self("inspect", "--format", "{{.State.Status}}", container)
            if state != "running" or time.perf_counter() - began > timeout_s:
                logs = self.run("logs", "--tail", "3", container)
                raise ContainerError(f"container {container} is {state}, not healthy after "
                                     f"{time.perf_counter() - began:.0f} s; its log ends: "
                                     f"{_last_line(logs.stdout + logs.stderr)}")
            time.sleep(0.2)
        return time.perf_counter() - began

    def remove(self, *containers: str) -> None:
        """Remove CONTAINERS at once, running or not (no grace period: the experiment is over)."""
        if containers:
            self.run("rm", "-f", *(["-t", "0"] if self.name == "podman" else []), *containers)

    def remove_images(self, prefix: str) -> list[str]:
        """Remove the images whose name starts with PREFIX (a notebook's own); the base image stays."""
        names = [n for n in self("images", "--format", "{{.Repository}}:{{.Tag}}").splitlines()
                 if n.startswith(prefix) and n != self.base_image]
        if names:
            self.run("rmi", "-f", *names)
        return sorted(names)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip() and "systemd" not in line]
    return lines[-1].strip()[:300] if lines else "(no output)"


@functools.cache
def runtime(report: Callable[[str], None] = print) -> Runtime:
    """The working runtime, with its base image, probed once per process."""
    if config.on_a_class_server():  # a class's learners' servers run in bubblewrap
        raise ContainerError("a learner's server on a class server cannot run containers (no user namespaces in "
                             "its sandbox): do the container lessons and lab 17 on a machine of your own (`make lab`)")
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True, timeout=15).returncode == 0:
        rt = Runtime("docker", docker)
    else:
        missing = system_packages._ensure(_missing_packages)
        if missing:
            raise ContainerError("no container runtime: Docker's engine does not answer and Podman is not installed "
                                 f"(missing {', '.join(missing)}); run `course setup`, which installs Debian's podman")
        rt = Runtime("podman", shutil.which("podman") or "podman")
    ensure_base_image(rt, report)
    if rt.name == "podman":
        _probe_podman(rt)
    return rt


def _missing_packages() -> list[str]:
    return [p for p, binary in zip(APT_PACKAGES[:3], ("podman", "mmdebstrap", "runc"), strict=True)
            if shutil.which(binary) is None]


def _probe_podman(rt: Runtime) -> None:
    """Run the base image once; where that fails for a reason we know, write a containers.conf that avoids it:
    runc instead of a crun that fails, and the highest ulimits at or below the host's that the kernel accepts
    here (seen: nproc above 32768 refused although the host's limit was higher)."""
    probe = ("run", "--rm", "--network", "host", rt.base_image, "true")
    conf = state_dir() / "containers" / "containers.conf"
    if conf.exists():  # what an earlier probe on this checkout found
        rt.env["CONTAINERS_CONF"] = str(conf)
    first = rt.run(*probe, timeout_s=60)
    if first.returncode == 0:
        os.environ.update(rt.env)  # podman-compose and a learner's own podman calls need it too
        return
    rt.env.pop("CONTAINERS_CONF", None)
    conf.parent.mkdir(parents=True, exist_ok=True)
    engine = '[engine]\nruntime = "runc"\n' if "crun" in first.stderr and shutil.which("runc") else ""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    for tried in sorted({min(nproc, n) for n in (nproc, 65536, 32768, 16384, 4096)}, reverse=True):
        trial = conf.with_name(f"containers.{os.getpid()}.conf")  # parallel probes must not see half a trial
        trial.write_text(engine + f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", '
                         f'"nproc={tried}:{tried}"]\n')
        rt.env["CONTAINERS_CONF"] = str(trial)
        if rt.run(*probe, timeout_s=60).returncode == 0:
            trial.replace(conf)
            rt.env["CONTAINERS_CONF"] = str(conf)
            os.environ.update(rt.env)
            return
        trial.unlink()
    rt.env.pop("CONTAINERS_CONF", None)
    raise ContainerError(f"podman cannot run a container here: {_last_line(first.stderr)}")


# the base image ---------------------------------------------------------------------------------------------
def ensure_base_image(rt: Runtime, report: Callable[[str], None] = print) -> float:
    """Build (or, with Docker, pull) the base image unless it exists; return the seconds spent (0 when cached)."""
    if rt.name == "docker" and _has_image(rt, OFFICIAL_BASE_IMAGE):
        rt.base_image = OFFICIAL_BASE_IMAGE
    if _has_image(rt, rt.base_image):
        return 0.0
    lock_path = Path(tempfile.gettempdir()) / "infracourse-base-image.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel notebooks: one builds, the others wait and reuse it
        if _has_image(rt, rt.base_image):
            return 0.0
        began = time.perf_counter()
        if rt.name == "docker" and rt.run("pull", OFFICIAL_BASE_IMAGE, timeout_s=600).returncode == 0:
            rt.base_image = OFFICIAL_BASE_IMAGE
        else:
            report(f"Building the base image {BASE_IMAGE} from Debian packages (once per machine, about a minute)")
            _debootstrap_into(rt)
        seconds = time.perf_counter() - began
        report(f"Base image {rt.base_image} ready in {seconds:.0f} s")
        return seconds


def _has_image(rt: Runtime, image: str) -> bool:
    return rt.run("image", "inspect", image, timeout_s=30).returncode == 0


def _debootstrap_into(rt: Runtime) -> None:
    codename = _os_release().get("VERSION_CODENAME", "")
    mirrors = host_apt_sources(codename)
    if not mirrors:
        raise ContainerError(f"no Debian apt sources for {codename or 'this release'} in /etc/apt: mmdebstrap "
                             "needs the mirror apt uses on this machine")
    cmd = ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
           "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr", *_NO_DOCS, codename, "-", *mirrors]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as tarball:
        imported = subprocess.run([rt.binary, "import", "--change", 'CMD ["/usr/bin/python3"]', "-", BASE_IMAGE],
                                  stdin=tarball.stdout, capture_output=True, text=True, env={**os.environ, **rt.env})
        errors = tarball.stderr.read().decode(errors="replace") if tarball.stderr else ""
    if tarball.returncode or imported.returncode:
        raise ContainerError(f"building {BASE_IMAGE} failed: {_last_line(errors or imported.stderr)}")


def _os_release() -> dict[str, str]:
    text = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    return {k: v.strip('"') for k, _, v in (line.partition("=") for line in text.splitlines()) if k}


def host_apt_sources(codename: str, root: Path = Path("/etc/apt")) -> list[str]:
    """One-line `deb` entries for CODENAME (and its -updates, -security suites) from apt's own sources, both
    formats (sources.list lines and deb822 .sources stanzas); third-party repositories of other suites are left out."""
    entries = []
    for path in [root / "sources.list", *sorted((root / "sources.list.d").glob("*.list"))]:
        for line in path.read_text().splitlines() if path.is_file() else []:
            words = re.sub(r"\[.*?\]", "", line.split("#")[0]).split()
            if len(words) >= 3 and words[0] == "deb" and words[2].split("-")[0] == codename:
                entries.append(" ".join(line.split("#")[0].split()))
    for path in sorted((root / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = dict(re.findall(r"^([\w-]+):\s*(.*)$", stanza, flags=re.MULTILINE))
            if "deb" not in fields.get("Types", "").split() or fields.get("Enabled", "yes") == "no":
                continue
            signed = f"[signed-by={fields['Signed-By']}] " if fields.get("Signed-By", "").startswith("/") else ""
            for uri in fields.get("URIs", "").split():
                entries += [f"deb {signed}{uri} {suite} {fields.get('Components', 'main')}"
                            for suite in fields.get("Suites", "").split() if suite.split("-")[0] == codename]
    return entries


# `course setup` ------------------------------------------------------------------------------------------------
def setup(print_only: bool = False) -> int:
    """The containers step of `course setup`: Podman and mmdebstrap where no Docker engine answers, then the base
    image, built once (about a minute) so that lesson 17 starts with it in place."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True, timeout=15).returncode == 0:
        print("Containers: Docker answers; lesson 17 pulls or builds its base image on first use.")
        return 0
    missing = _missing_packages()
    commands = system_packages._apt_commands(tuple(APT_PACKAGES)) if missing else []
    if print_only or (commands and not system_packages.can_install_here()):
        for cmd in commands:
            print("   ", " ".join(cmd))
        print(f"Containers: then `course setup` builds the base image {BASE_IMAGE} (mmdebstrap, podman import).")
        return 0 if print_only else 1
    total = len(commands) + 1
    for step, cmd in enumerate(commands, 1):
        print(f"[{step}/{total}] {' '.join(cmd)}", flush=True)
        began = time.monotonic()
        subprocess.run(cmd, check=True)
        print(f"      done in {time.monotonic() - began:.0f} s", flush=True)
    print(f"[{total}/{total}] base image {BASE_IMAGE} (mmdebstrap from this machine's apt sources, podman import)",
          flush=True)
    try:
        seconds = ensure_base_image(Runtime("podman", shutil.which("podman") or "podman"), report=lambda _: None)
    except ContainerError as error:
        print(f"      {error}")
        return 1
    print(f"      done in {seconds:.0f} s" if seconds else "      already built: reused", flush=True)
    return 0
