from pathlib import Path

import nbformat
import pytest

from infracourse.authoring import lab_spec
from infracourse.grading import submissions

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "labs" / "00_start_here.ipynb"


@pytest.fixture
def specs():
    return {"00_start_here": lab_spec.load(LAB)}


def _put(path: Path, nb=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb or nbformat.read(LAB, as_version=4), path)


def test_both_layouts_and_renamed_files(tmp_path: Path, specs) -> None:
    _put(tmp_path / "ada" / "00_start_here.ipynb")
    _put(tmp_path / "bob" / "deep" / "my answers.ipynb")  # renamed: recognised by its cell ids
    _put(tmp_path / "cyd__00_start_here.ipynb")
    _put(tmp_path / "_gradebook" / "executed" / "ada" / "00_start_here.ipynb")  # the grader's own output
    _put(tmp_path / "ada" / ".ipynb_checkpoints" / "00_start_here-checkpoint.ipynb")
    found = submissions.collect(tmp_path, specs)
    assert [(s.student, s.lab.name) for s in found] == [
        ("ada", "00_start_here"), ("bob", "00_start_here"), ("cyd", "00_start_here")]


def test_an_unrelated_notebook_is_unrecognised_unless_a_lab_is_forced(tmp_path: Path, specs) -> None:
    _put(tmp_path / "dan.ipynb", nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]))
    assert [(s.student, s.lab) for s in submissions.collect(tmp_path, specs)] == [("dan", None)]
    assert submissions.collect(tmp_path, specs, only_lab="00")[0].lab.name == "00_start_here"
    with pytest.raises(ValueError, match="no lab 42"):
        submissions.collect(tmp_path, specs, only_lab="42")


def test_two_files_of_one_student_are_told_apart(tmp_path: Path, specs) -> None:
    _put(tmp_path / "eve" / "00_start_here.ipynb")
    _put(tmp_path / "eve" / "00_start_here (1).ipynb")
    assert [s.student for s in submissions.collect(tmp_path, specs)] == [
        "eve (00_start_here (1).ipynb)", "eve (00_start_here.ipynb)"]
