"""PostgreSQL: a LOGIN role per learner that owns a database of its own (where every notebook's schema goes), with
no superuser, CREATEDB, CREATEROLE, replication or RLS bypass; nobody else may connect to that database, and in
it the role cannot CREATE in `public` (owned by the course's superuser). Elsewhere it has no rights: the shared
course database grants it nothing beyond what PostgreSQL grants every role (reading the catalogs).

Why a database and not a schema: each notebook creates and drops a schema named after its namespace, so a role
limited to one schema could not run the lessons, and one with CREATE on the shared database could squat a
schema another learner needs. A database it owns lets it create what it wants where only it can go."""

from __future__ import annotations

from infracourse import config
from infracourse.classroom.roster import Learner
from infracourse.paths import services_config

CONNECTION_LIMIT = 10  # 20 learners stay well within the server's max_connections (200)


def _admin(dbname: str | None = None):
    import psycopg

    options = {"dbname": dbname} if dbname else {}
    return psycopg.connect(config.postgres_dsn(**options), autocommit=True)


def create(who: Learner, password: str) -> str:
    from psycopg import sql

    name = sql.Identifier(who.principal)
    with _admin() as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [who.principal]).fetchone()
        verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
        conn.execute(sql.SQL("{} {} LOGIN PASSWORD {} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                             "NOBYPASSRLS NOINHERIT CONNECTION LIMIT {}").format(
            verb, name, sql.Literal(password), sql.Literal(CONNECTION_LIMIT)))
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [who.principal]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(name, name))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))
        conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(name, name))
        admin = sql.Identifier(config.endpoint("postgres").user)
    with _admin(who.principal) as conn:
        conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(admin))
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conn.execute((services_config() / "postgres" / "init.sql").read_text())  # the course's extensions
    return f"role {who.principal} owning database {who.principal}"


def drop(who: Learner) -> str:
    from psycopg import sql

    name = sql.Identifier(who.principal)
    with _admin() as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [who.principal]).fetchone():
            return "no role"
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("DROP OWNED BY {}").format(name))  # grants or objects it got in the course database
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [who.principal])
        conn.execute(sql.SQL("DROP ROLE {}").format(name))
    return f"role and database {who.principal} dropped"


def present() -> set[str]:
    with _admin() as conn:
        rows = conn.execute(r"SELECT rolname FROM pg_roles WHERE rolname LIKE 'learner\_%'").fetchall()
    return {name for (name,) in rows}

