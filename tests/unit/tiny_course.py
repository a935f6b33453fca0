"""A course tree small enough to build in a test: chapter 00 with a lesson, a lab and its solution, and a
chapter 02 with a lesson only (the site and the catalog must cope with chapters that are not finished)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

from infracourse.authoring import notebook_format

REPO = Path(__file__).resolve().parents[2]


def _notebook(*cells: tuple[str, str], outputs: str = "") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    for kind, source in cells:
        cell = nbformat.v4.new_markdown_cell(source) if kind == "md" else nbformat.v4.new_code_cell(source)
        if kind == "code" and outputs and source.startswith("checks."):
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=outputs)]
        nb.cells.append(cell)
    for index, cell in enumerate(nb.cells):
        cell.id = f"c{index}"
    return notebook_format.normalise(nb)


def make(root: Path) -> Path:
    for folder in ("notebooks", "labs", "solutions"):
        (root / folder).mkdir(parents=True)
    shutil.copytree(REPO / "docs", root / "docs")
    lesson = _notebook(
        ("md", "# 00 · Tiny start\n\nA first line of hook. A second sentence.\n\n**Learning objectives**"),
        ("code", 'from infracourse import notebook\nns = notebook.setup("tiny00", "redis", "postgres")'),
        ("code", "widgets.IntSlider()"),
        ("md", "## Next\n\nSee [the lab](../labs/00_tiny.ipynb)."),
    )
    lesson.cells[1].outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "42"},
                                                      execution_count=1)]
    lesson.cells[2].outputs = [nbformat.v4.new_output("display_data", data={
        "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2, "version_minor": 0},
        "text/plain": "IntSlider(value=0)"})]
    solution = _notebook(
        ("md", "# 00 · Tiny lab"),
        ("code", 'from infracourse import notebook\nfrom infracourse.checks import lab00 as checks\n'
                 'notebook.require("redis")'),
        ("md", "## Exercise 0 · Warm-up: add two numbers"),
        ("code", "def add(a, b):\n    return a + b  # SOLUTION: return the sum"),
        ("code", "checks.add(add)"),
        outputs="✅ Exercise 0 · Warm-up: add two numbers: passed\n",
    )
    nbformat.write(lesson, root / "notebooks" / "00_tiny.ipynb")
    nbformat.write(solution, root / "solutions" / "00_tiny.ipynb")
    from infracourse.authoring import labgen

    labgen.build_all(root)
    nbformat.write(_notebook(("md", "# 02 · Only a lesson\n\nNothing else yet."), ("code", "1 + 1")),
                   root / "notebooks" / "02_only_lesson.ipynb")
    return root
