import subprocess
from pathlib import Path

from infracourse.cli import build_parser
from infracourse.config import SERVICE_NAMES
from infracourse.services import system_packages

REPO = Path(__file__).resolve().parents[2]
COURSE = str(REPO / ".venv" / "bin" / "course")


def test_status_exits_zero_with_every_service_healthy():
    result = subprocess.run([COURSE, "status"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout
    assert result.stdout.count(" yes ") == len(SERVICE_NAMES)


def test_setup_print_only_names_the_packages():
    result = subprocess.run([COURSE, "setup", "--print-only"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    if system_packages.missing_services():
        assert "apt-get install" in result.stdout and "rabbitmq-server" in result.stdout
    else:
        assert "everything is installed" in result.stdout


def test_install_commands_cover_every_native_package():
    install = system_packages.install_commands()[-1]
    assert set(system_packages.APT_PACKAGES) <= set(install)


def test_parser_knows_the_documented_commands():
    readme = (REPO / "README.md").read_text()
    for command in ("up", "status", "logs", "down", "setup", "run", "labs"):
        assert f"`course {command}" in readme
        assert build_parser().parse_args([command, *(["redis"] if command == "logs" else []),
                                          *(["x.ipynb"] if command == "run" else []),
                                          *(["check"] if command == "labs" else [])])


def test_unknown_service_is_refused_by_the_parser():
    result = subprocess.run([COURSE, "up", "mongo"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "invalid choice" in result.stderr
