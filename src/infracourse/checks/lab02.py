"""Checks of labs/02_postgres_in_production.ipynb.

Checks rebuild the tables they judge against (load_fixtures builds them all for the Setup cell), connect as the
lab's login roles where privileges matter, inject real failures (server-raised SQLSTATEs, terminated backends, a
TcpProxy that is cut), and bound every wait.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from infracourse import config
from infracourse.checking import exercise, expect, postgres, time_limit
from infracourse.checking.explain import one_line
from infracourse.lessons.faults import TcpProxy
from infracourse.lessons.pg_roles import LoginRole

CALL_DEADLINE_S = 20
CAP_WAITS_HINT = "cap the waits (a maximum backoff, a pool timeout) so a call always returns"
MAX_WAIT_S = 1.0  # exercise 5: "a wait that ... stays under a second"

ORDERS_QUERY = ("SELECT id, amount, created_at FROM orders "
                "WHERE customer_id = %s AND status = 'shipped' ORDER BY created_at DESC LIMIT 10")

FIXTURES = {
    "users": """
        DROP TABLE IF EXISTS users CASCADE;
        CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);
        INSERT INTO users SELECT g, 'user-' || g FROM generate_series(1, 100) AS g""",
    "orders": """
        DROP TABLE IF EXISTS orders CASCADE;
        CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, customer_id int NOT NULL,
                             status text NOT NULL, created_at timestamptz NOT NULL, amount numeric(10, 2) NOT NULL);
        INSERT INTO orders (customer_id, status, created_at, amount)
        SELECT (g::bigint * 7919) % 5000 + 1,
               CASE WHEN g % 10 = 0 THEN 'pending' WHEN g % 10 = 1 THEN 'refunded' ELSE 'shipped' END,
               timestamptz '2024-01-01 00:00+00' + g * interval '1 minute', (g::bigint * 31) % 50000 / 100.0
        FROM generate_series(1, 100000) AS g;
        ANALYZE orders""",
    "reporting": """
        DROP TABLE IF EXISTS invoices, reports, payroll CASCADE;
        CREATE TABLE invoices (id int PRIMARY KEY, customer text NOT NULL, amount numeric(10, 2) NOT NULL);
        INSERT INTO invoices VALUES (1, 'acme', 120.00), (2, 'globex', 75.50), (3, 'acme', 19.99);
        CREATE TABLE reports (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text NOT NULL);
        CREATE TABLE payroll (employee text NOT NULL, salary int NOT NULL);
        INSERT INTO payroll VALUES ('Ada', 9000)""",
    "tickets": """
        DROP TABLE IF EXISTS tickets CASCADE;
        CREATE TABLE tickets (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                              tenant text NOT NULL DEFAULT current_user, body text NOT NULL)""",
}


def _load(conn: psycopg.Connection, *tables: str) -> None:
    postgres.load(conn, FIXTURES, *tables)


def load_fixtures(conn: psycopg.Connection) -> list[str]:
    """Create every table of the lab with the rows the checks use; return the fixture names."""
    _load(conn, *FIXTURES)
    return sorted(FIXTURES)


# 1 -------------------------------------------------------------------------------------------------------
@exercise("1", "A pooled request handler that never leaks")
def pooled_handler(fn, dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as admin:
        _load(admin, "users")
    # The pool logs a warning for each connection returned inside a transaction; the check reports it instead.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    with ConnectionPool(dsn, min_size=2, max_size=2, timeout=1.0, open=True, name="lab02-check") as pool:
        pool.wait(timeout=10)
        first = time_limit.bounded(CALL_DEADLINE_S, fn, pool, 7, what="get_user_name(pool, 7)",
                                   hint=CAP_WAITS_HINT)
        expect(first == "user-7", f"get_user_name(pool, 7) returned {first!r}, expected 'user-7'",
               hint="return the name itself (the row's first column), not the row")
        missing = time_limit.bounded(CALL_DEADLINE_S, fn, pool, 10_000, what="get_user_name(pool, 10000)",
                                     hint=CAP_WAITS_HINT)
        expect(missing is None, f"for an unknown id your function returned {missing!r}, expected None",
               hint="fetchone() returns None when there is no row")
        stats = pool.get_stats()
        expect(stats.get("requests_num", 0) >= 2, "the pool was never asked for a connection",
               hint="borrow one with `with pool.connection() as conn:` instead of psycopg.connect")
        out = stats["pool_size"] - stats["pool_available"]
        expect(out == 0, f"after 2 calls, {out} of the pool's 2 connections are still borrowed: a leak",
               hint="`with pool.connection() as conn:` gives the connection back even when the code raises")
        ids_per_thread = [(list(range(1 + k, 41, 8)),) for k in range(8)]
        try:
            names = time_limit.in_threads(CALL_DEADLINE_S, lambda ids: [fn(pool, i) for i in ids], ids_per_thread,
                                          what="threads calling get_user_name", hint=CAP_WAITS_HINT)
        except PoolTimeout:
            expect(False, "with 8 threads sharing 2 connections, a request waited more than 1 s for one",
                   hint="return each connection as soon as the query is done")
        expect(names == [[f"user-{i}" for i in ids] for (ids,) in ids_per_thread],
               "under concurrency some names were wrong")
        stats = pool.get_stats()
        expect(stats["pool_available"] == stats["pool_size"], "connections are still borrowed after the requests")
    return "40 requests from 8 threads on 2 connections"


# 2 -------------------------------------------------------------------------------------------------------
def _plan_nodes(plan: dict) -> list[dict]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


@exercise("2", "The index this query needs")
def index_for_query(index_sql: str, conn: psycopg.Connection) -> str:
    expect(isinstance(index_sql, str) and "index" in index_sql.lower(), "INDEX_SQL should be a CREATE INDEX statement")
    _load(conn, "orders")
    try:
        with conn.transaction():
            conn.execute(index_sql)
    except psycopg.Error as exc:
        expect(False, f"PostgreSQL rejected INDEX_SQL: {str(exc).splitlines()[0]}")
    conn.execute("ANALYZE orders")
    for customer in (42, 1234, 4999):
        plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + ORDERS_QUERY, (customer,)).fetchone()[0]
        nodes = _plan_nodes(plan[0]["Plan"])
        kinds = [n["Node Type"] for n in nodes]
        shape = " > ".join(kinds)
        expect(not any("Seq Scan" in k for k in kinds), f"the plan still reads the whole table ({shape})",
               hint="index the column the WHERE clause compares with a constant")
        expect("Sort" not in kinds, f"the plan uses an index but still sorts the rows ({shape})",
               hint="a composite index can return the rows already in created_at order: put it after the "
                    "equality columns")
        pages = nodes[0].get("Shared Hit Blocks", 0) + nodes[0].get("Shared Read Blocks", 0)  # includes children
        expect(pages < 100, f"the plan ({shape}) touched {pages} pages to return 10 rows",
               hint="the index must narrow down to one customer first: put customer_id first")
    return shape


# 3 -------------------------------------------------------------------------------------------------------
def _as_role(role: LoginRole, statement: str) -> str:
    """'allowed', or the first line of the error, for STATEMENT run as ROLE."""
    with psycopg.connect(role.dsn, autocommit=True) as c:
        c.execute("SET statement_timeout = '5s'")
        try:
            c.execute(statement)
            return "allowed"
        except psycopg.Error as exc:  # without USAGE on the schema its tables are simply not found
            return str(exc).splitlines()[0]


class _Statements:
    """A connection that passes everything through and keeps the statements given as plain strings, so a check
    can tell a statement built with psycopg.sql from one with a name pasted in (an f-string)."""

    def __init__(self, target: psycopg.Connection | psycopg.Cursor, strings: list[str] | None = None) -> None:
        self._target = target
        self.strings: list[str] = [] if strings is None else strings

    def __getattr__(self, name: str):
        return getattr(self._target, name)

    def __enter__(self) -> _Statements:
        self._target.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._target.__exit__(*exc)

    def execute(self, query, *args, **kwargs):
        if isinstance(query, str):
            self.strings.append(query)
        result = self._target.execute(query, *args, **kwargs)
        return self if result is self._target else result

    def cursor(self, *args, **kwargs) -> _Statements:
        return _Statements(self._target.cursor(*args, **kwargs), self.strings)


@exercise("3", "A least-privilege reporting role")
def least_privilege(fn, conn: psycopg.Connection, reporter: LoginRole) -> str:
    _load(conn, "reporting")  # new tables: no privilege left from an earlier attempt
    role, schema = sql.Identifier(reporter.name), sql.Identifier(conn.execute("SELECT current_schema()").fetchone()[0])
    conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(schema, role))
    conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(schema, role))
    statements = _Statements(conn)
    fn(statements, reporter.name)
    postgres.ready(conn)
    must_work = {"read invoices": "SELECT count(*) FROM invoices",
                 "add a report": "INSERT INTO reports (title) VALUES ('monthly revenue')"}
    must_fail = {"change an invoice": "UPDATE invoices SET amount = 0",
                 "delete reports": "DELETE FROM reports",
                 "read reports": "SELECT * FROM reports",
                 "read payroll": "SELECT * FROM payroll",
                 "create a table": "CREATE TABLE reporter_scratch (x int)"}
    for action, statement in must_work.items():
        outcome = _as_role(reporter, statement)
        expect(outcome == "allowed", f"the reporter could not {action}: {outcome}",
               hint="a role also needs USAGE on the schema to reach any table in it")
    for action, statement in must_fail.items():
        outcome = _as_role(reporter, statement)
        conn.execute("DROP TABLE IF EXISTS reporter_scratch")
        expect(outcome != "allowed", f"the reporter could {action}: more privilege than the job needs",
               hint="grant SELECT on invoices and INSERT on reports, and nothing else (no ALL, no CREATE)")
    names = (reporter.name, conn.execute("SELECT current_schema()").fetchone()[0])
    pasted = [q for q in statements.strings if any(name in q for name in names)]
    expect(not pasted, f"the statement {pasted[0] if pasted else ''!r} has a role or schema name pasted into its "
           "text", hint="build it with sql.SQL('GRANT ... TO {}').format(sql.Identifier(role_name)): psycopg then "
                        "quotes the name as an identifier")
    return f"2 actions allowed, {len(must_fail)} refused"


# 4 -------------------------------------------------------------------------------------------------------
def _tickets_of(owner: psycopg.Connection, tenant: LoginRole, where: str = "true") -> int:
    """How many of TENANT's tickets match WHERE, as the table's owner sees them (RLS does not apply to it)."""
    query = sql.SQL("SELECT count(*) FROM tickets WHERE tenant = %s AND {}").format(sql.SQL(where))
    return owner.execute(query, (tenant.name,)).fetchone()[0]


@exercise("4", "Row-level security for tenants")
def row_level_security(fn, conn: psycopg.Connection, tenant_a: LoginRole, tenant_b: LoginRole) -> str:
    _load(conn, "tickets")
    schema = sql.Identifier(conn.execute("SELECT current_schema()").fetchone()[0])
    for tenant in (tenant_a, tenant_b):
        role = sql.Identifier(tenant.name)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role))
        conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON tickets TO {}").format(role))
    with conn.transaction():
        for tenant, count in ((tenant_a, 3), (tenant_b, 2)):
            for n in range(count):
                conn.execute("INSERT INTO tickets (tenant, body) VALUES (%s, %s)", (tenant.name, f"ticket {n}"))
    fn(conn)
    postgres.ready(conn)
    enabled = conn.execute("SELECT relrowsecurity FROM pg_class WHERE oid = 'tickets'::regclass").fetchone()[0]
    expect(enabled, "row-level security is not enabled on tickets",
           hint="policies do nothing until the table itself has row-level security enabled (ALTER TABLE)")
    with psycopg.connect(tenant_a.dsn, autocommit=True) as a, psycopg.connect(tenant_b.dsn, autocommit=True) as b:
        for c in (a, b):
            c.execute("SET statement_timeout = '5s'")
        seen_a = a.execute("SELECT tenant FROM tickets").fetchall()
        seen_b = b.execute("SELECT tenant FROM tickets").fetchall()
        expect(seen_a, "tenant A sees no tickets at all, not even its own 3",
               hint="RLS without a policy denies everything: add a policy that compares tenant with the current role")
        expect({t for (t,) in seen_a} == {tenant_a.name} and {t for (t,) in seen_b} == {tenant_b.name},
               f"a tenant can see another tenant's tickets (A sees {len(seen_a)}, B sees {len(seen_b)})",
               hint="the policy's USING expression decides which rows a role sees")
        expect(len(seen_a) == 3 and len(seen_b) == 2, "the tenants do not see all of their own tickets")
        try:
            a.execute("INSERT INTO tickets (body) VALUES ('new from A')")
        except psycopg.errors.InsufficientPrivilege as exc:
            expect(False, f"tenant A could not add its own ticket: {str(exc).splitlines()[0]}",
                   hint="a policy FOR SELECT only covers reads: make it FOR ALL (the default)")
        try:
            a.execute("INSERT INTO tickets (tenant, body) VALUES (%s, 'planted')", (tenant_b.name,))
            planted = True
        except psycopg.errors.InsufficientPrivilege:
            planted = False
        expect(not planted, "tenant A could write a ticket in tenant B's name",
               hint="a policy's WITH CHECK expression limits the rows a role may write")
        # no WHERE on the tenant column: then only the UPDATE and DELETE policies decide which rows are reached
        a.execute("UPDATE tickets SET body = 'changed by A'")
        changed = _tickets_of(conn, tenant_b, "body = 'changed by A'")
        a.execute("DELETE FROM tickets")
    deleted = 2 - _tickets_of(conn, tenant_b)
    expect(changed == 0 and deleted == 0, f"tenant A changed {changed} and deleted {deleted} of tenant B's 2 tickets",
           hint="one policy FOR ALL (the default) with USING (tenant = current_user) limits UPDATE and DELETE too")
    return "each tenant sees and writes only its own tickets"


# 5 -------------------------------------------------------------------------------------------------------
def _server_error(conn: psycopg.Connection, sqlstate_name: str) -> None:
    """Make PostgreSQL itself raise the error named SQLSTATE_NAME (e.g. serialization_failure)."""
    conn.execute(sql.SQL("DO $$ BEGIN RAISE EXCEPTION 'injected by the check' USING ERRCODE = {}; END $$").format(
        sql.Literal(sqlstate_name)))


_in_learner_code = threading.local()


def _marked(fn, *args: object) -> object:
    """FN(*ARGS), with this thread marked as running learner code (see _sleeps_recorded)."""
    _in_learner_code.on = True
    try:
        return fn(*args)
    finally:
        _in_learner_code.on = False


@contextlib.contextmanager
def _sleeps_recorded() -> Iterator[list[float]]:
    """The seconds passed to time.sleep by _marked learner code while the block runs (tenacity's waits and most
    hand-written loops sleep so): the waits asked for, free of the noise of measured gaps. Empty if the learner
    waits some other way."""
    sleeps: list[float] = []
    real_sleep = time.sleep

    def recording(seconds: float) -> None:
        if getattr(_in_learner_code, "on", False):
            sleeps.append(seconds)
        real_sleep(seconds)

    time.sleep = recording
    try:
        yield sleeps
    finally:
        time.sleep = real_sleep


@exercise("5", "Retry transient failures with backoff")
def retry_wrapper(fn, dsn: str) -> str:
    def wrapped(*args: object) -> object:
        return time_limit.bounded(CALL_DEADLINE_S, _marked, fn, *args, what="your wrapper", hint=CAP_WAITS_HINT)

    admin = psycopg.connect(dsn, autocommit=True)
    try:
        calls: list[float] = []

        def fails_then_works(failures: int, sqlstate: str = "serialization_failure"):
            def work():
                calls.append(time.monotonic())
                if len(calls) <= failures:
                    _server_error(admin, sqlstate)
                return "done"
            return work

        got = wrapped(fails_then_works(2))
        expect(got == "done" and len(calls) == 3,
               f"work failed twice with SerializationFailure then would succeed; your wrapper returned {got!r} "
               f"after {len(calls)} call(s)", hint="retry the call when it raises a transient error")

        calls.clear()
        victim = psycopg.connect(dsn, autocommit=True)

        def dropped_then_works():
            calls.append(time.monotonic())
            if len(calls) == 1:  # the connection dies between two queries, as in a failover
                admin.execute("SELECT pg_terminate_backend(%s)", (victim.info.backend_pid,))
                return victim.execute("SELECT 1").fetchone()[0]
            with psycopg.connect(dsn, autocommit=True) as fresh:
                return fresh.execute("SELECT 1").fetchone()[0]

        try:
            got = wrapped(dropped_then_works)
        except psycopg.OperationalError as exc:
            expect(False, f"a dropped connection was not retried ({one_line(exc)})",
                   hint="psycopg.OperationalError (AdminShutdown, lost connections) is transient too")
        finally:
            postgres.close_when_idle(victim)
        expect(got == 1 and len(calls) == 2, "a dropped connection was not retried")

        calls.clear()
        try:
            wrapped(fails_then_works(5, "unique_violation"))
            raised = None
        except psycopg.errors.UniqueViolation:
            raised = "UniqueViolation"
        expect(raised == "UniqueViolation" and len(calls) == 1,
               f"a UniqueViolation was called {len(calls)} times; it fails the same way every time",
               hint="retry only transient errors: SerializationFailure, DeadlockDetected, OperationalError")

        calls.clear()
        try:
            wrapped(fails_then_works(100), 3)
            raised = None
        except psycopg.errors.SerializationFailure:
            raised = "SerializationFailure"
        except Exception as exc:  # noqa: BLE001 - reported to the learner
            raised = type(exc).__name__
        expect(len(calls) == 3, f"with attempts=3 your wrapper called work {len(calls)} times",
               hint="stop after `attempts` calls in total")
        expect(raised == "SerializationFailure", f"after the last attempt your wrapper raised {raised}",
               hint="re-raise the last real error (tenacity: reraise=True), so callers can handle it")

        runs = []
        for _ in range(2):  # twice: jitter makes the waits differ from one run to the next
            calls.clear()
            with _sleeps_recorded() as sleeps:
                wrapped(fails_then_works(4))
            runs.append(sleeps)
        gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
        expect(min(gaps) >= 0.005, f"the retries came {min(gaps) * 1000:.1f} ms apart",
               hint="wait between attempts, so a struggling server gets air")
        waits = runs[-1] if len(runs[-1]) >= 2 else gaps  # the sleeps asked for, when known: no load noise
        expect(waits[-1] > waits[0] * 1.5, "the wait between attempts does not grow",
               hint="exponential backoff: double the wait at each attempt (and add random jitter)")
        expect(not runs[0] or runs[0] != runs[1], f"the waits were {[round(w, 3) for w in runs[0]]} s in both runs: "
               "there is no random jitter", hint="add random jitter to each wait (tenacity: wait_exponential_jitter), "
                                                 "so clients that failed together do not retry together")
        calls.clear()
        with _sleeps_recorded() as sleeps:
            wrapped(fails_then_works(7), 8)
        longest = max(sleeps or [b - a for a, b in zip(calls, calls[1:], strict=False)])
        expect(longest < MAX_WAIT_S + (0 if sleeps else 0.1), f"with 8 attempts one wait was {longest:.2f} s; the "
               f"waits should stay under {MAX_WAIT_S:g} s", hint="cap the backoff (tenacity: max=...)")
        return "transient errors retried with growing waits, permanent ones raised at once"
    finally:
        postgres.close_when_idle(admin)


# 6 -------------------------------------------------------------------------------------------------------
COOLDOWN_S = 1.0  # long enough that a loaded machine reads "open" right after a failure, not "half-open"


def _callers_bugs(call: Callable, state: Callable[[], str], open_error: type[Exception]) -> None:
    """Three ValueErrors (not in failure_types) between two outage failures and the third: each must propagate
    unchanged, and none may open (or close) the circuit."""

    def buggy():
        raise ValueError("a bug in the caller, not an outage")

    for _ in range(3):
        try:
            call(buggy)
            expect(False, "breaker.call(fn) returned although fn raised ValueError",
                   hint="let every exception of fn propagate: the breaker only decides what to count")
        except open_error:
            expect(False, "ValueErrors (not in failure_types) opened the circuit",
                   hint="count only exceptions of failure_types; let other exceptions through, uncounted")
        except ValueError:
            pass
    expect(state() == "closed", f"after 2 outage failures and 3 ValueErrors the breaker is {state()!r}, expected "
           "'closed'", hint="count only exceptions of failure_types")


@exercise("6", "A circuit breaker", stretch=True)
def circuit_breaker(breaker_class, open_error) -> str:
    breaker = breaker_class(threshold=3, cooldown_s=COOLDOWN_S, failure_types=(psycopg.OperationalError,))

    def state() -> str:  # a lock taken twice or a loop in the learner's code fails the check instead of hanging
        return time_limit.bounded(CALL_DEADLINE_S, lambda: breaker.state, what="reading breaker.state")

    def call(fn):
        return time_limit.bounded(CALL_DEADLINE_S, breaker.call, fn, what="breaker.call(fn)")

    expect(state() == "closed", f"a new breaker is {state()!r}, expected 'closed'")
    with TcpProxy.to("postgres") as proxy:
        dsn = config.postgres_dsn(host="127.0.0.1", port=proxy.port, connect_timeout=2)
        network: list[int] = []

        def ping():
            network.append(1)
            with psycopg.connect(dsn) as c:
                return c.execute("SELECT 1").fetchone()[0]

        expect(call(ping) == 1, "breaker.call(fn) should return what fn returns")
        proxy.cut()
        for n in range(1, 4):
            if n == 3:  # two outage failures counted: a bug of the caller's in between must change nothing
                _callers_bugs(call, state, open_error)
            try:
                call(ping)
                expect(False, "a call to a database that is down succeeded?")
            except open_error:
                expect(False, f"failure {n} of 3 raised {open_error.__name__}; the circuit should still be closed",
                       hint="open only after `threshold` consecutive failures, and let the real error through")
            except psycopg.OperationalError:
                pass
        expect(state() == "open", f"after 3 failures the breaker is {state()!r}, expected 'open'",
               hint="an exception outside failure_types must not reset the failure count either")
        tried = len(network)
        try:
            call(ping)
            rejected = False
        except open_error:
            rejected = True
        except psycopg.OperationalError:
            rejected = False
        expect(rejected and len(network) == tried,
               f"while open, a call went to the network instead of raising {open_error.__name__}",
               hint="in call(), raise CircuitOpen before calling fn when the state is 'open'")
        time.sleep(COOLDOWN_S + 0.05)
        expect(state() == "half-open", f"after the cool-down the breaker is {state()!r}",
               hint="'half-open' once cooldown_s has passed since it opened")
        try:
            call(ping)
        except open_error:
            expect(False, "after the cool-down the trial call was rejected", hint="half-open lets one call through")
        except psycopg.OperationalError:
            pass
        expect(state() == "open", f"a failed trial call left the breaker {state()!r}, expected 'open'")
        proxy.restore()
        time.sleep(COOLDOWN_S + 0.05)
        expect(call(ping) == 1 and state() == "closed",
               f"a successful trial call left the breaker {state()!r}, expected 'closed'")
        proxy.cut()
        try:
            call(ping)
        except (open_error, psycopg.OperationalError):
            pass
        proxy.restore()
        expect(state() == "closed", "after closing, a single new failure opened the breaker again",
               hint="reset the failure count when a call succeeds")
    return "closed, open, half-open, closed"


# 7 -------------------------------------------------------------------------------------------------------
MIGRATION_TABLES = ("schema_migrations", "mig_customers", "mig_orders", "mig_audit", "mig_left", "mig_right")


def checksum(statements: str) -> str:
    return hashlib.sha256(statements.encode()).hexdigest()


def _expect_checksums(conn: psycopg.Connection, migrations: list[tuple[int, str, str]]) -> None:
    try:
        stored = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())
    except psycopg.errors.UndefinedColumn:
        postgres.ready(conn)
        expect(False, "schema_migrations has no column checksum",
               hint="CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, name text, checksum text)")
    wrong = sorted(v for v, _, statements in migrations if stored.get(v) != checksum(statements))
    expect(not wrong, f"the checksum recorded for version {wrong[0] if wrong else ''} is not the SHA-256 of its SQL",
           hint="hashlib.sha256(sql.encode()).hexdigest()")


def _expect_edit_refused(run: Callable, conn: psycopg.Connection, migrations: list[tuple[int, str, str]]) -> None:
    """Migration 2 edited after it was applied, and a new migration 9 pending: the run raises ValueError naming
    version 2 before it applies anything."""
    edited = [(v, name, statements + " NOT NULL" if v == 2 else statements) for v, name, statements in migrations]
    try:
        run([*edited, (9, "create audit", "CREATE TABLE mig_audit (id int)")])
        raised: Exception | None = None
    except Exception as exc:  # noqa: BLE001 - which error it was is the verdict
        raised = exc
    postgres.ready(conn)
    applied_9 = conn.execute("SELECT to_regclass('mig_audit') IS NOT NULL").fetchone()[0]
    conn.execute("DROP TABLE IF EXISTS mig_audit")
    conn.execute("DELETE FROM schema_migrations WHERE version = 9")
    expect(isinstance(raised, ValueError), "after migration 2 was edited, a run did not raise ValueError"
           + (f" (it raised {type(raised).__name__})" if raised else ""),
           hint="compare each recorded checksum with the checksum of that version's SQL now; raise ValueError if "
                "they differ")
    expect("2" in str(raised), f"the ValueError does not name the edited version 2: {raised}",
           hint="say which version was edited")
    expect(not applied_9, "with migration 2 edited, the run still applied migration 9 before refusing",
           hint="check every recorded migration before applying any")


@exercise("7", "A versioned migration runner", stretch=True)
def migration_runner(fn, conn: psycopg.Connection) -> str:
    def run(migrations):
        return time_limit.call(CALL_DEADLINE_S, fn, conn, migrations)

    postgres.ready(conn)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(
        sql.SQL(", ").join(map(sql.Identifier, MIGRATION_TABLES))))
    migrations = [  # deliberately out of order
        (2, "add email", "ALTER TABLE mig_customers ADD COLUMN email text"),
        (1, "create customers", "CREATE TABLE mig_customers (id int PRIMARY KEY, name text NOT NULL)"),
        (3, "create orders", "CREATE TABLE mig_orders (id int PRIMARY KEY, customer_id int REFERENCES mig_customers)"),
    ]
    try:
        applied = run(migrations)
    except psycopg.Error as exc:
        postgres.ready(conn)
        expect(False, f"the first run failed: {one_line(exc)}", hint="apply migrations in version order")
    expect(applied == [1, 2, 3], f"the first run returned {applied!r}, expected [1, 2, 3]",
           hint="return the versions applied, in the order applied")
    postgres.ready(conn)
    recorded = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    expect(recorded == [(1,), (2,), (3,)], f"schema_migrations holds {recorded}",
           hint="insert (version, name, checksum) into schema_migrations as each migration is applied")
    _expect_checksums(conn, migrations)
    again = run(migrations)
    expect(again == [], f"a second run returned {again!r}: it should apply nothing", hint="skip recorded versions")
    _expect_edit_refused(run, conn, migrations)
    broken = [*migrations, (4, "audit, half broken", "CREATE TABLE mig_audit (id int); SELECT * FROM no_such_table")]
    try:
        run(broken)
        raised = False
    except psycopg.Error:
        raised = True
    postgres.ready(conn)
    expect(raised, "a migration with an error did not raise", hint="let the error propagate so the deploy stops")
    left = conn.execute("SELECT to_regclass('mig_audit') IS NOT NULL").fetchone()[0]
    expect(not left, "the failed migration 4 left its table mig_audit behind",
           hint="run each migration and its schema_migrations row in one transaction")
    recorded = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
    expect(recorded == 3, "the failed migration 4 was recorded as applied")
    fixed = [*migrations, (4, "audit", "CREATE TABLE mig_audit (id int)")]
    expect(run(fixed) == [4], "after fixing migration 4, a run should apply exactly [4]")
    clash = [*fixed, (5, "create mig_left", "CREATE TABLE mig_left (id int)"),
             (5, "create mig_right", "CREATE TABLE mig_right (id int)")]  # two developers picked version 5
    try:
        run(clash)
        raised = False
    except psycopg.Error:
        raised = True
    postgres.ready(conn)
    expect(raised, "two migrations with version 5 went through without an error",
           hint="let the INSERT into schema_migrations (version is its primary key) fail the second one")
    right = conn.execute("SELECT to_regclass('mig_right') IS NOT NULL").fetchone()[0]
    expect(not right, "the second migration 5 failed to be recorded but its table mig_right stayed",
           hint="the migration's statements and its schema_migrations row belong in one transaction")
    left = conn.execute("SELECT to_regclass('mig_left') IS NOT NULL").fetchone()[0]
    expect(left, "when the second migration 5 failed, the first one (mig_left), which had worked, was rolled back "
           "with it", hint="one transaction per migration, opened inside the loop, not one around them all")
    return "in order, once, all or nothing"
