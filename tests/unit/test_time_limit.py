import threading

import pytest

from infracourse import time_limit
from infracourse.checking import CheckFailed


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
