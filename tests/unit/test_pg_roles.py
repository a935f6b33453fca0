"""pg_roles: login roles named after the namespace, recreated idempotently, able to log in, dropped cleanly."""

from __future__ import annotations

import psycopg
import pytest

from infracourse import config
from infracourse.lessons import pg_roles


def _exists(name: str) -> bool:
    with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None


def test_recreate_twice_logs_in_and_drop_removes(pg_ns):
    first = pg_roles.recreate(pg_ns, "reader")
    with psycopg.connect(config.postgres_dsn(), autocommit=True) as admin:
        admin.execute(f'GRANT USAGE ON SCHEMA "{pg_ns.schema}" TO "{first["reader"].name}"')
    roles = pg_roles.recreate(pg_ns, "reader")  # a role holding privileges is dropped and made again
    name = roles["reader"].name
    assert name == f"{pg_ns.slug}_reader" and "password" not in repr(roles["reader"])
    with psycopg.connect(roles["reader"].dsn) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == name
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(first["reader"].dsn)  # the old password went with the old role
    pg_roles.drop(pg_ns, "reader")
    assert not _exists(name)
    pg_roles.drop(pg_ns, "reader")  # dropping a missing role is fine


def test_password_is_stored_hashed(pg_ns):
    roles = pg_roles.recreate(pg_ns, "hashed")
    try:
        with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
            stored = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                                  (roles["hashed"].name,)).fetchone()[0]
        assert stored.startswith("SCRAM-SHA-256$")
    finally:
        pg_roles.drop(pg_ns, "hashed")


def test_bad_suffix_is_refused(pg_ns):
    with pytest.raises(ValueError):
        pg_roles.recreate(pg_ns, "Robert'); DROP")
