"""Cleaning up after a graded submission removes its namespaces and nothing else (live PostgreSQL and Redis)."""

import re

import psycopg
import redis

from infracourse import config, notebook
from infracourse.grading import namespaces as grading_namespaces
from infracourse.namespace import Namespace


def test_suffix_is_readable_unique_and_a_valid_slug_part() -> None:
    first, second = grading_namespaces.suffix_for("Ada Lovelace!"), grading_namespaces.suffix_for("Ada Lovelace!")
    assert re.fullmatch(r"_g_ada_lovelace_[0-9a-f]{6}", first) and first != second


def test_clean_removes_the_submissions_data_and_only_it() -> None:
    notebook.require("postgres", "redis")
    suffix = grading_namespaces.suffix_for("unit")
    mine, other = Namespace("unitgr" + suffix), Namespace("unitgr_other" + suffix.replace("_g_", "_x_"))
    for ns in (mine, other):
        ns.reset("postgres", "redis")
    r = redis.Redis.from_url(config.redis_url(), socket_timeout=5)
    r.set(mine.key("a"), 1)
    r.set(other.key("a"), 1)
    try:
        removed = grading_namespaces.clean(suffix, set(), ("postgres", "redis"))  # found without the kernel
        assert removed == [mine.slug]
        with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
            schemas = {n for (n,) in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}
        assert mine.schema not in schemas and other.schema in schemas
        assert r.get(mine.key("a")) is None and r.get(other.key("a")) == b"1"
    finally:
        r.delete(other.key("a"))
        r.close()
        with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{other.schema}" CASCADE')
