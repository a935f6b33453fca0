from pathlib import Path

import tiny_course

from infracourse.authoring import catalog


def test_chapters_group_lessons_labs_and_solutions(tmp_path: Path) -> None:
    chapters = catalog.chapters(tiny_course.make(tmp_path))
    assert [c.number for c in chapters] == ["00", "02"]
    tiny, only = chapters
    assert [nb.docname for nb in tiny.lessons + tiny.labs + tiny.solutions] == [
        "notebooks/00_tiny", "labs/00_tiny", "solutions/00_tiny"]
    assert tiny.title == "Tiny start" and tiny.lessons[0].title == "00 · Tiny start"
    assert tiny.lessons[0].hook == "A first line of hook. A second sentence."
    assert tiny.solution_for(tiny.labs[0]) is tiny.solutions[0]
    assert only.labs == [] and only.title == "Only a lesson"


def test_services_come_from_notebook_setup_and_require(tmp_path: Path) -> None:
    tiny = catalog.chapters(tiny_course.make(tmp_path))[0]
    assert tiny.lessons[0].services == ("postgres", "redis")  # course order, the slug is not a service
    assert tiny.labs[0].services == ("redis",)
    assert tiny.services == ("postgres", "redis")


def test_the_real_course_has_chapter_00() -> None:
    first = catalog.chapters()[0]
    assert first.number == "00" and first.lessons[0].title == "00 · Start here"
