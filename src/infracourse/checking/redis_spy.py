"""An instrumented redis-py client for checks: it counts round trips, and it can play a conflicting
writer at the worst moment (right after the code under test read a key), so that a race shows up
every time instead of once in a thousand runs.

    spy = Spy()
    r = spy.client()                       # a redis.Redis (decode_responses=True) that reports to spy
    spy.after_read("GET", key, lambda: other.decrby(key, 80))   # fires once
    learner_function(r, key)
    spy.round_trips, spy.fired

A round trip is one write of commands to the socket: a pipeline of 1,000 commands is one. Commands the
client sends on its own while connecting (HELLO, CLIENT SETINFO) are not counted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import redis

from infracourse import config


class Spy:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.round_trips = 0
        self.commands: list[str] = []  # names of the commands sent one at a time (not in pipelines)
        self._hook: tuple[str, str, Callable[[], object]] | None = None
        self.fired = False

    def client(self, **options: object) -> redis.Redis:
        pool = redis.ConnectionPool.from_url(
            config.redis_url(), connection_class=SpyConnection, spy=self,
            decode_responses=True, socket_timeout=5, socket_connect_timeout=3, **options,
        )
        return redis.Redis(connection_pool=pool)

    def after_read(self, command: str, key: str, action: Callable[[], object]) -> None:
        """Run ACTION once, right after the reply to COMMAND on KEY (sent on its own) is read."""
        with self._lock:
            self._hook, self.fired = (command.upper(), key, action), False

    def reset(self) -> None:
        with self._lock:
            self.round_trips, self.commands = 0, []

    def _sent(self) -> None:
        with self._lock:
            self.round_trips += 1

    def _named(self, args: tuple) -> None:
        with self._lock:
            self.commands.append(str(args[0]).upper())

    def _replied(self, args: tuple | None) -> None:
        with self._lock:
            hook = self._hook
            matches = (
                hook is not None and not self.fired and args is not None and len(args) > 1
                and str(args[0]).upper() == hook[0] and _text(args[1]) == hook[1]
            )
            if matches:
                self.fired = True
        if matches:
            hook[2]()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class SpyConnection(redis.Connection):
    """A redis.Connection that tells its Spy about every write and every reply."""

    def __init__(self, *, spy: Spy, **kwargs: object) -> None:
        self.spy = spy
        self._connecting = False
        self._last_args: tuple | None = None
        super().__init__(**kwargs)

    def on_connect_check_health(self, check_health: bool = True) -> None:
        self._connecting = True
        try:
            super().on_connect_check_health(check_health=check_health)
        finally:
            self._connecting = False

    def send_packed_command(self, command, check_health=True):
        if not self._connecting:
            self.spy._sent()
            self._last_args = None  # a pipeline: the commands inside are not looked at
        return super().send_packed_command(command, check_health=check_health)

    def send_command(self, *args, **kwargs):
        super().send_command(*args, **kwargs)
        if not self._connecting:
            self.spy._named(args)
            self._last_args = args

    def read_response(self, *args, **kwargs):
        response = super().read_response(*args, **kwargs)
        if not self._connecting:
            last, self._last_args = self._last_args, None
            self.spy._replied(last)
        return response
