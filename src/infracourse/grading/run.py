"""Grade one submitted lab: run it top to bottom in a fresh kernel, in a namespace of its own, under a per-cell
and a per-notebook time limit, and turn what its checks recorded into one outcome per exercise.

Guarantees: a submission that raises, hangs, kills its kernel or is not a notebook yields outcomes and notes,
never an exception. Check cells are restored before the run (restore.py) and flagged. Only results recorded
while a restored check cell (or the instructor's hidden checks) ran count, and only for the exercises it
reports on (results.py); just before each check cell the lab's own check-module import is run again, so a
learner's stand-in `checks` object is not the one called.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient.exceptions import DeadKernelError

from infracourse.authoring.lab_spec import CheckCell, LabSpec
from infracourse.checking.exercise import Exercise
from infracourse.checking.status import ERROR, TIMEOUT
from infracourse.grading import namespaces
from infracourse.grading.hidden import hidden_check_source, hidden_exercises
from infracourse.grading.kernel import RESPONSIVE_PROBE_S, Kernel, error_text
from infracourse.grading.outcomes import STUCK_HINT, Graded, Limits, Outcome
from infracourse.grading.restore import describe_cell, restore_check_cells
from infracourse.grading.results import ResultsFile, collect, counted

NOT_RECOVERED = "The kernel did not recover from the interrupt; the rest was not run."


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass
class _Grading:
    """The state of one submission's run: outcomes so far, notes for the feedback, why the rest did not run."""

    spec: LabSpec
    nb: nbformat.NotebookNode
    expected: list[Exercise]  # the lab's exercises, then the hidden checks'
    found: dict[str, Outcome] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    first_error: str | None = None
    why_not_run: str = "the notebook stopped before this check"
    kernel_ok: bool = True
    hidden_stopped: str = ""

    def run_cells(self, kernel: Kernel, check_at: dict[int, CheckCell], results: ResultsFile,
                  hidden: Path | None) -> bool:
        """Run the notebook's code cells in order, the hidden checks right after the last check cell (before
        the clean-up closes connections); False when it stopped early."""
        last_check = max(check_at, default=len(self.nb.cells) - 1)
        for index, cell in enumerate(self.nb.cells):
            if hidden and index == last_check + 1 and not self.run_hidden(kernel, hidden, results):
                return False
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            where = describe_cell(self.nb, index)
            if kernel.remaining_s() <= 1:
                self.notes.append(f"The notebook time limit ({kernel.limits.notebook_s} s) ran out before {where}.")
                self.why_not_run = f"the notebook time limit ({kernel.limits.notebook_s} s) ran out first"
                return False
            check = check_at.get(index)
            if check and self.spec.check_imports:
                kernel.quiet(self.spec.check_imports)  # the real check module, whatever `checks` became
            results.new()  # results recorded outside a check cell do not count
            reply = kernel.execute(cell, index)
            recorded = results.new()
            if check:
                self._attribute(check, recorded, reply, kernel)
            elif recorded:
                self.notes.append(f"{_upper_first(where)} called a check outside its check cell; that result was "
                                  "ignored.")
            if kernel.timed_out(reply):
                self.notes.append(f"{_upper_first(where)} ran longer than {kernel.last_limit_s} s and was stopped.")
                if not kernel.responsive():
                    self.notes.append(NOT_RECOVERED)
                    self.why_not_run = "an earlier cell hung and the kernel did not recover"
                    self.kernel_ok = False
                    return False
            elif reply.get("status") == "error" and not check and self.first_error is None:
                self.first_error = f"{where} raised {error_text(reply)}"
                self.notes.append(f"{_upper_first(self.first_error)}.")
        if hidden and last_check + 1 >= len(self.nb.cells):
            return self.run_hidden(kernel, hidden, results)
        return True

    def _count(self, recorded: list[dict], reports_on: list[Exercise]) -> None:
        found, notes = counted(recorded, reports_on)
        self.found.update(found)
        self.notes += [n for n in notes if n not in self.notes]

    def _attribute(self, check: CheckCell, recorded: list[dict], reply: dict, kernel: Kernel) -> None:
        """Count what CHECK's cell recorded; an exercise it reported nothing on timed out or could not run."""
        exercises = [self.spec.exercise(number) for number in check.exercises]
        self._count(recorded, exercises)
        for exercise in exercises:
            if exercise.number in self.found:
                continue
            if kernel.timed_out(reply):
                self.found[exercise.number] = Outcome.of(
                    exercise, TIMEOUT, f"the check ran longer than {kernel.last_limit_s} s and was stopped", STUCK_HINT)
            else:
                self.found[exercise.number] = Outcome.of(
                    exercise, ERROR, f"the check could not run: {error_text(reply)}",
                    f"{self.first_error} earlier; fix that first" if self.first_error
                    else "run the exercise cell, then its check")

    def run_hidden(self, kernel: Kernel, hidden: Path, results: ResultsFile) -> bool:
        """Run the instructor's hidden checks in the submission's kernel; False when the kernel is lost."""
        if kernel.remaining_s() <= 1:
            self.why_not_run = "the notebook time limit ran out before the hidden checks"
            return True
        results.new()
        reply, _ = kernel.quiet(hidden_check_source(hidden))
        self._count(results.new(), [e for e in self.expected if e.hidden])
        if kernel.timed_out(reply):
            self.hidden_stopped = f"the hidden checks ran longer than {kernel.last_limit_s} s and were stopped"
            self.notes.append(f"{_upper_first(self.hidden_stopped)}.")
            if not kernel.responsive():
                self.notes.append(NOT_RECOVERED)
                self.kernel_ok = False
                return False
        elif reply.get("status") == "error":
            self.notes.append(f"The hidden checks stopped with {error_text(reply)}.")
        return True


def grade(student: str, path: Path, spec: LabSpec, limits: Limits, hidden: Path | None = None) -> Graded:
    """Run PATH as STUDENT's answer to SPEC; HIDDEN is the instructor's extra check module for this lab."""
    began = time.monotonic()
    expected = [*spec.exercises, *(hidden_exercises(hidden) if hidden else [])]
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001 - whatever is wrong with the file, say so in the gradebook
        outcomes = collect(expected, {}, set(), "the file is not a readable notebook")
        note = f"The file is not a readable notebook ({type(exc).__name__}); nothing was run."
        return Graded(student, spec.name, spec.title, path, outcomes, [note], time.monotonic() - began)
    check_at, flagged, notes = restore_check_cells(nb, spec)
    state = _Grading(spec, nb, expected, notes=notes)
    suffix = namespaces.suffix_for(student)
    slugs: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="infracourse-grade-") as work:
        results = ResultsFile(Path(work) / "results.jsonl")
        env = {**os.environ, "INFRACOURSE_NS_SUFFIX": suffix, "INFRACOURSE_RESULTS": str(results.path),
               "MPLBACKEND": "Agg"}
        kernel = Kernel(nb, Path(work), limits)
        try:
            with kernel.started(env):
                state.run_cells(kernel, check_at, results, hidden)
                if state.kernel_ok and kernel.remaining_s() > 1:
                    slugs = namespaces.reported(kernel.quiet(namespaces.REPORT_SOURCE, RESPONSIVE_PROBE_S)[1])
        except DeadKernelError:
            last_words = kernel.last_words()
            state.notes.append("The kernel died (the process exited or crashed); the rest was not run."
                               + (f" Its last words: {' / '.join(last_words)}" if last_words else ""))
            state.why_not_run = "the kernel died before this check"
        except Exception as exc:  # noqa: BLE001 - e.g. a kernel that will not start: report it, do not crash
            state.notes.append(f"The grader could not run this notebook: {type(exc).__name__}: {exc}")
            state.why_not_run = "the grader could not run the notebook"
    namespaces.clean(suffix, slugs, spec.services)
    outcomes = collect(expected, state.found, flagged, state.why_not_run, state.hidden_stopped)
    return Graded(student, spec.name, spec.title, path, outcomes, state.notes, time.monotonic() - began, nb)
