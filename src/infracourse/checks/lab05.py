"""Checks of labs/05_caching_patterns.ipynb: cache-aside, invalidation, two rate limiters, a lock, a stampede
guard and a write-behind counter, each against the live PostgreSQL and Redis.

The checks count what matters (database calls, allowed requests, statements sent) and, where a race is the
bug, make the race happen on purpose with redis_spy (another client writes right after your read).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter

import psycopg
import redis

from infracourse import config
from infracourse.checking import exercise, expect, postgres, time_limit
from infracourse.checking.redis_spy import Spy

LIMIT_S = 10


def _plain_client() -> redis.Redis:
    return redis.Redis.from_url(config.redis_url(), decode_responses=True, socket_timeout=5)


def _run_id() -> str:
    return uuid.uuid4().hex[:8]


def _start_of_window(window_s: float) -> None:
    """Sleep until 50 ms after the next multiple of WINDOW_S, so a burst cannot straddle a fixed window's edge."""
    time.sleep(window_s - time.time() % window_s + 0.05)


@exercise("1", "Cache-aside with a TTL")
def cache_aside(get_top_products, r: redis.Redis, report_key, load, ttl_s: int) -> str:
    calls: list[str] = []

    def counting_load(category):
        calls.append(category)
        return load(category)

    r.delete(report_key("books"), report_key("toys"))
    try:
        first = time_limit.call(LIMIT_S, get_top_products, r, "books", counting_load)
        expect(first == load("books"), "the first call (a miss) should return what load(category) returns")
        expect(r.exists(report_key("books")), "nothing was cached under report_key(category) after a miss",
               hint="on a miss, SET the loaded value at report_key(category)")
        for _ in range(4):
            again = time_limit.call(LIMIT_S, get_top_products, r, "books", counting_load)
        expect(len(calls) == 1, f"5 calls for the same category queried the database {len(calls)} times",
               hint="read the cache first and return on a hit")
        expect(again == first, f"a hit returned a {type(again).__name__} that differs from the report",
               hint="decode what you stored (json.loads) before returning it")
        ttl = r.ttl(report_key("books"))
        expect(ttl != -1, "the cached report never expires", hint="SET ... ex=TTL_S")
        expect(0 < ttl <= ttl_s, f"the cached report lives {ttl} s; TTL_S is {ttl_s}")
        toys = time_limit.call(LIMIT_S, get_top_products, r, "toys", counting_load)
        expect(toys == load("toys") and len(calls) == 2, "asking for another category returned the first one's report",
               hint="one key per category: report_key(category)")
        return "5 calls, 1 database query, TTL set"
    finally:
        r.delete(report_key("books"), report_key("toys"))


@exercise("2", "Invalidate on write")
def invalidation(record_order_and_invalidate, r: redis.Redis, conn: psycopg.Connection, report_key) -> str:
    stale = json.dumps([{"name": "a stale report"}])
    r.set(report_key("books"), stale, ex=60)
    r.set(report_key("toys"), stale, ex=60)
    try:
        before = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
        time_limit.call(LIMIT_S, record_order_and_invalidate, r, 63, 1, "books")  # product 63 is a books product
        after = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
        expect(after == before + 1, f"{after - before} orders were inserted, expected 1",
               hint="write the database first: record_order(product_id, quantity)")
        expect(not r.exists(report_key("books")),
               "the cached books report is still there: readers see stale data until its TTL runs out",
               hint="delete report_key(category) after the write")
        expect(r.get(report_key("toys")) == stale, "the cached toys report was deleted too",
               hint="invalidate only the category that changed")
        return "order written, books report dropped, toys kept"
    finally:
        r.delete(report_key("books"), report_key("toys"))


@exercise("3", "A fixed-window rate limiter")
def fixed_window(allow_fixed, r: redis.Redis, rate_key) -> str:
    limit, window_s, run = 10, 1.0, _run_id()
    time_limit.call(LIMIT_S, allow_fixed, r, f"probe-{run}", limit, window_s)
    _start_of_window(window_s)
    client = f"check-{run}"
    burst = [time_limit.call(LIMIT_S, allow_fixed, r, client, limit, window_s) for _ in range(25)]
    expect(all(isinstance(ok, bool) for ok in burst), "allow_fixed should return True or False")
    allowed = sum(burst)
    expect(allowed == limit, f"a burst of 25 let {allowed} requests through with a limit of {limit}",
           hint="INCR returns the count including this request: allow while count <= limit")
    expect(burst[:limit] == [True] * limit, "the first requests of the burst should be the ones allowed")
    keys = [k for k in r.scan_iter(match=rate_key("*"), count=1000) if client in k]
    expect(keys, "no counter key contains the client id under rate_key(...)",
           hint="build the key with rate_key(...) and the client id")
    expect(all(r.ttl(k) != -1 for k in keys), "a counter key has no TTL: one key per window would pile up",
           hint="EXPIRE the counter (NX: only when it is new)")
    time.sleep(window_s + 0.1)
    expect(time_limit.call(LIMIT_S, allow_fixed, r, client, limit, window_s),
           "1.1 s later (a new window) the client is still rejected: the counter never resets",
           hint="give the counter a TTL, or put the window number in the key")
    return f"{allowed} of 25 allowed, reset after the window"


@exercise("4", "A sliding-window rate limiter")
def sliding_window(allow_sliding, r: redis.Redis) -> str:
    limit, window_s, run = 5, 1.0, _run_id()
    time_limit.call(LIMIT_S, allow_sliding, r, f"probe-{run}", limit, window_s)

    def allow(client):
        return time_limit.call(LIMIT_S, allow_sliding, r, client, limit, window_s)

    _start_of_window(window_s)
    client, t0 = f"check-{run}", time.monotonic()
    expect(allow(client) is True, "the first request of a new client was rejected")
    time.sleep(0.6)
    later = [allow(client) for _ in range(4)]
    expect(all(later), f"4 more requests 0.6 s later (5 in the window, limit {limit}): {later.count(False)} rejected")
    expect(allow(client) is False, f"a 6th request within one window was allowed (limit {limit})")
    time.sleep(max(0.0, t0 + window_s + 0.15 - time.monotonic()))
    after = sum(allow(client) for _ in range(5))
    expect(after != 0, "1.15 s after the first request, which has left the window, nothing was allowed",
           hint="remove entries older than the window; do not record rejected requests")
    expect(after == 1, f"1.15 s after the first request {after} of 5 were allowed, though 4 requests of the last "
           "second are still in the window: that is a fixed window", hint="a sorted set of request times")
    with_threads = time_limit.in_threads(LIMIT_S, allow_sliding, [(r, f"burst-{run}", limit, window_s)] * 20,
                                         what="concurrent calls to allow()", together=False)
    expect(sum(with_threads) == limit, f"20 concurrent requests: {sum(with_threads)} allowed, limit {limit}",
           hint="count and add in one atomic step: a Lua script")
    return "sliding, atomic under 20 concurrent requests"


@exercise("5", "A lock with a token-safe release")
def lock(acquire, release, lock_key) -> str:
    spy, other = Spy(), _plain_client()
    r = spy.client()
    name = f"check-{_run_id()}"
    key = lock_key(name)
    try:
        token = time_limit.call(LIMIT_S, acquire, r, name, 2000)
        expect(token, "acquire on a free lock returned no token")
        expect(other.exists(key), "acquire stored nothing at lock_key(name)")
        pttl = other.pttl(key)
        expect(pttl > 0, "the lock never expires: a crashed holder would block everyone forever", hint="SET ... px=")
        expect(pttl <= 2000, f"the lock lives {pttl} ms; 2000 ms were asked for")
        expect(time_limit.call(LIMIT_S, acquire, r, name, 2000) is None,
               "a second acquire succeeded while the lock was held", hint="SET ... nx=True")
        expect(time_limit.call(LIMIT_S, release, r, name, "not-the-token") is False and other.exists(key),
               "a release with the wrong token removed the lock", hint="compare the token before deleting")
        expect(time_limit.call(LIMIT_S, release, r, name, token) is True and not other.exists(key),
               "release with the right token should return True and free the lock")
        first = time_limit.call(LIMIT_S, acquire, r, name, 100)
        time.sleep(0.15)  # the first holder stalls; its lock expires
        second = time_limit.call(LIMIT_S, acquire, r, name, 2000)
        expect(second, "the lock was not free after its TTL ran out")
        time_limit.call(LIMIT_S, release, r, name, first)
        expect(other.get(key) == second, "the first holder's late release removed the second holder's lock",
               hint="a random token per acquisition (secrets.token_hex)")
        time_limit.call(LIMIT_S, release, r, name, second)
        mine = time_limit.call(LIMIT_S, acquire, r, name, 2000)
        spy.after_read("GET", key, lambda: other.set(key, "another-worker", px=5000))  # the lock expires right then
        time_limit.call(LIMIT_S, release, r, name, mine)
        if spy.fired:
            expect(other.get(key) == "another-worker",
                   "between your GET and your DEL the lock expired and another worker took it: your DEL removed "
                   "their lock", hint="compare and delete in one step: a Lua script")
        else:
            expect(not other.exists(key), "release with the right token did not free the lock")
        return "NX, PX, token and atomic release"
    finally:
        other.delete(key)
        r.close()
        other.close()


def _waiters_time_out(get_guarded, r: redis.Redis, key: str) -> None:
    """20 misses at once while the loader takes 1 s and wait_s is 0.3 s: one loads, the 19 others raise
    TimeoutError instead of loading too."""
    loads: list[int] = []

    def very_slow_load():
        loads.append(1)
        time.sleep(1.0)
        return {"report": 7}

    def attempt():
        try:
            return get_guarded(r, key, very_slow_load, 5, 0.3)
        except TimeoutError:
            return TimeoutError

    outcomes = time_limit.in_threads(2 * LIMIT_S, attempt, [()] * 20, what="requests that must give up",
                                     hint="stop waiting after wait_s and raise TimeoutError")
    expect(len(loads) == 1, f"with a loader slower than wait_s, 20 concurrent misses ran it {len(loads)} times",
           hint="a waiter that has waited wait_s raises TimeoutError; it never calls load() itself")
    timed_out = outcomes.count(TimeoutError)
    others = sorted({repr(o) for o in outcomes if o is not TimeoutError and o != {"report": 7}})
    expect(timed_out == 19, f"{timed_out} of the 19 waiters raised TimeoutError after wait_s"
           + (f"; others returned {', '.join(others)}" if others else ""),
           hint="after wait_s without a value, raise TimeoutError (do not return None)")


@exercise("6", "A stampede guard", stretch=True)
def stampede_guard(get_guarded, r: redis.Redis, cache_key) -> str:
    key = cache_key(f"hot-{_run_id()}")
    calls: list[int] = []

    def slow_load():
        calls.append(1)
        time.sleep(0.2)
        return {"report": 42}

    probe, slow_key = cache_key(f"probe-{_run_id()}"), cache_key(f"slow-{_run_id()}")
    try:
        time_limit.call(LIMIT_S, get_guarded, r, probe, dict, 5, 5.0)
        clients = 50
        answers = time_limit.in_threads(2 * LIMIT_S, get_guarded, [(r, key, slow_load, 5, 5.0)] * clients,
                                        what="concurrent requests",
                                        hint="waiters must give up after a while (and the lock must expire)")
        expect(len(calls) > 0, "the loader never ran")
        expect(len(calls) == 1, f"{clients} concurrent misses ran the loader {len(calls)} times",
               hint="only the request holding the lock (SET NX PX) loads; check the cache again once you hold it")
        wrong = sum(a != {"report": 42} for a in answers)
        expect(len(answers) == clients and wrong == 0, f"{wrong} of {clients} requests got no report or a wrong one",
               hint="waiters poll the cache until the winner has filled it")
        ttl = r.ttl(key)
        expect(0 < ttl <= 5, "the cached value should expire after ttl_s", hint="SET ... ex=ttl_s")
        time_limit.call(LIMIT_S, get_guarded, r, key, slow_load, 5, 5.0)
        expect(len(calls) == 1, "a call after the value was cached ran the loader again")
        _waiters_time_out(get_guarded, r, slow_key)
        return f"{clients} concurrent misses, 1 load; waiters give up with TimeoutError"
    finally:
        r.delete(key, key + ":lock", probe, probe + ":lock", slow_key, slow_key + ":lock")


def _counting_connection(conn: psycopg.Connection) -> tuple[psycopg.Connection, list[int]]:
    """A connection to the same schema whose cursors count the statements they send."""
    sent = [0]

    class CountingCursor(psycopg.Cursor):
        def execute(self, query, params=None, **kwargs):
            sent[0] += 1
            return super().execute(query, params, **kwargs)

        def executemany(self, query, params_seq, **kwargs):
            params_seq = list(params_seq)
            sent[0] += len(params_seq)
            return super().executemany(query, params_seq, **kwargs)

    search_path = conn.execute("SHOW search_path").fetchone()[0].replace(" ", "")
    counting = psycopg.connect(config.postgres_dsn(options=f"-c search_path={search_path}"),
                               autocommit=True, cursor_factory=CountingCursor)
    return counting, sent


UNKNOWN_VIEWS = {10_000_001: 7, 10_000_002: 3}  # no such products


@exercise("7", "A write-behind view counter", stretch=True)
def write_behind(record_view, flush_views, conn: psycopg.Connection, views_key) -> str:
    spy, other = Spy(), _plain_client()
    r = spy.client()
    counting, sent = _counting_connection(conn)
    key = views_key()
    unknown_key = key + ":unknown"
    try:
        time_limit.call(LIMIT_S, flush_views, r, counting)  # drains what earlier attempts left behind
        conn.execute("UPDATE products SET views = 0 WHERE product_id <= 5")
        other.delete(key)
        other.delete(unknown_key)
        rng, expected = random.Random(1), Counter()
        for product_id in rng.choices([1, 2, 3, 4, 5], [50, 20, 15, 10, 5], k=1000):
            time_limit.call(LIMIT_S, record_view, r, product_id)
            expected[product_id] += 1
        for product_id, views in UNKNOWN_VIEWS.items():  # products that are not in the table (deleted, or bad ids)
            for _ in range(views):
                time_limit.call(LIMIT_S, record_view, r, product_id)
        pending = sum(int(v) for v in other.hgetall(key).values())
        expect(pending == 1010, f"after 1,010 views, views_key() holds {pending}",
               hint="HINCRBY views_key() product_id 1, and nothing else until the flush")
        sent[0] = 0
        spy.after_read("HGETALL", key, lambda: other.hincrby(key, 3, 1))  # a view arrives mid-flush
        time_limit.call(LIMIT_S, flush_views, r, counting)
        statements = sent[0]
        expected[3] += spy.fired
        expect(statements <= 5, f"the flush sent {statements} statements for {5 + len(UNKNOWN_VIEWS)} products",
               hint="one UPDATE ... FROM unnest(%s::int[], %s::bigint[]) for the whole batch")

        def seen() -> Counter:
            stored = dict(conn.execute("SELECT product_id, views FROM products WHERE product_id <= 5").fetchall())
            waiting = {int(p): int(n) for p, n in other.hgetall(key).items()}
            return Counter({p: stored.get(p, 0) + waiting.get(p, 0) for p in range(1, 6)})

        got = seen()
        expect(sum(got.values()) >= sum(expected.values()),
               f"{sum(expected.values()) - sum(got.values())} view(s) recorded while the flush ran were lost",
               hint="hand the pending hash over atomically (RENAME it, or HGETALL and DEL in one MULTI/EXEC)")
        expect(sum(got.values()) <= sum(expected.values()),
               "the flushed views are still pending in Redis too: the next flush would count them again",
               hint="remove what was flushed from Redis")
        expect(got == expected, "after one flush, some views ended up on the wrong products",
               hint="the hash field is the product id, the value its count")
        parked = {int(p): int(n) for p, n in other.hgetall(unknown_key).items()}
        expect(parked == UNKNOWN_VIEWS, f"views of products not in the table: {UNKNOWN_VIEWS} were recorded, "
               f"{views_key()}:unknown holds {parked}",
               hint="UPDATE ... RETURNING p.product_id tells which products exist; HINCRBY the others there")
        for product_id in rng.choices([1, 2, 3, 4, 5], k=500):
            time_limit.call(LIMIT_S, record_view, r, product_id)
            expected[product_id] += 1
        time_limit.call(LIMIT_S, flush_views, r, counting)
        time_limit.call(LIMIT_S, flush_views, r, counting)
        got = seen()
        expect(sum(got.values()) >= sum(expected.values()), "a second flush overwrote the stored views",
               hint="add to the column: SET views = views + n")
        expect(got == expected, "after two more flushes some views were counted twice",
               hint="remove what was flushed from Redis")
        return f"1,510 views, {statements} SQL statement{'s' if statements != 1 else ''} in the flush"
    finally:
        other.delete(key, unknown_key)
        r.close()
        other.close()
        postgres.close_when_idle(counting)  # a timed-out flush_views may still be running a query on it
