"""Grade one submitted lab: run it top to bottom in a fresh kernel, in a namespace of its own, under a per-cell
and a per-notebook time limit, and turn what its checks recorded into one outcome per exercise.

Guarantees: a submission that raises, hangs, kills its kernel or is not a notebook yields outcomes and notes,
never an exception. Check cells are compared with the generated lab; an edited or deleted one is restored
before the run (so editing a check cannot change its verdict) and flagged. Only results recorded while a
restored check cell (or the instructor's hidden checks) ran count; just before each check cell the lab's own
check-module import is run again, so a learner's stand-in `checks` object is not the one called.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from infracourse.authoring.lab_spec import CheckCell, LabSpec, same_source
from infracourse.checking import registry
from infracourse.checking.exercise import Exercise
from infracourse.checking.status import ERROR, NOT_RUN, PASSED, TIMEOUT
from infracourse.grading import namespaces

TAMPERED, HIDDEN = "check cell edited", "hidden"
_TIMEOUT_ENAME = "GraderTimeout"
RESPONSIVE_PROBE_S = 5


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

    @property
    def score(self) -> int:
        return 1 if self.status == PASSED else 0


@dataclass
class Graded:
    student: str
    lab: str
    lab_title: str
    path: Path
    outcomes: list[Outcome]
    notes: list[str]
    seconds: float
    executed: nbformat.NotebookNode | None = None

    @property
    def score(self) -> int:
        return sum(o.score for o in self.outcomes)


# --- preparing the notebook ---------------------------------------------------------------------------------
def _heading_before(nb: nbformat.NotebookNode, index: int) -> str:
    for cell in reversed(nb.cells[:index]):
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def describe_cell(nb: nbformat.NotebookNode, index: int) -> str:
    heading = _heading_before(nb, index)
    return f"cell {index + 1}" + (f' (under "{heading}")' if heading else "")


def restore_check_cells(nb: nbformat.NotebookNode, spec: LabSpec) -> tuple[dict[int, CheckCell], set[str], list[str]]:
    """Put every check cell of the lab back as generated, in place.

    Returns {cell index: check cell}, the exercises whose check cell was edited or deleted, and notes.
    """
    notes, flagged = [], set()
    lab_ids = [c.get("id") for c in nbformat.read(spec.path, as_version=4).cells]
    for check in spec.check_cells:
        label = " and ".join(f"exercise {n}" for n in check.exercises)
        by_id = next((c for c in nb.cells if c.get("id") == check.cell_id), None)
        if by_id is not None and by_id.cell_type == "code" and same_source(by_id.source, check.source):
            continue
        by_source = next((c for c in nb.cells if c.cell_type == "code" and same_source(c.source, check.source)), None)
        cell = by_id if by_id is not None else by_source
        if cell is None:  # deleted: back after the cell that precedes it in the lab, else at the end
            previous = lab_ids[: lab_ids.index(check.cell_id)][-1:]
            anchor = next((i for i, c in enumerate(nb.cells) if c.get("id") in previous), len(nb.cells) - 1)
            cell = nbformat.v4.new_code_cell()
            nb.cells.insert(anchor + 1, cell)
            notes.append(f"The check cell of {label} was deleted; the grader put the original back.")
            flagged.update(check.exercises)
        elif by_id is not None:
            notes.append(f"The check cell of {label} was edited; the grader ran the original check.")
            flagged.update(check.exercises)
        cell.update(cell_type="code", source=check.source, id=check.cell_id)
        cell.setdefault("outputs", [])
        cell.setdefault("execution_count", None)
    indices = {i: c for i, cell in enumerate(nb.cells) for c in spec.check_cells if cell.get("id") == c.cell_id}
    return indices, flagged, notes


def hidden_check_source(module_path: Path) -> str:
    """Code for the kernel: run every check of MODULE_PATH (its registry), passing each parameter the notebook's
    global of the same name (a missing one fails that check, it does not stop the others)."""
    return f'''
def _infracourse_hidden_checks():
    import inspect
    from pathlib import Path
    from infracourse.checking import registry
    from infracourse.checking.exercise import expect, outcome
    module = registry.load_file(Path({str(module_path)!r}))
    scope = globals()
    for name, spec in registry.checks_of(module).items():
        check = getattr(module, name)
        names = list(inspect.signature(inspect.unwrap(check)).parameters)
        missing = [n for n in names if n not in scope]
        if missing:
            message = "the notebook defines no " + ", ".join(missing)
            outcome(spec, lambda: expect(False, message))
        else:
            check(**{{n: scope[n] for n in names}})
_infracourse_hidden_checks()
del _infracourse_hidden_checks
'''


def hidden_exercises(module_path: Path) -> list[Exercise]:
    """The exercises of the hidden checks in MODULE_PATH, from its registry (no learner code runs)."""
    return list(registry.exercises_of(registry.load_file(module_path)))


_NAMESPACES_SOURCE = """
import json as _json
from infracourse.namespace import Namespace as _Namespace
print(_json.dumps(sorted({v.slug for v in list(globals().values()) if isinstance(v, _Namespace)})))
"""


# --- running --------------------------------------------------------------------------------------------------
class _Kernel:
    """One fresh kernel running a notebook cell by cell, remembering each cell's execute reply."""

    def __init__(self, nb: nbformat.NotebookNode, workdir: Path, limits: Limits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.notebook_s
        self.replies: dict[int, dict] = {}
        self.last_limit_s = limits.cell_s
        self.client = NotebookClient(
            nb, timeout=limits.cell_s, kernel_name="python3", allow_errors=True, interrupt_on_timeout=True,
            error_on_timeout={"ename": _TIMEOUT_ENAME, "evalue": "", "traceback": []},
            shutdown_kernel="immediate", iopub_timeout=2, record_timing=False,
            resources={"metadata": {"path": str(workdir)}},  # the kernel's working directory
        )
        self.client.on_cell_executed = self._remember

    def _remember(self, cell, cell_index: int, execute_reply: dict | None) -> None:
        self.replies[cell_index] = (execute_reply or {}).get("content", {})

    def remaining_s(self) -> float:
        return self.deadline - time.monotonic()

    def execute(self, cell: nbformat.NotebookNode, index: int, limit_s: float | None = None,
                store_history: bool = True) -> dict:
        """Run CELL (nb.cells[INDEX]); return its execute reply content ({'status': 'error', ...} on failure)."""
        self.last_limit_s = max(1, int(min(limit_s or self.limits.cell_s, self.remaining_s())))
        self.client.timeout = self.last_limit_s
        self.replies.pop(index, None)
        self.client.execute_cell(cell, index, store_history=store_history)
        return self.replies.get(index, {})

    def quiet(self, source: str, limit_s: float | None = None) -> tuple[dict, str]:
        """Run grader code that is not part of the notebook; return its reply and what it printed.

        nbclient stores an executed cell at its index, so the cell sits at the end of the notebook while it
        runs and is taken out afterwards."""
        cells = self.client.nb.cells
        cells.append(nbformat.v4.new_code_cell(source))
        try:
            reply = self.execute(cells[-1], len(cells) - 1, limit_s, store_history=False)
        finally:
            cell = cells.pop()
        return reply, "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")

    @staticmethod
    def timed_out(reply: dict) -> bool:
        return reply.get("ename") == _TIMEOUT_ENAME

    def responsive(self) -> bool:
        return not self.timed_out(self.quiet("pass", RESPONSIVE_PROBE_S)[0])


class _ResultsFile:
    """The JSON lines checks append to (INFRACOURSE_RESULTS), read as they grow."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def new(self) -> list[dict]:
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        fresh, self.offset = data[self.offset :], len(data)
        return [json.loads(line) for line in fresh.decode("utf-8", errors="replace").splitlines() if line.strip()]


def _error_text(reply: dict) -> str:
    evalue = (reply.get("evalue") or "").strip().splitlines()
    return f"{reply.get('ename', 'Error')}" + (f": {evalue[0]}" if evalue else "")


def _outcome(result: dict, flags: list[str] | None = None) -> Outcome:
    return Outcome(result["exercise"], result["title"], result["status"], result.get("message", ""),
                   result.get("hint", ""), list(flags or []))


@dataclass
class _Grading:
    """The state of one submission's run: outcomes so far, notes for the feedback, why the rest did not run."""

    spec: LabSpec
    nb: nbformat.NotebookNode
    results: dict[str, Outcome] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    first_error: str | None = None
    why_not_run: str = "the notebook stopped before this check"
    kernel_ok: bool = True
    hidden_stopped: str = ""

    def run_cells(self, kernel: _Kernel, check_at: dict[int, CheckCell], results: _ResultsFile,
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
                    self.notes.append("The kernel did not recover from the interrupt; the rest was not run.")
                    self.why_not_run = "an earlier cell hung and the kernel did not recover"
                    self.kernel_ok = False
                    return False
            elif reply.get("status") == "error" and not check and self.first_error is None:
                self.first_error = f"{where} raised {_error_text(reply)}"
                self.notes.append(f"{_upper_first(self.first_error)}.")
        if hidden and last_check + 1 >= len(self.nb.cells):
            return self.run_hidden(kernel, hidden, results)
        return True

    def _attribute(self, check: CheckCell, recorded: list[dict], reply: dict, kernel: _Kernel) -> None:
        for result in recorded:
            if result["exercise"] in check.exercises:
                self.results[result["exercise"]] = _outcome(result)
        for number in check.exercises:
            if number in self.results:
                continue
            title = self.spec.exercise(number).label
            if kernel.timed_out(reply):
                self.results[number] = Outcome(
                    number, title, TIMEOUT, f"the check ran longer than {kernel.last_limit_s} s and was stopped",
                    "look for a loop that never ends or a call that waits forever")
            else:
                self.results[number] = Outcome(
                    number, title, ERROR, f"the check could not run: {_error_text(reply)}",
                    f"{self.first_error} earlier; fix that first" if self.first_error
                    else "run the exercise cell, then its check")

    def run_hidden(self, kernel: _Kernel, hidden: Path, results: _ResultsFile) -> bool:
        """Run the instructor's hidden checks in the submission's kernel; False when the kernel is lost."""
        if kernel.remaining_s() <= 1:
            self.why_not_run = "the notebook time limit ran out before the hidden checks"
            return True
        results.new()
        reply, _ = kernel.quiet(hidden_check_source(hidden))
        for result in results.new():
            self.results[result["exercise"]] = _outcome(result, [HIDDEN])
        if kernel.timed_out(reply):
            self.hidden_stopped = f"the hidden checks ran longer than {kernel.last_limit_s} s and were stopped"
            self.notes.append(f"The hidden checks ran longer than {kernel.last_limit_s} s and were stopped.")
            if not kernel.responsive():
                self.notes.append("The kernel did not recover from the interrupt; the rest was not run.")
                self.kernel_ok = False
                return False
        elif reply.get("status") == "error":
            self.notes.append(f"The hidden checks stopped with {_error_text(reply)}.")
        return True

    def outcomes(self, expected: list[tuple[str, str, bool]], flagged: set[str]) -> list[Outcome]:
        outcomes = []
        for number, title, hidden in expected:
            outcome = self.results.get(number)
            if outcome is None and hidden and self.hidden_stopped:
                outcome = Outcome(number, title, TIMEOUT, self.hidden_stopped,
                                  "look for a loop that never ends or a call that waits forever")
            outcome = outcome or Outcome(number, title, NOT_RUN, self.why_not_run)
            if hidden and HIDDEN not in outcome.flags:
                outcome.flags.append(HIDDEN)
            if number in flagged:
                outcome.flags.append(TAMPERED)
            outcomes.append(outcome)
        return outcomes


def grade(student: str, path: Path, spec: LabSpec, limits: Limits = Limits(), hidden: Path | None = None) -> Graded:
    """Run PATH as STUDENT's answer to SPEC; HIDDEN is the instructor's extra check module for this lab."""
    began = time.monotonic()
    expected = [(e.number, e.label, False) for e in spec.exercises]
    expected += [(e.number, e.label, True) for e in (hidden_exercises(hidden) if hidden else [])]
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001 - whatever is wrong with the file, say so in the gradebook
        state = _Grading(spec, nbformat.v4.new_notebook(), why_not_run="the file is not a readable notebook")
        state.notes.append(f"The file is not a readable notebook ({type(exc).__name__}); nothing was run.")
        return Graded(student, spec.name, spec.title, path, state.outcomes(expected, set()), state.notes,
                      time.monotonic() - began)
    check_at, flagged, notes = restore_check_cells(nb, spec)
    state = _Grading(spec, nb, notes=notes)
    suffix = namespaces.suffix_for(student)
    slugs: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="infracourse-grade-") as work:
        results = _ResultsFile(Path(work) / "results.jsonl")
        env = {**os.environ, "INFRACOURSE_NS_SUFFIX": suffix, "INFRACOURSE_RESULTS": str(results.path),
               "MPLBACKEND": "Agg"}
        kernel = _Kernel(nb, Path(work), limits)
        log_path = Path(work) / "kernel.log"
        try:
            # the kernel's own stderr (warnings, a crash's last words) goes to a log, not the instructor's terminal
            with log_path.open("w") as log, kernel.client.setup_kernel(env=env, stdout=log, stderr=log):
                state.run_cells(kernel, check_at, results, hidden)
                if state.kernel_ok and kernel.remaining_s() > 1:
                    _, printed = kernel.quiet(_NAMESPACES_SOURCE, RESPONSIVE_PROBE_S)
                    slugs.update(_json_list(printed))
        except DeadKernelError:
            last_words = [line for line in log_path.read_text(errors="replace").splitlines()
                          if line.strip() and "without encryption" not in line][-3:]
            state.notes.append("The kernel died (the process exited or crashed); the rest was not run."
                               + (f" Its last words: {' / '.join(last_words)}" if last_words else ""))
            state.why_not_run = "the kernel died before this check"
        except Exception as exc:  # noqa: BLE001 - e.g. a kernel that will not start: report it, do not crash
            state.notes.append(f"The grader could not run this notebook: {type(exc).__name__}: {exc}")
            state.why_not_run = "the grader could not run the notebook"
    namespaces.clean(suffix, slugs, spec.services)
    return Graded(student, spec.name, spec.title, path, state.outcomes(expected, flagged), state.notes,
                  time.monotonic() - began, nb)


def _json_list(printed: str) -> list[str]:
    try:
        value = json.loads(printed.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

