"""Assertions every wrong-answer test shares: a check's verdict, and the words its message must contain."""

from __future__ import annotations

from infracourse.checking import FAILED, NOT_DONE, PASSED, CheckResult


def assert_fails(result: CheckResult, *words: str, hint: bool = True, in_hint: tuple[str, ...] = ()) -> None:
    """RESULT failed, its message contains every one of WORDS (case-insensitive), and it has a hint (unless
    HINT is false) that contains every one of IN_HINT (as written): a wrong answer must be told what is wrong,
    not only that it is."""
    assert result.status == FAILED, f"expected a failure, got {result.status}: {result.message}"
    text = result.message.lower()
    missing = [w for w in words if w.lower() not in text]
    assert not missing, f"the message lacks {missing}: {result.message!r}"
    assert result.hint or not hint, f"no hint for: {result.message!r}"
    missing = [w for w in in_hint if w not in result.hint]
    assert not missing, f"the hint lacks {missing}: {result.hint!r}"


def assert_passes(result: CheckResult) -> None:
    assert result.status == PASSED, f"expected a pass, got {result.status}: {result.message} / {result.hint}"


def assert_not_done(result: CheckResult) -> None:
    assert result.status == NOT_DONE, f"expected 'not done yet', got {result.status}: {result.message}"
