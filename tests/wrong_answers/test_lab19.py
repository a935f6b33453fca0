"""Lab 19 checks fail on plausible wrong answers, with a message that helps, and pass the reference answers."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool
from verdicts import assert_fails, assert_not_done, assert_passes

from infracourse.checks import lab19 as checks
from infracourse.lessons import shop_data

TTL_S = 60


@pytest.fixture
def shop(conn, pg_ns):
    shop_data.create(conn, orders=0)
    conn.execute("CREATE TABLE outbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, key text NOT NULL, "
                 "payload jsonb NOT NULL)")
    conn.execute("CREATE TABLE processed_events (event_id text PRIMARY KEY)")
    conn.execute("CREATE TABLE product_sales (product_id int PRIMARY KEY, units bigint NOT NULL)")
    with ConnectionPool(pg_ns.postgres_dsn(), min_size=1, max_size=2, open=True, timeout=5) as pool:
        yield pool


# exercise 1 ---------------------------------------------------------------------------------------------------
def _reader(pg_ns, ttl_s=TTL_S, use_cache=True):
    def get_product(r, pool, product_id):
        key = pg_ns.key("product", product_id)
        if use_cache and (cached := r.get(key)) is not None:
            return json.loads(cached)
        with pool.connection() as conn:
            row = conn.execute("SELECT product_id, name, price::float FROM products WHERE product_id = %s",
                               [product_id]).fetchone()
        if row is None:
            return None
        product = dict(zip(("product_id", "name", "price"), row, strict=True))
        r.set(key, json.dumps(product), ex=ttl_s)
        return product
    return get_product


def _writer(pg_ns, invalidate="after"):
    def set_price(r, pool, product_id, price):
        if invalidate == "before":
            r.delete(pg_ns.key("product", product_id))
        with pool.connection() as conn:
            conn.execute("UPDATE products SET price = %s WHERE product_id = %s", [price, product_id])
        if invalidate == "after":
            r.delete(pg_ns.key("product", product_id))
    return set_price


@pytest.fixture
def check_cache(shop, r, pg_ns):
    return lambda get_product, set_price: checks.cache_aside(
        get_product, set_price, r, shop, lambda p: pg_ns.key("product", p), pg_ns.postgres_dsn(), TTL_S)


def test_cache_reference_passes(check_cache, pg_ns):
    assert_passes(check_cache(_reader(pg_ns), _writer(pg_ns)))


def test_cache_with_getconn_and_putconn_passes(check_cache, pg_ns):
    cached_reader = _reader(pg_ns)

    def get_product(r, pool, product_id):  # the same reader, borrowing by hand instead of `with`
        class ByHand:
            @contextlib.contextmanager
            def connection(self):
                conn = pool.getconn()
                try:
                    yield conn
                    conn.commit()
                finally:
                    pool.putconn(conn)
        return cached_reader(r, ByHand(), product_id)

    assert_passes(check_cache(get_product, _writer(pg_ns)))


def test_cache_never_read_fails(check_cache, pg_ns):
    assert_fails(check_cache(_reader(pg_ns, use_cache=False), _writer(pg_ns)), "borrowed a database connection 4 times")


def test_cache_without_ttl_fails(check_cache, pg_ns):
    assert_fails(check_cache(_reader(pg_ns, ttl_s=None), _writer(pg_ns)), "never expires")


def test_write_without_invalidation_fails(check_cache, pg_ns):
    assert_fails(check_cache(_reader(pg_ns), _writer(pg_ns, invalidate="never")), "never deleted")


def test_invalidation_before_commit_fails(check_cache, pg_ns):
    assert_fails(check_cache(_reader(pg_ns), _writer(pg_ns, invalidate="before")), "before the new price was committed")


def test_cache_unsolved_is_not_done(check_cache):
    def stub(*args):
        raise NotImplementedError

    assert_not_done(check_cache(stub, stub))


# exercise 2 ---------------------------------------------------------------------------------------------------
def _place_order(one_transaction=True):
    def place_order(pool, product_id, quantity):
        with pool.connection() as conn:  # not autocommit: one transaction until the block ends
            row = conn.execute("""INSERT INTO orders (product_id, quantity, amount, ordered_at)
                                  SELECT product_id, %s, %s * price, now() FROM products WHERE product_id = %s
                                  RETURNING order_id""", [quantity, quantity, product_id]).fetchone()
            if not one_transaction:
                conn.commit()  # the order is saved on its own: the bug
            if row is None:
                return None
            event = {"event_id": f"order-{row[0]}", "order_id": row[0], "product_id": product_id,
                     "quantity": quantity}
            conn.execute("INSERT INTO outbox (key, payload) VALUES (%s, %s)", [str(product_id), Jsonb(event)])
        return row[0]
    return place_order


@pytest.fixture
def check_outbox(shop, pg_ns):
    return lambda place_order: checks.outbox_write(place_order, shop, pg_ns.postgres_dsn())


def test_outbox_reference_passes(check_outbox):
    assert_passes(check_outbox(_place_order()))


def test_order_committed_before_outbox_fails(check_outbox):
    result = check_outbox(_place_order(one_transaction=False))
    assert_fails(result, "without its event", in_hint=("transaction",))


def test_error_swallowed_fails(check_outbox):
    def swallowing(pool, product_id, quantity):
        try:
            return _place_order()(pool, product_id, quantity)
        except Exception:  # noqa: BLE001 - the wrong answer under test
            return None

    assert_fails(check_outbox(swallowing), "did not raise")


def test_outbox_without_event_id_fails(check_outbox):
    def no_event_id(pool, product_id, quantity):
        with pool.connection() as conn, conn.transaction():
            row = conn.execute("""INSERT INTO orders (product_id, quantity, amount, ordered_at)
                                  SELECT product_id, %s, %s * price, now() FROM products WHERE product_id = %s
                                  RETURNING order_id""", [quantity, quantity, product_id]).fetchone()
            if row is None:
                return None
            conn.execute("INSERT INTO outbox (key, payload) VALUES (%s, %s)",
                         [str(product_id), Jsonb({"order_id": row[0], "product_id": product_id})])
        return row[0]

    assert_fails(check_outbox(no_event_id), "payload", hint=False)


# exercise 3 ---------------------------------------------------------------------------------------------------
UPSERT = """INSERT INTO product_sales VALUES (%s, %s) ON CONFLICT (product_id)
            DO UPDATE SET units = product_sales.units + EXCLUDED.units"""


def reference_apply(conn, event):
    with conn.transaction():
        if conn.execute("INSERT INTO processed_events VALUES (%s) ON CONFLICT DO NOTHING",
                        [event["event_id"]]).rowcount:
            conn.execute(UPSERT, [event["product_id"], event["quantity"]])


def test_consumer_reference_passes(shop, conn, pg_ns):
    assert_passes(checks.idempotent_consumer(reference_apply, conn, pg_ns.postgres_dsn()))


def test_consumer_without_dedup_fails(shop, conn, pg_ns):
    def counts_twice(conn, event):
        conn.execute(UPSERT, [event["product_id"], event["quantity"]])

    assert_fails(checks.idempotent_consumer(counts_twice, conn, pg_ns.postgres_dsn()), "counted again")


def test_consumer_marking_outside_the_transaction_fails(shop, conn, pg_ns):
    def marks_first(conn, event):  # autocommit: the mark commits on its own before the counter update
        if conn.execute("INSERT INTO processed_events VALUES (%s) ON CONFLICT DO NOTHING",
                        [event["event_id"]]).rowcount:
            conn.execute(UPSERT, [event["product_id"], event["quantity"]])

    result = checks.idempotent_consumer(marks_first, conn, pg_ns.postgres_dsn())
    assert_fails(result, "marked processed", in_hint=("one transaction",))


def test_consumer_leaving_its_transaction_open_fails(shop, conn, pg_ns):
    # Its lock on product_sales used to block the check's CREATE TRIGGER forever.
    def never_commits(conn, event):
        conn.execute("BEGIN")
        if conn.execute("INSERT INTO processed_events VALUES (%s) ON CONFLICT DO NOTHING",
                        [event["event_id"]]).rowcount:
            conn.execute(UPSERT, [event["product_id"], event["quantity"]])

    # the lock timeout makes the old check fail here instead of hanging
    dsn = pg_ns.postgres_dsn().replace("options='", "options='-c lock_timeout=10s ")
    result = checks.idempotent_consumer(never_commits, conn, dsn)
    assert_fails(result, "transaction still open", in_hint=("COMMIT",))
    assert_passes(checks.idempotent_consumer(reference_apply, conn, pg_ns.postgres_dsn()))


# exercise 4 ---------------------------------------------------------------------------------------------------
def reference_summary(latencies_ms, statuses, duration_s):
    errors = sum(1 for s in statuses if s >= 500 or s == 0)
    p50, p95, p99 = np.percentile(latencies_ms, [50, 95, 99])
    return {"requests": len(latencies_ms), "req_per_s": len(latencies_ms) / duration_s,
            "error_ratio": errors / len(statuses), "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}


def test_summary_reference_passes():
    assert_passes(checks.load_summary(reference_summary))


def test_summary_nearest_rank_percentiles_pass():
    def nearest_rank(latencies_ms, statuses, duration_s):
        ordered = sorted(latencies_ms)
        ranks = {q: ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] for q in (50, 95, 99)}
        return {**reference_summary(latencies_ms, statuses, duration_s),
                "p50_ms": ranks[50], "p95_ms": ranks[95], "p99_ms": ranks[99]}

    assert_passes(checks.load_summary(nearest_rank))


def test_summary_counting_404_as_error_fails():
    def with_404(latencies_ms, statuses, duration_s):
        return {**reference_summary(latencies_ms, statuses, duration_s),
                "error_ratio": sum(1 for s in statuses if s >= 400 or s == 0) / len(statuses)}

    assert_fails(checks.load_summary(with_404), "4xx")


def test_summary_ignoring_no_answer_fails():
    def without_zero(latencies_ms, statuses, duration_s):
        return {**reference_summary(latencies_ms, statuses, duration_s),
                "error_ratio": sum(1 for s in statuses if s >= 500) / len(statuses)}

    assert_fails(checks.load_summary(without_zero), "no answer", hint=False)


def test_summary_rate_from_summed_latency_fails():
    def busy_time(latencies_ms, statuses, duration_s):
        return {**reference_summary(latencies_ms, statuses, duration_s),
                "req_per_s": len(latencies_ms) / (sum(latencies_ms) / 1000)}

    assert_fails(checks.load_summary(busy_time), "wall time")


def test_summary_mean_instead_of_median_fails():
    def mean(latencies_ms, statuses, duration_s):
        return {**reference_summary(latencies_ms, statuses, duration_s), "p50_ms": float(np.mean(latencies_ms))}

    assert_fails(checks.load_summary(mean), "p50_ms")


# requirements the tests above did not break on their own -----------------------------------------------
def test_cache_price_as_text_fails(check_cache, pg_ns):
    reference = _reader(pg_ns)

    def price_as_text(r, pool, product_id):
        product = reference(r, pool, product_id)
        return product and {**product, "price": str(product["price"])}

    assert_fails(check_cache(price_as_text, _writer(pg_ns)))


def test_cache_unknown_product_raising_fails(check_cache, pg_ns):
    reference = _reader(pg_ns)

    def no_none(r, pool, product_id):
        product = reference(r, pool, product_id)
        if product is None:
            raise KeyError(product_id)
        return product

    assert_fails(check_cache(no_none, _writer(pg_ns)))


REQUIREMENTS = {
    "1": {
        "returns `{\"product_id\", \"name\", \"price\"}` (price as a float)": "test_cache_price_as_text_fails",
        "or `None` for an\nunknown product": "test_cache_unknown_product_raising_fails",
        "Read Redis at `product_key(product_id)` first": "test_cache_never_read_fails",
        "cache its JSON for `CACHE_TTL_S` seconds": "test_cache_without_ttl_fails",
        "then invalidates the cached copy": ("test_write_without_invalidation_fails",
                                             "test_invalidation_before_commit_fails"),
    },
    "2": {
        "both or neither": ("test_order_committed_before_outbox_fails", "test_error_swallowed_fails"),
        "`{\"event_id\": \"order-<order_id>\", \"order_id\", \"product_id\", \"quantity\"}`":
            "test_outbox_without_event_id_fails",
    },
    "3": {
        "exactly once per\n`event[\"event_id\"]`, however often the event arrives": "test_consumer_without_dedup_fails",
        "If the counter update fails, the event must not be\nremembered as processed": (
            "test_consumer_marking_outside_the_transaction_fails", "test_consumer_leaving_its_transaction_open_fails"),
    },
    "4": {
        "`req_per_s`": "test_summary_rate_from_summed_latency_fails",
        "a 404 is a correct answer": "test_summary_counting_404_as_error_fails",
        "(share of 5xx or\nno answer": "test_summary_ignoring_no_answer_fails",
        "`p50_ms`": "test_summary_mean_instead_of_median_fails",
    },
}
