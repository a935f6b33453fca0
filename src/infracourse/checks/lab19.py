"""Checks of labs/19_capstone_orders_service.ipynb: the orders service's cache-aside read path with invalidation,
the order + outbox write, the idempotent consumer step and the load-test summary, each run against the live
PostgreSQL and Redis of the lab's namespace.

Failures that matter only in a crash (an order without its event, an event marked done without its count) are
made to happen on purpose: the check adds a trigger that raises at the worst moment, then looks at what stayed.
"""

from __future__ import annotations

import contextlib
import json
import random
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import psycopg
from psycopg.pq import TransactionStatus

from infracourse.checking import exercise, expect, postgres, time_limit

LIMIT_S = 10
SUMMARY_KEYS = ("requests", "req_per_s", "error_ratio", "p50_ms", "p95_ms", "p99_ms")


class CountingPool:
    """Hands out the real pool's connections and counts how often it was asked: one borrow, one database visit."""

    def __init__(self, pool) -> None:
        self.pool = pool
        self.borrowed = 0

    @contextlib.contextmanager
    def connection(self, *args, **kwargs) -> Iterator[psycopg.Connection]:
        self.borrowed += 1
        with self.pool.connection(*args, **kwargs) as conn:
            yield conn

    def getconn(self, *args, **kwargs) -> psycopg.Connection:
        self.borrowed += 1
        return self.pool.getconn(*args, **kwargs)

    def __getattr__(self, name: str):  # putconn, get_stats, ...: the real pool's
        return getattr(self.pool, name)


class WatchingRedis:
    """A Redis client that notes, at each DELETE, the price PostgreSQL has committed (seen from another
    connection): an invalidation that runs before the commit sees the old price."""

    def __init__(self, r, dsn: str, product_id: int) -> None:
        self._r, self._dsn, self._product_id = r, dsn, product_id
        self.prices_at_delete: list[float] = []

    def delete(self, *keys: str) -> int:
        self.prices_at_delete.append(_price(self._dsn, self._product_id))
        return self._r.delete(*keys)

    def __getattr__(self, name: str):
        return getattr(self._r, name)


def _price(dsn: str, product_id: int) -> float:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT price::float FROM products WHERE product_id = %s", [product_id]).fetchone()[0]


def _as_dict(value) -> dict:
    return json.loads(value) if isinstance(value, str | bytes) else value


@exercise("1", "Cache-aside read path, invalidated on write")
def cache_aside(get_product: Callable, set_price: Callable, r, pool, product_key: Callable, dsn: str,
                ttl_s: int) -> str:
    product_id = 11
    key = product_key(product_id)
    r.delete(key)
    counting = CountingPool(pool)

    def read(pid: int) -> dict:
        return _as_dict(time_limit.call(LIMIT_S, get_product, r, counting, pid))

    try:
        first = read(product_id)
        expect(isinstance(first, dict) and first.get("product_id") == product_id,
               f"get_product(r, pool, {product_id}) should return a dict with product_id {product_id}, got {first!r}")
        expect(first.get("price") == _price(dsn, product_id),
               f"the price returned ({first.get('price')!r}) differs from the one in PostgreSQL",
               hint="return the price as a float (numeric arrives as Decimal: price::float or float(...))")
        expect(r.exists(key), "nothing was cached at product_key(product_id) after a miss",
               hint="on a miss, SET the JSON of the product at product_key(product_id)")
        ttl = r.ttl(key)
        expect(ttl != -1, "the cached product never expires", hint="SET ... ex=CACHE_TTL_S")
        expect(0 < ttl <= ttl_s, f"the cached product lives {ttl} s; CACHE_TTL_S is {ttl_s}")
        for _ in range(3):
            again = read(product_id)
        expect(counting.borrowed == 1, f"4 reads of one product borrowed a database connection {counting.borrowed} "
               "times, expected 1", hint="return the cached value on a hit, before touching the pool")
        expect(again == first, "a cache hit returned something else than the first read",
               hint="json.loads what you cached before returning it")
        missing = time_limit.call(LIMIT_S, get_product, r, counting, 999_999)
        expect(missing is None, f"get_product for an unknown product should return None, got {missing!r}")

        new_price = round(first["price"] + 1.25, 2)
        watching = WatchingRedis(r, dsn, product_id)
        time_limit.call(LIMIT_S, set_price, watching, pool, product_id, new_price)
        expect(_price(dsn, product_id) == new_price, "set_price did not change the price in PostgreSQL",
               hint="UPDATE products inside pool.connection(): leaving the block commits")
        expect(watching.prices_at_delete, "set_price never deleted the cached product: readers see the old price "
               "for a whole TTL", hint="r.delete(product_key(product_id)) after the UPDATE")
        expect(watching.prices_at_delete[-1] == new_price,
               "the cache was invalidated before the new price was committed: a read in between caches the old "
               "price again", hint="delete the key after the `with pool.connection()` block has committed")
        counting.borrowed = 0
        after = read(product_id)
        expect(after["price"] == new_price and counting.borrowed == 1,
               "the read after a price change did not load the new price from PostgreSQL")
        return "1 database visit for 4 reads, TTL set, invalidated after the commit"
    finally:
        r.delete(key)


_FAIL_TRIGGER = """
    CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'injected by the check'; END $$;
    CREATE TRIGGER {name} BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION {name}();
"""


@contextlib.contextmanager
def _failing(dsn: str, table: str, when: str) -> Iterator[None]:
    """Make inserts and updates of TABLE whose row matches WHEN raise, for the duration of the block."""
    name = f"check_fail_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(_FAIL_TRIGGER.format(name=name, table=table, when=when))
        try:
            yield
        finally:
            conn.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            conn.execute(f"DROP FUNCTION IF EXISTS {name}()")


@exercise("2", "The order and its outbox event in one transaction")
def outbox_write(place_order: Callable, pool, dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        def count(table: str) -> int:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

        orders, events = count("orders"), count("outbox")
        order_id = time_limit.call(LIMIT_S, place_order, pool, 5, 2)
        expect(isinstance(order_id, int), f"place_order should return the new order's id, got {order_id!r}")
        row = conn.execute("SELECT product_id, quantity, amount::float FROM orders WHERE order_id = %s",
                           [order_id]).fetchone()
        expect(row is not None, f"no order {order_id} in the orders table",
               hint="INSERT ... RETURNING order_id, inside the transaction")
        expect(row[:2] == (5, 2), f"order {order_id} has product {row[0]}, quantity {row[1]}; expected 5 and 2")
        expect(abs(row[2] - 2 * _price(dsn, 5)) < 0.005, "the amount is not quantity × the product's price")
        outbox = conn.execute("SELECT key, payload FROM outbox WHERE payload->>'order_id' = %s",
                              [str(order_id)]).fetchall()
        expect(len(outbox) == 1, f"{len(outbox)} outbox rows carry order_id {order_id}, expected 1",
               hint="insert one outbox row whose payload has the order's id")
        key, payload = outbox[0]
        expected = {"event_id": f"order-{order_id}", "order_id": order_id, "product_id": 5, "quantity": 2}
        expect(all(payload.get(k) == v for k, v in expected.items()),
               f"the event's payload lacks or mismatches some of {sorted(expected)}")
        expect(key == "5", f"the outbox key is {key!r}; key events by product (str(product_id))",
               hint="Kafka keeps one key's events in order on one partition")

        unknown = time_limit.call(LIMIT_S, place_order, pool, 999_999, 1)
        expect(unknown is None, f"an order for an unknown product should return None, got {unknown!r}")
        expect(count("orders") == orders + 1 and count("outbox") == events + 1,
               "an order for an unknown product left rows behind")

        before = count("orders")
        with _failing(dsn, "outbox", "NEW.payload->>'product_id' = '13'"):
            try:
                time_limit.call(LIMIT_S, place_order, pool, 13, 1)
                raised = False
            except psycopg.Error:
                raised = True
        expect(raised, "the outbox insert failed (injected by the check) but place_order did not raise",
               hint="let database errors propagate: the caller must know the order was not taken")
        expect(count("orders") == before, "the outbox insert failed, yet the order was saved: an order without "
               "its event is never published", hint="one transaction: `with pool.connection() as conn, "
               "conn.transaction():` around both inserts")
        return "order and event commit together, or not at all"


@exercise("3", "An idempotent consumer step")
def idempotent_consumer(apply_event: Callable, conn: psycopg.Connection, dsn: str) -> str:
    run = uuid.uuid4().hex[:8]
    products = (1901, 1902, 1903)

    def event(n: int, product_id: int, quantity: int) -> dict:
        return {"event_id": f"check-{run}-{n}", "order_id": n, "product_id": product_id, "quantity": quantity}

    def units(product_id: int) -> int:
        row = conn.execute("SELECT units FROM product_sales WHERE product_id = %s", [product_id]).fetchone()
        return 0 if row is None else row[0]

    def apply(e: dict) -> None:
        time_limit.call(LIMIT_S, apply_event, conn, e)
        left_open = conn.info.transaction_status != TransactionStatus.IDLE
        postgres.ready(conn)  # an open transaction would hold its locks (and block the check's trigger) for good
        expect(not left_open, "apply_event returned with its transaction still open: nothing it wrote is committed",
               hint="`with conn.transaction():` commits when the block ends (a BEGIN needs its COMMIT)")

    conn.execute("DELETE FROM product_sales WHERE product_id = ANY(%s)", [list(products)])
    for e in (event(1, 1901, 2), event(2, 1901, 3), event(3, 1902, 1)):
        apply(e)
    expect((units(1901), units(1902)) == (5, 1),
           f"three different events gave counters {units(1901)} and {units(1902)}, expected 5 and 1",
           hint="add the event's quantity to product_sales.units (an upsert)")
    apply(event(1, 1901, 2))
    apply(event(2, 1901, 3))
    expect(units(1901) == 5, f"redelivered events were counted again: the counter went from 5 to {units(1901)}",
           hint="INSERT the event id into processed_events ON CONFLICT DO NOTHING; add only when rowcount is 1")

    crashing = event(4, 1903, 4)
    with _failing(dsn, "product_sales", "NEW.product_id = 1903"):
        try:
            apply(crashing)
        except psycopg.Error:
            pass
    postgres.ready(conn)  # a learner's non-autocommit connection may be left in a failed transaction
    remembered = conn.execute("SELECT count(*) FROM processed_events WHERE event_id = %s",
                              [crashing["event_id"]]).fetchone()[0]
    expect(remembered == 0, "the counter update failed (injected by the check), yet the event was marked "
           "processed: its redelivery will be skipped and the sale is never counted",
           hint="record the event id and update the counter in one transaction (conn.transaction())")
    apply(crashing)
    expect(units(1903) == 4, "after a failed attempt, the redelivered event was not counted")
    conn.execute("DELETE FROM product_sales WHERE product_id = ANY(%s)", [list(products)])
    return "duplicates ignored, a failed update leaves the event to be retried"


def _synthetic(seed: int = 13) -> tuple[list[float], list[int], float]:
    rng = random.Random(seed)
    latencies = [rng.lognormvariate(2.3, 0.6) for _ in range(997)] + [450.0, 800.0, 1200.0]
    statuses = [rng.choices([200, 201, 404, 503, 0], [70, 15, 10, 4, 1])[0] for _ in latencies]
    return latencies, statuses, 4.0


def _within_rank(got: float, samples: list[float], q: float) -> bool:
    """True if GOT is a percentile Q of SAMPLES by any usual definition (between the neighbouring ranks)."""
    low = float(np.percentile(samples, q, method="lower"))
    high = float(np.percentile(samples, q, method="higher"))
    return low - 1e-6 <= got <= high + 1e-6


@exercise("4", "A load-test summary")
def load_summary(summarize: Callable) -> str:
    latencies, statuses, duration_s = _synthetic()
    got = time_limit.call(LIMIT_S, summarize, list(latencies), list(statuses), duration_s)
    expect(isinstance(got, dict), f"summarize should return a dict, got {type(got).__name__}")
    missing = [k for k in SUMMARY_KEYS if k not in got]
    expect(not missing, f"the summary lacks {missing}")
    expect(got["requests"] == len(latencies), f"requests is {got['requests']}, expected {len(latencies)}")
    expect(abs(got["req_per_s"] - len(latencies) / duration_s) < 1e-6,
           "req_per_s is not the number of requests over the wall time of the run",
           hint="divide by duration_s; summed latencies overlap when threads run in parallel")
    errors = sum(1 for s in statuses if s >= 500 or s == 0)
    expect(not abs(got["error_ratio"] - sum(1 for s in statuses if s >= 400 or s == 0) / len(statuses)) < 1e-9,
           "error_ratio counts 4xx answers: a 404 for an unknown product is a correct answer, not a server error",
           hint="errors are statuses >= 500, plus 0 for no answer at all")
    expect(abs(got["error_ratio"] - errors / len(statuses)) < 1e-9,
           "error_ratio is not the share of requests that got a 5xx or no answer (status 0)")
    for name, q in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99)):
        expect(_within_rank(float(got[name]), latencies, q), f"{name} is not the {q}th percentile of the latencies",
               hint="np.percentile(latencies_ms, q) over every request, failed ones included")
    return f"p99 {got['p99_ms']:.1f} ms on the check's data"
