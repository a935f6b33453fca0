"""PgBouncer's native configuration and the replica's command line (lesson 03), and their probes."""

from __future__ import annotations

import configparser
import stat

import pytest

from infracourse import config
from infracourse.services import probes
from infracourse.services.recipes import SPECS, ServiceDirs
from infracourse.services.recipes_postgres_scale import PgBouncer, PostgresReplica, _quoted


@pytest.fixture
def bouncer(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_POSTGRES_PORT", "5999")
    monkeypatch.setenv("COURSE_PGBOUNCER_PORT", "6999")
    spec = PgBouncer()
    spec.run_as = None  # no chown in a test
    dirs = ServiceDirs(tmp_path / "pgbouncer")
    spec.prepare(dirs)
    ini = configparser.ConfigParser(interpolation=None)
    ini.optionxform = str
    ini.read(spec.config_file(dirs))
    return spec, dirs, ini


def test_native_pgbouncer_listens_on_loopback_and_points_at_the_course_primary(bouncer):
    _spec, _dirs, ini = bouncer
    assert ini["pgbouncer"]["listen_addr"] == "127.0.0.1"
    assert ini["pgbouncer"]["listen_port"] == "6999"
    assert set(ini["databases"]) == {"course", "course_session"}
    for line in ini["databases"].values():
        assert "host=127.0.0.1" in line and "port=5999" in line
    assert "pool_mode=transaction" in ini["databases"]["course"]
    assert "pool_mode=session" in ini["databases"]["course_session"]


def test_native_pgbouncer_has_its_own_private_auth_file(bouncer):
    _spec, dirs, ini = bouncer
    auth = dirs.root / "userlist.txt"
    assert ini["pgbouncer"]["auth_file"] == str(auth)
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    ep = config.endpoint("pgbouncer")
    assert auth.read_text() == f'"{ep.user}" "{ep.password}"\n'


def test_auth_file_values_double_their_quotes():
    assert _quoted('pa"ss') == '"pa""ss"'


def test_replica_is_a_hot_standby_on_its_own_port(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_POSTGRES_REPLICA_PORT", "5999")
    spec = PostgresReplica()
    dirs = ServiceDirs(tmp_path / "postgres_replica")
    dirs.root.mkdir()
    command = spec.command(dirs)
    assert command[command.index("-p") + 1] == "5999"
    for setting in ("listen_addresses=127.0.0.1", "hot_standby=on", "max_connections=200", "ssl=on"):
        assert setting in command


def test_both_are_course_services_with_probes():
    for name in ("pgbouncer", "postgres_replica"):
        assert name in config.SERVICE_NAMES and name in SPECS and name in probes.PROBES


def test_probes_answer_when_the_services_run():
    assert probes.probe("pgbouncer") is None
    assert probes.probe("postgres_replica") is None


def test_pgbouncer_probe_says_why_when_nothing_listens(monkeypatch):
    monkeypatch.setenv("COURSE_PGBOUNCER_PORT", str(probes.free_port()))
    assert "refused" in probes.probe("pgbouncer").lower()
