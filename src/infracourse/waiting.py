"""Wait for a condition with a deadline: a notebook or a check must never hang on a rebalance, a
redelivery or a reconnect that does not come."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], timeout_s: float = 30, interval_s: float = 0.05) -> float:
    """Poll CONDITION until it is true; return the seconds waited, or raise TimeoutError after TIMEOUT_S."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"still waiting after {timeout_s} s")
        time.sleep(interval_s)
    return time.monotonic() - started
