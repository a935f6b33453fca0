import uuid

import pytest
import redis

from infracourse import config, notebook
from infracourse.checking.redis_spy import Spy


@pytest.fixture
def key():
    notebook.require("redis")
    name = f"unit_spy_{uuid.uuid4().hex[:8]}:k"
    yield name
    redis.Redis.from_url(config.redis_url()).delete(name)


def test_counts_one_round_trip_per_command_and_one_per_pipeline(key):
    spy = Spy()
    r = spy.client()
    r.ping()  # connecting sends HELLO and CLIENT SETINFO: not counted
    spy.reset()
    r.set(key, 1)
    r.get(key)
    with r.pipeline(transaction=False) as pipe:
        for _ in range(100):
            pipe.incr(key)
        pipe.execute()
    assert spy.round_trips == 3 and spy.commands == ["SET", "GET"]
    r.close()


def test_new_connections_do_not_count_their_handshake(key):
    spy = Spy()
    r = spy.client()
    r.set(key, 1)
    assert spy.round_trips == 1


def test_hook_fires_once_right_after_the_read(key):
    spy = Spy()
    r, other = spy.client(), redis.Redis.from_url(config.redis_url(), decode_responses=True)
    r.set(key, 100)
    spy.after_read("GET", key, lambda: other.set(key, 5))
    assert r.get(key) == "100"  # the reply came before the conflicting write
    assert r.get(key) == "5" and spy.fired
    spy.after_read("GET", "another-key", lambda: other.set(key, 0))
    r.get(key)
    assert r.get(key) == "5"  # a hook on another key does not fire
    r.close()
    other.close()


def test_watch_sees_the_conflicting_write(key):
    spy = Spy()
    r, other = spy.client(), redis.Redis.from_url(config.redis_url(), decode_responses=True)
    r.set(key, 100)
    spy.after_read("GET", key, lambda: other.decrby(key, 80))
    with r.pipeline() as pipe:
        pipe.watch(key)
        pipe.get(key)
        pipe.multi()
        pipe.decrby(key, 60)
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert other.get(key) == "20"
    r.close()
    other.close()
