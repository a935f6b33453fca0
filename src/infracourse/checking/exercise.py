"""Exercise checks: one printed line a check, never a bare assert and never the answer.

A check module (infracourse/checks/labNN.py) declares each exercise once, on its check:

    @exercise("1", "Parameterised lookup")
    def find_user(fn, conn):
        rows = fn(conn, "alice")
        expect(len(rows) == 1, "find_user(conn, 'alice') should return one row", hint="...")

The declaration (number, title, stretch, points, hidden) is the exercise registry: the lab's headings, its check
lines and the gradebook's columns are built from it or tested against it (see checking.registry).
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
from pathlib import Path

from infracourse import config
from infracourse.checking import progress
from infracourse.checking.explain import raised
from infracourse.checking.status import FAILED, NOT_DONE, NOT_RUN, PASSED, SYMBOL


class CheckFailed(Exception):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class NotDone(Exception):
    """The learner has not written this part yet."""


@dataclass(frozen=True)
class Exercise:
    """One exercise as declared on its check: the single place its number and title are written."""

    number: str
    title: str
    stretch: bool = False
    points: int = 1
    hidden: bool = False  # an instructor's hidden check: graded, never shown in the lab
    check: str = ""  # the name of the check function in its module
    module: str = ""  # the check module, e.g. infracourse.checks.lab06
    needs_own_services: str = ""  # why a class server (shared services, learners' logins) cannot check it

    @property
    def label(self) -> str:
        """The title as headings and check lines show it."""
        return self.title + (" (stretch)" if self.stretch else "")

    @property
    def heading(self) -> str:
        return f"## Exercise {self.number} · {self.label}"


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
        text = f"{SYMBOL[self.status]} Exercise {self.exercise} · {self.title}: "
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


def _record(spec: Exercise, result: CheckResult) -> None:
    """For the grader and the lab contract, when they ask (INFRACOURSE_RESULTS); else in the learner's
    progress, when the check runs in a lab."""
    path = os.environ.get("INFRACOURSE_RESULTS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(result)) + "\n")
    elif Path.cwd().name == "labs":
        progress.record(spec, result.status)


def outcome(spec: Exercise, run: Callable[[], str | None], given: tuple[object, ...] = ()) -> CheckResult:
    """Run one check body (whose check was GIVEN these arguments); turn what it returned or raised into a result,
    record it and print its line."""
    try:
        note = run()
        result = CheckResult(spec.number, spec.label, PASSED, note or "")
    except (NotDone, NotImplementedError):
        result = CheckResult(spec.number, spec.label, NOT_DONE)
    except CheckFailed as exc:
        result = CheckResult(spec.number, spec.label, FAILED, str(exc), exc.hint)
    except Exception as exc:  # noqa: BLE001 - learner code may raise anything; report it short
        message, hint = raised(exc, given)
        result = CheckResult(spec.number, spec.label, FAILED, message, hint)
    _record(spec, result)
    print(result.line())
    return result


def _not_run_here(spec: Exercise) -> CheckResult:
    result = CheckResult(spec.number, spec.label, NOT_RUN, f"not checked on a class server: this exercise "
                         f"{spec.needs_own_services}", "check it on a machine of your own (`make lab`)")
    _record(spec, result)
    print(result.line())
    return result


def exercise(number: str, title: str, *, stretch: bool = False, points: int = 1, hidden: bool = False,
             needs_own_services: str = "") -> Callable[[Callable[..., str | None]], Callable[..., CheckResult]]:
    """Declare an exercise and its check: a function that raises CheckFailed/NotDone (or returns a short note
    shown after 'passed', a measured figure, say) becomes a check that prints one result line and returns the
    CheckResult (tests assert on it; notebooks show only the line). NEEDS_OWN_SERVICES says why a class server
    cannot check it (the admin's login, a service every learner shares stopped): there it reports not run."""

    def decorate(fn: Callable[..., str | None]) -> Callable[..., CheckResult]:
        spec = Exercise(number, title, stretch, points, hidden, fn.__name__, fn.__module__, needs_own_services)

        @functools.wraps(fn)
        def run(*args: object, **kwargs: object) -> CheckResult:
            if spec.needs_own_services and config.on_a_class_server():
                return _not_run_here(spec)

            def body() -> str | None:
                done(*args, *kwargs.values())
                return fn(*args, **kwargs)

            return outcome(spec, body, (*args, *kwargs.values()))

        run.spec = spec  # type: ignore[attr-defined]
        return run

    return decorate
