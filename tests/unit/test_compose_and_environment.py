"""docker-compose.yml cannot run here (no Docker engine): validate it and its contract with the config."""

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from infracourse import config
from infracourse.services import system_packages

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_file_is_valid_for_docker_compose():
    system_packages.ensure_test_tools()  # installs docker-compose with apt when missing and allowed
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose is needed to validate the file (Debian/Ubuntu: apt-get install docker-compose)"
    result = subprocess.run([tool, "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_every_course_service_is_in_compose_on_the_same_loopback_port():
    for name in config.SERVICE_NAMES:
        service = COMPOSE["services"][name]
        port = config.endpoint(name).port
        if service.get("network_mode") == "host":
            assert any(f"127.0.0.1:{port}" in str(arg) for arg in service["command"]), name
        else:
            assert f"127.0.0.1:{port}:{port}" in service["ports"], name


def test_images_are_pinned_and_every_service_has_a_healthcheck():
    for name, service in COMPOSE["services"].items():
        assert re.search(r":v?\d+\.\d+", service["image"]), f"{name}: pin the image version"
        assert "healthcheck" in service, name


def test_published_ports_are_loopback_only():
    for name, service in COMPOSE["services"].items():
        for mapping in service.get("ports", []):
            assert mapping.startswith("127.0.0.1:"), f"{name}: {mapping}"


def test_mounted_config_exists():
    for service in COMPOSE["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and not source.startswith("./.services"):  # state made by course up
                assert (REPO / source).exists(), source


def test_environment_yml_installs_the_pyproject_pins_and_nothing_else():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps and "pip" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    assert pip_section == ["-e ."], "Python packages come from pyproject.toml only"
