"""Collect the verdicts: read the JSON lines checks append to INFRACOURSE_RESULTS, keep those that count, and
give every expected exercise one outcome (what its check recorded, else why there is none)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from infracourse.checking.exercise import Exercise
from infracourse.checking.status import CHECK_STATUSES, NOT_RUN, TIMEOUT
from infracourse.grading.outcomes import STUCK_HINT, TAMPERED, Outcome


def _json_object(line: str) -> dict:
    """LINE as a result; {} (which counts for nothing) when learner code wrote something else to the file."""
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class ResultsFile:
    """The results file, read as it grows."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def new(self) -> list[dict]:
        """The results recorded since the last call."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        fresh, self.offset = data[self.offset :], len(data)
        return [_json_object(line) for line in fresh.decode("utf-8", errors="replace").splitlines() if line.strip()]


def counted(recorded: list[dict], reports_on: Iterable[Exercise]) -> tuple[dict[str, Outcome], list[str]]:
    """{exercise number: outcome} for the RECORDED results on REPORTS_ON (the exercises of the check cell, or the
    hidden checks, that just ran) with a status a check reports, and a note for each such result with any other
    status. Results on other exercises do not count."""
    by_number = {e.number: e for e in reports_on}
    found: dict[str, Outcome] = {}
    notes: dict[str, None] = {}  # a check that forges the same line twice gets one note
    for result in recorded:
        exercise = by_number.get(str(result.get("exercise")))
        if exercise is None:
            continue
        status = result.get("status")
        if status in CHECK_STATUSES:
            found[exercise.number] = Outcome.of(exercise, status, str(result.get("message", "")),
                                                str(result.get("hint", "")))
        else:
            notes[f"A result for exercise {exercise.number} with the unknown status {status!r} was ignored."] = None
    return found, list(notes)


def collect(expected: Iterable[Exercise], found: dict[str, Outcome], flagged: set[str], why_not_run: str,
            hidden_stopped: str = "") -> list[Outcome]:
    """One outcome per EXPECTED exercise, in order: the one FOUND, else TIMEOUT for a hidden check when
    HIDDEN_STOPPED says why, else NOT_RUN; FLAGGED exercises had their check cell edited or deleted."""
    outcomes = []
    for exercise in expected:
        outcome = found.get(exercise.number)
        if outcome is None and exercise.hidden and hidden_stopped:
            outcome = Outcome.of(exercise, TIMEOUT, hidden_stopped, STUCK_HINT)
        outcome = outcome or Outcome.of(exercise, NOT_RUN, why_not_run)
        if exercise.number in flagged:
            outcome.flags.append(TAMPERED)
        outcomes.append(outcome)
    return outcomes
