"""Run a coroutine to completion from synchronous code, even inside Jupyter, whose event loop is already
running (asyncio.run would refuse): a fresh loop on a thread of its own, with a time limit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


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
