import shutil

import pytest
import redis

from infracourse.errors import ServiceUnavailable
from infracourse.lessons import scratch_redis


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")
def test_private_server_takes_settings_and_stops():
    with scratch_redis.server("--maxmemory", "3mb", "--maxmemory-policy", "noeviction") as small:
        assert small.config_get("maxmemory")["maxmemory"] == str(3 * 1024 * 1024)
        small.config_set("maxmemory-policy", "allkeys-lru")  # private: changing it hurts nobody
        assert small.set("k", "v") and small.get("k") == "v"
        port = small.connection_pool.connection_kwargs["port"]
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, socket_connect_timeout=0.5).ping()


def test_missing_binary_is_a_short_error(monkeypatch):
    monkeypatch.setattr(scratch_redis.shutil, "which", lambda name: None)
    with pytest.raises(ServiceUnavailable, match="redis-server"):
        with scratch_redis.server():
            pass
