"""The site's staging on a tiny course: boxes, titles, course map and navigation; then a real build of it."""

from pathlib import Path

import nbformat
import pytest
import tiny_course

from infracourse.authoring import notebook_format, website

pytestmark = pytest.mark.filterwarnings("ignore:.*Check CHANGES for Sphinx API modifications")


def test_stage_adds_a_box_under_each_title(tmp_path: Path) -> None:
    staged = website.stage(tiny_course.make(tmp_path / "repo"), tmp_path / "src")
    lesson = nbformat.read(staged / "notebooks" / "00_tiny.ipynb", as_version=4)
    assert lesson.cells[0].source.startswith("# 00 · Tiny start")
    assert "Run this lesson yourself" in lesson.cells[1].source and "Redis" in lesson.cells[1].source
    assert lesson.cells[3].outputs[0].data["text/plain"] == notebook_format.WIDGET_NOTE  # no empty widget box
    lab = nbformat.read(staged / "labs" / "00_tiny.ipynb", as_version=4)
    assert "Do this lab yourself" in lab.cells[1].source and "</solutions/00_tiny>" in lab.cells[1].source
    solution = nbformat.read(staged / "solutions" / "00_tiny.ipynb", as_version=4)
    assert solution.cells[0].source.startswith("# 00 · Tiny lab · solution")


def test_course_map_and_sidebar_follow_the_catalog(tmp_path: Path) -> None:
    staged = website.stage(tiny_course.make(tmp_path / "repo"), tmp_path / "src")
    course_map = (staged / "_course_map.md").read_text()
    assert "| 00 | {doc}`Tiny start </notebooks/00_tiny>` | A first line of hook. |" in course_map
    assert "| 02 | {doc}`Only a lesson </notebooks/02_only_lesson>` | Nothing else yet. | - |" in course_map
    toc = (staged / "_toc.md").read_text()
    assert ":caption: 00 · Tiny start\n\nLesson </notebooks/00_tiny>\nLab </labs/00_tiny>\n" in toc
    assert "Solution </solutions/00_tiny>" in toc and ":caption: 02 · Only a lesson" in toc


def test_a_partial_course_builds_without_warnings(tmp_path: Path) -> None:
    root = tiny_course.make(tmp_path / "repo")
    result = website.build(root, tmp_path / "out" / "site")
    assert result.status == 0
    assert result.pages == 3 + 3 + 1  # index, running, instructors + three chapter-00 pages + one lesson
    html = (tmp_path / "out" / "site" / "notebooks" / "00_tiny.html").read_text()
    assert 'href="../labs/00_tiny.html"' in html  # a notebook's link to another notebook resolves
    download = tmp_path / "out" / "site" / "_sources" / "labs" / "00_tiny.ipynb"
    assert download.read_bytes() == (root / "labs" / "00_tiny.ipynb").read_bytes()  # the lab itself, no box


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    root = tiny_course.make(tmp_path / "repo")
    lesson = nbformat.read(root / "notebooks" / "02_only_lesson.ipynb", as_version=4)
    lesson.cells.append(nbformat.v4.new_markdown_cell("Next: [chapter 99](99_missing.ipynb)."))
    nbformat.write(lesson, root / "notebooks" / "02_only_lesson.ipynb")
    assert website.build(root, tmp_path / "out" / "site").status != 0  # warnings are errors
