"""Compose mode: the same services from docker-compose.yml, for learners with a Docker engine."""

from __future__ import annotations

import shutil
import subprocess

from infracourse.paths import repo_root
from infracourse.services import alerting_targets, prometheus_targets


def engine_answers(timeout_s: float = 5.0) -> bool:
    """True when a Docker engine answers (the client alone is not enough)."""
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=timeout_s).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _compose() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RuntimeError("neither `docker compose` nor `docker-compose` is installed")


def run(*args: str) -> int:
    return subprocess.run([*_compose(), *args], cwd=repo_root()).returncode


def up() -> int:
    # created by us, not by Docker (which would make a root-owned folder the notebooks cannot write)
    prometheus_targets.targets_dir()
    for kind in (alerting_targets.ALERTMANAGERS, alerting_targets.PROBES):
        alerting_targets.folder(kind)
    return run("up", "-d")


def down() -> int:
    return run("down")


def logs(service: str) -> int:
    return run("logs", "--tail", "200", service)
