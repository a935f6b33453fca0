"""Lab 04 checks fail on plausible wrong answers, with a message that helps, and pass the reference."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from verdicts import assert_fails, assert_not_done, assert_passes

from infracourse.checks import lab04 as checks

CAP = 10


@pytest.fixture
def keys(pg_ns):
    """The lab's key functions, in the test's own namespace."""
    return {kind: (lambda part, kind=kind: pg_ns.key(kind, part))
            for kind in ("board", "feed", "visitors", "price", "wallet")}


# 1 · leaderboard ---------------------------------------------------------------------------------------

def add_score(r, board, player, points):
    return r.zincrby(board, points, player)


def top(r, board, n):
    return r.zrevrange(board, 0, n - 1, withscores=True)


def test_leaderboard_reference_passes(r, keys):
    assert_passes(checks.leaderboard(add_score, top, r, keys["board"]))


def test_leaderboard_zadd_replaces_instead_of_adding(r, keys):
    def replace(r, board, player, points):
        r.zadd(board, {player: points})
        return r.zscore(board, player)

    result = checks.leaderboard(replace, top, r, keys["board"])
    assert_fails(result, "5 then 4", in_hint=("ZINCRBY",))


def test_leaderboard_lowest_first(r, keys):
    result = checks.leaderboard(add_score, lambda r, b, n: r.zrange(b, 0, n - 1, withscores=True), r, keys["board"])
    assert_fails(result, "lowest scores first")


def test_leaderboard_off_by_one(r, keys):
    result = checks.leaderboard(add_score, lambda r, b, n: r.zrevrange(b, 0, n, withscores=True), r, keys["board"])
    assert_fails(result, "returned 4 players", in_hint=("both ends",))


def test_leaderboard_stub_is_not_done(r, keys):
    def stub(*args):
        raise NotImplementedError

    assert_not_done(checks.leaderboard(stub, stub, r, keys["board"]))


# 2 · rank ----------------------------------------------------------------------------------------------

def test_rank_reference_passes(r, keys):
    def rank_of(r, board, player):
        rank = r.zrevrank(board, player)
        return None if rank is None else rank + 1

    assert_passes(checks.rank(rank_of, r, keys["board"]))


def test_rank_zero_based(r, keys):
    assert_fails(checks.rank(lambda r, b, p: r.zrevrank(b, p), r, keys["board"]), "rank 0")


def test_rank_ascending(r, keys):
    def rank_of(r, board, player):
        rank = r.zrank(board, player)
        return None if rank is None else rank + 1

    result = checks.rank(rank_of, r, keys["board"])
    assert_fails(result, in_hint=("ZREVRANK",))


def test_rank_unknown_player_crashes(r, keys):
    assert_fails(checks.rank(lambda r, b, p: r.zrevrank(b, p) + 1, r, keys["board"]), "TypeError")


# 3 · feed ----------------------------------------------------------------------------------------------

def _latest(feed_key):
    return lambda r, user, n: r.lrange(feed_key(user), 0, n - 1)


def test_feed_reference_passes(keys):
    feed_key = keys["feed"]

    def push(r, user, text):
        with r.pipeline(transaction=True) as pipe:
            pipe.lpush(feed_key(user), text)
            pipe.ltrim(feed_key(user), 0, CAP - 1)
            pipe.execute()

    assert_passes(checks.feed(push, _latest(feed_key), feed_key, CAP))


def test_feed_without_trim(keys):
    feed_key = keys["feed"]
    result = checks.feed(lambda r, u, t: r.lpush(feed_key(u), t), _latest(feed_key), feed_key, CAP)
    assert_fails(result, "the cap is 10", in_hint=("LTRIM",))


def test_feed_trim_in_a_second_round_trip(keys):
    feed_key = keys["feed"]

    def push(r, user, text):
        r.lpush(feed_key(user), text)
        r.ltrim(feed_key(user), 0, CAP - 1)

    result = checks.feed(push, _latest(feed_key), feed_key, CAP)
    assert_fails(result, "30 round trips", in_hint=("MULTI/EXEC",))


def test_feed_pipeline_without_multi_exec_fails(keys):
    feed_key = keys["feed"]

    def push(r, user, text):
        with r.pipeline(transaction=False) as pipe:  # one round trip, but not one unit
            pipe.lpush(feed_key(user), text)
            pipe.ltrim(feed_key(user), 0, CAP - 1)
            pipe.execute()

    result = checks.feed(push, _latest(feed_key), feed_key, CAP)
    assert_fails(result, f"{CAP + 5} of {CAP + 5} pushes", "not in MULTI/EXEC", in_hint=("transaction=True",))


def test_feed_as_a_lua_script_passes(keys):
    feed_key = keys["feed"]

    def push(r, user, text):
        r.eval("redis.call('LPUSH', KEYS[1], ARGV[1]); redis.call('LTRIM', KEYS[1], 0, ARGV[2] - 1)", 1,
               feed_key(user), text, CAP)

    assert_passes(checks.feed(push, _latest(feed_key), feed_key, CAP))


def test_feed_rpush_reads_oldest(keys):
    feed_key = keys["feed"]

    def push(r, user, text):
        with r.pipeline(transaction=True) as pipe:
            pipe.rpush(feed_key(user), text)
            pipe.ltrim(feed_key(user), -CAP, -1)
            pipe.execute()

    assert_fails(checks.feed(push, _latest(feed_key), feed_key, CAP), "newest first")


# 4 · unique visitors -----------------------------------------------------------------------------------

def test_unique_reference_passes(r, keys):
    vk = keys["visitors"]
    result = checks.unique_visitors(lambda r, d, v: r.pfadd(vk(d), v),
                                    lambda r, days: r.pfcount(*[vk(d) for d in days]), r, vk)
    assert_passes(result)


def test_unique_with_sets_uses_too_much_memory(r, keys):
    vk = keys["visitors"]
    result = checks.unique_visitors(lambda r, d, v: r.sadd(vk(d), v),
                                    lambda r, days: len(r.sunion([vk(d) for d in days])), r, vk)
    assert_fails(result, "KB", in_hint=("PFADD",))


def test_unique_summing_days_double_counts(r, keys):
    vk = keys["visitors"]
    result = checks.unique_visitors(lambda r, d, v: r.pfadd(vk(d), v),
                                    lambda r, days: sum(r.pfcount(vk(d)) for d in days), r, vk)
    assert_fails(result, "4,000 distinct", in_hint=("several times",))


# 5 · bulk load -----------------------------------------------------------------------------------------

def test_bulk_reference_passes(keys):
    pk = keys["price"]

    def load(r, prices):
        with r.pipeline(transaction=False) as pipe:
            for sku, price in prices.items():
                pipe.set(pk(sku), price)
            pipe.execute()

    result = checks.bulk_load(load, pk)
    assert_passes(result)
    assert "1 round trip" in result.message


def test_bulk_mset_passes(keys):
    pk = keys["price"]
    assert_passes(checks.bulk_load(lambda r, prices: r.mset({pk(s): p for s, p in prices.items()}), pk))


def test_bulk_one_set_per_price(keys):
    pk = keys["price"]

    def load(r, prices):
        for sku, price in prices.items():
            r.set(pk(sku), price)

    result = checks.bulk_load(load, pk)
    assert_fails(result, "500 round trips", in_hint=("pipeline",))


def test_bulk_wrong_key(keys):
    pk = keys["price"]

    def load(r, prices):
        r.mset({f"price:{s}": p for s, p in prices.items()})
        r.delete(*[f"price:{s}" for s in prices])

    assert_fails(checks.bulk_load(load, pk), "missing")


# 6 · withdraw ------------------------------------------------------------------------------------------

def watched_withdraw(r, key, amount):
    with r.pipeline() as pipe:
        while True:
            try:
                pipe.watch(key)
                balance = int(pipe.get(key) or 0)
                if balance < amount:
                    pipe.unwatch()
                    return False
                pipe.multi()
                pipe.decrby(key, amount)
                pipe.execute()
                return True
            except redis.WatchError:
                continue


def test_withdraw_reference_passes(keys):
    result = checks.withdraw(watched_withdraw, keys["wallet"])
    assert_passes(result)
    assert "retried" in result.message


def test_withdraw_lua_passes(keys):
    script = "local b = tonumber(redis.call('GET', KEYS[1]) or '0') " \
             "if b < tonumber(ARGV[1]) then return 0 end redis.call('DECRBY', KEYS[1], ARGV[1]) return 1"

    def lua(r, key, amount):
        return bool(r.eval(script, 1, key, amount))

    assert_passes(checks.withdraw(lua, keys["wallet"]))


def test_withdraw_read_then_set_loses_an_update(keys):
    def naive(r, key, amount):
        balance = int(r.get(key))
        if balance < amount:
            return False
        r.set(key, balance - amount)
        return True

    result = checks.withdraw(naive, keys["wallet"])
    assert_fails(result, "was lost", in_hint=("WATCH",))


def test_withdraw_read_then_decrby_goes_negative(keys):
    def naive(r, key, amount):
        if int(r.get(key)) < amount:
            return False
        r.decrby(key, amount)
        return True

    assert_fails(checks.withdraw(naive, keys["wallet"]), "negative")


def test_withdraw_endless_retry_is_cut_short(keys, monkeypatch):
    monkeypatch.setattr(checks, "LIMIT_S", 1)
    stop = threading.Event()

    def spins(r, key, amount):
        while not stop.is_set():
            time.sleep(0.01)

    try:
        result = checks.withdraw(spins, keys["wallet"])
    finally:
        stop.set()
    assert_fails(result, "did not return within")


# requirements the tests above did not break on their own -----------------------------------------------
def test_leaderboard_not_returning_the_new_score_fails(r, keys):
    def no_return(r, board, player, points):
        r.zincrby(board, points, player)

    assert_fails(checks.leaderboard(no_return, top, r, keys["board"]), "should return the player's new score")


def test_feed_latest_oldest_first_fails(keys):
    def push(r, user, text):
        with r.pipeline(transaction=True) as pipe:
            pipe.lpush(keys["feed"](user), text)
            pipe.ltrim(keys["feed"](user), 0, CAP - 1)
            pipe.execute()

    def oldest_first(r, user, n):
        return list(reversed(r.lrange(keys["feed"](user), 0, n - 1)))

    assert_fails(checks.feed(push, oldest_first, keys["feed"], CAP), "newest first")


def test_withdraw_giving_up_on_a_conflict_fails(keys):
    def no_retry(r, key, amount):
        with r.pipeline() as pipe:
            try:
                pipe.watch(key)
                if int(pipe.get(key) or 0) < amount:
                    return False
                pipe.multi()
                pipe.decrby(key, amount)
                pipe.execute()
                return True
            except redis.WatchError:
                return False

    assert_fails(checks.withdraw(no_retry, keys["wallet"]), "should then succeed", in_hint=("WatchError",))


REQUIREMENTS = {
    "1": {
        "add `points` to `player`'s score": "test_leaderboard_zadd_replaces_instead_of_adding",
        "return the new score": "test_leaderboard_not_returning_the_new_score_fails",
        "the `n` best players as a list of `(player, score)` pairs": "test_leaderboard_off_by_one",
        "highest score first": "test_leaderboard_lowest_first",
    },
    "2": {
        "1 for the best score": ("test_rank_zero_based", "test_rank_ascending"),
        "or `None` if the\nplayer is not on the board": "test_rank_unknown_player_crashes",
    },
    "3": {
        "add `text` at the head of the list": "test_feed_rpush_reads_oldest",
        "keep\nonly the newest `FEED_CAP` items": "test_feed_without_trim",
        "**in one round trip**": "test_feed_trim_in_a_second_round_trip",
        "so no reader ever sees a longer feed": "test_feed_pipeline_without_multi_exec_fails",
        "the `n` newest notifications, newest first": "test_feed_latest_oldest_first_fails",
    },
    "4": {
        "returns how many **distinct** visitors came over the list of `days`": "test_unique_summing_days_double_counts",
        "Memory must stay small": "test_unique_with_sets_uses_too_much_memory",
    },
    "5": {
        "at\n`price_key(sku)`": "test_bulk_wrong_key",
        "in at most 3 round trips": "test_bulk_one_set_per_price",
    },
    "6": {
        "otherwise change nothing and return `False`": "test_withdraw_read_then_decrby_goes_negative",
        "Another client may write the balance between\nyour read and your write": (
            "test_withdraw_read_then_set_loses_an_update",),
        "retry when the transaction fails": "test_withdraw_giving_up_on_a_conflict_fails",
    },
}
