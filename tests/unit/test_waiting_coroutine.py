import asyncio

import pytest

from infracourse.waiting import run_coroutine


def test_run_coroutine_returns_its_result_and_enforces_the_timeout():
    async def quick():
        await asyncio.sleep(0.01)
        return 42

    async def slow():
        await asyncio.sleep(5)

    assert run_coroutine(quick, timeout_s=2) == 42
    with pytest.raises(TimeoutError):
        run_coroutine(slow, timeout_s=0.1)


def test_run_coroutine_works_inside_a_running_loop():
    async def outer():
        async def inner():
            return "inner"

        return run_coroutine(inner, timeout_s=2)  # asyncio.run would refuse here

    assert asyncio.run(outer()) == "inner"


def test_run_coroutine_reraises_the_coroutines_error():
    async def broken():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_coroutine(broken, timeout_s=2)
