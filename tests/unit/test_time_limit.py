import threading
import time

import pytest

from infracourse.checking import CheckFailed, time_limit


def test_returns_the_value():
    assert time_limit.call(1, lambda a, b: a + b, 2, b=3) == 5


def test_reraises_the_error():
    with pytest.raises(NotImplementedError):
        time_limit.call(1, lambda: (_ for _ in ()).throw(NotImplementedError))


def test_stuck_code_fails_the_check_on_time():
    release = threading.Event()

    def stuck():
        release.wait(10)

    try:
        with pytest.raises(CheckFailed, match="did not return within 0.2 s"):
            time_limit.call(0.2, stuck)
    finally:
        release.set()


def test_an_endless_loop_is_stopped_once_the_check_gives_up():
    calls, ended = [], threading.Event()

    def endless():
        try:
            while True:
                try:
                    calls.append(1)  # grows without bound while the loop lives
                except Exception:  # noqa: BLE001 - an `except Exception` does not swallow the stop
                    pass
        finally:
            ended.set()

    with pytest.raises(CheckFailed):
        time_limit.call(0.2, endless)
    assert ended.wait(2)
    settled = len(calls)
    time.sleep(0.2)
    assert len(calls) == settled


def test_a_loop_that_swallows_the_stop_a_few_times_is_stopped_again():
    swallowed, ended = [], threading.Event()

    def stubborn():
        try:
            while True:
                try:
                    time.sleep(0.01)
                except BaseException:  # noqa: BLE001 - a bare except, as learners write it
                    swallowed.append(1)
                    if len(swallowed) == 3:
                        raise
        finally:
            ended.set()

    with pytest.raises(CheckFailed):
        time_limit.call(0.2, stubborn)
    assert ended.wait(5) and len(swallowed) == 3


def test_alarm_interrupts_the_main_thread_and_is_disarmed_after():
    started = time.monotonic()
    with pytest.raises(time_limit.Abandoned), time_limit.alarm(0.2):
        while True:
            time.sleep(0.01)
    assert time.monotonic() - started < 2
    with time_limit.alarm(0.2):
        pass
    time.sleep(0.4)  # no alarm left armed to fire here


def test_alarm_does_nothing_off_the_main_thread():
    outcome = []

    def worker():
        with time_limit.alarm(0.05):
            time.sleep(0.2)
        outcome.append("finished")

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(5)
    assert outcome == ["finished"]


def test_bounded_words_the_timeout_for_the_learner_and_takes_the_loop_away():
    release = threading.Event()
    taken = []
    with pytest.raises(CheckFailed, match=r"^get_user\(\) did not return within 0.2 s$") as failed:
        time_limit.bounded(0.2, release.wait, 5, what="get_user()", hint="cap the waits",
                           on_timeout=lambda: taken.append(release.set()))
    assert failed.value.hint == "cap the waits" and taken
    with pytest.raises(KeyError):  # the learner's own error is not a time-out
        time_limit.bounded(1, lambda: {}["x"])


def test_in_threads_runs_together_and_returns_in_order():
    started = []

    def work(n):
        started.append(time.monotonic())
        return n * n

    assert time_limit.in_threads(5, work, [(1,), (2,), (3,)]) == [1, 4, 9]
    assert max(started) - min(started) < 0.5  # released together by the barrier


def test_in_threads_counts_the_stuck_and_raises_the_first_error():
    release = threading.Event()
    with pytest.raises(CheckFailed, match=r"^1 of 2 calls of allow\(\) did not return within 0.3 s$"):
        time_limit.in_threads(0.3, lambda stuck: release.wait(5) if stuck else 1, [(True,), (False,)],
                              what="calls of allow()", together=False)
    release.set()
    with pytest.raises(ZeroDivisionError):
        time_limit.in_threads(2, lambda d: 1 / d, [(1,), (0,)])
