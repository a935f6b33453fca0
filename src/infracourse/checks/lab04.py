"""Checks of labs/04_redis_data_structures.ipynb: a leaderboard, a capped feed, unique visitors, a pipelined
bulk load and a withdrawal that survives a conflicting writer.

Every check works on its own keys (named by the lab's key functions with a "check" suffix), deletes them
afterwards, and runs learner code under a time limit.
"""

from __future__ import annotations

import redis

from infracourse import config
from infracourse.checking import exercise, expect, time_limit
from infracourse.checking.redis_spy import Spy, SpyConnection

LIMIT_S = 10
ATOMIC_COMMANDS = (b"MULTI", b"EVAL", b"EVALSHA", b"FCALL")  # what makes a round trip run as one unit


class _AtomicSpy(Spy):
    """A Spy whose client also counts the round trips that run as one unit (MULTI/EXEC, or a script): a plain
    pipeline is one round trip too, but another client's commands can run between the ones it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.atomic_trips = 0

    def client(self, **options: object) -> redis.Redis:
        pool = redis.ConnectionPool.from_url(
            config.redis_url(), connection_class=_AtomicSpyConnection, spy=self,
            decode_responses=True, socket_timeout=5, socket_connect_timeout=3, **options,
        )
        return redis.Redis(connection_pool=pool)

    def reset(self) -> None:
        super().reset()
        self.atomic_trips = 0


class _AtomicSpyConnection(SpyConnection):
    def send_packed_command(self, command, check_health=True):
        chunks = [command] if isinstance(command, (bytes, str)) else command
        sent = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
        if not self._connecting and any(b"\r\n" + name + b"\r\n" in sent.upper() for name in ATOMIC_COMMANDS):
            self.spy.atomic_trips += 1
        return super().send_packed_command(command, check_health=check_health)


def _pairs(value: object) -> list[tuple[str, float]] | None:
    """[(member, score), ...] from what a learner's top() returned, or None if it is not that shape."""
    try:
        return [(str(member), float(score)) for member, score in value]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None


@exercise("1", "Leaderboard: add points, top N")
def leaderboard(add_score, top, r: redis.Redis, board_key) -> str:
    board = board_key("check")
    r.delete(board)
    try:
        games = [("ada", 5), ("bob", 3), ("ada", 4), ("cy", 12), ("bob", 7), ("dee", 1)]
        for player, points in games:
            time_limit.call(LIMIT_S, add_score, r, board, player, points)
        expect(r.exists(board), "nothing was stored at the board's key", hint="write to the key you are given")
        ada = r.zscore(board, "ada")
        expect(ada is not None, "ada played but is not on the board", hint="a sorted set: ZADD / ZINCRBY")
        expect(float(ada) == 9, f"ada scored 5 then 4, and her score is {float(ada):g}",
               hint="points add up: ZINCRBY adds to a score, ZADD replaces it")
        returned = time_limit.call(LIMIT_S, add_score, r, board, "dee", 2)
        expect(returned is not None and float(returned) == 3,
               f"add_score should return the player's new score; for dee (1 + 2) it returned {returned!r}",
               hint="ZINCRBY replies with the new score: return it")
        got = _pairs(time_limit.call(LIMIT_S, top, r, board, 3))
        expect(got is not None, "top() should return a list of (player, score) pairs",
               hint="withscores=True gives the scores too")
        expect(len(got) == 3, f"top(r, board, 3) returned {len(got)} players",
               hint="ranges in Redis include both ends: 0 to n - 1 is n elements")
        expect(got[0][1] >= got[-1][1], "top() returned the lowest scores first",
               hint="ZREVRANGE (or ZRANGE ... REV) is best first")
        expect(got == [("cy", 12.0), ("bob", 10.0), ("ada", 9.0)], "top() returned the wrong players or scores",
               hint="read the sorted set best first with scores")
        return "4 players, top 3 best first"
    finally:
        r.delete(board)


@exercise("2", "Leaderboard: rank of a player")
def rank(rank_of, r: redis.Redis, board_key) -> str:
    board = board_key("check")
    r.delete(board)
    try:
        r.zadd(board, {"ada": 9, "bob": 10, "cy": 12, "dee": 3})
        best = time_limit.call(LIMIT_S, rank_of, r, board, "cy")
        expect(best is not None, "rank_of returned None for the best player, who is on the board")
        expect(best != 0, "the best player got rank 0; ranks start at 1 here",
               hint="Redis ranks count from 0")
        expect(best == 1, f"the best player (highest score) should have rank 1, got {best!r}",
               hint="ZRANK counts from the lowest score; ZREVRANK from the highest")
        expect(time_limit.call(LIMIT_S, rank_of, r, board, "dee") == 4, "the last of 4 players should be rank 4")
        missing = time_limit.call(LIMIT_S, rank_of, r, board, "nobody")
        expect(missing is None, f"a player who never scored should get None, got {missing!r}",
               hint="ZREVRANK replies nil (None) for an unknown member")
        return "ranks 1..4 and None"
    finally:
        r.delete(board)


@exercise("3", "A capped notification feed")
def feed(push_notification, latest, feed_key, cap: int) -> str:
    spy = _AtomicSpy()
    r = spy.client()
    user = "check"
    key = feed_key(user)
    r.delete(key)
    try:
        spy.reset()
        total = cap + 5
        for i in range(1, total + 1):
            time_limit.call(LIMIT_S, push_notification, r, user, f"note {i}")
        trips = spy.round_trips
        expect(r.exists(key), "nothing was stored at feed_key(user)", hint="push to the key feed_key(user) gives")
        kind = r.type(key)
        expect(kind == "list", f"the feed is a {kind}, not a list")
        length = r.llen(key)
        expect(length <= cap, f"after {total} pushes the feed holds {length} items; the cap is {cap}",
               hint="LTRIM after each LPUSH keeps the newest items")
        expect(length == cap, f"after {total} pushes the feed holds {length} items; it should keep {cap}",
               hint="LTRIM's stop index is inclusive")
        expect(trips == total,
               f"{total} pushes took {trips} round trips: between a separate LPUSH and LTRIM a reader "
               "sees the feed over its cap",
               hint="send both in one MULTI/EXEC pipeline (transaction=True)")
        expect(spy.atomic_trips == total,
               f"{total - spy.atomic_trips} of {total} pushes sent LPUSH and LTRIM in one round trip but not in "
               "MULTI/EXEC: another client's commands can run between the two, and see the feed over its cap",
               hint="r.pipeline(transaction=True) wraps the commands in MULTI/EXEC")
        got = time_limit.call(LIMIT_S, latest, r, user, 3)
        expect(list(got) == [f"note {total}", f"note {total - 1}", f"note {total - 2}"],
               "latest(r, user, 3) should return the 3 newest notifications, newest first",
               hint="LPUSH adds at the head (index 0); read from 0")
        return f"{total} pushes, {cap} kept, one round trip each"
    finally:
        r.delete(key)
        r.close()


@exercise("4", "Unique visitors with HyperLogLog")
def unique_visitors(record_visit, count_unique, r: redis.Redis, visits_key) -> str:
    days = ["check-1", "check-2", "check-3"]
    r.delete(*(visits_key(d) for d in days))
    try:
        for offset, day in enumerate(days):  # 2,000 visitors a day, half of them also came the day before
            for visitor in range(offset * 1000, offset * 1000 + 2000):
                time_limit.call(LIMIT_S, record_visit, r, day, f"visitor-{visitor:05d}")
        expect(all(r.exists(visits_key(d)) for d in days), "some day has nothing stored at visits_key(day)")
        one_day = int(time_limit.call(LIMIT_S, count_unique, r, days[:1]))
        expect(abs(one_day - 2000) <= 40, f"day 1 had 2,000 distinct visitors; count_unique said {one_day:,}")
        three = int(time_limit.call(LIMIT_S, count_unique, r, days))
        expect(three < 5000, f"the 3 days had 4,000 distinct visitors; count_unique said {three:,}",
               hint="visitors who came on several days were counted several times: count over all keys at once")
        expect(abs(three - 4000) <= 80, f"the 3 days had 4,000 distinct visitors; count_unique said {three:,}")
        used = sum(r.memory_usage(visits_key(d)) or 0 for d in days)
        expect(used < 3 * 16_000, f"the 3 days use {used / 1024:.0f} KB; a HyperLogLog needs at most ~14 KB a day",
               hint="a set keeps every id; PFADD keeps a fixed-size sketch")
        return f"error {100 * abs(three - 4000) / 4000:.1f} %, {used / 1024:.0f} KB for 3 days"
    finally:
        r.delete(*(visits_key(d) for d in days))


@exercise("5", "A pipelined bulk load")
def bulk_load(load_prices, price_key) -> str:
    spy = Spy()
    r = spy.client()
    prices = {f"check-{i:03d}": round(1 + i * 0.37, 2) for i in range(500)}
    keys = [price_key(sku) for sku in prices]
    r.delete(*keys)
    try:
        spy.reset()
        time_limit.call(LIMIT_S, load_prices, r, prices)
        trips = spy.round_trips
        stored = r.mget(keys)
        expect(all(v is not None for v in stored),
               f"{sum(v is None for v in stored)} of 500 prices are missing", hint="one key per sku: price_key(sku)")
        expect(all(float(v) == p for v, p in zip(stored, prices.values(), strict=True)),
               "some stored prices differ from the ones given")
        expect(trips <= 3, f"loading 500 prices took {trips} round trips",
               hint="queue the SETs on r.pipeline() and execute() once")
        return f"500 prices in {trips} round trip{'s' if trips > 1 else ''}"
    finally:
        r.delete(*keys)
        r.close()


@exercise("6", "A withdrawal that survives a concurrent writer", stretch=True)
def withdraw(withdraw_fn, wallet_key) -> str:
    spy = Spy()
    r = spy.client()
    other = redis.Redis.from_url(config.redis_url(), decode_responses=True, socket_timeout=5)  # another app
    key = wallet_key("check")
    try:
        r.set(key, 100)
        ok = time_limit.call(LIMIT_S, withdraw_fn, r, key, 30)
        expect(ok is True and int(r.get(key)) == 70, "withdrawing 30 from 100 should return True and leave 70")
        ok = time_limit.call(LIMIT_S, withdraw_fn, r, key, 100)
        expect(ok is False and int(r.get(key)) == 70,
               "withdrawing 100 from 70 should return False and leave the balance alone")
        r.set(key, 100)
        spy.after_read("GET", key, lambda: other.decrby(key, 80))  # another client spends 80 right then
        ok = time_limit.call(LIMIT_S, withdraw_fn, r, key, 60)
        balance = int(other.get(key))  # not through the spy: this read must not trigger the hook
        if not spy.fired:  # no GET of the key: a Lua script or a server-side check; it must still add up
            expect(ok is True and balance == 40, "withdrawing 60 from 100 should return True and leave 40")
            return "atomic on the server"
        expect(balance >= 0, f"the balance went negative ({balance}): both withdrawals went through",
               hint="WATCH the key before reading it; EXEC then fails if another client wrote it")
        expect(balance == 100 - 80 - (60 if ok else 0),
               "another client's withdrawal of 80, made between your read and your write, was lost",
               hint="WATCH the key, read, then MULTI/EXEC; retry on redis.WatchError")
        expect(ok is False, "withdraw returned True but the money was not taken")
        r.set(key, 100)
        spy.after_read("GET", key, lambda: other.decrby(key, 10))  # a small conflicting write: 90 are left
        ok = time_limit.call(LIMIT_S, withdraw_fn, r, key, 60)
        balance = int(other.get(key))
        expect(ok is True and balance == 30, "another client took 10 between your read and your write; withdrawing "
               f"60 from the 90 left should then succeed, but withdraw returned {ok!r} and left {balance}",
               hint="when EXEC fails (redis.WatchError), start over: WATCH, read, MULTI, EXEC again")
        return "a conflicting withdrawal was detected and retried"
    finally:
        r.delete(key)
        r.close()
        other.close()
