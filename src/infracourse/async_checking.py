"""Exercise checks for asyncio labs (NATS): the async twin of checking.exercise.

A check of learner code that holds a connection of the notebook's event loop (nats-py's `nc`, `js`, `kv`)
must run in that loop, so an async check is a coroutine the check cell awaits:

    await checks.catch_up(catch_up, js, ns)

Running a check's own loop in a thread instead would need its own connections, and learner code that closes
over the notebook's `nc` would then fail with "attached to a different loop". Jupyter cells support top-level
await, so awaiting is the simpler contract.

The outcome (a note, NotDone, CheckFailed or any error) is handed to checking.exercise, so an async check
prints, records and returns exactly what a sync check does. A check that waits longer than its time limit
fails with a hint instead of hanging the notebook.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

from .checking import CheckFailed, CheckResult, done, exercise

DEFAULT_TIME_LIMIT_S = 15.0


def async_exercise(
    number: str, title: str, time_limit_s: float = DEFAULT_TIME_LIMIT_S
) -> Callable[[Callable[..., Awaitable[str | None]]], Callable[..., Awaitable[CheckResult]]]:
    """Turn a coroutine function that raises CheckFailed/NotDone into an awaitable check."""

    def decorate(fn: Callable[..., Awaitable[str | None]]) -> Callable[..., Awaitable[CheckResult]]:
        @functools.wraps(fn)
        async def run(*args: object, **kwargs: object) -> CheckResult:
            outcome: str | None | BaseException
            try:
                done(*args, *kwargs.values())
                outcome = await _within(fn(*args, **kwargs), time_limit_s)
            except Exception as exc:  # noqa: BLE001 - replayed below so exercise() classifies it
                outcome = exc

            def replay() -> str | None:
                if isinstance(outcome, BaseException):
                    raise outcome
                return outcome

            return exercise(number, title)(replay)()

        run.exercise = number  # type: ignore[attr-defined]
        return run

    return decorate


async def _within(coro: Awaitable[str | None], time_limit_s: float) -> str | None:
    """Await CORO, or cancel it and fail the check after TIME_LIMIT_S (a TimeoutError the learner's code
    raises itself is passed through unchanged, so the check can tell the two apart)."""
    task = asyncio.ensure_future(coro)
    finished, _ = await asyncio.wait({task}, timeout=time_limit_s)
    if not finished:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise CheckFailed(
            f"the check gave up after {time_limit_s:g} s: your code is still waiting for something",
            hint="every wait needs a timeout (fetch(timeout=...), request(timeout=...), updates(timeout=...))",
        )
    return task.result()
