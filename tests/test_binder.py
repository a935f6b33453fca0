"""The Binder sandbox (binder/) cannot be launched from here, so this pins it to the one source it must not
drift from: apt.txt is the package list `course setup` installs, postBuild installs this package with its pins,
and start runs `course up --native` (the same launcher as on a laptop) before handing over to Jupyter."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import tomllib
from pathlib import Path

from infracourse.services import system_packages

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def _stub(folder: Path, name: str, exit_code: int = 0) -> Path:
    """An executable NAME that appends its arguments to NAME.calls and exits with EXIT_CODE."""
    calls = folder / f"{name}.calls"
    script = folder / name
    script.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\nexit {exit_code}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return calls


def _run(script: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    return subprocess.run([str(BINDER / script), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=30)


def test_apt_txt_is_exactly_the_native_service_packages() -> None:
    lines = [line.strip() for line in (BINDER / "apt.txt").read_text().splitlines()]
    assert [line for line in lines if line and not line.startswith("#")] == list(system_packages.APT_PACKAGES)


def test_course_setup_installs_that_same_list() -> None:
    commands = system_packages.install_commands()
    if commands and "apt-get" in " ".join(commands[-1]):
        assert tuple(commands[-1][-len(system_packages.APT_PACKAGES):]) == system_packages.APT_PACKAGES
    assert not set(system_packages.TEST_TOOL_PACKAGES) & set(system_packages.APT_PACKAGES)


def test_start_runs_course_up_native_then_the_notebook_server(tmp_path: Path) -> None:
    calls = _stub(tmp_path, "course")
    done = _run("start", tmp_path, "echo", "jupyter server here")
    assert done.returncode == 0
    assert calls.read_text().splitlines() == ["up --native"]
    assert done.stdout.strip() == "jupyter server here"


def test_start_still_opens_jupyter_when_a_service_fails(tmp_path: Path) -> None:
    _stub(tmp_path, "course", exit_code=1)
    done = _run("start", tmp_path, "echo", "jupyter server here")
    assert done.stdout.strip() == "jupyter server here" and "course status" in done.stderr


def test_post_build_installs_this_package_with_its_pins(tmp_path: Path) -> None:
    calls = _stub(tmp_path, "python")
    assert _run("postBuild", tmp_path).returncode == 0
    assert re.fullmatch(r"-m pip install (--\S+ )*-e \.", calls.read_text().strip())


def test_python_version_matches_pyproject() -> None:
    runtime = (BINDER / "runtime.txt").read_text().strip()
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    version = runtime.removeprefix("python-")
    assert f">={version}" in requires and f"<{version.split('.')[0]}.{int(version.split('.')[1]) + 1}" in requires


def test_scripts_are_executable() -> None:
    for script in ("start", "postBuild"):
        assert os.access(BINDER / script, os.X_OK), f"binder/{script} must be executable (git keeps the bit)"
