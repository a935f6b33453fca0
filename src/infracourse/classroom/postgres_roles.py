"""PostgreSQL: a LOGIN role per learner that owns a database of its own (where every notebook's schema goes), with
no superuser, CREATEDB, CREATEROLE, replication or RLS bypass; nobody else may connect to that database, and in
it the role cannot CREATE in `public` (owned by the course's superuser). Elsewhere it has no rights: the shared
course database grants it nothing beyond what PostgreSQL grants every role (reading the catalogs).

Lab 02 and lesson 02 make login roles of their own (a reporter, tenants), which needs CREATEROLE, and PostgreSQL 15
cannot limit CREATEROLE to a learner's own roles. So the learner's database gets two SECURITY DEFINER functions
instead (schema `course_roles`, owned by the admin), which create and drop login roles whose names start with
that learner's namespace prefix and nothing else: no superuser, CREATEDB, CREATEROLE, replication or RLS bypass,
CONNECT on the learner's database only. lessons/pg_roles.py calls them where they exist.

Why a database and not a schema: each notebook creates and drops a schema named after its namespace, so a role
limited to one schema could not run the lessons, and one with CREATE on the shared database could squat a
schema another learner needs. A database it owns lets it create what it wants where only it can go."""

from __future__ import annotations

from infracourse import config
from infracourse.classroom.roster import Learner
from infracourse.lessons import pg_roles
from infracourse.paths import services_config

CONNECTION_LIMIT = 10  # 20 learners stay well within the server's max_connections (200)
LAB_ROLE_CONNECTION_LIMIT = 5

# {prefix} and {learner} are SQL literals; the functions run as their owner (the admin) with a fixed search_path
ROLE_FUNCTIONS = """
CREATE SCHEMA IF NOT EXISTS course_roles;
REVOKE ALL ON SCHEMA course_roles FROM PUBLIC;
CREATE OR REPLACE FUNCTION course_roles.inside_namespace(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF left(name, length({prefix})) <> {prefix} OR name !~ '^[a-z0-9_]+$' OR length(name) > 63 THEN
    RAISE EXCEPTION 'role % is outside your namespace: its name must start with %', name, {prefix}
      USING ERRCODE = 'insufficient_privilege';
  END IF;
END $$;
CREATE OR REPLACE FUNCTION course_roles.drop_login(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM course_roles.inside_namespace(name);
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name) THEN
    PERFORM pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = name;
    EXECUTE format('DROP OWNED BY %I', name);
    EXECUTE format('DROP ROLE %I', name);
  END IF;
END $$;
CREATE OR REPLACE FUNCTION course_roles.recreate_login(name text, verifier text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM course_roles.drop_login(name);
  EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS '
                 'NOINHERIT CONNECTION LIMIT {limit}', name, verifier);
  EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', current_database(), name);
END $$;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA course_roles FROM PUBLIC;
GRANT USAGE ON SCHEMA course_roles TO {learner};
GRANT EXECUTE ON FUNCTION course_roles.drop_login(text), course_roles.recreate_login(text, text) TO {learner};
"""


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
        conn.execute(sql.SQL(ROLE_FUNCTIONS).format(prefix=sql.Literal(who.prefix), learner=name,
                                                    limit=sql.Literal(LAB_ROLE_CONNECTION_LIMIT)))
    return f"role {who.principal} owning database {who.principal}, lab roles {who.prefix}*"


def drop(who: Learner) -> str:
    from psycopg import sql

    name = sql.Identifier(who.principal)
    with _admin() as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [who.principal]).fetchone():
            return "no role"
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        lab_roles = [r for (r,) in conn.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)",
                                                 [who.prefix]).fetchall()]
        for role in lab_roles:  # what its labs made through course_roles, gone with its database's objects
            pg_roles.drop_role(conn, role)
        conn.execute(sql.SQL("DROP OWNED BY {}").format(name))  # grants or objects it got in the course database
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [who.principal])
        conn.execute(sql.SQL("DROP ROLE {}").format(name))
    return f"role and database {who.principal} dropped, and {len(lab_roles)} lab role(s)"


def present() -> set[str]:
    with _admin() as conn:
        rows = conn.execute(r"SELECT rolname FROM pg_roles WHERE rolname LIKE 'learner\_%'").fetchall()
    return {name for (name,) in rows}

