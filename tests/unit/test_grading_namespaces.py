"""Cleaning up after a graded submission removes its namespaces and nothing else (live PostgreSQL and Redis)."""

import re
import time

import psycopg
import redis
from psycopg import sql

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


def test_hostile_names_are_quoted_and_cannot_stretch_the_clean_up() -> None:
    """Names a submission chose: SQL in a schema name and in a reported slug, a glob in a Redis prefix."""
    notebook.require("postgres", "redis")
    suffix = grading_namespaces.suffix_for("hostile")
    schema, glob = f'zz"; select pg_sleep(30); --{suffix}', f"*{suffix}"
    bystander = Namespace("unitgr_by_stander" + suffix.replace("_g_", "_x_"))
    r = redis.Redis.from_url(config.redis_url(), socket_timeout=5)
    with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    r.set(f"{glob}:a", 1)
    r.set(bystander.key("a"), 1)
    try:
        began = time.monotonic()
        removed = grading_namespaces.clean(suffix, {f"x'; select pg_sleep(30); --{suffix}"}, ("postgres", "redis"))
        assert time.monotonic() - began < 10
        assert removed == sorted({schema, glob})
        with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
            left = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchall()
        assert not left and r.get(f"{glob}:a") is None and r.get(bystander.key("a")) == b"1"
    finally:
        r.delete(f"{glob}:a", bystander.key("a"))
        r.close()
        with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_a_lock_left_on_a_schema_does_not_hold_the_clean_up() -> None:
    notebook.require("postgres")
    suffix = grading_namespaces.suffix_for("locker")
    ns = Namespace("unitgr" + suffix)
    ns.reset("postgres")
    with psycopg.connect(config.postgres_dsn()) as holder:
        holder.execute(sql.SQL("CREATE TABLE {}.t (id int)").format(sql.Identifier(ns.schema)))
        holder.execute(sql.SQL("LOCK TABLE {}.t IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(ns.schema)))
        began = time.monotonic()
        grading_namespaces.clean(suffix, set(), ("postgres",))
        assert time.monotonic() - began < 10, "lock_timeout gives up instead of waiting"
        holder.rollback()
    assert grading_namespaces.clean(suffix, set(), ("postgres",)) == [ns.slug], "once the lock is gone, it goes"
    with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
        assert not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [ns.schema]).fetchall()


def test_clean_drops_the_login_roles_a_lab_made_in_the_submissions_namespace() -> None:
    from infracourse.lessons import pg_roles

    notebook.require("postgres")
    suffix = grading_namespaces.suffix_for("roles")
    mine, other = Namespace("pg02" + suffix), Namespace("pg02_keep_" + suffix.strip("_").replace("_", ""))
    pg_roles.recreate(mine, "reporter", "tenant_a")
    pg_roles.recreate(other, "reporter")
    try:
        grading_namespaces.clean(suffix, {mine.slug}, ("postgres",))
        with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
            left = {n for (n,) in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'pg02%'")}
        assert not {pg_roles.role_name(mine, "reporter"), pg_roles.role_name(mine, "tenant_a")} & left
        assert pg_roles.role_name(other, "reporter") in left
    finally:
        pg_roles.drop(other, "reporter")
