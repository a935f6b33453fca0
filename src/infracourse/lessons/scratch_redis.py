"""A private, throw-away redis-server for demonstrations that would hurt the shared one: filling memory
until keys are evicted, or changing server settings with CONFIG SET.

    with scratch_redis.server("--maxmemory", "2mb") as small:   # a redis.Redis client to it
        ...

It listens on an ephemeral loopback port, keeps nothing on disk, and is stopped (by its pid) when the
block ends. It needs the `redis-server` binary, which native mode installs; Docker-only machines get a
short error saying so.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from infracourse.errors import ServiceUnavailable
from infracourse.services.probes import free_port


@contextmanager
def server(*options: str, start_timeout_s: float = 5.0) -> Iterator[redis.Redis]:
    """Start redis-server with extra command-line OPTIONS; yield a client (decode_responses=True)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceUnavailable(
            "this demonstration starts a private redis-server, and none is installed on this machine "
            "(Docker mode); install the redis-server package, or read the stored outputs"
        )
    with tempfile.TemporaryDirectory(prefix="scratch-redis-") as data_dir:
        port = free_port()
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", data_dir, "--logfile", "", "--loglevel", "warning", *options],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=port, decode_responses=True, socket_timeout=5, socket_connect_timeout=1)
        try:
            _wait_until_ready(client, process, start_timeout_s)
            yield client
        finally:
            client.close()
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _wait_until_ready(client: redis.Redis, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise ServiceUnavailable(f"the private redis-server exited at start (code {process.returncode})")
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"the private redis-server did not answer within {timeout_s} s") from None
            time.sleep(0.02)
