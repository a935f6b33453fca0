"""Labs survive how people use Jupyter (COURSE_GUIDE §5): Run All, Clean up included, then solve and check in
the same kernel; re-run exercise cells and checks; and run a check before its exercise.

Each solution runs in one fresh kernel, cell by cell (nbclient, cwd = the notebook's folder, as `course run`
does): every cell top to bottom; then each exercise's cells and its check; then each exercise's cells twice more
and its check once more. Every check must pass throughout. In a second fresh kernel only the Setup runs (the
cells before the first exercise), then every check: each must say "not done yet" or one clear line, never a
traceback. Verdicts are read from INFRACOURSE_RESULTS, as the lab contract does; `--durations=0` shows each
lab's run time.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from infracourse.authoring import lab_spec, labgen, notebook_format
from infracourse.authoring.labgen import solution_paths

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = solution_paths(ROOT)
CELL_TIMEOUT_S = 180


@dataclass(frozen=True)
class Exercise:
    numbers: tuple[str, ...]  # what its check cell reports on
    cells: tuple[int, ...]  # the exercise cells: solution code between the previous check cell and this one
    check: int  # index of the check cell


def exercises(nb: nbformat.NotebookNode, solution: Path) -> list[Exercise]:
    index_of = {cell.get("id"): i for i, cell in enumerate(nb.cells)}
    found, start = [], 0
    for check in lab_spec.load(ROOT / "labs" / solution.name, solution).check_cells:
        end = index_of[check.cell_id]
        cells = tuple(i for i in range(start, end)
                      if nb.cells[i].cell_type == "code" and labgen._has_marker(nb.cells[i].source))
        found.append(Exercise(check.exercises, cells, end))
        start = end + 1
    return found


class Kernel:
    """One kernel executing cells of NB one at a time; each check's verdicts come from INFRACOURSE_RESULTS."""

    def __init__(self, nb: nbformat.NotebookNode, solution: Path, results: Path) -> None:
        self.nb, self.results = nb, results
        self.client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", allow_errors=True,
                                     resources={"metadata": {"path": str(solution.parent.resolve())}})
        self.env = {**os.environ, "INFRACOURSE_RESULTS": str(results)}
        self.results.touch()

    def run(self, index: int) -> tuple[list[dict], dict | None]:
        """Execute cell INDEX; return the verdicts it recorded and its error output, if any."""
        seen = len(self.results.read_text().splitlines())
        cell = self.client.execute_cell(self.nb.cells[index], index)
        error = next((o for o in cell.get("outputs", []) if o.output_type == "error"), None)
        verdicts = [json.loads(line) for line in self.results.read_text().splitlines()[seen:]]
        return verdicts, error


def _error_text(index: int, error: dict) -> str:
    return f"cell {index} raised {error['ename']}: {error['evalue'][:200]}"


def _all_pass(kernel: Kernel, exercise: Exercise, phase: str) -> list[str]:
    """Run the check of EXERCISE; a line for each of its exercises that did not pass."""
    verdicts, error = kernel.run(exercise.check)
    if error:
        return [f"{phase}: exercise {'/'.join(exercise.numbers)}: {_error_text(exercise.check, error)}"]
    reported = {v["exercise"] for v in verdicts}
    return [f"{phase}: exercise {v['exercise']} {v['status']}: {v['message'][:300]}"
            for v in verdicts if v["status"] != "passed"] + [
        f"{phase}: exercise {n} reported nothing" for n in exercise.numbers if n not in reported]


def _run_cells(kernel: Kernel, cells: tuple[int, ...] | range, phase: str) -> list[str]:
    problems = []
    for index in cells:
        _, error = kernel.run(index)
        if error and "raises-exception" not in kernel.nb.cells[index].metadata.get("tags", []):
            problems.append(f"{phase}: {_error_text(index, error)}")
    return problems


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_run_all_then_solve_and_rerun(solution: Path, tmp_path: Path) -> None:
    nb = notebook_format.read(solution)
    kernel = Kernel(nb, solution, tmp_path / "results.jsonl")
    started = time.monotonic()
    with kernel.client.setup_kernel(env=kernel.env):
        problems = _run_cells(kernel, range(len(nb.cells)), "Run All")
        for phase, repeats in (("after Run All", 1), ("re-run", 2)):
            for exercise in exercises(nb, solution):
                problems += _run_cells(kernel, exercise.cells * repeats, phase)
                problems += _all_pass(kernel, exercise, phase)
    print(f"{solution.name}: {time.monotonic() - started:.1f} s, {len(problems)} problems")
    assert not problems, f"{solution.name}:\n" + "\n".join(problems)


def _one_clear_line(verdict: dict) -> bool:
    return verdict["status"] == "not_done" or (verdict["status"] == "failed" and "\n" not in verdict["message"])


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_check_before_its_exercise_says_so(solution: Path, tmp_path: Path) -> None:
    nb = notebook_format.read(solution)
    kernel = Kernel(nb, solution, tmp_path / "results.jsonl")
    found = exercises(nb, solution)
    with kernel.client.setup_kernel(env=kernel.env):
        problems = _run_cells(kernel, range(found[0].cells[0]), "Setup")
        for exercise in found:
            verdicts, error = kernel.run(exercise.check)
            if error and len(error["traceback"]) > 1:  # a course error shows as one line, a traceback as several
                problems.append(f"check {exercise.check}: a traceback: {_error_text(exercise.check, error)}")
            if error and error["ename"] == "NameError":
                assert "run the cell that defines it first" in error["traceback"][0], error["traceback"]
            problems += [f"check {exercise.check}: exercise {v['exercise']}: {v['status']}: {v['message'][:300]}"
                         for v in verdicts if not _one_clear_line(v)]
    assert not problems, f"{solution.name}:\n" + "\n".join(problems)
