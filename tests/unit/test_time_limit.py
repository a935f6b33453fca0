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
