"""Login roles for a notebook's security demos (least privilege, row-level security).

Roles belong to the whole PostgreSQL cluster, not to a schema, so resetting a notebook's schema does not remove
them. Their names therefore carry the namespace slug (`pg02_tenant_a`, `pg02_sol_tenant_a`, ...) and `recreate`
drops and creates them again at the start of every run, with a fresh random password.

    roles = pg_roles.recreate(ns, "app", "tenant_a")
    psycopg.connect(roles["app"].dsn)          # logs in as pg02_app, search_path = the notebook's schema

On a class server a learner may not create roles: there the learner's database has functions that create and drop
roles inside the learner's namespace only (classroom/postgres_roles.py), and these helpers use them.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from infracourse import config
from infracourse.namespace import Namespace

_SUFFIX_RE = re.compile(r"^[a-z][a-z0-9_]{0,20}$")


@dataclass(frozen=True)
class LoginRole:
    name: str
    dsn: str = field(repr=False)  # holds the password: never shown in a notebook


def role_name(ns: Namespace, suffix: str) -> str:
    if not _SUFFIX_RE.match(suffix):
        raise ValueError(f"role suffix {suffix!r}: use lowercase letters, digits and _ (e.g. 'tenant_a')")
    return f"{ns.slug}_{suffix}"


def _through_class_functions(conn: psycopg.Connection) -> bool:
    """Whether CONN is a class learner's, whose database makes and drops its roles (course_roles)."""
    (found,) = conn.execute("SELECT to_regprocedure('course_roles.recreate_login(text, text)') IS NOT NULL "
                            "AND NOT (SELECT rolcreaterole FROM pg_roles WHERE rolname = current_user)").fetchone()
    return bool(found)


def drop_role(conn: psycopg.Connection, name: str) -> None:
    """Drop the role NAME if it exists, with what it owns and its privileges, ending its sessions first."""
    if _through_class_functions(conn):
        conn.execute("SELECT course_roles.drop_login(%s)", (name,))
        return
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    if not exists:
        return
    # A session left over from an interrupted run would keep using the old role: end it first.
    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,))
    # DROP ROLE refuses while the role owns objects or holds privileges; DROP OWNED removes both.
    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def recreate(ns: Namespace, *suffixes: str) -> dict[str, LoginRole]:
    """Drop (if present) and create a LOGIN role per suffix; return {suffix: LoginRole}."""
    roles: dict[str, LoginRole] = {}
    with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
        for suffix in suffixes:
            name = role_name(ns, suffix)
            password = secrets.token_urlsafe(18)
            drop_role(conn, name)
            # Hash on the client (what psql's \password does) so the clear text never reaches server logs
            # or pg_stat_statements.
            verifier = conn.pgconn.encrypt_password(password.encode(), name.encode(), b"scram-sha-256").decode()
            if _through_class_functions(conn):
                conn.execute("SELECT course_roles.recreate_login(%s, %s)", (name, verifier))
            else:
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(verifier))
                )
            roles[suffix] = LoginRole(name, ns.postgres_dsn(user=name, password=password, application_name=name))
    return roles


def drop(ns: Namespace, *suffixes: str) -> None:
    """Remove the roles recreate() made (their privileges in this database go with them)."""
    with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
        for suffix in suffixes:
            drop_role(conn, role_name(ns, suffix))
