"""Checks of labs/01_postgres_fundamentals.ipynb.

Every check first reloads the tables it needs with its own rows (load_fixtures does all of them for the Setup
cell), so it judges the learner's code against data it knows. Concurrency checks give each thread its own
connection with a lock_timeout, and wait for threads with a deadline: a check never hangs.
"""

from __future__ import annotations

import csv
import random
import tempfile
from decimal import Decimal
from pathlib import Path

import psycopg

from infracourse.checking import CheckFailed, exercise, expect, postgres, time_limit
from infracourse.checking.explain import one_line

THREAD_DEADLINE_S = 30
CALL_DEADLINE_S = 15
STUCK_THREADS_HINT = "look for a transaction that never ends or a lock that is never released"

FIXTURES = {
    "users": """
        DROP TABLE IF EXISTS users CASCADE;
        CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL,
                            password_hash text NOT NULL);
        INSERT INTO users VALUES
            (1, 'alice', 'alice@example.com', 'scrypt$9f2c'), (2, 'bob', 'bob@example.com', 'scrypt$01aa'),
            (3, 'o''brien', 'obrien@example.com', 'scrypt$77e0'), (4, 'carol', 'carol@example.com', 'scrypt$c3d4'),
            (5, 'alice', 'alice.b@example.com', 'scrypt$5b5b')""",
    "products": """
        DROP TABLE IF EXISTS products CASCADE;
        CREATE TABLE products (sku text PRIMARY KEY, name text NOT NULL, price numeric(10, 2),
                               in_stock boolean NOT NULL)""",
    "inventory": """
        DROP TABLE IF EXISTS inventory CASCADE;
        CREATE TABLE inventory (sku text PRIMARY KEY, qty int NOT NULL)""",
    "sales": """
        DROP TABLE IF EXISTS sales CASCADE;
        CREATE TABLE sales (region text NOT NULL, rep text NOT NULL, amount int NOT NULL);
        INSERT INTO sales VALUES
            ('north', 'Alan', 120), ('north', 'Alan', 230), ('north', 'Edsger', 200), ('north', 'Edsger', 90),
            ('north', 'Niklaus', 80), ('north', 'Tony', 310),
            ('south', 'Ken', 130), ('south', 'Ken', 140), ('south', 'Barbara', 60), ('south', 'Barbara', 210),
            ('south', 'Dennis', 100),
            ('west', 'Radia', 500), ('west', 'Whitfield', 75)""",
    "employees": """
        DROP TABLE IF EXISTS employees CASCADE;
        CREATE TABLE employees (id int PRIMARY KEY, name text NOT NULL UNIQUE, manager_id int REFERENCES employees);
        INSERT INTO employees VALUES (1, 'Ada', NULL), (2, 'Grace', 1), (3, 'Linus', 2), (4, 'Margaret', 2),
            (5, 'Ken', 3), (6, 'Barbara', 1), (7, 'Alan', 6), (8, 'Edsger', 6), (9, 'Frances', 4),
            (10, 'Guido', 5)""",
    "accounts": """
        DROP TABLE IF EXISTS accounts CASCADE;
        CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance int NOT NULL);
        INSERT INTO accounts VALUES (1, 'alice', 100), (2, 'bob', 100), (3, 'carol', 100)""",
}


def _load(conn: psycopg.Connection, *tables: str) -> None:
    postgres.load(conn, FIXTURES, *tables)


def load_fixtures(conn: psycopg.Connection) -> list[str]:
    """Create every table of the lab with the rows the checks use; return the table names."""
    _load(conn, *FIXTURES)
    return sorted(FIXTURES)


def _as_tuples(rows: object) -> list[tuple]:
    expect(isinstance(rows, list), f"your function returned {type(rows).__name__}, expected a list of rows",
           hint="return cursor.fetchall()")
    return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in rows]


def _user_count(conn: psycopg.Connection) -> int:
    postgres.ready(conn)
    return conn.execute("SELECT count(*) FROM users").fetchone()[0]


# 1 -------------------------------------------------------------------------------------------------------
@exercise("1", "Find a user, injection-proof")
def find_user(fn, conn: psycopg.Connection) -> str:
    _load(conn, "users")
    alice = _as_tuples(fn(conn, "alice"))
    expect(alice == [(1, "alice", "alice@example.com"), (5, "alice", "alice.b@example.com")],
           f"find_user(conn, 'alice') returned {alice!r}",
           hint="both users called alice, as (id, name, email), ordered by id")
    try:
        obrien = _as_tuples(fn(conn, "o'brien"))
    except psycopg.Error as exc:
        expect(False, f"a name with a quote broke your query ({one_line(exc)})",
               hint="the name is pasted into the SQL text: pass it as a parameter (%s) instead")
    expect(obrien == [(3, "o'brien", "obrien@example.com")], f"find_user(conn, \"o'brien\") returned {obrien!r}")
    try:
        leaked = _as_tuples(fn(conn, "nobody' OR '1'='1"))
    except psycopg.Error:
        leaked = []
    expect(not leaked, f"the input nobody' OR '1'='1 returned {len(leaked)} users: an SQL injection",
           hint="never build SQL with f-strings or %; use conn.execute(query, (name,))")
    try:
        fn(conn, "x'; DELETE FROM users; --")
    except psycopg.Error:
        pass
    expect(_user_count(conn) == 5, "the input x'; DELETE FROM users; -- deleted rows: an SQL injection",
           hint="pass the name as a query parameter")
    return "quotes work, injections find nobody"


# 2 -------------------------------------------------------------------------------------------------------
@exercise("2", "Sort by a column the user picks")
def list_users(fn, conn: psycopg.Connection) -> str:
    _load(conn, "users")
    for column in ("name", "email", "id"):
        expected = conn.execute(f'SELECT id, name FROM users ORDER BY "{column}", id').fetchall()
        got = _as_tuples(fn(conn, column))
        expect([r[0] for r in got] == [r[0] for r in expected],
               f"list_users(conn, {column!r}) returned the users in the order {[r[0] for r in got]} (by id)",
               hint="ORDER BY the column given as an sql.Identifier")
        expect(got == expected, f"list_users(conn, {column!r}) should return (id, name) rows")
    for attempt in ("password_hash", "name; DELETE FROM users; --", 'name"; DELETE FROM users; --'):
        raised = None
        try:
            fn(conn, attempt)
        except ValueError:
            raised = "ValueError"
        except psycopg.Error as exc:
            raised = type(exc).__name__
        expect(_user_count(conn) == 5, f"list_users(conn, {attempt!r}) deleted users: an SQL injection",
               hint="compose the query with psycopg.sql.Identifier, never with f-strings")
        expect(raised == "ValueError", f"list_users(conn, {attempt!r}) did not raise ValueError",
               hint="check the column against SORTABLE before building the query")
    return "allowed columns sort, anything else raises ValueError"


# 3 -------------------------------------------------------------------------------------------------------
def _product_rows(count: int = 2000) -> list[tuple[str, str, str, str]]:
    rng = random.Random(3)
    rows = [(f"SKU-{i:05d}", f"Part {i}", f"{rng.randint(100, 99999) / 100:.2f}", rng.choice(["true", "false"]))
            for i in range(count - 3)]
    rows += [("BOLT-M6", 'Bolt, M6 "hex"', "0.35", "true"), ("NUT-FR", "Écrou à oreilles", "", "false"),
             ("GIFT", "Gift card", "", "true")]
    return rows


@exercise("3", "Bulk-load a CSV with COPY")
def load_products(fn, dsn: str) -> str:
    rows = _product_rows()
    calls = {"execute": 0, "rows sent by executemany": 0, "copy": 0}

    class SpyCursor(psycopg.Cursor):  # records which statements the learner's code sends
        def execute(self, query, params=None, **kwargs):
            calls["execute"] += 1
            return super().execute(query, params, **kwargs)

        def executemany(self, query, params_seq, **kwargs):
            params_seq = list(params_seq)
            calls["rows sent by executemany"] += len(params_seq)
            return super().executemany(query, params_seq, **kwargs)

        def copy(self, statement, params=None, **kwargs):
            calls["copy"] += 1
            return super().copy(statement, params, **kwargs)

    with tempfile.TemporaryDirectory() as folder, psycopg.connect(dsn, autocommit=True) as admin:
        path = Path(folder) / "products.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["sku", "name", "price", "in_stock"])
            writer.writerows(rows)
        _load(admin, "products")
        spied = psycopg.connect(dsn, autocommit=True, cursor_factory=SpyCursor)
        try:
            returned = time_limit.call(CALL_DEADLINE_S, fn, spied, path)
        except CheckFailed:  # a COPY that never ends locks products: end it on the server, not under the thread
            admin.execute("SELECT pg_terminate_backend(%s)", (spied.info.backend_pid,))
            raise
        finally:
            postgres.close_when_idle(spied, wait_s=5)
        count, nulls, total = admin.execute(
            "SELECT count(*), count(*) FILTER (WHERE price IS NULL), coalesce(sum(price), 0) FROM products").fetchone()
        bolt = admin.execute("SELECT name, price, in_stock FROM products WHERE sku = 'BOLT-M6'").fetchone()
        nut = admin.execute("SELECT name FROM products WHERE sku = 'NUT-FR'").fetchone()
    expected_total = sum(Decimal(r[2]) for r in rows if r[2])
    expect(count == len(rows), f"the table holds {count} products, the file has {len(rows)}",
           hint="skip the header line (HEADER true) and load every other line")
    expect(bolt == ('Bolt, M6 "hex"', Decimal("0.35"), True), f"the row BOLT-M6 was loaded as {bolt!r}",
           hint="the file is CSV: use FORMAT csv so quoted fields keep their commas and quotes")
    expect(nut == ("Écrou à oreilles",), "accented names did not survive the load", hint="open the file as UTF-8")
    expect(nulls == 2 and total == expected_total, "the prices are not right",
           hint="an empty price must become NULL: FORMAT csv does that")
    expect(calls["copy"] >= 1 and calls["rows sent by executemany"] == 0 and calls["execute"] < 5,
           f"the data is right but it went in as {calls['execute'] + calls['rows sent by executemany']} statements",
           hint="use cursor.copy() with a COPY ... FROM STDIN statement in CSV format, then copy.write() the file")
    expect(returned == len(rows), f"your function returned {returned!r}, expected the number of rows loaded",
           hint="after the COPY block, cursor.rowcount holds the number of rows")
    return f"{count} rows in one COPY"


# 4 -------------------------------------------------------------------------------------------------------
def _connections(dsn: str, n: int) -> list[psycopg.Connection]:
    conns = []
    for _ in range(n):
        c = psycopg.connect(dsn, autocommit=True)
        c.execute("SET lock_timeout = '5s'")
        c.execute("SET statement_timeout = '10s'")
        conns.append(c)
    return conns


@exercise("4", "Upsert stock")
def add_stock(fn, conn: psycopg.Connection, dsn: str) -> str:
    _load(conn, "inventory")
    first = fn(conn, "apple", 5)
    expect(first == 5, f"add_stock(conn, 'apple', 5) on an empty table returned {first!r}, expected 5",
           hint="return the quantity now stored (RETURNING qty)")
    second = fn(conn, "apple", 3)
    expect(second == 8, f"adding 3 more apples returned {second!r}, expected 8",
           hint="on conflict, add to the stored quantity (inventory.qty) instead of replacing it")
    threads, each = 8, 10
    conns = _connections(dsn, threads)
    try:
        returned = time_limit.in_threads(THREAD_DEADLINE_S, lambda c: [fn(c, "pear", 1) for _ in range(each)],
                                         [(c,) for c in conns], what="threads adding stock", hint=STUCK_THREADS_HINT)
    except psycopg.Error as exc:
        expect(False, f"under concurrency your code raised {one_line(exc)}",
               hint="checking for the row and then inserting is a race: let ON CONFLICT decide in one statement")
    finally:
        postgres.close_when_idle(*conns)
    postgres.ready(conn)
    final = conn.execute("SELECT qty FROM inventory WHERE sku = 'pear'").fetchone()
    expect(final == (threads * each,), f"{threads} threads added 1 pear {each} times each; the table says {final}",
           hint="compute the new quantity in SQL (inventory.qty + EXCLUDED.qty), not in Python")
    seen = sorted(v for batch in returned for v in batch)
    expect(seen == list(range(1, threads * each + 1)), "the quantities returned under concurrency are not right",
           hint="return the value from RETURNING, not one computed in Python")
    return f"{threads * each} concurrent upserts, none lost"


# 5 -------------------------------------------------------------------------------------------------------
REFERENCE_TOP_SELLERS = """
    SELECT region, rep, total FROM (
        SELECT region, rep, sum(amount) AS total,
               row_number() OVER (PARTITION BY region ORDER BY sum(amount) DESC, rep) AS position
        FROM sales GROUP BY region, rep) AS ranked
    WHERE position <= %(n)s ORDER BY region, total DESC, rep"""


@exercise("5", "Top sellers per region (window function)")
def top_sellers(query: str, conn: psycopg.Connection) -> str:
    _load(conn, "sales")
    for n in (2, 1, 3):
        got = postgres.learner_rows(conn, query, {"n": n})
        expected = postgres.reference_rows(conn, REFERENCE_TOP_SELLERS, {"n": n})
        per_region = {region: sum(1 for r in got if r[0] == region) for region in {r[0] for r in expected}}
        expect(all(count <= n for count in per_region.values()),
               f"with n={n} some region has more than {n} reps: {per_region}",
               hint="ties: break them by rep name so each region has at most n rows (row_number, not rank)")
        postgres.compare_rows(got, expected, columns=("region", "rep", "total"), what=f"with n={n}",
                              rows_hint="sum per (region, rep) first, then number the reps within each region "
                                        "by total",
                              order_hint="ORDER BY region, total DESC, rep")
    postgres.expect_columns(conn, query, ("region", "rep", "total"), {"n": 1})
    return "n = 1, 2 and 3"


# 6 -------------------------------------------------------------------------------------------------------
@exercise("6", "Transfer money, safe under concurrency", stretch=True)
def transfer(fn, conn: psycopg.Connection, dsn: str) -> str:
    _load(conn, "accounts")

    def balances() -> dict[int, int]:
        postgres.ready(conn)
        return dict(conn.execute("SELECT id, balance FROM accounts ORDER BY id").fetchall())

    # One call at a time, on a connection of the check's own: a call that never returns (a retry loop that
    # never gives up) fails the check and keeps using that connection, not the notebook's.
    [solo] = _connections(dsn, 1)
    try:
        time_limit.call(CALL_DEADLINE_S, fn, solo, 1, 2, 30)
        expect(balances() == {1: 70, 2: 130, 3: 100},
               f"after transfer(conn, 1, 2, 30) the balances are {balances()}",
               hint="take the amount from the first account and add it to the second")
        for args, why in [((1, 2, 1000), "more than the balance"),
                          ((1, 999, 10), "to an account that does not exist")]:
            before = balances()
            try:
                time_limit.call(CALL_DEADLINE_S, fn, solo, *args)
                raised = None
            except ValueError:
                raised = "ValueError"
            except psycopg.Error as exc:
                raised = one_line(exc)
            after = balances()
            expect(after == before, f"a transfer of {why} changed the balances from {before} to {after}",
                   hint="run both updates in one transaction (with conn.transaction():) and raise to roll it back")
            expect(raised == "ValueError", f"a transfer of {why} did not raise ValueError (got {raised})",
                   hint="check how many rows each UPDATE changed (cursor.rowcount)")
    finally:
        postgres.close_when_idle(solo)
    postgres.ready(conn)
    with conn.transaction():
        conn.execute("UPDATE accounts SET balance = 100")
    threads, each = 6, 25
    plans = []
    for t in range(threads):
        rng = random.Random(t)
        plans.append([(*rng.sample([1, 2, 3], 2), rng.randint(5, 60)) for _ in range(each)])

    def run(c, plan):
        done = []
        for source, target, amount in plan:
            try:
                fn(c, source, target, amount)
                done.append((source, target, amount))
            except ValueError:
                pass
        return done

    conns = _connections(dsn, threads)
    try:
        results = time_limit.in_threads(THREAD_DEADLINE_S, run, list(zip(conns, plans, strict=True)),
                                        what="threads making transfers", hint=STUCK_THREADS_HINT)
    except psycopg.errors.DeadlockDetected:
        expect(False, "two transfers deadlocked (A->B and B->A at the same time)",
               hint="lock both accounts in the same order (say, lowest id first) before changing either")
    except psycopg.Error as exc:
        expect(False, f"under concurrency your code raised {one_line(exc)}",
               hint="lock the rows you read (FOR UPDATE), or retry serialization failures")
    finally:
        postgres.close_when_idle(*conns)
    expected = {1: 100, 2: 100, 3: 100}
    for source, target, amount in (move for done in results for move in done):
        expected[source] -= amount
        expected[target] += amount
    final = balances()
    expect(min(final.values()) >= 0, f"an account went below zero under concurrency: {final}",
           hint="check the balance and update it atomically: UPDATE ... WHERE balance >= amount, or FOR UPDATE")
    expect(sum(final.values()) == 300, f"money appeared or vanished: the total is {sum(final.values())}, not 300",
           hint="a read-modify-write in Python loses updates: lock the rows or let SQL do the arithmetic")
    expect(final == expected, f"the balances {final} do not match the transfers that succeeded ({expected})",
           hint="a transfer that returns normally must have moved the money, all of it")
    return f"{threads * each} concurrent transfer attempts, no money lost"


# 7 -------------------------------------------------------------------------------------------------------
REFERENCE_REPORTS = """
    WITH RECURSIVE below AS (
        SELECT e.id, e.name, 1 AS depth FROM employees e JOIN employees m ON e.manager_id = m.id
        WHERE m.name = %(manager)s
        UNION ALL
        SELECT e.id, e.name, b.depth + 1 FROM employees e JOIN below b ON e.manager_id = b.id)
    SELECT name, depth FROM below ORDER BY depth, name"""


@exercise("7", "Everyone under a manager, at any depth", stretch=True)
def reports_under(query: str, conn: psycopg.Connection) -> str:
    _load(conn, "employees")
    for manager in ("Grace", "Ada", "Barbara", "Guido"):
        got = postgres.learner_rows(conn, query, {"manager": manager})
        expected = postgres.reference_rows(conn, REFERENCE_REPORTS, {"manager": manager})
        names = {r[0] for r in got}
        expect(manager not in names, f"for {manager} the result includes {manager} themself",
               hint="start from the manager's direct reports, not from the manager")
        expect(names == {r[0] for r in expected},
               f"for {manager} you found {len(names)} people, expected {len(expected)}",
               hint="a recursive CTE: direct reports UNION ALL the reports of the rows found so far")
        if expected:  # Guido has no reports: the names check above already saw that none were found
            postgres.compare_rows(got, expected, columns=("name", "depth"), what=f"for {manager}",
                                  rows_hint="direct reports have depth 1, their reports depth 2, and so on",
                                  order_hint="ORDER BY depth, name")
    postgres.expect_columns(conn, query, ("name", "depth"), {"manager": "Ada"})
    return "4 managers, up to 4 levels deep"
