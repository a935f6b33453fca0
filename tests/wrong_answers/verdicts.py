"""What every wrong-answer test shares: a check's verdict, the words its message must contain, and a scratch
namespace of its own on the services a test uses."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from infracourse import notebook
from infracourse.checking import FAILED, NOT_DONE, PASSED, CheckResult
from infracourse.namespace import Namespace


@contextmanager
def scratch_namespace(*services: str) -> Iterator[Namespace]:
    """A namespace no other test uses, on SERVICES (required first), emptied on them afterwards."""
    notebook.require(*services)
    namespace = Namespace("pytest_" + uuid.uuid4().hex[:8])
    try:
        yield namespace
    finally:
        namespace.reset(*services)


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
