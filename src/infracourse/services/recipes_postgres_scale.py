"""PostgreSQL at scale, natively (lesson 03): PgBouncer in front of the primary, and a streaming read replica,
a second cluster copied from the primary with `pg_basebackup -R` into its own data folder and port.

PgBouncer's settings live in services/pgbouncer/pgbouncer.ini, shared with compose; native mode writes a copy
with loopback addresses, the course's ports and an auth file of its own (0600) into .services/pgbouncer/.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from signal import SIGINT

from infracourse import config
from infracourse.errors import CourseError
from infracourse.paths import services_config
from infracourse.services import course_ca
from infracourse.services.probes import probe
from infracourse.services.recipes import NativeSpec, ServiceDirs, _port, _unprivileged_user, _which

REPLICATION_ROLE = "replicator"
PRIMARY_WAIT_S = 60.0  # `course up` starts every service at once: the replica waits for the primary to answer


def _private_file(path: Path, text: str, owner: str | None) -> None:
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text)
    if owner:
        shutil.chown(path, owner, owner)


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


class PgBouncer(NativeSpec):
    def __init__(self) -> None:
        super().__init__("pgbouncer", run_as=_unprivileged_user())  # PgBouncer refuses to run as root

    def binaries(self) -> list[str]:
        return ["pgbouncer"]

    def config_file(self, dirs: ServiceDirs) -> Path:
        return dirs.root / "pgbouncer.ini"

    def prepare(self, dirs: ServiceDirs) -> None:
        dirs.root.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            shutil.chown(dirs.root, self.run_as, self.run_as)
        primary, own = config.endpoint("postgres"), config.endpoint("pgbouncer")
        ini = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=None)
        ini.optionxform = str  # keep the databases' names as written
        ini.read(services_config() / "pgbouncer" / "pgbouncer.ini")
        for name, line in ini["databases"].items():
            line = re.sub(r"\bhost=\S+", f"host={primary.host}", line)
            ini["databases"][name] = re.sub(r"\bport=\S+", f"port={primary.port}", line)
        ini["pgbouncer"].update({
            "listen_addr": "127.0.0.1", "listen_port": str(own.port), "auth_file": str(self.write_auth_file(dirs)),
            "admin_users": own.user, "stats_users": own.user, "pidfile": "",
        })
        with open(self.config_file(dirs), "w") as f:
            ini.write(f)

    def write_auth_file(self, dirs: ServiceDirs) -> Path:
        """The one login PgBouncer knows, with the password it also uses towards PostgreSQL (re-read on SIGHUP)."""
        own = config.endpoint("pgbouncer")
        auth = dirs.root / "userlist.txt"
        _private_file(auth, f"{_quoted(own.user)} {_quoted(own.password)}\n", self.run_as)
        return auth

    def command(self, dirs: ServiceDirs) -> list[str]:
        return [_which("pgbouncer"), str(self.config_file(dirs))]


class PostgresReplica(NativeSpec):
    """A hot standby of the native primary: read-only queries on its own port, fed by streaming replication."""

    def __init__(self) -> None:
        super().__init__("postgres_replica", stop_signal=SIGINT, start_timeout_s=60.0, run_as=_unprivileged_user())

    def binaries(self) -> list[str]:
        return ["pg_basebackup", "postgres"]

    @staticmethod
    def _socket_dir(dirs: ServiceDirs) -> Path:
        path = dirs.root / "run"
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    def prepare(self, dirs: ServiceDirs) -> None:
        dirs.root.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            for path in (dirs.root, self._socket_dir(dirs)):
                shutil.chown(path, self.run_as, self.run_as)
        if (dirs.data / "PG_VERSION").exists():
            return
        _wait_for_primary()
        _allow_replication()
        primary = config.endpoint("postgres")
        conninfo = (f"host={primary.host} port={primary.port} user={REPLICATION_ROLE} "
                    f"application_name=course_replica")
        shutil.rmtree(dirs.data, ignore_errors=True)  # a copy cut short leaves a folder without PG_VERSION
        subprocess.run(
            [_which("pg_basebackup"), "-d", conninfo, "-D", str(dirs.data), "-R", "-X", "stream", "--no-password",
             "--checkpoint=fast"],
            check=True, capture_output=True, user=self.run_as, env={**os.environ, "PGPASSWORD": primary.password},
        )

    def command(self, dirs: ServiceDirs) -> list[str]:
        tls = course_ca.files()
        return [
            _which("postgres"), "-D", str(dirs.data),
            "-c", "listen_addresses=127.0.0.1", "-p", _port("postgres_replica"),
            "-c", f"unix_socket_directories={self._socket_dir(dirs)}", "-c", "unix_socket_permissions=0700",
            "-c", "shared_preload_libraries=pg_stat_statements",
            "-c", "max_connections=200",  # a hot standby needs at least the primary's
            "-c", "hot_standby=on", "-c", "hot_standby_feedback=on",
            "-c", "ssl=on", "-c", f"ssl_cert_file={tls.server_cert}", "-c", f"ssl_key_file={tls.server_key}",
        ]


def _wait_for_primary() -> None:
    deadline = time.monotonic() + PRIMARY_WAIT_S
    while (reason := probe("postgres")) is not None:
        if time.monotonic() > deadline:
            raise CourseError(f"the replica is copied from the primary, which does not answer ({reason}): "
                              "start postgres first (`course up postgres`)")
        time.sleep(0.5)


def _allow_replication() -> None:
    """The replication login on the primary (scram), and a pg_hba line for it from 127.0.0.1 only."""
    import psycopg
    from psycopg import sql

    password = config.endpoint("postgres").password
    with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
        role = sql.Identifier(REPLICATION_ROLE)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [REPLICATION_ROLE]).fetchone()
        verb = "ALTER" if exists else "CREATE"
        statement = sql.SQL(verb + " ROLE {} WITH REPLICATION LOGIN PASSWORD {}")
        conn.execute(statement.format(role, sql.Literal(password)))
        rules = conn.execute(
            "SELECT count(*) FROM pg_hba_file_rules WHERE type = 'host' AND 'replication' = ANY(database) "
            "AND (%s = ANY(user_name) OR 'all' = ANY(user_name)) AND address = '127.0.0.1' "
            "AND auth_method = 'scram-sha-256'", [REPLICATION_ROLE]).fetchone()[0]
        if not rules:
            (hba,) = conn.execute("SHOW hba_file").fetchone()
            with open(hba, "a") as f:
                f.write(f"host replication {REPLICATION_ROLE} 127.0.0.1/32 scram-sha-256\n")
            conn.execute("SELECT pg_reload_conf()")


POSTGRES_SCALE_SPECS: tuple[NativeSpec, ...] = (PgBouncer(), PostgresReplica())
