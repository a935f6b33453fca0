"""The one vocabulary of outcomes: what a check reports in a notebook, and what the grader adds when a check
could not report at all. Symbols and words are shared by check lines, the gradebook and the feedback."""

from __future__ import annotations

PASSED, NOT_DONE, FAILED = "passed", "not_done", "failed"  # reported by a check
ERROR, TIMEOUT, NOT_RUN = "error", "timeout", "not_run"  # set by the grader when no check reported

CHECK_STATUSES = (PASSED, NOT_DONE, FAILED, NOT_RUN)  # NOT_RUN: an exercise a class server cannot check
SYMBOL = {PASSED: "✅", FAILED: "❌", NOT_DONE: "⏳", ERROR: "💥", TIMEOUT: "⌛", NOT_RUN: "·"}
WORDS = {PASSED: "passed", FAILED: "failed", NOT_DONE: "not done", ERROR: "error", TIMEOUT: "timed out",
         NOT_RUN: "not run"}
