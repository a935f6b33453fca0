"""Waiting with a deadline: a notebook or a check must never hang on a rebalance, a redelivery, a reconnect or
a coroutine that does not come back.

poll re-runs a fetch until its result is what you wait for and returns that result; wait_until polls a condition
and returns the seconds it took; both raise StillWaiting (a TimeoutError, shown in one line) when time runs out.
run_coroutine runs a coroutine to completion from synchronous code, even inside
Jupyter, whose event loop is already running (asyncio.run would refuse there)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from infracourse.errors import CourseError

T = TypeVar("T")


class StillWaiting(CourseError, TimeoutError):
    """What was waited for did not come in time."""


def poll(fetch: Callable[[], T], until: Callable[[T], object] = bool, timeout_s: float = 20.0, what: str = "",
         interval_s: float = 0.25) -> T:
    """Call FETCH until UNTIL(result) holds; return that result. After TIMEOUT_S raise StillWaiting, showing
    WHAT was waited for and the last result."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = fetch()
        if until(result):
            return result
        if time.monotonic() > deadline:
            shown = repr(result)[:300] if result else "nothing"
            raise StillWaiting(f"after {timeout_s:g} s {what or 'the wait'} still returns {shown}")
        time.sleep(interval_s)


def wait_until(condition: Callable[[], object], timeout_s: float = 30, interval_s: float = 0.05,
               what: str = "the condition") -> float:
    """Poll CONDITION until it is true; return the seconds waited (StillWaiting after TIMEOUT_S)."""
    started = time.monotonic()
    poll(condition, bool, timeout_s, what, interval_s)
    return time.monotonic() - started


def run_coroutine(make: Callable[[], Coroutine[Any, Any, T]], timeout_s: float) -> T:
    """Run MAKE() in a fresh event loop on its own thread; wait at most TIMEOUT_S, then raise TimeoutError.
    Its exception, if any, is re-raised here."""
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(asyncio.wait_for(make(), timeout_s)))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s + 5)
    if thread.is_alive():
        raise TimeoutError(f"the coroutine did not finish within {timeout_s} s")
    if errors:
        raise errors[0]
    return result[0]
