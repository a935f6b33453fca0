import time

import pytest

from infracourse.waiting import wait_until


def test_returns_the_seconds_waited():
    deadline = time.monotonic() + 0.2
    waited = wait_until(lambda: time.monotonic() >= deadline, timeout_s=2, interval_s=0.01)
    assert 0.15 <= waited < 1.5


def test_gives_up_with_a_timeout_error():
    with pytest.raises(TimeoutError, match="0.1 s"):
        wait_until(lambda: False, timeout_s=0.1, interval_s=0.01)
