"""Grade one submitted lab: run it top to bottom in a fresh kernel, in a namespace of its own, under a per-cell
and a per-notebook time limit, and turn what its checks recorded into one outcome per exercise.

Guarantees: a submission that raises, hangs, kills its kernel or is not a notebook yields outcomes and notes,
never an exception. Check cells are restored before the run (restore.py) and flagged. Only results recorded
while a restored check cell (or the instructor's hidden checks) ran count, and only for the exercises it
reports on, exactly one an exercise (results.py). Just before each check cell (and the hidden checks) a guard
puts the harness back as it was before the first cell (restore.py: builtins, import machinery, IPython hooks,
the infracourse modules loaded afresh from their files) and runs the lab's check import again; what it had to
repair is noted and flags the cell's exercises. Each cell keeps at most MAX_OUTPUT_BYTES of output.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient.exceptions import DeadKernelError

from infracourse.authoring.lab_spec import CheckCell, LabSpec
from infracourse.checking.exercise import Exercise
from infracourse.checking.status import ERROR, SYMBOL, TIMEOUT
from infracourse.grading import namespaces, sandbox
from infracourse.grading.hidden import hidden_check_source, hidden_exercises
from infracourse.grading.kernel import RESPONSIVE_PROBE_S, Kernel, error_text
from infracourse.grading.outcomes import HARNESS, STUCK_HINT, TAMPERED, Graded, Limits, Outcome
from infracourse.grading.restore import describe_cell, harness_source, repairs_made, restore_check_cells
from infracourse.grading.results import ResultsFile, collect, counted

NOT_RECOVERED = "The kernel did not recover from the interrupt; the rest was not run."
MAX_OUTPUT_BYTES = 100_000  # of text a cell keeps in the executed notebook
MAX_NOTE = 600  # characters of a note: error messages carry learner values
CHECK_LINE_STARTS = tuple(f"{symbol} Exercise " for symbol in SYMBOL.values())


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _size(content: dict) -> int:
    parts = [content.get("text", ""), content.get("evalue", ""), *content.get("traceback", []),
             *(v if isinstance(v, str) else json.dumps(v) for v in content.get("data", {}).values())]
    return sum(len(str(p).encode("utf-8", errors="replace")) for p in parts)


class _OutputCap:
    """Stands in for the client's output handler: keeps the first MAX_OUTPUT_BYTES of each execution's output as
    it arrives, so a 50 MB print is never held, and counts what it dropped for a note. The check lines among
    stdout (kept or not) are collected: a recorded result counts only if its check printed it."""

    def __init__(self, kernel: Kernel) -> None:
        self.store = kernel.client.output
        self.kept: dict[str, int] = defaultdict(int)  # by the execute request's message id
        self.dropped: dict[int, int] = defaultdict(int)  # by cell index
        self.lines: dict[int, list[str]] = defaultdict(list)
        self.partial: dict[int, str] = defaultdict(str)  # a line split between two stream messages
        kernel.client.output = self

    def _collect(self, text: str, cell_index: int) -> None:
        *lines, self.partial[cell_index] = (self.partial[cell_index] + text).split("\n")
        self.partial[cell_index] = self.partial[cell_index][-MAX_NOTE:]
        self.lines[cell_index] += [line for line in lines if line.startswith(CHECK_LINE_STARTS)]

    def shown(self, cell_index: int) -> list[str]:
        """The check lines cell CELL_INDEX printed (since the last call)."""
        lines, rest = self.lines.pop(cell_index, []), self.partial.pop(cell_index, "")
        return lines + ([rest] if rest.startswith(CHECK_LINE_STARTS) else [])

    def __call__(self, outs: list, msg: dict, display_id: str | None, cell_index: int):
        parent, content = msg["parent_header"].get("msg_id", ""), msg["content"]
        if msg["msg_type"] == "stream" and content.get("name") == "stdout":
            self._collect(content.get("text", ""), cell_index)
        size, room = _size(content), MAX_OUTPUT_BYTES - self.kept[parent]
        if size > room and msg["msg_type"] == "stream" and room > 0:  # keep the part of the text that fits
            kept = content["text"].encode("utf-8", errors="replace")[:room].decode("utf-8", errors="ignore")
            msg = {**msg, "content": {**content, "text": kept}}
            self.dropped[cell_index] += size - room
            size = room
        elif size > room:
            self.dropped[cell_index] += size
            return None
        self.kept[parent] += size
        return self.store(outs, msg, display_id, cell_index)

    def note(self, cell: nbformat.NotebookNode, index: int) -> None:
        if dropped := self.dropped.pop(index, 0):
            cell.outputs.append(nbformat.v4.new_output(
                "stream", name="stderr", text=f"\n[... output truncated by the grader: {dropped} bytes]\n"))


@dataclass
class _Grading:
    """The state of one submission's run: outcomes so far, notes for the feedback, why the rest did not run."""

    spec: LabSpec
    nb: nbformat.NotebookNode
    expected: list[Exercise]  # the lab's exercises, then the hidden checks'
    found: dict[str, Outcome] = field(default_factory=dict)
    flagged: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    notes: list[str] = field(default_factory=list)
    first_error: str | None = None
    why_not_run: str = "the notebook stopped before this check"
    kernel_ok: bool = True
    hidden_stopped: str = ""
    cap: _OutputCap | None = None

    def note(self, text: str) -> None:
        text = text if len(text) <= MAX_NOTE else text[:MAX_NOTE] + " [...]"
        if text not in self.notes:
            self.notes.append(text)

    def guard(self, kernel: Kernel, results: ResultsFile, exercises: list[Exercise], where: str,
              check_imports: str) -> Path:
        """Put the harness back before WHERE runs (a check cell or the hidden checks), run CHECK_IMPORTS and point
        the checks at a fresh results file, which is returned; a repair is noted and flags EXERCISES."""
        path = results.fresh()
        reply, printed = kernel.quiet(harness_source(check_imports, True) + self._point_at(path))
        repairs = repairs_made(printed)
        if repairs is None:
            repairs = [f"the grader's guard did not finish ({error_text(reply)})" if reply.get("status") == "error"
                       else "the grader's guard did not report"]
        if repairs:
            self.note(f"Before {where} the grader had to undo changes to the checking harness: {'; '.join(repairs)}.")
            for exercise in exercises:
                self.flagged[exercise.number].add(HARNESS)
        return path

    def run_cells(self, kernel: Kernel, check_at: dict[int, CheckCell], results: ResultsFile,
                  hidden: Path | None) -> bool:
        """Run the notebook's code cells in order, the hidden checks right after the last check cell (before
        the clean-up closes connections); False when it stopped early."""
        last_check = max(check_at, default=len(self.nb.cells) - 1)
        self.cap = cap = _OutputCap(kernel)
        kernel.quiet(harness_source(self.spec.check_imports, False) + self._point_at(results.stray))
        for index, cell in enumerate(self.nb.cells):
            if hidden and index == last_check + 1 and not self.run_hidden(kernel, hidden, results):
                return False
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            where = describe_cell(self.nb, index)
            if kernel.remaining_s() <= 1:
                self.note(f"The notebook time limit ({kernel.limits.notebook_s} s) ran out before {where}.")
                self.why_not_run = f"the notebook time limit ({kernel.limits.notebook_s} s) ran out first"
                return False
            check = check_at.get(index)
            exercises = [self.spec.exercise(number) for number in check.exercises] if check else []
            stray = results.new()  # results recorded outside a check cell do not count
            path = self.guard(kernel, results, exercises, where, self.spec.check_imports) if check else None
            reply = kernel.execute(cell, index)
            cap.note(cell, index)
            shown = cap.shown(index)
            if path:
                kernel.quiet(self._point_at(results.stray))
                self._attribute(exercises, results.taken(path), shown, reply, kernel)
            if stray or results.new():
                self.note(f"{_upper_first(where)} called a check outside its check cell; that result was ignored.")
            if kernel.timed_out(reply):
                self.note(f"{_upper_first(where)} ran longer than {kernel.last_limit_s} s and was stopped.")
                if not kernel.responsive():
                    self.notes.append(NOT_RECOVERED)
                    self.why_not_run = "an earlier cell hung and the kernel did not recover"
                    self.kernel_ok = False
                    return False
            elif reply.get("status") == "error" and not check and self.first_error is None:
                self.first_error = f"{where} raised {error_text(reply)}"[:MAX_NOTE]
                self.note(f"{_upper_first(self.first_error)}.")
        if hidden and last_check + 1 >= len(self.nb.cells):
            return self.run_hidden(kernel, hidden, results)
        return True

    @staticmethod
    def _point_at(path: Path) -> str:
        return f"\n__import__('os').environ['INFRACOURSE_RESULTS'] = {str(path)!r}"

    def _count(self, recorded: list[dict], reports_on: list[Exercise], shown: list[str]) -> None:
        found, notes, doubled = counted(recorded, reports_on, shown)
        self.found.update(found)
        for note in notes:
            self.note(note)
        for number in doubled:
            self.flagged[number].add(HARNESS)

    def _attribute(self, exercises: list[Exercise], recorded: list[dict], shown: list[str], reply: dict,
                   kernel: Kernel) -> None:
        """Count what a check cell recorded (and SHOWN) on EXERCISES; one it reported nothing on timed out or could
        not run."""
        self._count(recorded, exercises, shown)
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
        exercises = [e for e in self.expected if e.hidden]
        path = self.guard(kernel, results, exercises, "the hidden checks", "")
        index = len(self.nb.cells)  # where kernel.quiet runs it; lines printed there so far were not the checks'
        if self.cap:
            self.cap.shown(index)
        reply, _ = kernel.quiet(hidden_check_source(hidden) + self._point_at(results.stray))
        self._count(results.taken(path), exercises, self.cap.shown(index) if self.cap else [])
        if kernel.timed_out(reply):
            self.hidden_stopped = f"the hidden checks ran longer than {kernel.last_limit_s} s and were stopped"
            self.note(f"{_upper_first(self.hidden_stopped)}.")
            if not kernel.responsive():
                self.notes.append(NOT_RECOVERED)
                self.kernel_ok = False
                return False
        elif reply.get("status") == "error":
            self.note(f"The hidden checks stopped with {error_text(reply)}.")
        return True


def sandbox_refusal(spec: LabSpec) -> str | None:
    """Why SPEC's checks cannot run in the sandbox the grading run uses (its check module says), or None."""
    if not sandbox.active().sandboxed:
        return None
    reason = getattr(importlib.import_module(f"infracourse.checks.lab{spec.number}"), "OUTSIDE_THE_SANDBOX", None)
    return f"lab {spec.number} {reason}: grade it with --trust-submissions on a disposable machine" if reason else None


def grade(student: str, path: Path, spec: LabSpec, limits: Limits, hidden: Path | None = None) -> Graded:
    """Run PATH as STUDENT's answer to SPEC; HIDDEN is the instructor's extra check module for this lab. Never
    raises: whatever goes wrong becomes this submission's entry, and the others are still graded."""
    began = time.monotonic()
    expected = [*spec.exercises, *(hidden_exercises(hidden) if hidden else [])]
    if refusal := sandbox_refusal(spec):
        outcomes = collect(expected, {}, {}, refusal)
        return Graded(student, spec.name, spec.title, path, outcomes, [f"Not run: {refusal}."], 0.0)
    try:
        return _grade(student, path, spec, limits, hidden, expected, began)
    except Exception as exc:  # noqa: BLE001 - a bug or a hostile file must not stop the gradebook
        note = f"The grader failed on this notebook ({type(exc).__name__}: {str(exc)[:MAX_NOTE]}); nothing counted."
        outcomes = collect(expected, {}, {}, "the grader failed on this notebook")
        return Graded(student, spec.name, spec.title, path, outcomes, [note], time.monotonic() - began)


def _grade(student: str, path: Path, spec: LabSpec, limits: Limits, hidden: Path | None, expected: list[Exercise],
           began: float) -> Graded:
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001 - whatever is wrong with the file, say so in the gradebook
        outcomes = collect(expected, {}, {}, "the file is not a readable notebook")
        note = f"The file is not a readable notebook ({type(exc).__name__}); nothing was run."
        return Graded(student, spec.name, spec.title, path, outcomes, [note], time.monotonic() - began)
    check_at, edited, notes = restore_check_cells(nb, spec)
    state = _Grading(spec, nb, expected, notes=notes)
    for number in edited:
        state.flagged[number].add(TAMPERED)
    suffix = namespaces.suffix_for(student)
    slugs: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="infracourse-grade-") as work:
        results = ResultsFile(Path(work) / "results")
        env = {**os.environ, "INFRACOURSE_NS_SUFFIX": suffix, "INFRACOURSE_RESULTS": str(results.stray),
               "MPLBACKEND": "Agg"}
        kernel = Kernel(nb, Path(work), limits)
        if kernel.policy.sandboxed:
            sandbox.hand_over(results.folder)
        try:
            with kernel.started(env):
                state.run_cells(kernel, check_at, results, hidden)
                if state.kernel_ok and kernel.remaining_s() > 1:
                    slugs = namespaces.reported(kernel.quiet(namespaces.REPORT_SOURCE, RESPONSIVE_PROBE_S)[1])
        except DeadKernelError:
            last_words = kernel.last_words()
            state.note("The kernel died (the process exited or crashed); the rest was not run."
                       + (f" Its last words: {' / '.join(last_words)}" if last_words else ""))
            state.why_not_run = "the kernel died before this check"
        except Exception as exc:  # noqa: BLE001 - e.g. a kernel that will not start: report it, do not crash
            state.note(f"The grader could not run this notebook: {type(exc).__name__}: {exc}")
            state.why_not_run = "the grader could not run the notebook"
        finally:
            results.unlock()
    namespaces.clean(suffix, slugs, spec.services)
    outcomes = collect(expected, state.found, state.flagged, state.why_not_run, state.hidden_stopped)
    return Graded(student, spec.name, spec.title, path, outcomes, state.notes, time.monotonic() - began, nb)
