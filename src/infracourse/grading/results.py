"""Collect the verdicts: read the JSON lines checks append to INFRACOURSE_RESULTS, keep those that count, and
give every expected exercise one outcome (what its check recorded, else why there is none)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from pathlib import Path

from infracourse.checking.exercise import Exercise
from infracourse.checking.status import CHECK_STATUSES, FAILED, NOT_DONE, NOT_RUN, PASSED, SYMBOL, TIMEOUT
from infracourse.grading.outcomes import STUCK_HINT, Outcome

MAX_MESSAGE = 500  # characters of a recorded message or hint kept: learner values end up in them
_WORST_FIRST = (FAILED, NOT_RUN, NOT_DONE, PASSED)


def _json_object(line: str) -> dict:
    """LINE as a result; {} (which counts for nothing) when learner code wrote something else to the file."""
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class ResultsFile:
    """Where checks record, in a folder the submission may write to but not list, under unguessable names: STRAY
    for the cells that are not checks, and a fresh file for each run of a check, read and removed right after
    it (another submission running at the same time cannot find them; if it could, what it writes is not
    printed by the check and does not count)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(mode=0o300)
        self.folder = folder
        self.stray, self.offset = self.fresh(), 0

    def fresh(self) -> Path:
        return self.folder / f"{secrets.token_hex(16)}.jsonl"

    def new(self) -> list[dict]:
        """The results recorded in STRAY since the last call."""
        if not self.stray.exists():
            return []
        data = self.stray.read_bytes()
        fresh, self.offset = data[self.offset :], len(data)
        return _parsed(fresh)

    @staticmethod
    def taken(path: Path) -> list[dict]:
        """The results recorded in PATH, which is then removed."""
        if not path.exists():
            return []
        data = path.read_bytes()
        path.unlink()
        return _parsed(data)

    def unlock(self) -> None:
        """Let the folder be listed again, so that it can be removed."""
        self.folder.chmod(0o700)


def _parsed(data: bytes) -> list[dict]:
    return [_json_object(line) for line in data.decode("utf-8", errors="replace").splitlines() if line.strip()]


def _shortened(text: object) -> str:
    text = str(text)
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + " [...]"


def check_line_prefix(number: str, status: str) -> str:
    """How the line a check prints for this result starts (CheckResult.line)."""
    return f"{SYMBOL.get(status, '?')} Exercise {number} · "


def counted(recorded: list[dict], reports_on: Iterable[Exercise],
            shown: Iterable[str] | None = None) -> tuple[dict[str, Outcome], list[str], set[str]]:
    """The outcomes of what RECORDED says about REPORTS_ON (the exercises of the check cell, or the hidden checks,
    that just ran), notes, and the exercises to flag. One run of a check records exactly one result an exercise:
    when there are more (a forged line next to the real one) the worst counts and the exercise is flagged.
    Results with a status no check reports, on other exercises, or (given SHOWN, the check lines the run printed)
    whose line the run did not print (written by another process, or changed on the way) do not count; each kind
    gets one note."""
    shown = None if shown is None else tuple(shown)
    by_number = {e.number: e for e in reports_on}
    found: dict[str, Outcome] = {}
    seen: dict[str, int] = {}
    notes: dict[str, None] = {}  # a check that forges the same line twice gets one note
    for result in recorded:
        number, status = str(result.get("exercise")), result.get("status")
        exercise = by_number.get(number)
        if exercise is None:
            notes[f"A result for exercise {_shortened(number)} was recorded while other checks ran; it was "
                  "ignored."] = None
        elif status not in CHECK_STATUSES:
            notes[f"A result for exercise {exercise.number} with the unknown status {_shortened(status)!r} was "
                  "ignored."] = None
        elif shown is not None and not any(line.startswith(check_line_prefix(number, status)) for line in shown):
            notes[f"A result for exercise {exercise.number} that its check did not print was ignored (written by "
                  "something else)."] = None
        else:
            seen[number] = seen.get(number, 0) + 1
            before = found.get(number)
            if before is None or _WORST_FIRST.index(status) < _WORST_FIRST.index(before.status):
                found[number] = Outcome.of(exercise, status, _shortened(result.get("message", "")),
                                           _shortened(result.get("hint", "")))
    doubled = {n for n, count in seen.items() if count > 1}
    for number in sorted(doubled):
        notes[f"Exercise {number}'s check recorded {seen[number]} results in one run (one is expected: something "
              "else wrote results too); the worst counted."] = None
    return found, list(notes), doubled


def collect(expected: Iterable[Exercise], found: dict[str, Outcome], flagged: dict[str, set[str]], why_not_run: str,
            hidden_stopped: str = "") -> list[Outcome]:
    """One outcome per EXPECTED exercise, in order: the one FOUND, else TIMEOUT for a hidden check when
    HIDDEN_STOPPED says why, else NOT_RUN; FLAGGED maps an exercise to its flags (check cell edited, harness
    tampered)."""
    outcomes = []
    for exercise in expected:
        outcome = found.get(exercise.number)
        if outcome is None and exercise.hidden and hidden_stopped:
            outcome = Outcome.of(exercise, TIMEOUT, hidden_stopped, STUCK_HINT)
        outcome = outcome or Outcome.of(exercise, NOT_RUN, why_not_run)
        outcome.flags += sorted(flagged.get(exercise.number, ()))
        outcomes.append(outcome)
    return outcomes
