"""Waiting with a deadline: a notebook or a check must never hang on a rebalance, a redelivery, a reconnect or
a coroutine that does not come back.

wait_until polls a condition; run_coroutine runs a coroutine to completion from synchronous code, even inside
Jupyter, whose event loop is already running (asyncio.run would refuse there)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], object], timeout_s: float = 30, interval_s: float = 0.05) -> float:
    """Poll CONDITION until it is true; return the seconds waited, or raise TimeoutError after TIMEOUT_S."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"still waiting after {timeout_s} s")
        time.sleep(interval_s)
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
