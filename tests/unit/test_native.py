"""The native launcher on real processes, in a private state directory and on free ports, so the course's
own running services are never touched."""

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from infracourse.services import native
from infracourse.services.native import StartFailed

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_home(tmp_path, monkeypatch):
    shutil.copytree(REPO / "services", tmp_path / "services")
    (tmp_path / "pyproject.toml").touch()
    monkeypatch.setenv("INFRACOURSE_HOME", str(tmp_path))
    for service in ("redis", "nats"):
        monkeypatch.setenv(f"COURSE_{service.upper()}_PORT", str(_free_port()))
    monkeypatch.setenv("COURSE_NATS_MONITORING_PORT", str(_free_port()))
    yield tmp_path
    native.stop(["redis", "nats"])


def test_start_records_pids_is_idempotent_and_stop_ends_only_ours(private_home):
    outcomes = native.start(["redis", "nats"])
    assert all(o.startswith("started in") for o in outcomes.values()), outcomes
    pids = native.our_pids("redis")
    assert len(pids) == 1 and (private_home / ".services" / "redis" / "service.log").exists()
    assert native.start(["redis"]) == {"redis": "already running (ours)"}
    assert native.stop(["redis"]) == {"redis": "stopped"}
    time.sleep(0.2)
    assert native.our_pids("redis") == [] and native.our_pids("nats")
    assert native.stop(["redis"]) == {"redis": "not running (ours)"}


def test_a_port_taken_by_a_stranger_is_reported_and_the_stranger_left_alone(private_home, monkeypatch):
    with socket.create_server(("127.0.0.1", 0)) as stranger:
        monkeypatch.setenv("COURSE_REDIS_PORT", str(stranger.getsockname()[1]))
        with pytest.raises(StartFailed, match="taken by another program"):
            native.start_one("redis")
        assert native.stop(["redis"]) == {"redis": "not running (ours)"}


def test_a_service_that_exits_at_start_shows_its_log(private_home, monkeypatch):
    conf = private_home / "services" / "redis" / "redis.conf"
    conf.write_text(conf.read_text() + "\nthis-is-not-a-directive yes\n")
    with pytest.raises(StartFailed, match="exited during start-up"):
        native.start_one("redis")


def test_cli_status_and_logs(private_home):
    native.start(["redis"])
    course = str(REPO / ".venv" / "bin" / "course")
    status = subprocess.run([course, "status"], capture_output=True, text=True, timeout=30)
    assert "redis" in status.stdout and "healthy" in status.stdout
    logs = subprocess.run([course, "logs", "redis"], capture_output=True, text=True, timeout=30)
    assert logs.returncode == 0 and "Ready to accept connections" in logs.stdout
