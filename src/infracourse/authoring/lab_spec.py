"""What a generated lab expects of a submission: its exercises (from the registry, i.e. the @exercise
declarations of its check module), its check cells with their exact source and the exercises each reports on,
and the import that binds its check module.

A check cell is recognised by what it calls: `checks.find_user(...)`, where `checks` is the name the lab's
`from infracourse.checks import labNN as checks` binds. `problems()` lists every place where the notebooks
disagree with the registry (a heading, a stored check line, a check that no cell calls); the lab build and
`course labs check` fail on any.
"""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import nbformat

from infracourse.authoring import catalog, notebook_format
from infracourse.checking import registry
from infracourse.checking.exercise import Exercise
from infracourse.paths import repo_root

HEADING = re.compile(r"^#+\s*Exercise\s+(?P<number>\S+)\s*·\s*(?P<label>.+?)[ \t]*$", re.MULTILINE)
CHECK_LINE = re.compile(r"^(?:✅|⏳|❌) Exercise (?P<number>\S+) · (?P<rest>.*)$", re.MULTILINE)
CHECKS_PACKAGE = "infracourse.checks"


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
    exercises: tuple[Exercise, ...]  # reported on by the lab's check cells, in cell order
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


def _parse(cell: nbformat.NotebookNode) -> ast.Module | None:
    if cell.cell_type != "code":
        return None
    try:
        return ast.parse(cell.source)
    except SyntaxError:  # IPython magics: no check import or call to find in this cell
        return None


def _check_imports(nb: nbformat.NotebookNode) -> tuple[str, dict[str, str]]:
    """The lab's check-module import statements, and {bound name: module} for each."""
    statements, bound = [], {}
    for cell in nb.cells:
        tree = _parse(cell)
        for node in tree.body if tree else []:
            if isinstance(node, ast.ImportFrom) and node.module == CHECKS_PACKAGE:
                bound.update({a.asname or a.name: f"{CHECKS_PACKAGE}.{a.name}" for a in node.names})
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(CHECKS_PACKAGE + "."):
                bound.update({a.asname or a.name: node.module for a in node.names})
            else:
                continue
            statements.append(ast.unparse(node))
    return "\n".join(dict.fromkeys(statements)), bound


def _called_checks(cell: nbformat.NotebookNode, bound: dict[str, str]) -> list[tuple[str, str]]:
    """(module, check name) for each `alias.check(...)` call in CELL, in source order."""
    tree = _parse(cell)
    calls = [node for node in ast.walk(tree)] if tree else []
    found = [
        (node.lineno, node.col_offset, bound[node.func.value.id], node.func.attr) for node in calls
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name) and node.func.value.id in bound
    ]
    return [(module, name) for *_, module, name in sorted(found)]


def _module(name: str) -> ModuleType:
    return importlib.import_module(name)


def _check_cells(solution: nbformat.NotebookNode, bound: dict[str, str]
                 ) -> tuple[list[tuple[nbformat.NotebookNode, list[Exercise]]], list[str]]:
    """The solution's check cells with the exercises they report on, and calls of checks nobody declared."""
    cells, unknown = [], []
    declared = {module: registry.checks_of(_module(module)) for module in set(bound.values())}
    for cell in solution.cells:
        exercises = []
        for module, name in _called_checks(cell, bound):
            spec = declared[module].get(name)
            if spec is None and not hasattr(_module(module), name):
                unknown.append(f"cell {cell.get('id')} calls checks.{name}, which {module} does not have")
            elif spec is not None and spec not in exercises:
                exercises.append(spec)
        if exercises:
            cells.append((cell, exercises))
    return cells, unknown


def _solution_path(lab_path: Path) -> Path:
    return lab_path.parent.parent / catalog.FOLDERS["solution"] / lab_path.name


def load(lab_path: Path, solution_path: Path | None = None) -> LabSpec:
    """The spec of LAB_PATH; its solution defaults to ../solutions/<same name>."""
    lab = notebook_format.read(lab_path)
    solution = notebook_format.read(solution_path or _solution_path(lab_path))
    imports, bound = _check_imports(lab)
    lab_by_id = {c.get("id"): c for c in lab.cells}
    exercises: dict[str, Exercise] = {}
    check_cells = []
    for cell, found in _check_cells(solution, bound)[0]:
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
        check_cells=tuple(check_cells), check_imports=imports,
        cell_ids=frozenset(c.get("id") for c in lab.cells if c.get("id")), services=info.services,
    )


def problems(solution_path: Path) -> list[str]:
    """Where SOLUTION_PATH disagrees with its check module's registry: headings, stored check lines, checks
    that no check cell calls. Empty when they agree."""
    solution = notebook_format.read(solution_path)
    _, bound = _check_imports(solution)
    where = solution_path.name
    if not bound:
        return []
    cells, found = _check_cells(solution, bound)
    called = {e.number: e for _, exercises in cells for e in exercises}
    declared = {e.number: e for module in set(bound.values()) for e in registry.exercises_of(_module(module))}
    headings = {}
    for cell in solution.cells:
        if cell.cell_type == "markdown":
            headings.update({m["number"]: m["label"] for m in HEADING.finditer(cell.source)})
    for number, label in headings.items():
        spec = declared.get(number)
        if spec is None:
            found.append(f"the heading 'Exercise {number} · {label}' names an exercise no check declares")
        elif label != spec.label:
            found.append(f"the heading of exercise {number} reads '{label}'; its check declares '{spec.label}'")
    for number, spec in called.items():
        if number not in headings:
            found.append(f"exercise {number} has a check cell but no heading '{spec.heading}'")
    for number, spec in declared.items():
        if spec.hidden:
            found.append(f"exercise {number} is declared hidden: hidden checks belong in the instructor's own folder "
                         "(docs/instructors.md), which learners never see")
        elif number not in called and spec.points:
            found.append(f"exercise {number} ({spec.label}) is declared but no check cell calls checks.{spec.check}")
    for cell, _ in cells:
        text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
        for m in CHECK_LINE.finditer(text):
            spec = declared.get(m["number"])
            if spec is not None and not m["rest"].startswith(spec.label + ": "):
                found.append(f"a stored check line of exercise {m['number']} reads '{m['rest']}', not "
                             f"'{spec.label}: ...'; re-run the solution (`course run {solution_path}`)")
    return [f"{where}: {p}" for p in found]


def all_specs(root: Path | None = None) -> dict[str, LabSpec]:
    """Every lab of the course by name (a lab without a solution next to it cannot be graded)."""
    root = root or repo_root()
    return {path.stem: load(path) for path in catalog.labs(root) if _solution_path(path).exists()}
