"""Shared fixtures: live connections for the tests that talk to the course services."""

from __future__ import annotations

import threading

import psycopg
import pytest
import redis
from runaway_threads import busy_threads  # tests/ is on sys.path (rootdir conftest)

from infracourse import config, notebook
from infracourse.namespace import Namespace


@pytest.fixture(autouse=True)
def no_runaway_thread_left():
    """Fail a test that leaves a thread spinning in the background (see runaway_threads)."""
    before = {t.ident for t in threading.enumerate()}
    yield
    busy = busy_threads(before)
    assert not busy, f"threads still burning CPU after the test: {busy}"


@pytest.fixture
def pg_ns():
    """A namespace of its own for a test, reset in PostgreSQL and Redis."""
    notebook.require("postgres", "redis")
    ns = Namespace("pytest_" + __import__("uuid").uuid4().hex[:8])
    ns.reset("postgres", "redis")
    yield ns
    with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{ns.schema}" CASCADE')


@pytest.fixture
def conn(pg_ns):
    with psycopg.connect(pg_ns.postgres_dsn(), autocommit=True) as connection:
        yield connection


@pytest.fixture
def r(pg_ns):
    client = redis.Redis.from_url(config.redis_url(), decode_responses=True, socket_timeout=5)
    yield client
    keys = list(client.scan_iter(match=pg_ns.key("*")))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="session")
def grading_sandbox():
    """The grader runs submissions in bubblewrap: install it where it is missing and we may, else fail clearly."""
    from infracourse.grading import sandbox
    from infracourse.services import system_packages

    system_packages.ensure_sandbox()
    why = sandbox.unavailable()
    assert why is None, f"the grading sandbox must work here ({why}): run `course setup`"
