from pathlib import Path

import nbformat
import tiny_course

from infracourse.authoring import labgen

REPO = Path(__file__).resolve().parents[2]


def test_block_inside_a_function_becomes_not_implemented():
    source = "def f(x):\n    # BEGIN SOLUTION: double it\n    y = x * 2\n    return y\n    # END SOLUTION\n"
    assert labgen.strip_solution(source) == "def f(x):\n    # TODO: double it\n    raise NotImplementedError"


def test_top_level_block_keeps_every_assigned_name_as_ellipsis():
    source = "# BEGIN SOLUTION: the query\nQUERY = 'SELECT 1'\nLIMIT: int = 5\n# END SOLUTION"
    assert labgen.strip_solution(source) == "# TODO: the query\nQUERY = ...\nLIMIT = ..."


def test_single_line_markers():
    source = "    x = compute()  # SOLUTION: call compute\n    return x + 1  # SOLUTION\nfoo()  # SOLUTION: a call"
    assert labgen.strip_solution(source).splitlines() == [
        "    x = ...  # TODO: call compute",
        "    raise NotImplementedError  # TODO: write your code here",
        "...  # TODO: a call",
    ]


def test_unclosed_block_is_an_error():
    import pytest

    with pytest.raises(labgen.LabSourceError, match="END SOLUTION"):
        labgen.strip_solution("# BEGIN SOLUTION\nx = 1\n")


def _solution_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_markdown_cell("Reference!", metadata={"tags": ["solution-only"]}),
        nbformat.v4.new_markdown_cell("A hint", metadata={"tags": ["lab-only"]}),
        nbformat.v4.new_code_cell("ANSWER = 42  # SOLUTION: the answer", execution_count=3,
                                  outputs=[nbformat.v4.new_output("stream", text="x")]),
    ]
    return nb


def test_lab_drops_solution_only_cells_and_all_outputs():
    lab = labgen.lab_from_solution(_solution_notebook())
    assert [c.source for c in lab.cells] == ["# Title", "A hint", "ANSWER = ...  # TODO: the answer"]
    assert lab.cells[-1].outputs == [] and lab.cells[-1].execution_count is None


def test_stale_labs_finds_drifted_missing_and_orphaned(tmp_path):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "labs").mkdir()
    nbformat.write(_solution_notebook(), tmp_path / "solutions" / "01_x.ipynb")
    nbformat.write(_solution_notebook(), tmp_path / "solutions" / "02_y.ipynb")
    assert len(labgen.stale_labs(tmp_path)) == 2
    labgen.build_all(tmp_path)
    assert labgen.stale_labs(tmp_path) == []
    (tmp_path / "labs" / "01_x.ipynb").write_text((tmp_path / "labs" / "01_x.ipynb").read_text() + " ")
    (tmp_path / "labs" / "99_orphan.ipynb").write_text("{}")
    assert [p.name for p in labgen.stale_labs(tmp_path)] == ["01_x.ipynb", "99_orphan.ipynb"]


def test_repository_labs_are_in_sync():
    assert labgen.stale_labs() == []


def test_a_lab_built_under_another_python_patch_version_is_not_stale(tmp_path):
    root = tiny_course.make(tmp_path)
    lab = root / "labs" / "00_tiny.ipynb"
    assert labgen.stale_labs(root) == []
    nb = nbformat.read(lab, as_version=4)
    nb.metadata.language_info["version"] = "3.11.2"
    lab.write_text(nbformat.writes(nb) + "\n")
    assert labgen.stale_labs(root) == []
    nb.cells[0].source += " (edited)"
    lab.write_text(nbformat.writes(nb) + "\n")
    assert labgen.stale_labs(root) == [lab]

