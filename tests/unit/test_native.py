"""The native launcher on real processes, in a private state directory and on free ports, so the course's
own running services are never touched."""

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from infracourse.services import native, processes
from infracourse.services.native import StartFailed
from infracourse.services.probes import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def private_home(tmp_path, monkeypatch):
    shutil.copytree(REPO / "services", tmp_path / "services")
    (tmp_path / "pyproject.toml").touch()
    monkeypatch.setenv("INFRACOURSE_HOME", str(tmp_path))
    for service in ("redis", "nats"):
        monkeypatch.setenv(f"COURSE_{service.upper()}_PORT", str(free_port()))
    monkeypatch.setenv("COURSE_NATS_MONITORING_PORT", str(free_port()))
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


@pytest.fixture
def stranger():
    """A live process that is not a course service."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def _write_record(home: Path, name: str, text: str | bytes) -> Path:
    path = home / ".services" / name / "pids"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize("record", [
    "{pid}\n",  # an older course's plain pid list: nothing proves it is still ours
    json.dumps({"port": 1, "processes": [{"pid": "{pid}", "started": 1, "exe": "/bin/sleep"}]}),  # reused pid
    b"\xff\xfe not utf-8",
    "{{ not json",
])
def test_a_stranger_behind_a_stale_or_garbage_record_is_never_signalled(private_home, stranger, record):
    text = record.replace("{pid}", str(stranger.pid)) if isinstance(record, str) else record
    _write_record(private_home, "redis", text)
    assert native.our_pids("redis") == []
    assert native.stop(["redis"]) == {"redis": "not running (ours)"}
    assert stranger.poll() is None, "the stranger was killed"


def test_pid_0_1_and_our_own_are_never_trusted(private_home):
    for pid in (0, 1, os.getpid()):
        me = processes.identify(pid if pid else os.getpid())
        record = processes.Process(pid, me.started if me else 0, me.exe if me else "")
        assert not processes.still_running(record)


def test_a_record_of_a_live_process_is_trusted_until_it_is_another_process(stranger, tmp_path):
    path = tmp_path / "pids"
    processes.write(path, 6379, [processes.identify(stranger.pid)])
    recorded = processes.read(path)
    assert recorded.port == 6379 and [p.pid for p in recorded.processes] == [stranger.pid]
    assert processes.still_running(recorded.processes[0])
    stranger.kill()
    stranger.wait()
    assert not processes.still_running(recorded.processes[0])


def test_garbage_record_is_reported_in_one_line(private_home):
    _write_record(private_home, "redis", b"\xff")
    problem = native.record_problem("redis")
    assert "not a pid record of this course" in problem and "\n" not in problem


def test_concurrent_starts_wait_for_each_other_and_record_one_server(private_home):
    outcomes = []
    threads = [threading.Thread(target=lambda: outcomes.append(native.start_one("redis"))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(o.split(" in ")[0] for o in outcomes) == ["already running (ours)"] * 2 + ["started"]
    assert len(native.our_pids("redis")) == 1


@pytest.fixture
def private_postgres(monkeypatch):
    """A PostgreSQL cluster of its own on a free port, in a folder its unprivileged owner can reach."""
    home = Path(tempfile.mkdtemp(prefix="infracourse-pg-"))
    home.chmod(0o755)
    shutil.copytree(REPO / "services", home / "services")
    (home / "pyproject.toml").touch()
    monkeypatch.setenv("INFRACOURSE_HOME", str(home))
    monkeypatch.setenv("COURSE_POSTGRES_PORT", str(free_port()))
    yield home
    native.stop(["postgres"])
    shutil.rmtree(home, ignore_errors=True)


def test_postgres_grants_nothing_to_other_local_users(private_postgres):
    assert native.start_one("postgres").startswith("started in")
    root = private_postgres / ".services" / "postgres"
    assert stat.S_IMODE((root / "run").stat().st_mode) == 0o700
    hba = [line.split() for line in (root / "data" / "pg_hba.conf").read_text().splitlines()
           if line.strip() and not line.startswith("#")]
    assert hba and all(fields[-1] != "trust" for fields in hba)
    assert not (root / "initdb.pw").exists()


def test_three_course_up_processes_at_once_start_each_service_once(private_home):
    """As three terminals would: `course up` three times at once, then `course down` ends every process."""
    course = [str(REPO / ".venv" / "bin" / "course")]
    runs = [subprocess.Popen([*course, "up", "--native", "redis", "nats"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    started = {name: sum(bool(re.search(rf"\] {name} +started", out)) for out in outputs) for name in ("redis", "nats")}
    assert started == {"redis": 1, "nats": 1}, outputs
    pids = {name: native.our_pids(name) for name in ("redis", "nats")}
    assert all(len(found) == 1 for found in pids.values()), pids
    down = subprocess.run([*course, "down", "--native", "redis", "nats"], capture_output=True, text=True, timeout=60)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(_alive(pid) for found in pids.values() for pid in found)


def _alive(pid: int) -> bool:
    """PID runs (a zombie waiting for a parent that never reaps it does not count)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
