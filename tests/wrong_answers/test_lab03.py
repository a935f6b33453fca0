"""Lab 03 checks fail on plausible wrong answers, with a message that helps, and pass the reference answers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

import psycopg
import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from psycopg.adapt import Dumper, Loader
from psycopg.conninfo import make_conninfo
from psycopg.types import TypeInfo
from verdicts import assert_fails, assert_not_done, assert_passes

from infracourse import config, notebook
from infracourse.checks import lab03 as checks


@pytest.fixture(autouse=True)
def services():
    notebook.require("postgres", "pgbouncer", "postgres_replica")


@pytest.fixture
def dsn(pg_ns):
    dsn = pg_ns.postgres_dsn()
    with psycopg.connect(dsn, autocommit=True) as conn:
        checks.load_fixtures(conn)
    return dsn


# 1 PgBouncer connection ----------------------------------------------------------------------------------
def bouncer(database="course", **options):
    ep = config.endpoint("pgbouncer")
    settings = {"autocommit": True, "prepare_threshold": None, **options}
    return lambda: psycopg.connect(config.postgres_dsn(host=ep.host, port=ep.port, dbname=database), **settings)


def test_bouncer_reference_passes(dsn, pg_ns):
    assert_passes(checks.bouncer_connection(bouncer(), pg_ns.schema))


def test_bouncer_direct_to_postgres_fails(dsn, pg_ns):
    direct = lambda: psycopg.connect(config.postgres_dsn(), autocommit=True, prepare_threshold=None)  # noqa: E731
    assert_fails(checks.bouncer_connection(direct, pg_ns.schema), "not through pgbouncer")


def test_bouncer_session_pool_fails(dsn, pg_ns):
    assert_fails(checks.bouncer_connection(bouncer("course_session"), pg_ns.schema), "session pool")


def test_bouncer_without_autocommit_fails(dsn, pg_ns):
    assert_fails(checks.bouncer_connection(bouncer(autocommit=False), pg_ns.schema), "autocommit")


def test_bouncer_with_prepared_statements_fails(dsn, pg_ns):
    result = checks.bouncer_connection(bouncer(prepare_threshold=5), pg_ns.schema)
    assert_fails(result, hint=True, in_hint=("prepare_threshold",))


def test_bouncer_one_shared_connection_fails(dsn, pg_ns):
    shared = bouncer()()
    try:
        assert_fails(checks.bouncer_connection(lambda: shared, pg_ns.schema), "same connection")
    finally:
        shared.close()


def test_bouncer_unsolved_is_not_done(pg_ns):
    def stub():
        raise NotImplementedError

    assert_not_done(checks.bouncer_connection(stub, pg_ns.schema))


# 2 read router -------------------------------------------------------------------------------------------
class Router:
    """The reference: the replica once it replayed the last write's LSN (bounded wait), else the primary."""

    def __init__(self, write_pool, read_pool, max_wait_s=0.5):
        self.write_pool, self.read_pool, self.max_wait_s = write_pool, read_pool, max_wait_s
        self.last_lsn = None

    def write(self, query, params=()):
        with self.write_pool.connection() as c:
            c.execute(query, params)
            self.last_lsn = c.execute("SELECT pg_current_wal_lsn()").fetchone()[0]

    def caught_up(self, replica):
        deadline = time.monotonic() + self.max_wait_s
        while self.last_lsn is not None:
            if replica.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [self.last_lsn]).fetchone()[0]:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def read(self, query, params=()):
        with self.read_pool.connection() as c:
            if self.caught_up(c):
                return c.execute(query, params).fetchall()
        with self.write_pool.connection() as c:
            return c.execute(query, params).fetchall()


def test_router_reference_passes(dsn):
    assert_passes(checks.read_router(Router, dsn))


def test_router_always_replica_misses_the_write(dsn):
    class Naive(Router):
        def caught_up(self, replica):
            return True

    assert_fails(checks.read_router(Naive, dsn), "missing", in_hint=("pg_last_wal_replay_lsn",))


def test_router_fixed_sleep_misses_the_write(dsn):
    class Sleepy(Router):
        def caught_up(self, replica):
            time.sleep(self.max_wait_s)
            return True

    assert_fails(checks.read_router(Sleepy, dsn), "missing")


def test_router_always_primary_fails(dsn):
    class PrimaryOnly(Router):
        def read(self, query, params=()):
            with self.write_pool.connection() as c:
                return c.execute(query, params).fetchall()

    assert_fails(checks.read_router(PrimaryOnly, dsn), "ran on the primary")


def test_router_primary_after_any_write_fails(dsn):
    class PrimaryAfterWrites(Router):
        def caught_up(self, replica):
            return self.last_lsn is None

    assert_fails(checks.read_router(PrimaryAfterWrites, dsn), "still went to the primary")


def test_router_waiting_without_bound_fails(dsn):
    class Patient(Router):
        def caught_up(self, replica):
            self.max_wait_s = 5.0
            return super().caught_up(replica)

    assert_fails(checks.read_router(Patient, dsn), "took", "max_wait_s=0.5")


def test_router_returning_one_row_fails(dsn):
    class FetchOne(Router):
        def read(self, query, params=()):
            with self.read_pool.connection() as c:
                if self.caught_up(c):
                    return c.execute(query, params).fetchone()
            with self.write_pool.connection() as c:
                return c.execute(query, params).fetchone()

    assert_fails(checks.read_router(FetchOne, dsn), "list of rows", hint=False)


def test_router_unsolved_is_not_done(dsn):
    class Stub:
        def __init__(self, *args, **kwargs):
            raise NotImplementedError

    assert_not_done(checks.read_router(Stub, dsn))


# 3 Alembic expand ----------------------------------------------------------------------------------------
def upgrade(op):
    op.execute("ALTER TABLE customers ADD COLUMN display_name text")
    op.execute(checks.SYNC_FUNCTION)
    op.execute(checks.SYNC_TRIGGER)
    op.execute("UPDATE customers SET display_name = fullname WHERE display_name IS NULL")


def downgrade(op):
    op.execute("DROP TRIGGER customers_sync_name ON customers")
    op.execute("DROP FUNCTION customers_sync_name()")
    op.execute("ALTER TABLE customers DROP COLUMN display_name")


def test_alembic_reference_passes(dsn):
    assert_passes(checks.alembic_expand(upgrade, downgrade, dsn))


def test_alembic_rename_breaks_the_old_code(dsn):
    def rename(op):
        op.execute("ALTER TABLE customers RENAME COLUMN fullname TO display_name")

    def rename_back(op):
        op.execute("ALTER TABLE customers RENAME COLUMN display_name TO fullname")

    assert_fails(checks.alembic_expand(rename, rename_back, dsn), "old code's insert failed during your upgrade")


def test_alembic_not_null_column_fails(dsn):
    def strict(op):
        op.execute("ALTER TABLE customers ADD COLUMN display_name text NOT NULL")

    assert_fails(checks.alembic_expand(strict, downgrade, dsn), "your upgrade() failed", "null", hint=False)


def test_alembic_without_backfill_fails(dsn):
    def no_backfill(op):
        op.execute("ALTER TABLE customers ADD COLUMN display_name text")
        op.execute(checks.SYNC_FUNCTION)
        op.execute(checks.SYNC_TRIGGER)

    assert_fails(checks.alembic_expand(no_backfill, downgrade, dsn), "existing customers", in_hint=("backfill",))


def test_alembic_without_trigger_fails(dsn):
    def no_trigger(op):
        op.execute("ALTER TABLE customers ADD COLUMN display_name text")
        op.execute("UPDATE customers SET display_name = fullname")

    def no_trigger_down(op):
        op.execute("ALTER TABLE customers DROP COLUMN display_name")

    assert_fails(checks.alembic_expand(no_trigger, no_trigger_down, dsn), "old code wrote after", in_hint=("trigger",))


def test_alembic_one_way_sync_fails(dsn):
    one_way = checks.SYNC_FUNCTION.replace("NEW.fullname := coalesce(NEW.fullname, NEW.display_name);", "")

    def up(op):
        op.execute("ALTER TABLE customers ADD COLUMN display_name text")
        op.execute(one_way)
        op.execute(checks.SYNC_TRIGGER)
        op.execute("UPDATE customers SET display_name = fullname")

    assert_fails(checks.alembic_expand(up, downgrade, dsn), "new code", in_hint=("fullname from display_name",))


def test_alembic_downgrade_keeping_the_column_fails(dsn):
    def keep_column(op):
        op.execute("DROP TRIGGER customers_sync_name ON customers")
        op.execute("DROP FUNCTION customers_sync_name()")

    assert_fails(checks.alembic_expand(upgrade, keep_column, dsn), "still there", in_hint=("undoes",))


def test_alembic_downgrade_keeping_the_function_fails(dsn):
    def keep_function(op):
        op.execute("DROP TRIGGER customers_sync_name ON customers")
        op.execute("ALTER TABLE customers DROP COLUMN display_name")

    assert_fails(checks.alembic_expand(upgrade, keep_function, dsn), "function customers_sync_name")


def test_alembic_upgrade_with_an_sql_error_fails(dsn):
    def typo(op):
        op.execute("ALTER TABLE customer ADD COLUMN display_name text")

    assert_fails(checks.alembic_expand(typo, downgrade, dsn), "your upgrade() failed", "customer", hint=False)


def test_alembic_unsolved_is_not_done(dsn):
    def stub(op):
        raise NotImplementedError

    assert_not_done(checks.alembic_expand(stub, stub, dsn))


# 4 verified TLS ------------------------------------------------------------------------------------------
def test_tls_reference_passes(dsn):
    assert_passes(checks.verified_connection(lambda d, ca: make_conninfo(d, sslmode="verify-full", sslrootcert=ca),
                                             dsn))


def test_tls_require_fails(dsn):
    assert_fails(checks.verified_connection(lambda d, ca: make_conninfo(d, sslmode="require"), dsn),
                 "still connected")


def test_tls_verify_ca_fails_on_the_host_name(dsn):
    result = checks.verified_connection(lambda d, ca: make_conninfo(d, sslmode="verify-ca", sslrootcert=ca), dsn)
    assert_fails(result, "db.example.invalid", in_hint=("host name",))


def test_tls_require_with_the_ca_fails_on_the_host_name(dsn):
    result = checks.verified_connection(lambda d, ca: make_conninfo(d, sslmode="require", sslrootcert=ca), dsn)
    assert_fails(result, "db.example.invalid")


def test_tls_hard_coded_ca_fails(dsn):
    result = checks.verified_connection(
        lambda d, ca: make_conninfo(d, sslmode="verify-full", sslrootcert=checks.CA_FILE), dsn)
    assert_fails(result, "still connected", in_hint=("ca_file",))


def test_tls_system_store_fails(dsn):
    result = checks.verified_connection(lambda d, ca: make_conninfo(d, sslmode="verify-full", sslrootcert="system"),
                                        dsn)
    assert_fails(result, "refused", in_hint=("sslrootcert",))


def test_tls_dropping_the_given_settings_fails(dsn):
    result = checks.verified_connection(
        lambda d, ca: config.postgres_dsn(sslmode="verify-full", sslrootcert=ca), dsn)
    assert_fails(result, "lost settings", in_hint=("make_conninfo",))


def test_tls_unsolved_is_not_done(dsn):
    def stub(d, ca):
        raise NotImplementedError

    assert_not_done(checks.verified_connection(stub, dsn))


# 5 price adapter -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Price:
    amount: Decimal
    currency: str


class PriceLoader(Loader):
    def load(self, data):
        amount, currency = bytes(data).decode()[1:-1].split(",")
        return Price(Decimal(amount), currency)


def price_dumper(oid):
    class PriceDumper(Dumper):
        def dump(self, obj):
            return f"({obj.amount},{obj.currency})".encode()

    PriceDumper.oid = oid
    return PriceDumper


def register_price(conn):
    info = TypeInfo.fetch(conn, "price")
    conn.adapters.register_dumper(Price, price_dumper(info.oid))
    conn.adapters.register_loader(info.oid, PriceLoader)


def test_price_reference_passes(dsn):
    assert_passes(checks.price_adapter(register_price, Price, dsn))


def test_price_registered_globally_fails(dsn):
    @dataclass(frozen=True)
    class GlobalPrice(Price):  # its own class: the process-wide dumper it leaves behind serves no other test
        pass

    class GlobalLoader(Loader):
        def load(self, data):
            amount, currency = bytes(data).decode()[1:-1].split(",")
            return GlobalPrice(Decimal(amount), currency)

    def globally(conn):  # the type is made anew by each test, so the loader left for this oid is never used again
        info = TypeInfo.fetch(conn, "price")
        psycopg.adapters.register_dumper(GlobalPrice, price_dumper(info.oid))
        psycopg.adapters.register_loader(info.oid, GlobalLoader)

    assert_fails(checks.price_adapter(globally, GlobalPrice, dsn), "whole process", in_hint=("conn.adapters",))


def test_price_float_amount_fails(dsn):
    class FloatLoader(Loader):
        def load(self, data):
            amount, currency = bytes(data).decode()[1:-1].split(",")
            return Price(float(amount), currency)

    def floats(conn):
        info = TypeInfo.fetch(conn, "price")
        conn.adapters.register_dumper(Price, price_dumper(info.oid))
        conn.adapters.register_loader(info.oid, FloatLoader)

    assert_fails(checks.price_adapter(floats, Price, dsn), "float", in_hint=("Decimal",))


def test_price_dumper_without_oid_fails(dsn):
    def no_oid(conn):
        info = TypeInfo.fetch(conn, "price")
        conn.adapters.register_dumper(Price, price_dumper(0))
        conn.adapters.register_loader(info.oid, PriceLoader)

    assert_fails(checks.price_adapter(no_oid, Price, dsn), "(%s).currency", in_hint=("oid",))


def test_price_dumper_only_fails(dsn):
    def no_loader(conn):
        info = TypeInfo.fetch(conn, "price")
        conn.adapters.register_dumper(Price, price_dumper(info.oid))

    assert_fails(checks.price_adapter(no_loader, Price, dsn), "not a price", in_hint=("Loader",))


def test_price_wrong_text_form_fails(dsn):
    def swapped(conn):
        info = TypeInfo.fetch(conn, "price")

        class Swapped(Dumper):
            oid = info.oid

            def dump(self, obj):
                return f"({obj.amount:.0f},{obj.currency})".encode()

        conn.adapters.register_dumper(Price, Swapped)
        conn.adapters.register_loader(info.oid, PriceLoader)

    assert_fails(checks.price_adapter(swapped, Price, dsn), "the database holds")


def test_price_unsolved_is_not_done(dsn):
    def stub(conn):
        raise NotImplementedError

    assert_not_done(checks.price_adapter(stub, Price, dsn))


# 6 pool collector ----------------------------------------------------------------------------------------
GAUGES = {"db_pool_size": "pool_size", "db_pool_available": "pool_available",
          "db_pool_requests_waiting": "requests_waiting"}


class Collector:
    def __init__(self, *pools):
        self.pools = pools

    def stats(self, pool):
        return pool.get_stats()

    def collect(self):
        gauges = {name: GaugeMetricFamily(name, key, labels=["pool"]) for name, key in GAUGES.items()}
        errors = CounterMetricFamily("db_pool_requests_errors", "errors", labels=["pool"])
        for pool in self.pools:
            stats = self.stats(pool)
            for name, key in GAUGES.items():
                gauges[name].add_metric([pool.name], stats.get(key, 0))
            errors.add_metric([pool.name], stats.get("requests_errors", 0))
        yield from gauges.values()
        yield errors


def test_collector_reference_passes(dsn):
    assert_passes(checks.pool_collector(Collector, dsn))


def test_collector_pop_stats_resets_the_counter(dsn):
    class Popping(Collector):
        def stats(self, pool):
            return pool.pop_stats()

    assert_fails(checks.pool_collector(Popping, dsn), "reset", in_hint=("pop_stats",))


def test_collector_snapshot_at_registration_fails(dsn):
    class Snapshot(Collector):
        def __init__(self, *pools):
            super().__init__(*pools)
            self.frozen = {p.name: p.get_stats() for p in pools}

        def stats(self, pool):
            return self.frozen[pool.name]

    assert_fails(checks.pool_collector(Snapshot, dsn), "available=1", in_hint=("every scrape",))


def test_collector_first_pool_only_fails(dsn):
    class FirstOnly(Collector):
        def __init__(self, *pools):
            super().__init__(pools[0])

    assert_fails(checks.pool_collector(FirstOnly, dsn), 'pool="beta"')


def test_collector_errors_as_a_gauge_fails(dsn):
    class GaugeErrors(Collector):
        def collect(self):
            for family in super().collect():
                if family.name == "db_pool_requests_errors":
                    gauge = GaugeMetricFamily("db_pool_requests_errors_total", "errors", labels=["pool"])
                    for sample in family.samples:
                        gauge.add_metric([sample.labels["pool"]], sample.value)
                    family = gauge
                yield family

    assert_fails(checks.pool_collector(GaugeErrors, dsn), "counter")


def test_collector_unsolved_is_not_done(dsn):
    class Stub:
        def __init__(self, *pools):
            raise NotImplementedError

    assert_not_done(checks.pool_collector(Stub, dsn))


def test_tls_disable_fails(dsn):
    assert_fails(checks.verified_connection(lambda d, ca: make_conninfo(d, sslmode="disable"), dsn), "clear text")


REQUIREMENTS = {
    "1": {
        "each call returns a **new** psycopg connection": "test_bouncer_one_shared_connection_fails",
        "through PgBouncer": "test_bouncer_direct_to_postgres_fails",
        "to its **transaction** pool (the database `course`, not `course_session`)":
            "test_bouncer_session_pool_fails",
        "in autocommit": "test_bouncer_without_autocommit_fails",
        "able to run the same query any number of times from many clients":
            "test_bouncer_with_prepared_statements_fails",
    },
    "2": {
        "`write(query, params)` runs a write on the primary (`write_pool`) and remembers the LSN that contains it":
            "test_router_always_replica_misses_the_write",
        "`read(query, params)` returns all rows (`fetchall()`)": "test_router_returning_one_row_fails",
        "from the replica (`read_pool`)": "test_router_always_primary_fails",
        "then it waits, at most `max_wait_s`, for the replica to replay that LSN":
            ("test_router_waiting_without_bound_fails", "test_router_fixed_sleep_misses_the_write"),
        "and reads from the primary if the replica is still behind": "test_router_always_replica_misses_the_write",
        "also checks that reads go to the replica when it keeps up": "test_router_primary_after_any_write_fails",
    },
    "3": {
        "`upgrade` adds `display_name` without breaking the old code's inserts":
            ("test_alembic_rename_breaks_the_old_code", "test_alembic_not_null_column_fails"),
        "fills it for the existing rows": "test_alembic_without_backfill_fails",
        "keeps both columns in sync for every later insert, whichever of the two columns it writes":
            ("test_alembic_without_trigger_fails", "test_alembic_one_way_sync_fails"),
        "`downgrade` removes everything `upgrade` added":
            ("test_alembic_downgrade_keeping_the_column_fails", "test_alembic_downgrade_keeping_the_function_fails"),
    },
    "4": {
        "`dsn` with the TLS settings added (keep everything else it says)":
            "test_tls_dropping_the_given_settings_fails",
        "a connection is encrypted": "test_tls_disable_fails",
        "signed by the CA in `ca_file`":
            ("test_tls_hard_coded_ca_fails", "test_tls_system_store_fails", "test_tls_require_fails"),
        "and names the host the DSN connects to":
            ("test_tls_verify_ca_fails_on_the_host_name", "test_tls_require_with_the_ca_fails_on_the_host_name"),
    },
    "5": {
        "registers on `conn` (and only there: other connections must not change)":
            "test_price_registered_globally_fails",
        "a `Price` can be inserted, is stored with its exact amount and currency": "test_price_wrong_text_form_fails",
        "works where the server must know its type (`SELECT (%s).currency`)": "test_price_dumper_without_oid_fails",
        "`list_price` loads as a `Price` whose amount is a `Decimal`":
            ("test_price_dumper_only_fails", "test_price_float_amount_fails"),
    },
    "6": {
        "for each pool a sample labelled `pool=<pool.name>`": "test_collector_first_pool_only_fails",
        "at every scrape": "test_collector_snapshot_at_registration_fails",
        "of a **counter** `db_pool_requests_errors_total`": "test_collector_errors_as_a_gauge_fails",
        "A counter never goes down between scrapes.": "test_collector_pop_stats_resets_the_counter",
    },
}
