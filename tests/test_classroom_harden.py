"""`course classroom harden` closes the public admin logins for real, on services of its own (a private PostgreSQL
with its PgBouncer and replica, Redis and NATS on free ports in a scratch state folder) and, on the shared RabbitMQ,
on an admin user made for the test: the old logins are refused by the services, the sessions opened with them are
ended, the instructor's `course` keeps working, and restarts keep the doors closed."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import redis

from infracourse import config, notebook
from infracourse.classroom import credentials, harden, provision, rabbitmq_vhosts, redis_acl, roster
from infracourse.grading import sandbox
from infracourse.services import native
from infracourse.services.probes import free_port, probe

REPO = Path(__file__).resolve().parents[1]
COURSE = str(REPO / ".venv" / "bin" / "course")
OWN = ("postgres", "pgbouncer", "postgres_replica", "redis", "nats")


@pytest.fixture
def private_services(monkeypatch):
    notebook.require("rabbitmq")
    home = Path(tempfile.mkdtemp(prefix="infracourse-harden-"))
    home.chmod(0o755)  # PostgreSQL runs as the postgres user, which must reach its folder
    shutil.copytree(REPO / "services", home / "services")
    (home / "pyproject.toml").touch()
    shared = config.endpoint("rabbitmq")  # the broker's real admin, for making and removing the test's own
    admin = f"harden_test_{uuid.uuid4().hex[:8]}"
    rabbitmq_vhosts.request("PUT", f"users/{admin}", {"password": "course", "tags": "administrator"})
    rabbitmq_vhosts.request("PUT", f"permissions/%2F/{admin}", {"configure": ".*", "write": ".*", "read": ".*"})
    monkeypatch.setenv("INFRACOURSE_HOME", str(home))
    for service in OWN:
        monkeypatch.setenv(f"COURSE_{service.upper()}_PORT", str(free_port()))
    monkeypatch.setenv("COURSE_NATS_MONITORING_PORT", str(free_port()))
    monkeypatch.setenv("COURSE_RABBITMQ_USER", admin)
    try:
        outcomes = native.start(list(OWN))
        assert all(o.startswith(("started", "already")) for o in outcomes.values()), outcomes
        yield home
    finally:
        native.stop(list(OWN))
        monkeypatch.delenv("COURSE_RABBITMQ_USER")
        rabbitmq_vhosts.request("DELETE", f"users/{admin}", login=(shared.user, shared.password))
        shutil.rmtree(home, ignore_errors=True)


def _harden() -> subprocess.CompletedProcess:
    return subprocess.run([COURSE, "classroom", "harden"], capture_output=True, text=True, timeout=120)


def test_harden_closes_every_public_login_and_keeps_the_course_working(private_services: Path) -> None:
    assert provision.open_doors() == ["postgres", "redis", "rabbitmq", "nats"]
    learner_pg = psycopg.connect(config.postgres_dsn(), autocommit=True)  # logged in the old way, before
    learner_redis = redis.Redis(port=config.endpoint("redis").port, socket_timeout=3, retry=None)
    learner_redis.ping()

    run = _harden()
    assert run.returncode == 0, run.stdout + run.stderr
    lines = {line.split()[0]: line for line in run.stdout.splitlines()[1:]}
    assert all("the public login is refused" in lines[s] for s in harden.APPLY), run.stdout
    assert "Tansu has no authentication" in lines["kafka"]

    secrets_file = private_services / ".services" / "classroom" / "admin.secrets"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(secrets_file.parent.stat().st_mode) == 0o700
    stored = config.instructor_secrets()
    assert all(secret not in run.stdout for secret in stored.values() if len(secret) > 8)
    assert provision.open_doors() == []  # every service refuses the public login itself
    with pytest.raises(psycopg.OperationalError):
        learner_pg.execute("SELECT 1")
    with pytest.raises(redis.ConnectionError):
        learner_redis.ping()

    # the instructor's course reads the secrets: every endpoint, PgBouncer's too, still answers
    assert {s: probe(s) for s in OWN} == dict.fromkeys(OWN)
    with psycopg.connect(config.postgres_dsn(port=config.endpoint("pgbouncer").port), autocommit=True,
                         prepare_threshold=None) as via_bouncer:
        assert via_bouncer.execute("SELECT 1").fetchone() == (1,)
    assert rabbitmq_vhosts.request("GET", "whoami")["name"] == config.endpoint("rabbitmq").user

    # restarts keep the doors closed (Redis reloads its ACL file, a learner's user included), the replica streams
    ada = roster.learner("ada")
    redis_acl.create(ada, "ada-secret")
    native.stop(["redis", "postgres_replica"])
    native.start(["redis", "postgres_replica"])
    assert not harden.public_login_works("redis") and probe("redis") is None
    with redis.Redis(port=config.endpoint("redis").port, username=ada.principal, password="ada-secret") as as_ada:
        assert as_ada.set(f"{ada.prefix}k", "v") and as_ada.get(f"{ada.prefix}k") == b"v"
    marker = uuid.uuid4().hex
    with psycopg.connect(config.postgres_dsn(), autocommit=True) as primary:
        primary.execute("CREATE TABLE IF NOT EXISTS harden_marker (value text)")
        primary.execute("INSERT INTO harden_marker VALUES (%s)", [marker])
    replica = config.endpoint("postgres_replica")
    deadline = time.monotonic() + 20
    with psycopg.connect(config.postgres_dsn(host=replica.host, port=replica.port), autocommit=True) as standby:
        while not standby.execute("SELECT 1 FROM pg_tables WHERE tablename = 'harden_marker'").fetchone() or \
                not standby.execute("SELECT 1 FROM harden_marker WHERE value = %s", [marker]).fetchone():
            assert time.monotonic() < deadline, "the replica stopped streaming after harden and a restart"
            time.sleep(0.3)

    again = _harden()  # idempotent: the stored secrets are reused
    assert again.returncode == 0, again.stdout + again.stderr
    assert config.instructor_secrets() == stored


def test_a_learner_cannot_read_the_admin_secrets(private_services: Path) -> None:
    assert _harden().returncode == 0
    secrets_file = private_services / ".services" / "classroom" / "admin.secrets"
    as_nobody = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat",
                                str(secrets_file)], capture_output=True, text=True, timeout=10)
    assert as_nobody.returncode != 0 and "Permission denied" in as_nobody.stderr


def test_a_password_in_the_environment_is_refused_in_one_line(private_services: Path) -> None:
    run = subprocess.run([COURSE, "classroom", "harden"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COURSE_REDIS_PASSWORD": "chosen-by-hand"})
    assert run.returncode != 0
    shown = (run.stdout + run.stderr).strip()
    assert "COURSE_REDIS_PASSWORD" in shown and "unset" in shown and len(shown.splitlines()) == 1, shown
    assert not (private_services / ".services" / "classroom" / "admin.secrets").exists()


def test_graded_kernels_get_the_admin_secrets_only_when_graded_as_the_instructor(private_services: Path) -> None:
    assert _harden().returncode == 0
    stored = config.instructor_secrets()
    as_instructor = sandbox.minimal_env({"PATH": "/usr/bin"})
    assert {k: as_instructor[k] for k in stored} == stored  # `course grade`: the kernel logs in as the admin
    ada = credentials.environment(roster.learner("ada"), dict.fromkeys(credentials.SECRET_SERVICES, "ada-secret"))
    as_ada = sandbox.minimal_env({"PATH": "/usr/bin", **ada})
    assert not set(stored.values()) & set(as_ada.values())  # PgBouncer's and the replica's admin secret included
    assert as_ada["COURSE_POSTGRES_PASSWORD"] == "ada-secret"
