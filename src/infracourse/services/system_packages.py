"""`course setup`: the operating-system packages native mode needs, installed where we can, printed where
we cannot. APT_PACKAGES is the one list (binder/apt.txt is tested against it)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable

from infracourse.services.recipes import SPECS

APT_PACKAGES: tuple[str, ...] = (
    "postgresql",
    "postgresql-contrib",
    "pgbouncer",
    "redis-server",
    "rabbitmq-server",
    "nats-server",
    "prometheus",
    "prometheus-alertmanager",
    "prometheus-blackbox-exporter",
    "bubblewrap",  # not a service: the sandbox `course grade` runs each submission in (Linux only)
)
SANDBOX_BINARY = "bwrap"

# Not services: what the tests drive. Headless Chromium through chromedriver for the site (fonts for legible
# screenshots, check marks included, which --no-install-recommends would skip); docker-compose (v1) to
# validate docker-compose.yml on machines without a Docker engine.
TEST_TOOL_PACKAGES: tuple[str, ...] = (
    "chromium", "chromium-driver", "fonts-liberation", "fonts-noto-color-emoji", "docker-compose",
)
TEST_TOOL_BINARIES: tuple[str, ...] = ("chromium", "chromedriver", "docker-compose")

BREW_PACKAGES: tuple[str, ...] = ("postgresql@15", "pgbouncer", "redis", "rabbitmq", "nats-server", "prometheus",
                                  "alertmanager", "blackbox_exporter")


def missing_services() -> dict[str, list[str]]:
    """service -> executables it needs that are not installed (empty when all is there)."""
    return {name: spec.missing() for name, spec in SPECS.items() if spec.missing()}


def missing_native() -> dict[str, list[str]]:
    """missing_services(), plus the grading sandbox where it exists (Linux) and is not installed."""
    missing = missing_services()
    if platform.system() == "Linux" and shutil.which(SANDBOX_BINARY) is None:
        missing["grading sandbox"] = [SANDBOX_BINARY]
    return missing


def _apt_commands(packages: tuple[str, ...]) -> list[list[str]]:
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    return [
        [*sudo, "apt-get", "update", "-qq"],
        [*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq",
         "--no-install-recommends", *packages],
    ]


def install_commands() -> list[list[str]]:
    """The commands that install the native services on this system."""
    if shutil.which("apt-get"):
        return _apt_commands(APT_PACKAGES)
    if platform.system() == "Darwin":
        return [["brew", "install", *BREW_PACKAGES]]
    return []


def can_install_here() -> bool:
    if not shutil.which("apt-get"):
        return False
    if os.geteuid() == 0:
        return True
    return shutil.which("sudo") is not None and subprocess.run(
        ["sudo", "-n", "true"], capture_output=True
    ).returncode == 0


def setup(print_only: bool = False) -> int:
    """Install what native mode is missing, then what the containers chapter needs; return a process exit code."""
    code = _setup_native(print_only)
    if code == 0 and platform.system() == "Linux":
        from infracourse.services import containers  # it builds on this module: imported here, not at the top

        code = containers.setup(print_only)
    return code


def _setup_native(print_only: bool) -> int:
    missing = missing_native()
    if not missing:
        print("Native services: everything is installed.")
        return 0
    print("Missing for native mode: " + "; ".join(f"{s} ({', '.join(b)})" for s, b in missing.items()))
    commands = install_commands()
    if not commands:
        print("No package manager we know here. Install PostgreSQL 15, Redis 7, RabbitMQ, nats-server and"
              " Prometheus with your system's tools, or use Docker Compose (`course up --compose`).")
        return 1
    if print_only or not can_install_here():
        print("Run these commands, then `course up`:")
        for cmd in commands:
            print("   ", " ".join(cmd))
        return 0 if print_only else 1
    for step, cmd in enumerate(commands, 1):  # a minute of silence looks like a hang: say what runs, and how long
        print(f"[{step}/{len(commands)}] {' '.join(cmd)}", flush=True)
        began = time.monotonic()
        subprocess.run(cmd, check=True)
        print(f"      done in {time.monotonic() - began:.0f} s", flush=True)
    still = missing_native()
    if still:
        print(f"Still missing after install: {still}")
        return 1
    print("Native services installed.")
    return 0


def missing_test_tools() -> list[str]:
    """Test-tool packages not installed (on Debian/Ubuntu; elsewhere: the binaries not on PATH)."""
    if not shutil.which("dpkg-query"):
        return [b for b in TEST_TOOL_BINARIES if shutil.which(b) is None]
    return [
        package for package in TEST_TOOL_PACKAGES
        if subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
        .stdout.split()[-1:] != ["installed"]
    ]


def _ensure(missing_packages: Callable[[], list[str]]) -> list[str]:
    """Install what MISSING_PACKAGES names with apt when we may; return what is still missing. A lock file
    serialises parallel test workers (dpkg allows one install at a time)."""
    if not missing_packages() or not can_install_here():
        return missing_packages()
    import fcntl
    import tempfile

    with open(os.path.join(tempfile.gettempdir(), "infracourse-test-tools.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = missing_packages()
        if missing:
            for cmd in _apt_commands(tuple(missing)):
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return missing_packages()


def ensure_test_tools() -> list[str]:
    """Install Chromium, chromedriver and fonts when missing and we may; return what is still missing."""
    return _ensure(missing_test_tools)


def ensure_sandbox() -> list[str]:
    """Install bubblewrap for the grading tests when missing and we may (a machine whose services were there
    before the sandbox was has not run `course setup` since); return what is still missing."""
    return _ensure(lambda: ["bubblewrap"] if "grading sandbox" in missing_native() else [])
