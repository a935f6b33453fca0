import time

import pytest

from infracourse.waiting import StillWaiting, poll, wait_until


def test_returns_the_seconds_waited():
    deadline = time.monotonic() + 0.2
    waited = wait_until(lambda: time.monotonic() >= deadline, timeout_s=2, interval_s=0.01)
    assert 0.15 <= waited < 1.5


def test_gives_up_with_a_timeout_error():
    with pytest.raises(TimeoutError, match="0.1 s"):
        wait_until(lambda: False, timeout_s=0.1, interval_s=0.01)


def test_poll_returns_the_result_and_names_what_it_waited_for():
    results = iter([0, 0, 3])
    assert poll(lambda: next(results), lambda n: n > 2, timeout_s=2, interval_s=0.01) == 3
    with pytest.raises(StillWaiting, match=r"^after 0.1 s the outbox still returns 7$") as waited:
        poll(lambda: 7, lambda n: n == 0, timeout_s=0.1, what="the outbox", interval_s=0.01)
    assert isinstance(waited.value, TimeoutError)
