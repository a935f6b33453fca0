"""Checks never hang: learner code runs in a worker thread that a check waits for only so long.

    result = time_limit.call(5, fn, r, "alice")    # fn's result, or CheckFailed after 5 s

A thread cannot be killed, so code stuck in an endless loop keeps running in the background (as a daemon
thread, it does not stop the kernel from exiting); the check itself returns on time with a clear message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from .checking import CheckFailed

T = TypeVar("T")


def call(seconds: float, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """FN(*ARGS, **KWARGS), or CheckFailed if it has not returned after SECONDS; its exception is re-raised."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=target, name=f"check-{getattr(fn, '__name__', 'call')}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        name = getattr(fn, "__name__", "your function")
        raise CheckFailed(f"{name}() did not return within {seconds:g} s",
                          hint="look for a loop that never ends or a wait without a timeout")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
