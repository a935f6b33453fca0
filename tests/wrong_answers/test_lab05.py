"""Lab 05 checks fail on plausible wrong answers, with a message that helps, and pass the reference."""

from __future__ import annotations

import json
import secrets
import time
import uuid

import pytest
from verdicts import assert_fails, assert_not_done, assert_passes

from infracourse.checking import time_limit
from infracourse.checks import lab05 as checks
from infracourse.lessons import shop_data


@pytest.fixture
def shop(conn):
    shop_data.create(conn, orders=3_000)
    return conn


@pytest.fixture
def key(pg_ns):
    return lambda *parts: pg_ns.key(*parts)


@pytest.fixture
def rk(key):
    """The lab's report_key(category), in the test's namespace (and likewise the keys below)."""
    return lambda category: key("report", category)


@pytest.fixture
def rate_key(key):
    return lambda *parts: key("rate", *parts)


@pytest.fixture
def lk(key):
    return lambda name: key("lock", name)


@pytest.fixture
def vk(key):
    return lambda: key("views", "pending")


def stub(*args):
    raise NotImplementedError


# 1 · cache-aside ---------------------------------------------------------------------------------------

def load(category):
    return [{"category": category, "revenue": 1.5}]


def cache_aside(report_key, ttl=True, decode=True):
    def get(r, category, loader):
        hit = r.get(report_key(category))
        if hit is not None:
            return json.loads(hit) if decode else hit
        value = loader(category)
        r.set(report_key(category), json.dumps(value), ex=60 if ttl else None)
        return value
    return get


def test_cache_aside_reference_passes(r, rk):
    assert_passes(checks.cache_aside(cache_aside(rk), r, rk, load, 60))


def test_cache_aside_without_ttl(r, rk):
    assert_fails(checks.cache_aside(cache_aside(rk, ttl=False), r, rk, load, 60), "never expires")


def test_cache_aside_hit_returns_raw_json(r, rk):
    result = checks.cache_aside(cache_aside(rk, decode=False), r, rk, load, 60)
    assert_fails(result, "a hit returned a str", in_hint=("json.loads",))


def test_cache_aside_that_never_reads_the_cache(r, rk):

    def always_load(r, category, loader):
        value = loader(category)
        r.set(rk(category), json.dumps(value), ex=60)
        return value

    assert_fails(checks.cache_aside(always_load, r, rk, load, 60), "queried the database 5 times")


def test_cache_aside_one_key_for_every_category(r, rk):
    assert_fails(checks.cache_aside(cache_aside(lambda c: rk("books")), r, rk, load, 60), "another category")


def test_cache_aside_stub_is_not_done(r, rk):
    assert_not_done(checks.cache_aside(stub, r, rk, load, 60))


# 2 · invalidation --------------------------------------------------------------------------------------

def insert_order(conn, product_id, quantity):
    conn.execute("INSERT INTO orders (product_id, quantity, amount, ordered_at) VALUES (%s, %s, 1, now())",
                 (product_id, quantity))


def test_invalidation_reference_passes(r, shop, key, rk):
    def ok(r, product_id, quantity, category):
        insert_order(shop, product_id, quantity)
        r.delete(key("report", category))

    assert_passes(checks.invalidation(ok, r, shop, rk))


def test_invalidation_forgotten(r, shop, rk):
    result = checks.invalidation(lambda r, p, q, c: insert_order(shop, p, q), r, shop, rk)
    assert_fails(result, "stale")


def test_invalidation_of_every_report(r, shop, key, rk):
    def wipe_all(r, product_id, quantity, category):
        insert_order(shop, product_id, quantity)
        r.delete(*r.scan_iter(match=key("report", "*")))

    assert_fails(checks.invalidation(wipe_all, r, shop, rk), "toys report was deleted")


def test_invalidation_without_the_write(r, shop, key, rk):
    result = checks.invalidation(lambda r, p, q, c: r.delete(key("report", c)), r, shop, rk)
    assert_fails(result, "0 orders were inserted")


# 3 · fixed window --------------------------------------------------------------------------------------

def fixed(rate_key, slack=0, expire=True):
    def allow(r, client_id, limit, window_s):
        key = rate_key("fixed", client_id, int(time.time() // window_s)) if expire else rate_key(client_id)
        count = r.incr(key)
        if expire:
            r.pexpire(key, int(2000 * window_s), nx=True)
        return count <= limit + slack
    return allow


def test_fixed_reference_passes(r, rate_key):
    assert_passes(checks.fixed_window(fixed(rate_key), r, rate_key))


def test_fixed_off_by_one(r, rate_key):
    assert_fails(checks.fixed_window(fixed(rate_key, slack=1), r, rate_key), "let 11 requests through")


def test_fixed_counter_without_expiry(r, rate_key):
    assert_fails(checks.fixed_window(fixed(rate_key, expire=False), r, rate_key), "no TTL")


# 4 · sliding window ------------------------------------------------------------------------------------

LUA = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - tonumber(ARGV[1]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now_ms, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

RECORDS_REJECTED = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - tonumber(ARGV[1]))
redis.call('ZADD', KEYS[1], now_ms, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return redis.call('ZCARD', KEYS[1]) <= tonumber(ARGV[2]) and 1 or 0
"""


def sliding(key, script):
    def allow(r, client_id, limit, window_s):
        return r.eval(script, 1, key("sliding", client_id), int(window_s * 1000), limit, uuid.uuid4().hex) == 1
    return allow


def test_sliding_reference_passes(r, key):
    assert_passes(checks.sliding_window(sliding(key, LUA), r))


def test_sliding_that_is_a_fixed_window(r, rate_key):
    assert_fails(checks.sliding_window(fixed(rate_key), r), "fixed window")


def test_sliding_that_records_rejected_requests(r, key):
    result = checks.sliding_window(sliding(key, RECORDS_REJECTED), r)
    assert_fails(result, "nothing was allowed", in_hint=("rejected",))


# 5 · lock ----------------------------------------------------------------------------------------------

RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def acquire_ok(lock_key):
    def acquire(r, name, ttl_ms):
        token = secrets.token_hex(8)
        return token if r.set(lock_key(name), token, nx=True, px=ttl_ms) else None
    return acquire


def release_ok(lock_key):
    return lambda r, name, token: r.eval(RELEASE, 1, lock_key(name), token) == 1


def test_lock_reference_passes(lk):
    assert_passes(checks.lock(acquire_ok(lk), release_ok(lk), lk))


def test_lock_without_expiry(lk):

    def acquire(r, name, ttl_ms):
        token = secrets.token_hex(8)
        return token if r.set(lk(name), token, nx=True) else None

    assert_fails(checks.lock(acquire, release_ok(lk), lk), "never expires")


def test_lock_without_nx(lk):

    def acquire(r, name, ttl_ms):
        token = secrets.token_hex(8)
        r.set(lk(name), token, px=ttl_ms)
        return token

    assert_fails(checks.lock(acquire, release_ok(lk), lk), "second acquire succeeded")


def test_lock_release_by_del(lk):
    result = checks.lock(acquire_ok(lk), lambda r, name, token: r.delete(lk(name)) == 1, lk)
    assert_fails(result, "wrong token removed the lock")


def test_lock_with_a_constant_token(lk):

    def acquire(r, name, ttl_ms):
        return "locked" if r.set(lk(name), "locked", nx=True, px=ttl_ms) else None

    assert_fails(checks.lock(acquire, release_ok(lk), lk), "late release removed")


def test_lock_release_get_then_del(lk):
    def release(r, name, token):
        if r.get(lk(name)) == token:
            return r.delete(lk(name)) == 1
        return False

    result = checks.lock(acquire_ok(lk), release, lk)
    assert_fails(result, "between your GET and your DEL", in_hint=("Lua",))


# 6 · stampede guard ------------------------------------------------------------------------------------

def guarded(r, key, load, ttl_s, wait_s=2.0, fallback=TimeoutError):
    lock = key + ":lock"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        hit = r.get(key)
        if hit is not None:
            return json.loads(hit)
        if r.set(lock, "1", nx=True, px=10_000):
            try:
                hit = r.get(key)
                if hit is not None:
                    return json.loads(hit)
                value = load()
                r.set(key, json.dumps(value), ex=ttl_s)
                return value
            finally:
                r.delete(lock)
        time.sleep(0.01)
    if fallback is TimeoutError:
        raise TimeoutError(f"no value at {key} after {wait_s} s")
    return fallback(load)


def test_stampede_reference_passes(r, key):
    assert_passes(checks.stampede_guard(guarded, r, lambda n: key("cache", n)))


def test_stampede_plain_cache_aside(r, key):
    def plain(r, key, load, ttl_s, wait_s=2.0):
        hit = r.get(key)
        if hit is not None:
            return json.loads(hit)
        value = load()
        r.set(key, json.dumps(value), ex=ttl_s)
        return value

    result = checks.stampede_guard(plain, r, lambda n: key("cache", n))
    assert_fails(result, "ran the loader", in_hint=("SET NX PX",))


def test_stampede_losers_give_up(r, key):
    def gives_up(r, key, load, ttl_s, wait_s=2.0):
        hit = r.get(key)
        if hit is not None:
            return json.loads(hit)
        if r.set(key + ":lock", "1", nx=True, px=10_000):
            value = load()
            r.set(key, json.dumps(value), ex=ttl_s)
            return value
        return None

    assert_fails(checks.stampede_guard(gives_up, r, lambda n: key("cache", n)), "got no report")


def test_stampede_waiters_loading_after_the_wait_fail(r, key):
    def loads_anyway(r, key, load, ttl_s, wait_s=2.0):  # the lesson's version: answer anyway after waiting
        return guarded(r, key, load, ttl_s, wait_s, fallback=lambda load: load())

    assert_fails(checks.stampede_guard(loads_anyway, r, lambda n: key("cache", n)), "slower than wait_s",
                 "ran it 20 times", in_hint=("TimeoutError",))


def test_stampede_waiters_returning_none_after_the_wait_fail(r, key):
    def returns_none(r, key, load, ttl_s, wait_s=2.0):
        return guarded(r, key, load, ttl_s, wait_s, fallback=lambda load: None)

    assert_fails(checks.stampede_guard(returns_none, r, lambda n: key("cache", n)), "0 of the 19 waiters",
                 "returned None")


# 7 · write-behind --------------------------------------------------------------------------------------

def record(views_key):
    return lambda r, product_id: r.hincrby(views_key(), product_id, 1)


UPDATE = """UPDATE products AS p SET views = p.views {op} v.n
            FROM unnest(%s::int[], %s::bigint[]) AS v(product_id, n) WHERE p.product_id = v.product_id"""


def flush(views_key, atomic=True, op="+", clear=True, park_unknown=True):
    def flush_views(r, conn):
        if atomic:
            with r.pipeline(transaction=True) as pipe:
                pipe.hgetall(views_key())
                if clear:
                    pipe.delete(views_key())
                counts = pipe.execute()[0]
        else:
            counts = r.hgetall(views_key())
        updated = set()
        if counts:
            updated = {p for (p,) in conn.execute(UPDATE.format(op="+" if op == "+" else "* 0 +") + " RETURNING "
                                                  "p.product_id", ([int(p) for p in counts],
                                                                   [int(n) for n in counts.values()])).fetchall()}
        for product_id, n in counts.items():
            if park_unknown and int(product_id) not in updated:
                r.hincrby(views_key() + ":unknown", product_id, int(n))
        if not atomic and clear:
            r.delete(views_key())
        return len(updated)
    return flush_views


def test_write_behind_reference_passes(shop, vk):
    result = checks.write_behind(record(vk), flush(vk), shop, vk)
    assert_passes(result)
    assert "1 SQL statement in" in result.message


def test_write_behind_one_update_per_view(shop, vk):

    def flush_each(r, conn):
        with r.pipeline(transaction=True) as pipe:
            pipe.hgetall(vk())
            pipe.delete(vk())
            counts = pipe.execute()[0]
        for product_id, n in counts.items():
            conn.execute("UPDATE products SET views = views + %s WHERE product_id = %s", (int(n), int(product_id)))

    assert_fails(checks.write_behind(record(vk), flush_each, shop, vk), "statements for 7 products")


def test_write_behind_read_then_delete_loses_a_view(shop, vk):
    result = checks.write_behind(record(vk), flush(vk, atomic=False), shop, vk)
    assert_fails(result, "were lost", in_hint=("RENAME",))


def test_write_behind_overwrites_the_column(shop, vk):
    result = checks.write_behind(record(vk), flush(vk, op="="), shop, vk)
    assert_fails(result, in_hint=("views = views + n",))


def test_write_behind_never_clears_redis(shop, vk):
    assert_fails(checks.write_behind(record(vk), flush(vk, clear=False), shop, vk), "count them again")


def test_write_behind_dropping_unknown_products_fails(shop, vk):
    result = checks.write_behind(record(vk), flush(vk, park_unknown=False), shop, vk)
    assert_fails(result, "not in the table", ":unknown holds {}", in_hint=("RETURNING",))


def test_write_behind_stub_is_not_done(shop, vk):
    assert_not_done(checks.write_behind(record(vk), stub, shop, vk))


def test_write_behind_endless_flush_is_stopped_without_closing_its_connection_under_it(shop, monkeypatch, vk):
    monkeypatch.setattr(checks, "LIMIT_S", 1)
    calls, ended_by = [], []

    def flush_stuck(r, conn):
        calls.append(1)
        if len(calls) == 1:  # the check's first call drains leftovers
            return 0
        try:
            while True:  # still inside a query when the check gives up, and then forever
                conn.execute("SELECT pg_sleep(2)")
        except BaseException as exc:
            ended_by.append(exc)
            raise

    assert_fails(checks.write_behind(record(vk), flush_stuck, shop, vk), "did not return within")
    deadline = time.monotonic() + 10
    while not ended_by and time.monotonic() < deadline:
        time.sleep(0.1)
    # stopped between two queries; a connection closed under the query would have raised OperationalError
    assert [type(e) for e in ended_by] == [time_limit.Abandoned]


# requirements the tests above did not break on their own -----------------------------------------------
def test_fixed_one_counter_for_all_clients_fails(r, rate_key):
    def shared(r, client_id, limit, window_s):
        key = rate_key("fixed", int(time.time() // window_s))
        count = r.incr(key)
        r.pexpire(key, int(2000 * window_s), nx=True)
        return count <= limit

    assert_fails(checks.fixed_window(shared, r, rate_key), "no counter key contains the client id")


def test_sliding_count_then_add_in_separate_steps_fails(r, key):
    def racy(r, client_id, limit, window_s):
        k, now_ms = key("sliding", client_id), int(time.time() * 1000)
        r.zremrangebyscore(k, "-inf", now_ms - int(window_s * 1000))
        if r.zcard(k) >= limit:
            return False
        time.sleep(0.01)  # the gap another request's ZCARD falls into
        r.zadd(k, {uuid.uuid4().hex: now_ms})
        r.pexpire(k, int(window_s * 1000))
        return True

    assert_fails(checks.sliding_window(racy, r), "20 concurrent requests", in_hint=("atomic",))


REQUIREMENTS = {
    "1": {
        "return the report of `category` from the cache": "test_cache_aside_that_never_reads_the_cache",
        "at\n`report_key(category)`": "test_cache_aside_one_key_for_every_category",
        "with a TTL of `TTL_S` seconds": "test_cache_aside_without_ttl",
        "A hit must return the same list a miss returns.": "test_cache_aside_hit_returns_raw_json",
    },
    "2": {
        "record the order in PostgreSQL with\n`record_order`": "test_invalidation_without_the_write",
        "make sure the next `get_top_products` for that category reads fresh data": "test_invalidation_forgotten",
        "Leave the\nother categories' reports alone.": "test_invalidation_of_every_report",
    },
    "3": {
        "within\n`limit` requests in the current window": "test_fixed_off_by_one",
        "with the client id in the key": "test_fixed_one_counter_for_all_clients_fails",
        "make sure counters expire": "test_fixed_counter_without_expiry",
    },
    "4": {
        "in **any** period of\n`window_s` seconds (not per calendar window)": "test_sliding_that_is_a_fixed_window",
        "Rejected requests do not count.": "test_sliding_that_records_rejected_requests",
        "counting and adding must be one atomic step": "test_sliding_count_then_add_in_separate_steps_fails",
    },
    "5": {
        "for `ttl_ms` milliseconds": "test_lock_without_expiry",
        "if nobody holds\nit": "test_lock_without_nx",
        "returning a new random token": "test_lock_with_a_constant_token",
        "free the lock only\nif it still holds `token`": "test_lock_release_by_del",
        "lets the lock change hands in the middle of your release": "test_lock_release_get_then_del",
    },
    "6": {
        "only **one** may call `load()`": "test_stampede_plain_cache_aside",
        "the others wait until the value is\ncached and return it": "test_stampede_losers_give_up",
        "a waiter never calls `load()` itself": "test_stampede_waiters_loading_after_the_wait_fail",
        "raises `TimeoutError`": "test_stampede_waiters_returning_none_after_the_wait_fail",
    },
    "7": {
        "adds the pending counts to `products.views`": "test_write_behind_overwrites_the_column",
        "removes them\nfrom Redis": "test_write_behind_never_clears_redis",
        "in **one** SQL statement per flush": "test_write_behind_one_update_per_view",
        "none may be lost": "test_write_behind_read_then_delete_loses_a_view",
        "Add them to the hash `views_key() + \":unknown\"`": "test_write_behind_dropping_unknown_products_fails",
    },
}
