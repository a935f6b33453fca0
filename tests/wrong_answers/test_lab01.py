"""Lab 01 checks fail on plausible wrong answers, with a message that helps, and pass the reference answers."""

from __future__ import annotations

import csv
import threading
import time

import pytest
from psycopg import sql
from verdicts import assert_fails, assert_not_done, assert_passes

from infracourse.checks import lab01 as checks


@pytest.fixture
def dsn(pg_ns):
    return pg_ns.postgres_dsn()


# 1 find_user ---------------------------------------------------------------------------------------------
def find_user(conn, name):
    return conn.execute("SELECT id, name, email FROM users WHERE name = %s ORDER BY id", (name,)).fetchall()


def test_find_user_reference_passes(conn):
    assert_passes(checks.find_user(find_user, conn))


def test_find_user_fstring_fails_on_a_quote(conn):
    def fstring(conn, name):
        return conn.execute(f"SELECT id, name, email FROM users WHERE name = '{name}' ORDER BY id").fetchall()

    assert_fails(checks.find_user(fstring, conn), "a quote broke your query")


def test_find_user_wrong_columns_fails(conn):
    def star(conn, name):
        return conn.execute("SELECT * FROM users WHERE name = %s ORDER BY id", (name,)).fetchall()

    result = checks.find_user(star, conn)
    assert_fails(result, "returned", in_hint=("(id, name, email)",))


def test_find_user_stub_is_not_done(conn):
    def stub(conn, name):
        raise NotImplementedError

    assert_not_done(checks.find_user(stub, conn))


# 2 list_users --------------------------------------------------------------------------------------------
def list_users(conn, order_by):
    if order_by not in {"id", "name", "email"}:
        raise ValueError(order_by)
    query = sql.SQL("SELECT id, name FROM users ORDER BY {}, id").format(sql.Identifier(order_by))
    return conn.execute(query).fetchall()


def test_list_users_reference_passes(conn):
    assert_passes(checks.list_users(list_users, conn))


def test_list_users_identifier_without_allow_list_fails(conn):
    def no_allow_list(conn, order_by):
        query = sql.SQL("SELECT id, name FROM users ORDER BY {}, id").format(sql.Identifier(order_by))
        return conn.execute(query).fetchall()

    assert_fails(checks.list_users(no_allow_list, conn), "password_hash", "did not raise ValueError")


def test_list_users_fstring_is_reported_as_injection(conn):
    def fstring(conn, order_by):
        if order_by == "password_hash":
            raise ValueError(order_by)  # an allow-list for that one only: the injection still goes through
        return conn.execute(f"SELECT id, name FROM users ORDER BY {order_by}, id").fetchall()

    assert_fails(checks.list_users(fstring, conn), "deleted", "injection")


# 3 load_products -----------------------------------------------------------------------------------------
def load_products(conn, path):
    with open(path, "rb") as f, conn.cursor() as cur:
        with cur.copy("COPY products (sku, name, price, in_stock) FROM STDIN (FORMAT csv, HEADER true)") as copy:
            copy.write(f.read())
        return cur.rowcount


def test_load_products_reference_passes(dsn):
    assert_passes(checks.load_products(load_products, dsn))


def test_load_products_executemany_fails_asking_for_copy(dsn):
    def with_executemany(conn, path):
        with open(path, newline="", encoding="utf-8") as f:
            rows = [(r["sku"], r["name"], r["price"] or None, r["in_stock"]) for r in csv.DictReader(f)]
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO products VALUES (%s, %s, %s, %s)", rows)
        return len(rows)

    assert_fails(checks.load_products(with_executemany, dsn), "went in as", "statements")


def test_load_products_without_header_option_fails(dsn):
    def no_header(conn, path):
        with open(path, "rb") as f, conn.cursor() as cur:
            with cur.copy("COPY products FROM STDIN (FORMAT csv)") as copy:
                copy.write(f.read())
        return cur.rowcount

    assert_fails(checks.load_products(no_header, dsn), "raised")


def test_load_products_not_returning_the_count_fails(dsn):
    def no_count(conn, path):
        load_products(conn, path)

    assert_fails(checks.load_products(no_count, dsn), "returned None", "number of rows")


def test_load_products_copy_loop_without_end_fails_and_frees_the_table(dsn, monkeypatch):
    def endless(conn, path):
        with open(path, encoding="utf-8") as f, conn.cursor() as cur:
            with cur.copy("COPY products FROM STDIN (FORMAT csv, HEADER true)") as copy:
                while True:  # forgot to stop at the end of the file
                    copy.write(f.read(8192))

    monkeypatch.setattr(checks, "CALL_DEADLINE_S", 2)
    assert_fails(checks.load_products(endless, dsn), "endless() did not return")
    assert_passes(checks.load_products(load_products, dsn))  # the stuck COPY no longer locks products

# 4 add_stock ---------------------------------------------------------------------------------------------
def add_stock(conn, sku, qty):
    return conn.execute("""INSERT INTO inventory (sku, qty) VALUES (%s, %s)
        ON CONFLICT (sku) DO UPDATE SET qty = inventory.qty + EXCLUDED.qty RETURNING qty""", (sku, qty)).fetchone()[0]


def test_add_stock_reference_passes(conn, dsn):
    assert_passes(checks.add_stock(add_stock, conn, dsn))


def test_add_stock_check_then_write_fails_under_concurrency(conn, dsn):
    def check_then_write(conn, sku, qty):
        row = conn.execute("SELECT qty FROM inventory WHERE sku = %s", (sku,)).fetchone()
        if row is None:
            conn.execute("INSERT INTO inventory VALUES (%s, %s)", (sku, qty))
            return qty
        conn.execute("UPDATE inventory SET qty = %s WHERE sku = %s", (row[0] + qty, sku))
        return row[0] + qty

    result = checks.add_stock(check_then_write, conn, dsn)
    assert_fails(result)
    assert "concurrency" in result.message or "threads added" in result.message, result


def test_add_stock_overwriting_fails(conn, dsn):
    def overwrite(conn, sku, qty):
        return conn.execute("""INSERT INTO inventory VALUES (%s, %s)
            ON CONFLICT (sku) DO UPDATE SET qty = EXCLUDED.qty RETURNING qty""", (sku, qty)).fetchone()[0]

    assert_fails(checks.add_stock(overwrite, conn, dsn), "adding 3 more apples")


# 5 top_sellers -------------------------------------------------------------------------------------------
def test_top_sellers_reference_passes(conn):
    assert_passes(checks.top_sellers(checks.REFERENCE_TOP_SELLERS, conn))


def test_top_sellers_rank_keeps_ties_and_fails(conn):
    with_rank = checks.REFERENCE_TOP_SELLERS.replace("row_number()", "rank()").replace("DESC, rep)", "DESC)")
    assert_fails(checks.top_sellers(with_rank, conn), "some region has more than")


def test_top_sellers_global_limit_fails(conn):
    query = "SELECT region, rep, sum(amount) AS total FROM sales GROUP BY 1, 2 ORDER BY 3 DESC LIMIT %(n)s"
    assert_fails(checks.top_sellers(query, conn), "rows are not right")


def test_top_sellers_positional_placeholder_is_explained(conn):
    query = checks.REFERENCE_TOP_SELLERS.replace("%(n)s", "%s")
    result = checks.top_sellers(query, conn)
    assert_fails(result, "could not bind the parameter", in_hint=("%(n)s",))


def test_top_sellers_unsolved_is_not_done(conn):
    assert_not_done(checks.top_sellers(..., conn))


# 6 transfer ----------------------------------------------------------------------------------------------
def transfer(conn, from_id, to_id, amount):
    with conn.transaction():
        rows = dict(conn.execute("SELECT id, balance FROM accounts WHERE id IN (%s, %s) ORDER BY id FOR UPDATE",
                                 (from_id, to_id)).fetchall())
        if len(rows) != 2 or rows[from_id] < amount:
            raise ValueError("refused")
        conn.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (amount, from_id))
        conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (amount, to_id))


def test_transfer_reference_passes(conn, dsn):
    assert_passes(checks.transfer(transfer, conn, dsn))


def test_transfer_retrying_every_error_forever_fails(conn, dsn, monkeypatch):
    def stubborn(conn, from_id, to_id, amount):
        while True:  # retries the ValueError too, so a refused transfer never returns
            try:
                return transfer(conn, from_id, to_id, amount)
            except Exception:
                time.sleep(0.05)

    monkeypatch.setattr(checks, "CALL_DEADLINE_S", 2)
    assert_fails(checks.transfer(stubborn, conn, dsn), "stubborn() did not return")
    assert_passes(checks.transfer(transfer, conn, dsn))  # the loop left running does not disturb a re-run

def test_threads_left_running_fail_the_check_and_do_not_block_exit(conn, dsn, monkeypatch):
    release = threading.Event()

    def hangs_under_concurrency(conn, sku, qty):
        if sku == "pear":  # learner code that never returns once the check runs it in threads
            release.wait()
        return add_stock(conn, sku, qty)

    monkeypatch.setattr(checks, "THREAD_DEADLINE_S", 1)
    try:
        assert_fails(checks.add_stock(hangs_under_concurrency, conn, dsn), "8 of 8", "did not return within 1 s")
        stuck = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
        assert not stuck, f"non-daemon threads would keep the kernel from exiting: {stuck}"
    finally:
        release.set()


def test_transfer_without_a_transaction_fails(conn, dsn):
    def two_autocommits(conn, from_id, to_id, amount):
        (balance,) = conn.execute("SELECT balance FROM accounts WHERE id = %s", (from_id,)).fetchone()
        if balance < amount:
            raise ValueError("insufficient funds")
        conn.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (amount, from_id))
        if conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (amount, to_id)).rowcount != 1:
            raise ValueError("unknown account")

    assert_fails(checks.transfer(two_autocommits, conn, dsn), "changed the balances")


def test_transfer_read_modify_write_fails_under_concurrency(conn, dsn):
    def read_modify_write(conn, from_id, to_id, amount):
        with conn.transaction():
            rows = dict(conn.execute("SELECT id, balance FROM accounts WHERE id IN (%s, %s)",
                                     (from_id, to_id)).fetchall())
            if len(rows) != 2 or rows[from_id] < amount:
                raise ValueError("refused")
            conn.execute("UPDATE accounts SET balance = %s WHERE id = %s", (rows[from_id] - amount, from_id))
            conn.execute("UPDATE accounts SET balance = %s WHERE id = %s", (rows[to_id] + amount, to_id))

    result = checks.transfer(read_modify_write, conn, dsn)
    # Unlocked rows either lose updates or, locked by the UPDATEs in arbitrary order, deadlock: both are caught.
    assert_fails(result)
    assert any(words in result.message for words in ("below zero", "appeared or vanished", "do not match",
                                                     "deadlocked")), result


def test_transfer_lost_update_is_reported(conn, dsn):
    """Rows updated in a fixed order cannot deadlock, so the lost update itself is what the check sees."""
    def ordered_read_modify_write(conn, from_id, to_id, amount):
        with conn.transaction():
            rows = dict(conn.execute("SELECT id, balance FROM accounts WHERE id IN (%s, %s)",
                                     (from_id, to_id)).fetchall())
            if len(rows) != 2 or rows[from_id] < amount:
                raise ValueError("refused")
            for account in sorted(rows):
                new = rows[account] - amount if account == from_id else rows[account] + amount
                conn.execute("UPDATE accounts SET balance = %s WHERE id = %s", (new, account))

    result = checks.transfer(ordered_read_modify_write, conn, dsn)
    assert_fails(result)
    assert any(words in result.message for words in ("below zero", "appeared or vanished", "do not match")), result


# 7 reports_under -----------------------------------------------------------------------------------------
def test_reports_under_reference_passes(conn):
    assert_passes(checks.reports_under(checks.REFERENCE_REPORTS, conn))


def test_reports_under_direct_reports_only_fails(conn):
    direct = """SELECT e.name, 1 AS depth FROM employees e JOIN employees m ON e.manager_id = m.id
                WHERE m.name = %(manager)s ORDER BY e.name"""
    assert_fails(checks.reports_under(direct, conn), "you found")


def test_reports_under_depth_from_zero_fails(conn):
    from_zero = checks.REFERENCE_REPORTS.replace("1 AS depth", "0 AS depth")
    result = checks.reports_under(from_zero, conn)
    assert_fails(result, "rows are not right", in_hint=("depth 1",))


def test_reports_under_including_the_manager_fails(conn):
    with_manager = """
        WITH RECURSIVE below AS (
            SELECT id, name, 0 AS depth FROM employees WHERE name = %(manager)s
            UNION ALL
            SELECT e.id, e.name, b.depth + 1 FROM employees e JOIN below b ON e.manager_id = b.id)
        SELECT name, depth FROM below ORDER BY depth, name"""
    assert_fails(checks.reports_under(with_manager, conn), "themself")



# requirements the tests above did not break on their own -----------------------------------------------
def test_find_user_first_match_only_fails(conn):
    def first_only(conn, name):
        return conn.execute("SELECT id, name, email FROM users WHERE name = %s ORDER BY id LIMIT 1", (name,)).fetchall()

    assert_fails(checks.find_user(first_only, conn), "returned [(1,", in_hint=("both users",))


def test_find_user_not_ordered_by_id_fails(conn):
    def newest_first(conn, name):
        return conn.execute("SELECT id, name, email FROM users WHERE name = %s ORDER BY id DESC", (name,)).fetchall()

    assert_fails(checks.find_user(newest_first, conn), "returned [(5,", in_hint=("ordered by id",))


def test_list_users_ties_not_by_id_fails(conn):
    def ties_reversed(conn, order_by):
        if order_by not in {"id", "name", "email"}:
            raise ValueError(order_by)
        query = sql.SQL("SELECT id, name FROM users ORDER BY {}, id DESC").format(sql.Identifier(order_by))
        return conn.execute(query).fetchall()

    assert_fails(checks.list_users(ties_reversed, conn), "in the order", "(by id)")


def test_list_users_extra_columns_fail(conn):
    def with_email(conn, order_by):
        if order_by not in {"id", "name", "email"}:
            raise ValueError(order_by)
        query = sql.SQL("SELECT id, name, email FROM users ORDER BY {}, id").format(sql.Identifier(order_by))
        return conn.execute(query).fetchall()

    assert_fails(checks.list_users(with_email, conn), "(id, name) rows", hint=False)


def test_load_products_not_read_as_utf8_fails(dsn):
    def latin1(conn, path):
        with open(path, encoding="latin-1") as f, conn.cursor() as cur:
            with cur.copy("COPY products (sku, name, price, in_stock) FROM STDIN (FORMAT csv, HEADER true)") as copy:
                copy.write(f.read())
            return cur.rowcount

    assert_fails(checks.load_products(latin1, dsn), "accented names", in_hint=("UTF-8",))


def test_load_products_empty_price_not_null_fails(dsn):
    def zero_price(conn, path):
        with open(path, "rb") as f, conn.cursor() as cur:
            with cur.copy("COPY products (sku, name, price, in_stock) FROM STDIN (FORMAT csv, HEADER true)") as copy:
                copy.write(f.read())
            count = cur.rowcount
            cur.execute("UPDATE products SET price = 0 WHERE price IS NULL")
            return count

    assert_fails(checks.load_products(zero_price, dsn), "prices are not right", in_hint=("NULL",))


def test_load_products_naive_comma_split_fails(dsn):
    def split_on_commas(conn, path):
        with open(path, encoding="utf-8") as f, conn.cursor() as cur:
            next(f)
            with cur.copy("COPY products (sku, name, price, in_stock) FROM STDIN") as copy:
                for line in f:
                    sku, name, price, in_stock = line.rstrip("\n").split(",")[:4]
                    copy.write_row((sku, name, price or None, in_stock))
            return cur.rowcount

    assert_fails(checks.load_products(split_on_commas, dsn), "invalid input syntax", "split_on_commas")


def test_add_stock_not_returning_the_quantity_fails(conn, dsn):
    def no_returning(conn, sku, qty):
        conn.execute("""INSERT INTO inventory VALUES (%s, %s)
            ON CONFLICT (sku) DO UPDATE SET qty = inventory.qty + EXCLUDED.qty""", (sku, qty))

    assert_fails(checks.add_stock(no_returning, conn, dsn), "returned None", in_hint=("RETURNING",))


def test_top_sellers_misnamed_column_fails(conn):
    query = checks.REFERENCE_TOP_SELLERS.replace("SELECT region, rep, total FROM", "SELECT region, rep AS name, "
                                                 "total FROM").replace("total DESC, rep", "total DESC, name")
    assert_fails(checks.top_sellers(query, conn), "columns are region, name, total")


def test_top_sellers_wrong_order_fails(conn):
    query = checks.REFERENCE_TOP_SELLERS.replace("ORDER BY region, total DESC, rep", "ORDER BY region, rep")
    assert_fails(checks.top_sellers(query, conn), "not in order", in_hint=("total DESC",))


def test_top_sellers_tie_won_by_the_last_name_fails(conn):
    query = checks.REFERENCE_TOP_SELLERS.replace("DESC, rep)", "DESC, rep DESC)")
    assert_fails(checks.top_sellers(query, conn), "with n=1", "rows are not right")


def test_transfer_overdraft_allowed_fails(conn, dsn):
    def no_balance_check(conn, from_id, to_id, amount):
        with conn.transaction():
            found = conn.execute("SELECT count(*) FROM accounts WHERE id IN (%s, %s)", (from_id, to_id)).fetchone()
            if found[0] != 2:
                raise ValueError("unknown account")
            conn.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (amount, from_id))
            conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (amount, to_id))

    assert_fails(checks.transfer(no_balance_check, conn, dsn), "more than the balance changed the balances")


def test_transfer_to_unknown_account_fails(conn, dsn):
    def no_existence_check(conn, from_id, to_id, amount):
        with conn.transaction():
            (balance,) = conn.execute("SELECT balance FROM accounts WHERE id = %s FOR UPDATE", (from_id,)).fetchone()
            if balance < amount:
                raise ValueError("not enough money")
            conn.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (amount, from_id))
            conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (amount, to_id))

    assert_fails(checks.transfer(no_existence_check, conn, dsn), "does not exist changed the balances")


def test_transfer_refusing_with_another_exception_fails(conn, dsn):
    def runtime_error(conn, from_id, to_id, amount):
        with conn.transaction():
            rows = dict(conn.execute("SELECT id, balance FROM accounts WHERE id IN (%s, %s) ORDER BY id FOR UPDATE",
                                     (from_id, to_id)).fetchall())
            if len(rows) != 2 or rows[from_id] < amount:
                return
            conn.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (amount, from_id))
            conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (amount, to_id))

    assert_fails(checks.transfer(runtime_error, conn, dsn), "did not raise ValueError")


def test_reports_under_misnamed_column_fails(conn):
    query = checks.REFERENCE_REPORTS.replace("SELECT name, depth FROM below", "SELECT name, depth AS level FROM below")
    assert_fails(checks.reports_under(query, conn), "columns are name, level")


def test_reports_under_wrong_order_fails(conn):
    query = checks.REFERENCE_REPORTS.replace("ORDER BY depth, name", "ORDER BY name, depth")
    assert_fails(checks.reports_under(query, conn), "not in order", in_hint=("ORDER BY depth, name",))


REQUIREMENTS = {
    "1": {
        "every user\ncalled `name`": "test_find_user_first_match_only_fails",
        "as `(id, name, email)` tuples": "test_find_user_wrong_columns_fails",
        "ordered by `id`": "test_find_user_not_ordered_by_id_fails",
        "The check tries a name with a quote in it and\ntwo injection attempts.":
            "test_find_user_fstring_fails_on_a_quote",
    },
    "2": {
        "`(id, name)` rows of every user": "test_list_users_extra_columns_fail",
        "ordered by the column `order_by`, then by `id`": "test_list_users_ties_not_by_id_fails",
        "Only the columns in `SORTABLE` are allowed": "test_list_users_identifier_without_allow_list_fails",
        "raises `ValueError`": "test_list_users_identifier_without_allow_list_fails",
        "compose the query with `psycopg.sql`": "test_list_users_fstring_is_reported_as_injection",
    },
    "3": {
        "load the CSV file at `path` (UTF-8": "test_load_products_not_read_as_utf8_fails",
        "a header line `sku,name,price,in_stock`": "test_load_products_without_header_option_fails",
        "quoted fields where needed": "test_load_products_naive_comma_split_fails",
        "an empty\nprice meaning \"no price\"": "test_load_products_empty_price_not_null_fails",
        "with one `COPY ... FROM STDIN`": "test_load_products_executemany_fails_asking_for_copy",
        "return the number of rows loaded": "test_load_products_not_returning_the_count_fails",
    },
    "4": {
        "add `qty` to the stock of\n`sku`": "test_add_stock_overwriting_fails",
        "return the new quantity": "test_add_stock_not_returning_the_quantity_fails",
        "in **one** statement": "test_add_stock_check_then_write_fails_under_concurrency",
    },
    "5": {
        "the `%(n)s` reps with the highest total sales": ("test_top_sellers_global_limit_fails",
                                                          "test_top_sellers_positional_placeholder_is_explained"),
        "columns `region`, `rep`, `total`": "test_top_sellers_misnamed_column_fails",
        "ordered by region, then\ntotal (highest first), then rep": "test_top_sellers_wrong_order_fails",
        "When two reps tie, the one whose name sorts first wins the place":
            "test_top_sellers_tie_won_by_the_last_name_fails",
        "a region\nnever has more than `n` rows": "test_top_sellers_rank_keeps_ties_and_fails",
    },
    "6": {
        "both balances change, or neither does": "test_transfer_without_a_transaction_fails",
        "raise `ValueError` (and change nothing) when the source lacks the money": (
            "test_transfer_overdraft_allowed_fails", "test_transfer_refusing_with_another_exception_fails"),
        "or either account does not exist": "test_transfer_to_unknown_account_fails",
        "correct when many transfers run at once": ("test_transfer_read_modify_write_fails_under_concurrency",
                                                    "test_transfer_lost_update_is_reported"),
    },
    "7": {
        "directly or through others": "test_reports_under_direct_reports_only_fails",
        "columns `name` and `depth`": "test_reports_under_misnamed_column_fails",
        "(1 for direct reports, 2 for\ntheir reports, ...)": "test_reports_under_depth_from_zero_fails",
        "ordered by depth, then name": "test_reports_under_wrong_order_fails",
        "The manager is not part of the result.": "test_reports_under_including_the_manager_fails",
    },
}
