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


def test_exercises_come_from_the_registry_through_the_checks_a_cell_calls(tmp_path: Path) -> None:
    root = tiny_course.make(tmp_path)
    spec = lab_spec.load(root / "labs" / "00_tiny.ipynb")
    assert [(e.number, e.title, e.points) for e in spec.exercises] == [("0", "Warm-up: add two numbers", 0)]
    assert spec.check_cells[0].cell_id == "c4" and spec.check_cells[0].exercises == ("0",)
    assert _problems(root / "solutions" / "00_tiny.ipynb") == []


def _problems(path: Path) -> list[str]:
    """The tiny lab calls only lab 00's warm-up check: that lab 00's other exercises have no cell is expected."""
    return [p for p in lab_spec.problems(path) if "is declared but no check cell calls" not in p]


def _edit_solution(root: Path, edit) -> Path:
    path = root / "solutions" / "00_tiny.ipynb"
    solution = nbformat.read(path, as_version=4)
    edit(solution.cells)
    nbformat.write(solution, path)
    return path


def test_a_heading_that_disagrees_with_the_registry_is_a_problem(tmp_path: Path) -> None:
    path = _edit_solution(tiny_course.make(tmp_path),
                          lambda cells: cells[2].update(source="## Exercise 0 · Add two numbers"))
    assert _problems(path) == ["00_tiny.ipynb: the heading of exercise 0 reads 'Add two numbers'; its check "
                               "declares 'Warm-up: add two numbers'"]


def test_a_stored_check_line_with_another_title_and_a_missing_heading_are_problems(tmp_path: Path) -> None:
    def edit(cells):
        cells[2].update(source="## Setup")
        cells[4].outputs[0].text = "✅ Exercise 0 · Add: passed\n"

    problems = _problems(_edit_solution(tiny_course.make(tmp_path), edit))
    assert any("no heading '## Exercise 0 · Warm-up: add two numbers'" in p for p in problems)
    assert any("stored check line of exercise 0 reads 'Add: passed'" in p for p in problems)


def test_a_call_of_a_check_the_module_lacks_is_a_problem(tmp_path: Path) -> None:
    path = _edit_solution(tiny_course.make(tmp_path), lambda cells: cells[4].update(source="checks.ad(add)"))
    assert any("calls checks.ad, which infracourse.checks.lab00 does not have" in p for p in _problems(path))


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
