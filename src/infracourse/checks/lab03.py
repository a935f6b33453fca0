"""Checks of labs/03_postgres_at_scale.ipynb.

They run the learner's code against the live PgBouncer, the streaming replica (whose replay they pause to make
replication lag certain), Alembic on the lab's schema under a writer, the TLS-enabled primary with the course CA
and a rogue one, and a Prometheus registry scraped the way Prometheus would.
"""

from __future__ import annotations

import runpy
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool

from infracourse import config
from infracourse.checking import exercise, expect, postgres, time_limit
from infracourse.checking.explain import one_line
from infracourse.paths import services_config
from infracourse.services import course_ca

CALL_DEADLINE_S = 20
CA_FILE = str(course_ca.ca_cert_path())
TRANSACTION_POOL, SESSION_POOL = "course", "course_session"  # PgBouncer's databases (services/pgbouncer)
WRONG_HOST = "db.example.invalid"

FIXTURES = {
    "accounts": """
        DROP TABLE IF EXISTS accounts CASCADE;
        CREATE TABLE accounts (id int PRIMARY KEY, balance numeric(12, 2) NOT NULL);
        INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 100) AS g""",
    "notes": """
        DROP TABLE IF EXISTS notes CASCADE;
        CREATE TABLE notes (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text NOT NULL)""",
    "customers": """
        DROP TABLE IF EXISTS customers, alembic_version CASCADE;
        DROP FUNCTION IF EXISTS customers_sync_name() CASCADE""",
    "products": """
        DROP TABLE IF EXISTS products CASCADE;
        DROP TYPE IF EXISTS price CASCADE;
        CREATE TYPE price AS (amount numeric(12, 2), currency char(3));
        CREATE TABLE products (sku text PRIMARY KEY, list_price price)""",
}


def load_fixtures(conn: psycopg.Connection) -> list[str]:
    """Create every table of the lab; return the fixture names."""
    postgres.load(conn, FIXTURES, *FIXTURES)
    return sorted(FIXTURES)


def replica_dsn(dsn: str) -> str:
    """DSN, but to the read replica."""
    return make_conninfo(dsn, port=config.endpoint("postgres_replica").port)


def _first_line(exc: BaseException) -> str:
    """The error itself: SQLAlchemy wraps psycopg's in .orig."""
    return one_line(getattr(exc, "orig", None) or exc)


# 1 -------------------------------------------------------------------------------------------------------
@exercise("1", "A connection for PgBouncer's transaction pool",
          needs_own_services="logs in to PgBouncer, whose one login and database are the admin's")
def bouncer_connection(connect: Callable[[], psycopg.Connection], schema: str) -> str:
    bouncer = config.endpoint("pgbouncer")
    conns: list[psycopg.Connection] = []
    try:
        for _ in range(4):
            c = time_limit.bounded(CALL_DEADLINE_S, connect, what="bouncer_connect()")
            expect(isinstance(c, psycopg.Connection), f"bouncer_connect() returned {type(c).__name__}, "
                   "expected a psycopg connection")
            conns.append(c)
        expect(len({id(c) for c in conns}) == len(conns), "bouncer_connect() returned the same connection twice",
               hint="open a new connection on every call (PgBouncer is what shares the server connections)")
        first = conns[0]
        expect(first.info.port == bouncer.port, f"the connection goes to port {first.info.port}, not through "
               f"PgBouncer (port {bouncer.port})", hint='use config.endpoint("pgbouncer") for host and port')
        expect(first.info.dbname != SESSION_POOL, "the connection uses the session pool (course_session): "
               "each client keeps a server connection for its whole session",
               hint=f"PgBouncer's transaction pool is the database {TRANSACTION_POOL!r}")
        expect(first.info.dbname == TRANSACTION_POOL, f"the connection asks PgBouncer for the database "
               f"{first.info.dbname!r}", hint=f"PgBouncer's transaction pool is the database {TRANSACTION_POOL!r}")
        expect(first.autocommit, "the connection is not in autocommit: every query opens a transaction that holds "
               "a server connection until you commit", hint="autocommit=True")
        query = f'SELECT balance FROM "{schema}".accounts WHERE id = %s'
        for round_ in range(10):  # many clients, the same query again and again, as a web app does
            for c in conns:
                try:
                    c.execute(query, [round_ + 1]).fetchone()
                except psycopg.Error as exc:
                    expect(False, f"running the same query 10 times from 4 clients failed: {_first_line(exc)}",
                           hint="PgBouncer 1.18 cannot keep psycopg's server-side prepared statements: "
                                "turn them off with the connection's prepare_threshold")
        expect(first.prepare_threshold is None, f"prepare_threshold is {first.prepare_threshold}: after that many "
               "runs psycopg prepares the query on one server connection, which other clients then collide with",
               hint="prepare_threshold=None")
    finally:
        for c in conns:
            c.close()
    return "4 clients x 10 runs of one query through the transaction pool"


# 2 -------------------------------------------------------------------------------------------------------
@contextmanager
def _replay_paused(dsn: str) -> Iterator[None]:
    with psycopg.connect(replica_dsn(dsn), autocommit=True) as replica:
        replica.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            replica.execute("SELECT pg_wal_replay_resume()")


def _wait_for_replica(dsn: str) -> None:
    """Until the replica has replayed everything the primary wrote so far (the check's own DDL)."""
    with psycopg.connect(dsn, autocommit=True) as primary, psycopg.connect(replica_dsn(dsn), autocommit=True) as r:
        r.execute("SELECT pg_wal_replay_resume()")
        (lsn,) = primary.execute("SELECT pg_current_wal_lsn()").fetchone()
        deadline = time.monotonic() + 15
        while not r.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn]).fetchone()[0]:
            expect(time.monotonic() < deadline, "the replica did not catch up within 15 s",
                   hint="`course status` shows whether postgres_replica is healthy")
            time.sleep(0.01)


def _read(router: object, query: str, params: list[object], what: str) -> list[tuple]:
    rows = time_limit.bounded(CALL_DEADLINE_S, router.read, query, params, what=what,  # type: ignore[attr-defined]
                              hint="bound the wait for the replica with max_wait_s")
    expect(isinstance(rows, list), f"{what} returned {type(rows).__name__}, expected the list of rows (fetchall())")
    return [tuple(r) for r in rows]


@exercise("2", "A read router that keeps read-your-writes",
          needs_own_services="pauses the replica's replay, which would stall every learner's reads from it")
def read_router(router_class: type, dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as admin:
        postgres.load(admin, FIXTURES, "notes")
    _wait_for_replica(dsn)
    kwargs = {"autocommit": True}
    with ConnectionPool(dsn, min_size=1, max_size=2, kwargs=kwargs, timeout=5, name="lab03-writes") as writes, \
            ConnectionPool(replica_dsn(dsn), min_size=1, max_size=2, kwargs=kwargs, timeout=5,
                           name="lab03-reads") as reads:
        router = router_class(writes, reads, max_wait_s=0.5)
        where = _read(router, "SELECT pg_is_in_recovery()", [], "read() before any write")
        expect(where == [(True,)], "with no write to wait for, read() ran on the primary",
               hint="reads go to the read pool (the replica) unless a recent write is not replayed there yet")
        with _replay_paused(dsn):
            time_limit.bounded(CALL_DEADLINE_S, router.write, "INSERT INTO notes (body) VALUES (%s)", ["paused"],
                               what="write(...)")
            started = time.monotonic()
            rows = _read(router, "SELECT body FROM notes WHERE body = %s", ["paused"], "read() after a write")
            took = time.monotonic() - started
        expect(rows == [("paused",)], "the note written just before was missing from read(): the replica had "
               "not replayed it yet", hint="after a write, wait (up to max_wait_s) until the replica's "
               "pg_last_wal_replay_lsn() reaches the write's pg_current_wal_lsn(), else read from the primary")
        expect(took < 0.5 + 1.5, f"read() took {took:.1f} s with max_wait_s=0.5",
               hint="give up waiting for the replica after max_wait_s and read from the primary")
    with ConnectionPool(dsn, min_size=1, max_size=2, kwargs=kwargs, timeout=5, name="lab03-writes") as writes, \
            ConnectionPool(replica_dsn(dsn), min_size=1, max_size=2, kwargs=kwargs, timeout=5,
                           name="lab03-reads") as reads:
        router = router_class(writes, reads, max_wait_s=3.0)
        time_limit.bounded(CALL_DEADLINE_S, router.write, "INSERT INTO notes (body) VALUES (%s)", ["replayed"],
                           what="write(...)")
        where = _read(router, "SELECT pg_is_in_recovery()", [], "read() after a write the replica replays")
        expect(where == [(True,)], "after a write that the replica replays in milliseconds, read() still went to "
               "the primary", hint="wait for the replica to replay the write's LSN instead of always using the "
                                   "primary after a write")
        rows = _read(router, "SELECT body FROM notes WHERE body = %s", ["replayed"], "read()")
        expect(rows == [("replayed",)], "read() from the replica did not return the note just written")
    return "replica by default, the write's LSN awaited, the primary when the replica lags"


# 3 -------------------------------------------------------------------------------------------------------
_SYNC = runpy.run_path(str(services_config() / "alembic" / "customers_sql.py"))  # the lesson's own trigger
SYNC_FUNCTION: str = _SYNC["SYNC_FUNCTION"]
SYNC_TRIGGER: str = _SYNC["SYNC_TRIGGER"]
LEARNER_REVISION: dict[str, Callable[[object], None]] = {}  # what the generated revision file calls
BASE_ROWS = 200

_BASE_REVISION = '''
from alembic import op

revision, down_revision, branch_labels, depends_on = "0001", None, None, None


def upgrade():
    op.execute("CREATE TABLE customers (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, fullname text NOT NULL)")
    op.execute("INSERT INTO customers (fullname) SELECT 'customer ' || g FROM generate_series(1, {rows}) AS g")


def downgrade():
    op.execute("DROP TABLE customers")
'''
_LEARNER_REVISION = '''
from alembic import op

from infracourse.checks import lab03

revision, down_revision, branch_labels, depends_on = "0002", "0001", None, None


def upgrade():
    lab03.LEARNER_REVISION["upgrade"](op)


def downgrade():
    lab03.LEARNER_REVISION["downgrade"](op)
'''


def _script_folder(root: Path) -> Path:
    """An Alembic project: the course's env.py, a base revision and one that calls the learner's functions."""
    (root / "versions").mkdir()
    (root / "env.py").write_text((services_config() / "alembic" / "env.py").read_text())
    (root / "script.py.mako").write_text((services_config() / "alembic" / "script.py.mako").read_text())
    (root / "versions" / "0001_base.py").write_text(_BASE_REVISION.format(rows=BASE_ROWS))
    (root / "versions" / "0002_yours.py").write_text(_LEARNER_REVISION)
    return root


@contextmanager
def _old_code_writing(dsn: str) -> Iterator[dict]:
    """The old code (it knows only fullname) inserting a customer every few ms during the block."""
    stop, stats = threading.Event(), {"ok": 0, "errors": []}

    def loop() -> None:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("SET statement_timeout = '5s'")
            while not stop.is_set():
                try:
                    c.execute("INSERT INTO customers (fullname) VALUES ('old code')")
                    stats["ok"] += 1
                except psycopg.Error as exc:
                    stats["errors"].append(_first_line(exc))
                time.sleep(0.003)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    time.sleep(0.1)
    try:
        yield stats
    finally:
        time.sleep(0.1)
        stop.set()
        thread.join(timeout=10)


def _migrate(cfg: object, direction: str, target: str, what: str) -> None:
    from alembic import command

    try:
        time_limit.bounded(CALL_DEADLINE_S * 2, getattr(command, direction), cfg, target, what=what,
                           hint="a statement waiting for a lock: the check's writer only inserts rows")
    except psycopg.Error as exc:
        expect(False, f"{what} failed: {_first_line(exc)}")
    except Exception as exc:
        if type(exc).__module__.startswith("sqlalchemy"):
            expect(False, f"{what} failed: {_first_line(exc)}")
        raise


def _columns(conn: psycopg.Connection) -> set[str]:
    return {name for (name,) in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = 'customers'")}


@exercise("3", "An Alembic expand revision, upgraded and downgraded under writes")
def alembic_expand(upgrade: Callable[[object], None], downgrade: Callable[[object], None], dsn: str) -> str:
    from alembic.config import Config

    with psycopg.connect(dsn, autocommit=True) as conn:
        postgres.load(conn, FIXTURES, "customers")
        (schema,) = conn.execute("SELECT current_schema()").fetchone()
        LEARNER_REVISION.update(upgrade=upgrade, downgrade=downgrade)
        with tempfile.TemporaryDirectory(prefix="lab03-alembic-") as folder:
            cfg = Config(attributes={"schema": schema, "lock_timeout": "5s"})
            cfg.set_main_option("script_location", str(_script_folder(Path(folder))))
            _migrate(cfg, "upgrade", "0001", "creating the customers table")
            with _old_code_writing(dsn) as old:
                _migrate(cfg, "upgrade", "0002", "your upgrade()")
            expect(not old["errors"], f"the old code's insert failed during your upgrade: {old['errors'][0]}"
                   if old["errors"] else "", hint="add display_name as a nullable column: the old code does not "
                                                  "know it")
            expect("display_name" in _columns(conn), "after your upgrade there is no column display_name")
            (unfilled_old,) = conn.execute(f"SELECT count(*) FROM customers WHERE id <= {BASE_ROWS} "
                                           "AND display_name IS DISTINCT FROM fullname").fetchone()
            expect(unfilled_old == 0, f"{unfilled_old} of the {BASE_ROWS} existing customers have no display_name "
                   "(or a different one)", hint="backfill: UPDATE customers SET display_name = fullname ...")
            (unfilled_new,) = conn.execute(f"SELECT count(*) FROM customers WHERE id > {BASE_ROWS} "
                                           "AND display_name IS DISTINCT FROM fullname").fetchone()
            expect(unfilled_new == 0, f"{unfilled_new} customers the old code wrote after your upgrade have no "
                   "display_name", hint="a BEFORE INSERT OR UPDATE trigger (checks.SYNC_FUNCTION, "
                                        "checks.SYNC_TRIGGER) fills it for the old code")
            try:
                conn.execute("INSERT INTO customers (display_name) VALUES ('new code')")
            except psycopg.Error as exc:
                expect(False, f"the new code's insert (display_name only) failed: {_first_line(exc)}",
                       hint="the trigger must also fill fullname from display_name")
            with _old_code_writing(dsn) as old:
                _migrate(cfg, "downgrade", "0001", "your downgrade()")
            expect(not old["errors"], f"the old code's insert failed during your downgrade: {old['errors'][0]}"
                   if old["errors"] else "", hint="drop the trigger together with its function")
            expect("display_name" not in _columns(conn), "after your downgrade the column display_name is still "
                   "there", hint="downgrade() undoes everything upgrade() did")
            (functions,) = conn.execute("SELECT count(*) FROM pg_proc WHERE proname = 'customers_sync_name' "
                                        "AND pronamespace = current_schema()::regnamespace").fetchone()
            expect(functions == 0, "after your downgrade the function customers_sync_name is still there",
                   hint="DROP FUNCTION customers_sync_name() after its trigger")
            _migrate(cfg, "upgrade", "0002", "your upgrade() after your downgrade")
            (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            expect(version == "0002", f"alembic_version says {version!r} after the last upgrade")
    return "expand, downgrade and expand again with the old code writing throughout"


# 4 -------------------------------------------------------------------------------------------------------
def _outcome(dsn: str) -> str:
    try:
        with psycopg.connect(dsn) as c:
            return "encrypted" if c.pgconn.ssl_in_use else "clear text"
    except psycopg.OperationalError as exc:
        return "refused: " + _first_line(exc)


def _answer(fn: Callable[[str, str], str], dsn: str, ca_file: str) -> str:
    answer = time_limit.bounded(CALL_DEADLINE_S, fn, dsn, ca_file, what="verified_dsn(dsn, ca_file)")
    expect(isinstance(answer, str), f"verified_dsn returned {type(answer).__name__}, expected a DSN string")
    return answer


@exercise("4", "A connection that verifies the server")
def verified_connection(fn: Callable[[str, str], str], dsn: str) -> str:
    answer = _answer(fn, dsn, CA_FILE)
    got = _outcome(answer)
    expect(got == "encrypted", f"a connection with your DSN: {got}",
           hint="sslrootcert names the CA file you are given")
    with psycopg.connect(answer) as c, psycopg.connect(dsn) as given:
        schemas = [x.execute("SELECT current_schema()").fetchone()[0] for x in (c, given)]
    expect(schemas[0] == schemas[1], "your DSN lost settings of the one you were given (its schema is "
           f"{schemas[0]!r}, not {schemas[1]!r})", hint="add to the DSN with psycopg.conninfo.make_conninfo(dsn, ...)")
    with tempfile.TemporaryDirectory(prefix="lab03-tls-") as folder:
        copy = Path(folder) / "ca-copy.crt"
        copy.write_bytes(Path(CA_FILE).read_bytes())
        expect(_outcome(_answer(fn, dsn, str(copy))) == "encrypted",
               "with the same CA in another file your DSN does not connect", hint="use the ca_file argument")
        rogue, _ = course_ca.make_ca("rogue CA")
        rogue_file = str(course_ca.write_pem(rogue, Path(folder) / "rogue.crt"))
        got = _outcome(_answer(fn, dsn, rogue_file))
        expect(got.startswith("refused"), "given a CA that did not sign the server's certificate, your DSN still "
               f"connected ({got})", hint="the DSN must use ca_file, and a mode that checks the certificate")
    wrong_name = make_conninfo(answer, host=WRONG_HOST, hostaddr=config.endpoint("postgres").host)
    got = _outcome(wrong_name)
    expect(got.startswith("refused"), f"reached under the name {WRONG_HOST} (whose certificate it is not), your "
           f"connection still {'was ' if got != 'refused' else ''}{got}",
           hint="sslmode=verify-ca checks who signed the certificate, not the host name in it")
    return "encrypted with the course CA; a rogue CA and a wrong host name refused"


# 5 -------------------------------------------------------------------------------------------------------
PRICES = {"tea": ("4.10", "EUR"), "mug": ("12345.67", "USD"), "spoon": ("0.05", "GBP")}


@exercise("5", "A type adapter for prices, on every pool connection")
def price_adapter(register: Callable[[psycopg.Connection], None], price_class: type, dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as admin:
        postgres.load(admin, FIXTURES, "products")
    with psycopg.connect(dsn, autocommit=True) as first:  # once here, where an error shows its traceback
        time_limit.bounded(CALL_DEADLINE_S, register, first, what="register_price(conn)")
    with ConnectionPool(dsn, min_size=2, max_size=2, configure=register, kwargs={"autocommit": True}, timeout=10,
                        name="lab03-prices") as pool:
        try:
            pool.wait(timeout=CALL_DEADLINE_S)
        except Exception as exc:  # noqa: BLE001 - the pool reports a failing configure as a timeout
            expect(False, f"the pool could not open a connection with register_price as configure: {exc}",
                   hint="register_price(conn) takes the pool's new connection and must not close it")
        with pool.connection() as c:
            for sku, (amount, currency) in PRICES.items():
                try:
                    c.execute("INSERT INTO products VALUES (%s, %s)", [sku, price_class(Decimal(amount), currency)])
                except psycopg.Error as exc:
                    expect(False, f"inserting a Price failed: {_first_line(exc)}")
            stored = dict(c.execute("SELECT sku, ((list_price).amount::text, (list_price).currency) "
                                    "FROM products").fetchall())
            expect(stored == {sku: value for sku, value in PRICES.items()},
                   f"the database holds {stored['tea']!r} for tea, expected ('4.10', 'EUR')",
                   hint="dump a Price as the composite's text: (amount,currency)")
            try:
                (currency,) = c.execute("SELECT (%s).currency", [price_class(Decimal("1.00"), "CHF")]).fetchone()
            except psycopg.Error as exc:
                expect(False, f"`SELECT (%s).currency` with a Price parameter failed: {_first_line(exc)}",
                       hint="give the Dumper the oid of the price type (TypeInfo.fetch) so the server knows it")
            expect(currency == "CHF", f"`SELECT (%s).currency` with a CHF price returned {currency!r}")
        for _ in range(2):  # both of the pool's connections
            with pool.connection() as c:
                (loaded,) = c.execute("SELECT list_price FROM products WHERE sku = 'mug'").fetchone()
                expect(isinstance(loaded, price_class), f"list_price loaded as {type(loaded).__name__}, not a Price",
                       hint="register a Loader for the price type's oid on the connection")
                expect(isinstance(loaded.amount, Decimal), f"the amount loaded as {type(loaded.amount).__name__}: "
                       "money in binary floating point loses cents", hint="Decimal(text)")
                expect((loaded.amount, loaded.currency) == (Decimal("12345.67"), "USD"),
                       f"loaded {loaded!r}, expected 12345.67 USD")
    with psycopg.connect(dsn) as plain:
        (untaught,) = plain.execute("SELECT list_price FROM products WHERE sku = 'mug'").fetchone()
    expect(isinstance(untaught, str), "a connection that register_price never saw also loads Prices: the adapters "
           "were registered for the whole process", hint="register on conn.adapters, not psycopg.adapters")
    return "dumped and loaded exactly on every pool connection, nowhere else"


# 6 -------------------------------------------------------------------------------------------------------
def _scrape(registry: object) -> dict[tuple[str, str], tuple[str, float]]:
    """(sample name, pool label) -> (family type, value), as Prometheus would read them."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    text = time_limit.bounded(CALL_DEADLINE_S, generate_latest, registry, what="a scrape of your collector")
    return {(s.name, s.labels.get("pool", "")): (family.type, s.value)
            for family in text_string_to_metric_families(text.decode()) for s in family.samples}


GAUGES = ("db_pool_size", "db_pool_available", "db_pool_requests_waiting")
ERRORS = "db_pool_requests_errors_total"


@exercise("6", "Gauges and a counter for several pools", stretch=True)
def pool_collector(collector_class: type, dsn: str) -> str:
    from prometheus_client import CollectorRegistry

    with ConnectionPool(dsn, min_size=1, max_size=1, timeout=0.3, name="alpha") as alpha, \
            ConnectionPool(dsn, min_size=1, max_size=1, timeout=0.3, name="beta") as beta:
        alpha.wait(timeout=10)
        beta.wait(timeout=10)
        registry = CollectorRegistry()
        registry.register(collector_class(alpha, beta))
        first = _scrape(registry)
        for name in (*GAUGES, ERRORS):
            for pool in ("alpha", "beta"):
                expect((name, pool) in first, f"no sample {name}{{pool=\"{pool}\"}} in the scrape",
                       hint="one sample per pool, labelled pool=<pool.name>")
        expect(all(first[(n, p)][0] == "gauge" for n in GAUGES for p in ("alpha", "beta")),
               "the pool sizes should be gauges")
        expect(first[(ERRORS, "alpha")][0] == "counter", f"{ERRORS} should be a counter (it only grows)",
               hint="CounterMetricFamily('db_pool_requests_errors', ...): the client adds _total")
        held = alpha.getconn()
        try:
            waiter = threading.Thread(target=lambda: _timing_out(alpha), daemon=True)
            waiter.start()
            time.sleep(0.1)
            during = _scrape(registry)
            waiter.join(timeout=5)
        finally:
            alpha.putconn(held)
        available, waiting = (during[(name, "alpha")][1] for name in ("db_pool_available", "db_pool_requests_waiting"))
        expect(available == 0 and waiting == 1, "while alpha's only connection was out and a request waited, the "
               f"scrape said available={available:g}, waiting={waiting:g}",
               hint="read pool.get_stats() in collect(), at every scrape")
        expect(during[("db_pool_available", "beta")][1] == 1, "beta's numbers changed with alpha's: each pool "
               "needs its own sample")
        after, again = _scrape(registry), _scrape(registry)
        expect(after[(ERRORS, "alpha")][1] == 1, f"after one request timed out, {ERRORS}{{pool=\"alpha\"}} is "
               f"{after[(ERRORS, 'alpha')][1]:g}", hint="get_stats()['requests_errors'] (0 when absent)")
        expect(again[(ERRORS, "alpha")][1] == 1, f"a second scrape reset the counter to "
               f"{again[(ERRORS, 'alpha')][1]:g}: a counter never goes down between scrapes",
               hint="pop_stats() resets the pool's counters; get_stats() reads them")
    return "two pools, live gauges, a counter that only grows"


def _timing_out(pool: ConnectionPool) -> None:
    try:
        with pool.connection():
            pass
    except Exception:  # noqa: BLE001, S110 - the PoolTimeout is the point: it becomes requests_errors
        pass
