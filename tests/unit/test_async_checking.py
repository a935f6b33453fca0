"""async_exercise reports like exercise: passed, not done, failed, the learner's own error, and a time limit."""

from __future__ import annotations

import asyncio

from infracourse.checking import FAILED, NOT_DONE, PASSED, expect
from infracourse.checking.async_exercise import async_exercise


@async_exercise("9", "Double it", time_limit_s=0.5)
async def double_it(fn) -> str:
    got = await fn(2)
    expect(got == 4, f"fn(2) returned {got!r}", hint="multiply by two")
    return "4"


def check(fn):
    return asyncio.run(double_it(fn))


def test_passes_with_its_note(capsys):
    async def right(x):
        return 2 * x

    result = check(right)
    assert result.status == PASSED and result.message == "4"
    assert "✅ Exercise 9 · Double it: passed (4)" in capsys.readouterr().out


def test_wrong_answer_fails_with_message_and_hint():
    async def wrong(x):
        return x + 1

    result = check(wrong)
    assert result.status == FAILED and result.message == "fn(2) returned 3" and result.hint == "multiply by two"


def test_stub_and_placeholder_are_not_done():
    async def stub(x):
        raise NotImplementedError

    assert check(stub).status == NOT_DONE
    assert check(...).status == NOT_DONE


def test_learner_error_is_reported_short_with_the_learners_lines():
    async def broken(x):
        return {}["missing"]

    result = check(broken)
    assert result.status == FAILED and result.message.startswith("your code raised KeyError: 'missing'\n")
    last = result.message.splitlines()[-1].strip()
    assert last.startswith("in broken, line ") and last.endswith(': return {}["missing"]')
    assert "where, in your code" in result.hint


def test_learner_timeout_error_is_not_mistaken_for_the_time_limit():
    async def times_out(x):
        raise TimeoutError("request timed out")

    result = check(times_out)
    assert result.status == FAILED and "TimeoutError: request timed out" in result.message


def test_code_that_hangs_fails_after_the_time_limit():
    async def hangs(x):
        await asyncio.sleep(3600)

    result = check(hangs)
    assert result.status == FAILED and "gave up after 0.5 s" in result.message and "timeout" in result.hint
