"""The exercise API that check modules (infracourse.checks.labNN) are written against, and the one harness they
share: time limits, threads with a deadline, read-backs of what learner code left in a service, spies."""

from infracourse.checking.exercise import (
    FAILED,
    NOT_DONE,
    PASSED,
    CheckFailed,
    CheckResult,
    NotDone,
    done,
    exercise,
    expect,
)

__all__ = ["FAILED", "NOT_DONE", "PASSED", "CheckFailed", "CheckResult", "NotDone", "done", "exercise", "expect"]
