"""Exercise checks for asyncio labs (NATS): the async twin of checking.exercise.

A check of learner code that holds a connection of the notebook's event loop (nats-py's `nc`, `js`, `kv`)
must run in that loop, so an async check is a coroutine the check cell awaits:

    await checks.catch_up(catch_up, js, ns)

Running a check's own loop in a thread instead would need its own connections, and learner code that closes
over the notebook's `nc` would then fail with "attached to a different loop". Jupyter cells support top-level
await, so awaiting is the simpler contract.

The outcome (a note, NotDone, CheckFailed or any error) is handed to checking.exercise.outcome, so an async check
prints, records and returns exactly what a sync check does. A check that waits longer than its time limit
fails with a hint instead of hanging the notebook; so does one whose code blocks the event loop itself
(time.sleep, a loop without await), which no asyncio timeout can interrupt: SIGALRM does, on the main thread.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

from infracourse.checking import time_limit
from infracourse.checking.exercise import CheckFailed, CheckResult, Exercise, done, outcome

DEFAULT_TIME_LIMIT_S = 15.0
BLOCKED_GRACE_S = 5.0  # past the time limit, a loop that has not woken up is blocked: interrupt it
CANCEL_GRACE_S = 2.0  # a cancelled task that swallows CancelledError (a bare except) is left behind after this


def async_exercise(
    number: str, title: str, *, stretch: bool = False, points: int = 1, hidden: bool = False,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
) -> Callable[[Callable[..., Awaitable[str | None]]], Callable[..., Awaitable[CheckResult]]]:
    """Declare an exercise (as checking.exercise does) whose check is a coroutine function that raises
    CheckFailed/NotDone: it becomes an awaitable check."""

    def decorate(fn: Callable[..., Awaitable[str | None]]) -> Callable[..., Awaitable[CheckResult]]:
        spec = Exercise(number, title, stretch, points, hidden, fn.__name__, fn.__module__)

        @functools.wraps(fn)
        async def run(*args: object, **kwargs: object) -> CheckResult:
            result: str | None | BaseException
            try:
                done(*args, *kwargs.values())
                result = await _within(fn(*args, **kwargs), time_limit_s)
            except Exception as exc:  # noqa: BLE001 - replayed below so outcome() classifies it
                result = exc

            def replay() -> str | None:
                if isinstance(result, BaseException):
                    raise result
                return result

            return outcome(spec, replay, (*args, *kwargs.values()))

        run.spec = spec  # type: ignore[attr-defined]
        return run

    return decorate


class _LoopBlocked(BaseException):
    """Raised into learner code that blocks the event loop. Not a KeyboardInterrupt (asyncio would re-raise
    that out of the loop instead of ending the task with it); a BaseException, so `except Exception` lets it by."""


async def _within(coro: Awaitable[str | None], time_limit_s: float) -> str | None:
    """Await CORO, or cancel it and fail the check after TIME_LIMIT_S (a TimeoutError the learner's code
    raises itself is passed through unchanged, so the check can tell the two apart)."""
    task = asyncio.ensure_future(coro)
    with time_limit.alarm(time_limit_s + BLOCKED_GRACE_S, raising=_LoopBlocked):
        finished, _ = await asyncio.wait({task}, timeout=time_limit_s)
    if not finished:
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_GRACE_S)  # then leave a task that ignores cancel() running
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no "never retrieved" log
        raise CheckFailed(
            f"the check gave up after {time_limit_s:g} s: your code is still waiting for something",
            hint="every wait needs a timeout (fetch(timeout=...), request(timeout=...), updates(timeout=...))",
        )
    try:
        return task.result()
    except _LoopBlocked:
        raise CheckFailed(
            f"the check gave up after {time_limit_s + BLOCKED_GRACE_S:g} s: your code blocked the event loop",
            hint="in async code wait with await (asyncio.sleep, a timeout), never time.sleep or a loop without await",
        ) from None
