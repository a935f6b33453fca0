from pathlib import Path

import nbformat
import pytest
import tiny_course

from infracourse.authoring import lab_spec

REPO = Path(__file__).resolve().parents[2]


def test_lab_00_exercises_and_check_cells() -> None:
    spec = lab_spec.load(REPO / "labs" / "00_start_here.ipynb")
    assert [(e.number, e.title) for e in spec.exercises] == [
        ("1", "Visits per country (PostgreSQL)"), ("2", "Count a visit with an expiry (Redis)")]
    assert [c.source for c in spec.check_cells] == [
        "checks.visits_per_country(VISITS_PER_COUNTRY, conn)", "checks.count_visit(count_visit, r, visit_key)"]
    assert spec.check_imports == "from infracourse.checks import lab00 as checks"
    assert spec.services == ("postgres", "redis") and spec.number == "00"


def test_titles_come_from_the_solutions_passed_lines(tmp_path: Path) -> None:
    root = tiny_course.make(tmp_path)
    spec = lab_spec.load(root / "labs" / "00_tiny.ipynb")
    assert [(e.number, e.title) for e in spec.exercises] == [("1", "Add things")]
    assert spec.check_cells[0].cell_id == "c4" and spec.check_cells[0].exercises == ("1",)


def test_a_solution_without_stored_outputs_has_no_exercises(tmp_path: Path) -> None:
    root = tiny_course.make(tmp_path)
    solution = nbformat.read(root / "solutions" / "00_tiny.ipynb", as_version=4)
    for cell in solution.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    nbformat.write(solution, root / "solutions" / "00_tiny.ipynb")
    assert lab_spec.load(root / "labs" / "00_tiny.ipynb").exercises == ()


def test_a_check_cell_missing_from_the_lab_means_a_stale_lab(tmp_path: Path) -> None:
    root = tiny_course.make(tmp_path)
    lab = nbformat.read(root / "labs" / "00_tiny.ipynb", as_version=4)
    lab.cells = [c for c in lab.cells if not c.source.startswith("checks.")]
    nbformat.write(lab, root / "labs" / "00_tiny.ipynb")
    with pytest.raises(ValueError, match="course labs build"):
        lab_spec.load(root / "labs" / "00_tiny.ipynb")


def test_same_source_ignores_trailing_whitespace_only() -> None:
    assert lab_spec.same_source("checks.add(add)  \n\n", "checks.add(add)")
    assert not lab_spec.same_source("checks.add(add)", "checks.add(my_add)")
