"""What a generated lab expects of a submission: its exercises (number and title), its check cells with their
exact source, and the import that binds its check module. Read from labs/NN_*.ipynb and from the stored
outputs of solutions/NN_*.ipynb (the reference passes every check, so its output names every exercise)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from infracourse.authoring import catalog, notebook_format
from infracourse.paths import repo_root

PASSED_LINE = re.compile(r"^✅ Exercise (?P<number>\S+) · (?P<title>.+?): passed(?: \(.*\))?$", re.MULTILINE)


@dataclass(frozen=True)
class Exercise:
    number: str
    title: str


@dataclass(frozen=True)
class CheckCell:
    cell_id: str
    source: str
    exercises: tuple[str, ...]  # the exercise numbers this cell reports on, in order


@dataclass(frozen=True)
class LabSpec:
    name: str  # file stem: "00_start_here"
    path: Path
    title: str
    exercises: tuple[Exercise, ...]
    check_cells: tuple[CheckCell, ...]
    check_imports: str  # the lab's own `from infracourse.checks import labNN as checks` line(s)
    cell_ids: frozenset[str]
    services: tuple[str, ...]

    @property
    def number(self) -> str:
        return self.name[:2]

    def exercise(self, number: str) -> Exercise:
        return next(e for e in self.exercises if e.number == number)


def same_source(a: str, b: str) -> bool:
    """Sources equal up to trailing whitespace (editors add and strip it without anyone meaning to)."""
    return [line.rstrip() for line in a.strip().splitlines()] == [line.rstrip() for line in b.strip().splitlines()]


def _passed_lines(cell: nbformat.NotebookNode) -> list[Exercise]:
    text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
    return [Exercise(m["number"], m["title"]) for m in PASSED_LINE.finditer(text)]


def _check_imports(nb: nbformat.NotebookNode) -> str:
    statements = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            else:
                continue
            if any(m.startswith("infracourse.checks") for m in modules):
                statements.append(ast.unparse(node))
    return "\n".join(dict.fromkeys(statements))


def load(lab_path: Path, solution_path: Path | None = None) -> LabSpec:
    """The spec of LAB_PATH; its solution defaults to ../solutions/<same name>."""
    solution_path = solution_path or lab_path.parent.parent / catalog.FOLDERS["solution"] / lab_path.name
    lab = notebook_format.read(lab_path)
    solution = notebook_format.read(solution_path)
    lab_by_id = {c.get("id"): c for c in lab.cells}
    exercises: dict[str, Exercise] = {}
    check_cells = []
    for cell in solution.cells:
        found = _passed_lines(cell) if cell.cell_type == "code" else []
        if not found:
            continue
        exercises.update({e.number: e for e in found})
        lab_cell = lab_by_id.get(cell.get("id")) or next(
            (c for c in lab.cells if c.cell_type == "code" and same_source(c.source, cell.source)), None
        )
        if lab_cell is None:
            raise ValueError(f"{lab_path.name}: the check cell {cell.get('id')} of the solution is not in the lab;"
                             " run `course labs build`")
        check_cells.append(CheckCell(lab_cell.get("id"), lab_cell.source, tuple(e.number for e in found)))
    info = catalog.read_notebook(lab_path, "lab")
    return LabSpec(
        name=lab_path.stem, path=lab_path, title=info.title, exercises=tuple(exercises.values()),
        check_cells=tuple(check_cells), check_imports=_check_imports(lab),
        cell_ids=frozenset(c.get("id") for c in lab.cells if c.get("id")), services=info.services,
    )


def all_specs(root: Path | None = None) -> dict[str, LabSpec]:
    """Every lab of the course by name (a lab without a solution next to it cannot be graded)."""
    root = root or repo_root()
    return {
        path.stem: load(path) for path in catalog.labs(root)
        if (root / catalog.FOLDERS["solution"] / path.name).exists()
    }
