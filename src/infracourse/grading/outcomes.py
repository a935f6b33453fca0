"""What grading produces: one Outcome an exercise, one Graded a submission, and the time Limits it ran under."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from infracourse.checking.exercise import Exercise
from infracourse.checking.status import PASSED

TAMPERED, HARNESS, HIDDEN = "check cell edited", "harness tampered", "hidden"  # flags, as the CSV shows them
STUCK_HINT = "look for a loop that never ends or a call that waits forever"


@dataclass(frozen=True)
class Limits:
    cell_s: int = 60
    notebook_s: int = 600


@dataclass
class Outcome:
    exercise: str
    title: str
    status: str
    message: str = ""
    hint: str = ""
    flags: list[str] = field(default_factory=list)
    points: int = 1

    @classmethod
    def of(cls, exercise: Exercise, status: str, message: str = "", hint: str = "") -> Outcome:
        """EXERCISE's outcome, with its registry title and points (and the hidden flag if it is hidden)."""
        return cls(exercise.number, exercise.label, status, message, hint, [HIDDEN] if exercise.hidden else [],
                   exercise.points)

    @property
    def score(self) -> int:
        return self.points if self.status == PASSED else 0


@dataclass
class Graded:
    student: str
    lab: str
    lab_title: str
    path: Path
    outcomes: list[Outcome]
    notes: list[str]
    seconds: float
    executed: nbformat.NotebookNode | None = None  # the notebook as it ran; None when nothing ran

    @property
    def score(self) -> int:
        return sum(o.score for o in self.outcomes)

    @property
    def max_score(self) -> int:
        return sum(o.points for o in self.outcomes)
