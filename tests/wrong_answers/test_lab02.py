"""Lab 02 checks fail on plausible wrong answers, with a message that helps, and pass the reference answers."""

from __future__ import annotations

import hashlib
import random
import threading
import time

import psycopg
import pytest
from psycopg import sql
from tenacity import (
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_exponential_jitter,
    wait_fixed,
)
from verdicts import assert_fails, assert_not_done, assert_passes

from infracourse.checks import lab02 as checks
from infracourse.lessons import pg_roles


@pytest.fixture
def dsn(pg_ns):
    return pg_ns.postgres_dsn()


@pytest.fixture
def roles(pg_ns):
    made = pg_roles.recreate(pg_ns, "reporter", "tenant_a", "tenant_b")
    yield made
    pg_roles.drop(pg_ns, *made)


# 1 pooled handler ----------------------------------------------------------------------------------------
def get_user_name(pool, user_id):
    with pool.connection() as conn:
        row = conn.execute("SELECT name FROM users WHERE id = %s", (user_id,)).fetchone()
    return row[0] if row else None


def test_pooled_handler_reference_passes(dsn):
    assert_passes(checks.pooled_handler(get_user_name, dsn))


def test_pooled_handler_getconn_without_putconn_leaks(dsn):
    def leaky(pool, user_id):
        conn = pool.getconn()
        row = conn.execute("SELECT name FROM users WHERE id = %s", (user_id,)).fetchone()
        return row[0] if row else None

    assert_fails(checks.pooled_handler(leaky, dsn), "still borrowed", "leak")


def test_pooled_handler_ignoring_the_pool_fails(dsn):
    def own_connection(pool, user_id):
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT name FROM users WHERE id = %s", (user_id,)).fetchone()
        return row[0] if row else None

    assert_fails(checks.pooled_handler(own_connection, dsn), "never asked")


def test_pooled_handler_crashing_on_unknown_id_fails(dsn):
    def no_none(pool, user_id):
        with pool.connection() as conn:
            return conn.execute("SELECT name FROM users WHERE id = %s", (user_id,)).fetchone()[0]

    assert_fails(checks.pooled_handler(no_none, dsn), "raised TypeError")


# 2 index -------------------------------------------------------------------------------------------------
def test_index_reference_passes(conn):
    sql_text = "CREATE INDEX ON orders (customer_id, status, created_at)"
    assert_passes(checks.index_for_query(sql_text, conn))


def test_index_partial_passes(conn):
    sql_text = "CREATE INDEX ON orders (customer_id, created_at) WHERE status = 'shipped'"
    assert_passes(checks.index_for_query(sql_text, conn))


def test_index_on_customer_only_still_sorts(conn):
    assert_fails(checks.index_for_query("CREATE INDEX ON orders (customer_id)", conn), "still sorts")


def test_index_on_status_reads_everything(conn):
    assert_fails(checks.index_for_query("CREATE INDEX ON orders (status)", conn), "whole table")


def test_index_on_created_at_touches_too_many_pages(conn):
    result = checks.index_for_query("CREATE INDEX ON orders (created_at)", conn)
    assert_fails(result)
    assert "pages" in result.message or "whole table" in result.message, result


def test_index_typo_is_reported(conn):
    assert_fails(checks.index_for_query("CREATE INDEX ON orders (customer)", conn), "rejected", hint=False)


def test_index_unsolved_is_not_done(conn):
    assert_not_done(checks.index_for_query(..., conn))


# 3 least privilege ---------------------------------------------------------------------------------------
def grants(*statements: str):
    def grant(conn, role_name):
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        for statement in statements:
            conn.execute(sql.SQL(statement).format(schema=sql.Identifier(schema), role=sql.Identifier(role_name)))
    return grant


REFERENCE_GRANTS = ("GRANT USAGE ON SCHEMA {schema} TO {role}", "GRANT SELECT ON invoices TO {role}",
                    "GRANT INSERT ON reports TO {role}")


def test_least_privilege_reference_passes(conn, roles):
    assert_passes(checks.least_privilege(grants(*REFERENCE_GRANTS), conn, roles["reporter"]))


def test_least_privilege_with_f_string_sql_fails(conn, roles):
    def pasted(conn, role_name):
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role_name}")
        with conn.cursor() as cur:
            cur.execute(f"GRANT SELECT ON invoices TO {role_name}")
        conn.execute(f"GRANT INSERT ON reports TO {role_name}")

    result = checks.least_privilege(pasted, conn, roles["reporter"])
    assert_fails(result, "pasted into its text", in_hint=("sql.Identifier(role_name)",))


def test_least_privilege_grant_all_fails(conn, roles):
    too_much = grants("GRANT USAGE ON SCHEMA {schema} TO {role}", "GRANT ALL ON invoices, reports TO {role}")
    assert_fails(checks.least_privilege(too_much, conn, roles["reporter"]), "could change an invoice")


def test_least_privilege_missing_schema_usage_fails(conn, roles):
    no_usage = grants("GRANT SELECT ON invoices TO {role}", "GRANT INSERT ON reports TO {role}")
    assert_fails(checks.least_privilege(no_usage, conn, roles["reporter"]), "could not read")


def test_least_privilege_create_on_schema_fails(conn, roles):
    with_create = grants("GRANT ALL ON SCHEMA {schema} TO {role}", *REFERENCE_GRANTS[1:])
    assert_fails(checks.least_privilege(with_create, conn, roles["reporter"]), "could create a table")


# 4 row-level security ------------------------------------------------------------------------------------
def rls(*statements: str):
    def enable(conn):
        for statement in statements:
            conn.execute(statement)
    return enable


ENABLE = "ALTER TABLE tickets ENABLE ROW LEVEL SECURITY"


def test_rls_reference_passes(conn, roles):
    reference = rls(ENABLE, "CREATE POLICY p ON tickets USING (tenant = current_user) "
                            "WITH CHECK (tenant = current_user)")
    assert_passes(checks.row_level_security(reference, conn, roles["tenant_a"], roles["tenant_b"]))


def test_rls_without_policy_denies_everything(conn, roles):
    assert_fails(checks.row_level_security(rls(ENABLE), conn, roles["tenant_a"], roles["tenant_b"]), "no tickets")


def test_rls_policy_without_enable_fails(conn, roles):
    policy_only = rls("CREATE POLICY p ON tickets USING (tenant = current_user)")
    assert_fails(checks.row_level_security(policy_only, conn, roles["tenant_a"], roles["tenant_b"]), "not enabled")


def test_rls_select_only_policy_blocks_inserts(conn, roles):
    select_only = rls(ENABLE, "CREATE POLICY p ON tickets FOR SELECT USING (tenant = current_user)")
    assert_fails(checks.row_level_security(select_only, conn, roles["tenant_a"], roles["tenant_b"]), "could not add")


def test_rls_open_reads_fail(conn, roles):
    open_reads = rls(ENABLE, "CREATE POLICY p ON tickets USING (true) WITH CHECK (tenant = current_user)")
    assert_fails(checks.row_level_security(open_reads, conn, roles["tenant_a"], roles["tenant_b"]), "another tenant")


def test_rls_without_check_lets_a_tenant_plant_rows(conn, roles):
    no_check = rls(ENABLE, "CREATE POLICY p ON tickets USING (tenant = current_user) WITH CHECK (true)")
    assert_fails(checks.row_level_security(no_check, conn, roles["tenant_a"], roles["tenant_b"]),
                 "in tenant B's name")


# 5 retry wrapper -----------------------------------------------------------------------------------------
TRANSIENT = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected, psycopg.OperationalError)


def tenacity_wrapper(retry_on=TRANSIENT, wait=None, reraise=True):
    def with_retries(work, attempts=5):
        return retry(retry=retry_if_exception_type(retry_on),
                     wait=wait or wait_exponential_jitter(multiplier=0.02, max=0.5, jitter=0.02),
                     stop=stop_after_attempt(attempts), reraise=reraise)(work)()
    return with_retries


def test_retry_reference_passes(dsn):
    assert_passes(checks.retry_wrapper(tenacity_wrapper(), dsn))


def hand_written(jitter=0.01, cap_s=0.5):
    def with_retries(work, attempts=5):
        for attempt in range(1, attempts + 1):
            try:
                return work()
            except TRANSIENT:
                if attempt == attempts:
                    raise
                time.sleep(min(cap_s, 0.01 * 2**attempt) + random.uniform(0, jitter))
    return with_retries


def test_retry_hand_written_loop_passes(dsn):
    assert_passes(checks.retry_wrapper(hand_written(), dsn))


def test_retry_without_jitter_fails(dsn):
    result = checks.retry_wrapper(hand_written(jitter=0), dsn)
    assert_fails(result, "no random jitter", in_hint=("jitter",))


def test_retry_with_tenacity_and_no_jitter_fails(dsn):
    result = checks.retry_wrapper(tenacity_wrapper(wait=wait_exponential(multiplier=0.02, max=0.5)), dsn)
    assert_fails(result, "no random jitter")


def test_retry_with_waits_far_over_a_second_fails(dsn):
    result = checks.retry_wrapper(hand_written(cap_s=5), dsn)  # 0.02 s doubling 7 times: 1.28 s
    assert_fails(result, "waits should stay under 1 s", in_hint=("cap",))



def test_retry_calling_once_fails(dsn):
    assert_fails(checks.retry_wrapper(lambda work, attempts=5: work(), dsn), "raised SerializationFailure")


def test_retry_everything_retries_unique_violation(dsn):
    assert_fails(checks.retry_wrapper(tenacity_wrapper(retry_on=Exception), dsn), "a UniqueViolation was called")


def test_retry_serialization_only_misses_dropped_connections(dsn):
    result = checks.retry_wrapper(tenacity_wrapper(retry_on=psycopg.errors.SerializationFailure), dsn)
    assert_fails(result, "dropped connection was not retried")


def test_retry_without_reraise_fails(dsn):
    assert_fails(checks.retry_wrapper(tenacity_wrapper(reraise=False), dsn), "raised RetryError")


def test_retry_without_waiting_fails(dsn):
    def hammer(work, attempts=5):
        for attempt in range(attempts):
            try:
                return work()
            except TRANSIENT:
                if attempt == attempts - 1:
                    raise

    assert_fails(checks.retry_wrapper(hammer, dsn), "ms apart")


def test_retry_fixed_wait_fails(dsn):
    assert_fails(checks.retry_wrapper(tenacity_wrapper(wait=wait_fixed(0.03)), dsn), "does not grow")


def test_retry_wrapper_that_never_returns_fails_and_does_not_block_exit(dsn, monkeypatch):
    def never_returns(work, attempts=5):
        while True:  # retries even after success: no return
            try:
                work()
            except psycopg.Error:
                time.sleep(0.01)

    monkeypatch.setattr(checks, "CALL_DEADLINE_S", 2)
    assert_fails(checks.retry_wrapper(never_returns, dsn), "your wrapper did not return within 2 s")
    stuck = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    assert not stuck, f"non-daemon threads would keep the kernel from exiting: {stuck}"

# 6 circuit breaker ---------------------------------------------------------------------------------------
class CircuitOpen(Exception):
    pass


class Breaker:
    """The reference; subclasses below break one rule each."""

    def __init__(self, threshold=3, cooldown_s=1.0, failure_types=(Exception,)):
        self.threshold, self.cooldown_s, self.failures, self.opened_at = threshold, cooldown_s, 0, None
        self.failure_types = failure_types

    @property
    def state(self):
        if self.opened_at is None:
            return "closed"
        return "half-open" if time.monotonic() - self.opened_at >= self.cooldown_s else "open"

    def call(self, fn, *args):
        if self.state == "open":
            raise CircuitOpen
        try:
            result = fn(*args)
        except self.failure_types:
            self.failures += 1
            if self.state == "half-open" or self.failures >= self.threshold:
                self.opened_at = time.monotonic()
            raise
        self.on_success()
        return result

    def on_success(self):
        self.failures, self.opened_at = 0, None


def test_breaker_reference_passes():
    assert_passes(checks.circuit_breaker(Breaker, CircuitOpen))


def test_breaker_that_never_fails_fast_fails():
    class Counting(Breaker):
        def call(self, fn, *args):
            try:
                return fn(*args)
            except self.failure_types:
                self.failures += 1
                if self.failures >= self.threshold:
                    self.opened_at = time.monotonic()
                raise

    assert_fails(checks.circuit_breaker(Counting, CircuitOpen), "went to the network", "CircuitOpen")


def test_breaker_that_never_half_opens_fails():
    class Stuck(Breaker):
        @property
        def state(self):
            return "closed" if self.opened_at is None else "open"

    assert_fails(checks.circuit_breaker(Stuck, CircuitOpen), "after the cool-down the breaker is")


def test_breaker_that_never_resets_its_count_fails():
    class NoReset(Breaker):
        def on_success(self):
            self.opened_at = None

    assert_fails(checks.circuit_breaker(NoReset, CircuitOpen), "single new failure")


def test_breaker_taking_its_own_lock_twice_fails(monkeypatch):
    class Locked(Breaker):
        def __init__(self, threshold=3, cooldown_s=1.0, failure_types=(Exception,)):
            super().__init__(threshold, cooldown_s, failure_types)
            self.lock = threading.Lock()

        def call(self, fn, *args):
            with self.lock:  # a thread-safe attempt that deadlocks: state is read under the same lock
                return super().call(fn, *args)

        @property
        def state(self):
            with self.lock:
                return super().state

    monkeypatch.setattr(checks, "CALL_DEADLINE_S", 2)
    assert_fails(checks.circuit_breaker(Locked, CircuitOpen), "breaker.call(fn) did not return")


def test_breaker_retrying_until_success_fails(monkeypatch):
    class Retrying(Breaker):
        def call(self, fn, *args):
            while True:  # a retry loop, not a breaker: waits for the database to come back
                try:
                    return fn(*args)
                except psycopg.OperationalError:
                    time.sleep(0.1)

    monkeypatch.setattr(checks, "CALL_DEADLINE_S", 2)
    assert_fails(checks.circuit_breaker(Retrying, CircuitOpen), "breaker.call(fn) did not return")

def test_breaker_counting_every_exception_fails():
    class CountsBugs(Breaker):
        def __init__(self, threshold=3, cooldown_s=1.0, failure_types=(Exception,)):
            super().__init__(threshold, cooldown_s)  # forgets failure_types: counts everything

    assert_fails(checks.circuit_breaker(CountsBugs, CircuitOpen), "ValueErrors", "opened the circuit")


def test_breaker_resetting_on_other_exceptions_fails():
    class ResetsOnBugs(Breaker):
        def call(self, fn, *args):
            try:
                return super().call(fn, *args)
            except ValueError:
                self.failures = 0  # treats the caller's bug as a sign the dependency is fine
                raise

    assert_fails(checks.circuit_breaker(ResetsOnBugs, CircuitOpen), "after 3 failures", in_hint=("reset",))


def test_breaker_swallowing_other_exceptions_fails():
    class Swallows(Breaker):
        def call(self, fn, *args):
            try:
                return super().call(fn, *args)
            except ValueError:
                return None

    assert_fails(checks.circuit_breaker(Swallows, CircuitOpen), "returned although fn raised ValueError")


def test_breaker_unsolved_is_not_done():
    class Stub:
        def __init__(self, threshold=3, cooldown_s=1.0, failure_types=(Exception,)):
            raise NotImplementedError

    assert_not_done(checks.circuit_breaker(Stub, CircuitOpen))


# 7 migration runner --------------------------------------------------------------------------------------
TRACKING = "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, name text, checksum text)"


def record(conn, version, name, statements, digest=checks.checksum):
    conn.execute("INSERT INTO schema_migrations VALUES (%s, %s, %s)", (version, name, digest(statements)))


def runner(in_transaction=True, in_order=True, validate=True, validate_first=True, digest=checks.checksum):
    def migrate(conn, migrations):
        conn.execute(TRACKING)
        done = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())

        def refuse_edited(version, statements):
            if validate and version in done and done[version] != digest(statements):
                raise ValueError(f"migration {version} was edited after it was applied")

        for version, _, statements in migrations if validate_first else []:
            refuse_edited(version, statements)
        applied = []
        for version, name, statements in (sorted(migrations) if in_order else migrations):
            refuse_edited(version, statements)
            if version in done:
                continue
            if in_transaction:
                with conn.transaction():
                    conn.execute(statements)
                    record(conn, version, name, statements, digest)
            else:
                conn.execute(statements)
                record(conn, version, name, statements, digest)
            applied.append(version)
        return applied
    return migrate


def test_migrations_reference_passes(conn):
    assert_passes(checks.migration_runner(runner(), conn))


def test_migrations_out_of_order_fails(conn):
    assert_fails(checks.migration_runner(runner(in_order=False), conn), "first run failed")


def test_migrations_without_transaction_leave_debris(conn):
    assert_fails(checks.migration_runner(runner(in_transaction=False), conn), "mig_right stayed")


def test_migrations_in_one_transaction_around_all_fails(conn):
    def all_at_once(conn, migrations):
        conn.execute(TRACKING)
        done = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())
        if any(v in done and done[v] != checks.checksum(s) for v, _, s in migrations):
            edited = next(v for v, _, s in migrations if v in done and done[v] != checks.checksum(s))
            raise ValueError(f"migration {edited} was edited")
        applied = []
        with conn.transaction():  # one failure undoes the migrations that worked before it
            for version, name, statements in sorted(migrations):
                if version not in done:
                    conn.execute(statements)
                    record(conn, version, name, statements)
                    applied.append(version)
        return applied

    result = checks.migration_runner(all_at_once, conn)
    assert_fails(result, "mig_left", "rolled back", in_hint=("one transaction per migration",))


def test_migrations_without_tracking_apply_twice(conn):
    def forgetful(conn, migrations):
        applied = []
        for version, _, statements in sorted(migrations):
            conn.execute(statements)
            applied.append(version)
        return applied

    result = checks.migration_runner(forgetful, conn)
    assert_fails(result)
    assert "schema_migrations" in result.message or "first run failed" in result.message, result


def test_migrations_loop_that_never_advances_fails(conn, monkeypatch):
    def stuck(conn, migrations):
        conn.execute(TRACKING)
        done = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
        ordered, applied, i = sorted(migrations), [], 0
        while i < len(ordered):
            version, name, statements = ordered[i]
            if version in done:
                continue  # forgot i += 1
            with conn.transaction():
                conn.execute(statements)
                record(conn, version, name, statements)
            applied.append(version)
            i += 1
        return applied

    monkeypatch.setattr(checks, "CALL_DEADLINE_S", 2)
    assert_fails(checks.migration_runner(stuck, conn), "stuck() did not return")


def test_migrations_without_checksums_fail(conn):
    def no_checksum(conn, migrations):
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, name text)")
        done = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
        applied = []
        for version, name, statements in sorted(migrations):
            if version not in done:
                with conn.transaction():
                    conn.execute(statements)
                    conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (version, name))
                applied.append(version)
        return applied

    assert_fails(checks.migration_runner(no_checksum, conn), "no column checksum")


def test_migrations_with_another_digest_fail(conn):
    md5 = runner(digest=lambda statements: hashlib.md5(statements.encode()).hexdigest())
    assert_fails(checks.migration_runner(md5, conn), "not the SHA-256", in_hint=("sha256",))


def test_migrations_ignoring_an_edited_migration_fail(conn):
    assert_fails(checks.migration_runner(runner(validate=False), conn), "edited", "did not raise ValueError")


def test_migrations_validating_after_applying_fail(conn):
    def late(conn, migrations):
        applied = runner(validate=False)(conn, migrations)
        done = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())
        for version, _, statements in migrations:
            if done.get(version) != checks.checksum(statements):
                raise ValueError(f"migration {version} was edited")
        return applied

    assert_fails(checks.migration_runner(late, conn), "still applied migration 9", in_hint=("before applying",))


# requirements the tests above did not break on their own -----------------------------------------------
def test_pooled_handler_returning_the_row_fails(dsn):
    def whole_row(pool, user_id):
        with pool.connection() as conn:
            return conn.execute("SELECT name FROM users WHERE id = %s", (user_id,)).fetchone()

    assert_fails(checks.pooled_handler(whole_row, dsn), "('user-7',)")


def test_least_privilege_without_select_on_invoices_fails(conn, roles):
    no_select = grants("GRANT USAGE ON SCHEMA {schema} TO {role}", "GRANT INSERT ON reports TO {role}")
    assert_fails(checks.least_privilege(no_select, conn, roles["reporter"]), "could not read invoices")


def test_least_privilege_without_insert_on_reports_fails(conn, roles):
    no_insert = grants("GRANT USAGE ON SCHEMA {schema} TO {role}", "GRANT SELECT ON invoices TO {role}")
    assert_fails(checks.least_privilege(no_insert, conn, roles["reporter"]), "could not add a report")


def test_least_privilege_reading_reports_fails(conn, roles):
    reads_reports = grants(*REFERENCE_GRANTS, "GRANT SELECT ON reports TO {role}")
    assert_fails(checks.least_privilege(reads_reports, conn, roles["reporter"]), "could read reports")


def test_least_privilege_reading_payroll_fails(conn, roles):
    reads_payroll = grants(*REFERENCE_GRANTS, "GRANT SELECT ON payroll TO {role}")
    assert_fails(checks.least_privilege(reads_payroll, conn, roles["reporter"]), "could read payroll")


def test_rls_open_updates_fail(conn, roles):
    open_writes = rls(ENABLE, "CREATE POLICY r ON tickets FOR SELECT USING (tenant = current_user)",
                      "CREATE POLICY i ON tickets FOR INSERT WITH CHECK (tenant = current_user)",
                      "CREATE POLICY u ON tickets FOR UPDATE USING (true)",
                      "CREATE POLICY d ON tickets FOR DELETE USING (true)")
    assert_fails(checks.row_level_security(open_writes, conn, roles["tenant_a"], roles["tenant_b"]),
                 "changed 2 and deleted 2")


def test_retry_not_returning_the_result_fails(dsn):
    def no_return(work, attempts=5):
        tenacity_wrapper()(work, attempts)

    assert_fails(checks.retry_wrapper(no_return, dsn), "returned None")


def test_retry_one_attempt_too_many_fails(dsn):
    def one_more(work, attempts=5):
        return tenacity_wrapper()(work, attempts + 1)

    assert_fails(checks.retry_wrapper(one_more, dsn), "with attempts=3 your wrapper called work 4 times")


REQUIREMENTS = {
    "1": {
        "borrow a connection from the\n`ConnectionPool`": "test_pooled_handler_ignoring_the_pool_fails",
        "return the user's name": "test_pooled_handler_returning_the_row_fails",
        "or `None` if there is no such user": "test_pooled_handler_crashing_on_unknown_id_fails",
        "a connection that is not given back stalls\neveryone": "test_pooled_handler_getconn_without_putconn_leaks",
    },
    "2": {
        "the\n`CREATE INDEX` statement": "test_index_typo_is_reported",
        "without reading the whole table": ("test_index_on_status_reads_everything",
                                            "test_index_on_created_at_touches_too_many_pages"),
        "and without sorting": "test_index_on_customer_only_still_sorts",
    },
    "3": {
        "It must read `invoices`": ("test_least_privilege_without_select_on_invoices_fails",
                                    "test_least_privilege_missing_schema_usage_fails"),
        "add rows to `reports`": "test_least_privilege_without_insert_on_reports_fails",
        "not change invoices": "test_least_privilege_grant_all_fails",
        "not read `reports`": "test_least_privilege_reading_reports_fails",
        "or `payroll`": "test_least_privilege_reading_payroll_fails",
        "not create tables": "test_least_privilege_create_on_schema_fails",
        "Build the\nstatements with `psycopg.sql.Identifier`": "test_least_privilege_with_f_string_sql_fails",
    },
    "4": {
        "turn on row-level security for `tickets`": "test_rls_policy_without_enable_fails",
        "a tenant sees": ("test_rls_open_reads_fail", "test_rls_without_policy_denies_everything"),
        "changes": "test_rls_open_updates_fail",
        "and adds only rows whose `tenant` is its own role name": ("test_rls_without_check_lets_a_tenant_plant_rows",
                                                                   "test_rls_select_only_policy_blocks_inserts"),
    },
    "5": {
        "call `work()` and return its result": "test_retry_not_returning_the_result_fails",
        "(`SerializationFailure`, `DeadlockDetected`, or any `psycopg.OperationalError`, which includes a dropped\n"
        "connection)": "test_retry_serialization_only_misses_dropped_connections",
        "wait and call it again": ("test_retry_calling_once_fails", "test_retry_without_waiting_fails"),
        "with a wait that grows exponentially": "test_retry_fixed_wait_fails",
        "(plus random jitter)": ("test_retry_without_jitter_fails", "test_retry_with_tenacity_and_no_jitter_fails"),
        "stays under\na second": "test_retry_with_waits_far_over_a_second_fails",
        "never retry other errors": "test_retry_everything_retries_unique_violation",
        "after `attempts` calls": "test_retry_one_attempt_too_many_fails",
        "raise the last error itself": "test_retry_without_reraise_fails",
    },
    "6": {
        "(calls raise `CircuitOpen`\nat once, without calling `fn`)": "test_breaker_that_never_fails_fast_fails",
        "(the cool-down has passed: the next call is a trial)": "test_breaker_that_never_half_opens_fails",
        "`threshold` consecutive failures (the exception propagates) open the\ncircuit":
            "test_breaker_retrying_until_success_fails",
        "a success closes it and resets the count": "test_breaker_that_never_resets_its_count_fails",
        "only exceptions of `failure_types` count as\nfailures": "test_breaker_counting_every_exception_fails",
        "propagates unchanged": "test_breaker_swallowing_other_exceptions_fails",
        "neither\ncounts nor resets the count": "test_breaker_resetting_on_other_exceptions_fails",
    },
    "7": {
        "apply the migrations not\nrecorded there": "test_migrations_without_tracking_apply_twice",
        "in version order": "test_migrations_out_of_order_fails",
        "each together with its `schema_migrations` row in one transaction": (
            "test_migrations_without_transaction_leave_debris", "test_migrations_in_one_transaction_around_all_fails"),
        "record each migration's `checksum`, `hashlib.sha256(sql.encode()).hexdigest()`": (
            "test_migrations_without_checksums_fail", "test_migrations_with_another_digest_fail"),
        "raise `ValueError` naming the version if they differ": "test_migrations_ignoring_an_edited_migration_fail",
        "before applying anything": "test_migrations_validating_after_applying_fail",
    },
}
