"""Checks never hang: learner code runs in a worker thread that a check waits for only so long.

    result = time_limit.call(5, fn, r, "alice")    # fn's result, or TimedOut (a CheckFailed) after 5 s
    result = time_limit.bounded(5, fn, r, "alice", what="get_user()", hint="...")   # the same, worded for learners
    results = time_limit.in_threads(10, allow, [(r,)] * 20, what="concurrent calls to allow()")

A thread cannot be killed, but it can be interrupted: once the check gives up, `stop` raises Abandoned inside
the worker at its next Python instruction (again, for a while, if the code swallows it), as Ctrl-C would in the
main thread. An endless loop therefore stops instead of burning CPU and memory in the background; code blocked
in a C call (a socket read, a lock) stops when that call returns, and as a daemon thread it never keeps the
kernel from exiting.

Code that must stay on the notebook's main thread (librdkafka clients: polling them from a second thread while
the check cleans up crashes the process) is bounded with an alarm instead:

    with time_limit.alarm(20, repeat_s=STOP_RETRY_S):    # Abandoned in the main thread after 20 s
        bill_orders(consumer, charge, 2.0)
    time_limit.bounded_here(20, bill_orders, consumer, charge, 2.0, hint="...")   # the same, worded for learners
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from infracourse.checking.exercise import CheckFailed

T = TypeVar("T")

STOP_RETRY_S = 0.5  # how often a thread that swallowed Abandoned (a bare except) is interrupted again
STOP_ATTEMPTS = 20


class TimedOut(CheckFailed):
    """The check stopped waiting for learner code (a CheckFailed: a check that does not catch it fails)."""


class Abandoned(KeyboardInterrupt):
    """Raised inside learner code a check gave up on. A KeyboardInterrupt, so `except Exception` lets it by and
    psycopg cancels the query in flight, exactly as for Ctrl-C."""


def _interrupt(thread: threading.Thread) -> None:
    if thread.ident is not None and thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(Abandoned))


def stop(*threads: threading.Thread) -> None:
    """Interrupt THREADS (those still alive) with Abandoned, now and every STOP_RETRY_S while they live."""
    alive = [t for t in threads if t.is_alive()]
    if not alive:
        return

    def keep_interrupting() -> None:
        for _ in range(STOP_ATTEMPTS):
            for t in alive:
                _interrupt(t)
            for t in alive:
                t.join(STOP_RETRY_S / len(alive))
            if not any(t.is_alive() for t in alive):
                return

    threading.Thread(target=keep_interrupting, name="check-stopper", daemon=True).start()


@contextmanager
def alarm(seconds: float, raising: type[BaseException] = Abandoned, repeat_s: float = 0.0) -> Iterator[None]:
    """Raise RAISING in the main thread if the block is still running after SECONDS, and every REPEAT_S after
    (if given: against a bare except). SIGALRM: code in a C call sees it when the call returns. Off the main
    thread, where signals cannot be handled, it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise raising

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds, repeat_s)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def call(seconds: float, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """FN(*ARGS, **KWARGS), or CheckFailed if it has not returned after SECONDS (and FN is stopped); its
    exception is re-raised."""
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
        stop(worker)
        name = getattr(fn, "__name__", "your function")
        raise TimedOut(f"{name}() did not return within {seconds:g} s",
                       hint="look for a loop that never ends or a wait without a timeout")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def bounded(seconds: float, fn: Callable[..., T], *args: object, what: str = "",
            hint: str = "look for a loop that never ends or a wait without a timeout",
            on_timeout: Callable[[], object] | None = None, **kwargs: object) -> T:
    """FN(*ARGS, **KWARGS) like call(), failing the check with a learner-facing message if it is still running
    after SECONDS: '<WHAT> did not return within N s' and HINT. ON_TIMEOUT, if given, first takes away what the
    learner's thread loops on (a connection, a topic), so that its next step fails instead of going on."""
    try:
        return call(seconds, fn, *args, **kwargs)
    except TimedOut:
        if on_timeout is not None:
            on_timeout()
        raise CheckFailed(f"{what or _name(fn) + '()'} did not return within {seconds:g} s", hint=hint) from None


def bounded_here(seconds: float, fn: Callable[..., T], *args: object, what: str = "",
                 hint: str = "look for a loop that never ends or a wait without a timeout", **kwargs: object) -> T:
    """FN(*ARGS, **KWARGS) on this thread (librdkafka clients must stay on the thread that made them), failing
    the check like bounded() if it is still running after SECONDS (an alarm: see alarm())."""
    try:
        with alarm(seconds, repeat_s=STOP_RETRY_S):
            return fn(*args, **kwargs)
    except Abandoned:
        raise CheckFailed(f"{what or _name(fn) + '()'} did not return within {seconds:g} s", hint=hint) from None


def in_threads(seconds: float, work: Callable[..., T], args_per_thread: list[tuple], *, what: str = "",
               hint: str = "look for a loop that never ends or a wait without a timeout",
               together: bool = True) -> list[T]:
    """WORK(*ARGS) in one daemon thread per ARGS, started together (a barrier, unless TOGETHER is false), all
    within SECONDS. Once every thread has ended, return the results in order or raise the first error (the
    others finish first, so nothing they use is closed under them). Threads still running then are stopped
    and the check fails: '<n> of <N> <WHAT> did not return within N s'."""
    barrier = threading.Barrier(len(args_per_thread), timeout=seconds) if together else None
    outcomes: list[dict[str, object]] = [{} for _ in args_per_thread]

    def target(outcome: dict[str, object], args: tuple) -> None:
        try:
            if barrier is not None:
                barrier.wait()
            outcome["value"] = work(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the check's thread below
            outcome["error"] = exc

    threads = [threading.Thread(target=target, args=(outcome, args), name=f"check-{_name(work)}", daemon=True)
               for outcome, args in zip(outcomes, args_per_thread, strict=True)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + seconds
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = [t for t in threads if t.is_alive()]
    stop(*stuck)
    if stuck:
        raise CheckFailed(f"{len(stuck)} of {len(threads)} {what or 'concurrent calls of ' + _name(work) + '()'} "
                          f"did not return within {seconds:g} s", hint=hint)
    for outcome in outcomes:
        if "error" in outcome and not isinstance(outcome["error"], threading.BrokenBarrierError):
            raise outcome["error"]  # type: ignore[misc]
    for outcome in outcomes:
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
    return [outcome["value"] for outcome in outcomes]  # type: ignore[misc]


def _name(fn: Callable[..., object]) -> str:
    return getattr(fn, "__name__", "your function")
