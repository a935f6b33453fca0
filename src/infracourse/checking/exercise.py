"""Exercise checks: one printed line a check, never a bare assert and never the answer.

A check module (infracourse/checks/labNN.py) declares checks with @exercise:

    @exercise("1", "Parameterised lookup")
    def check_find_user(find_user):
        rows = find_user("alice")
        expect(len(rows) == 1, "find_user('alice') should return one row", hint="...")

Learner code that is still a stub (`...` or `raise NotImplementedError`) reports "not done yet".
When INFRACOURSE_RESULTS names a file, every result is appended to it as a JSON line (the lab contract
tests and the grader read it).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

PASSED, NOT_DONE, FAILED = "passed", "not_done", "failed"
_SYMBOL = {PASSED: "✅", NOT_DONE: "⏳", FAILED: "❌"}


class CheckFailed(Exception):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class NotDone(Exception):
    """The learner has not written this part yet."""


@dataclass(frozen=True)
class CheckResult:
    exercise: str
    title: str
    status: str
    message: str = ""
    hint: str = ""

    def _ipython_display_(self) -> None:
        """The line is already printed; a notebook shows nothing more (tests use the returned value)."""

    def line(self) -> str:
        text = f"{_SYMBOL[self.status]} Exercise {self.exercise} · {self.title}: "
        if self.status == PASSED:
            return text + "passed" + (f" ({self.message})" if self.message else "")
        if self.status == NOT_DONE:
            return text + "not done yet (replace the TODO in the exercise cell)"
        return text + self.message + (f"\n   Hint: {self.hint}" if self.hint else "")


def expect(condition: object, message: str, hint: str = "") -> None:
    """Fail the check with MESSAGE (and HINT) unless CONDITION holds."""
    if not condition:
        raise CheckFailed(message, hint)


def done(*values: object) -> None:
    """Report 'not done yet' while any of VALUES is still the lab's `...` placeholder."""
    if any(v is Ellipsis for v in values):
        raise NotDone


def _record(result: CheckResult) -> None:
    path = os.environ.get("INFRACOURSE_RESULTS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(result)) + "\n")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def exercise(number: str, title: str) -> Callable[[Callable[..., str | None]], Callable[..., CheckResult]]:
    """Turn a function that raises CheckFailed/NotDone into a check that prints one result line.

    The wrapped function may return a short string shown after 'passed' (a measured figure, say).
    The check prints its line and returns the CheckResult (tests assert on it; notebooks show only the line).
    """

    def decorate(fn: Callable[..., str | None]) -> Callable[..., CheckResult]:
        @functools.wraps(fn)
        def run(*args: object, **kwargs: object) -> CheckResult:
            try:
                done(*args, *kwargs.values())
                note = fn(*args, **kwargs)
                result = CheckResult(number, title, PASSED, note or "")
            except (NotDone, NotImplementedError):
                result = CheckResult(number, title, NOT_DONE)
            except CheckFailed as exc:
                result = CheckResult(number, title, FAILED, str(exc), exc.hint)
            except Exception as exc:  # noqa: BLE001 - learner code may raise anything; report it short
                result = CheckResult(
                    number, title, FAILED, f"your code raised {_describe(exc)}",
                    "run the exercise cell on its own and read the error",
                )
            _record(result)
            print(result.line())
            return result

        run.exercise = number  # type: ignore[attr-defined]
        return run

    return decorate
