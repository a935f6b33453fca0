"""`course site`: the rendered course, built with Sphinx + myst-nb + sphinx-book-theme from the outputs
stored in notebooks/ and solutions/ (never re-executed: nbval already verified them).

The build stages a copy of docs/ plus every lesson, lab and solution under the same folder names as in the
repository (so links between notebooks resolve), adds a "run it yourself" box to each notebook page,
generates the course map and the navigation from the catalog, and builds with warnings as errors.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from infracourse.authoring import catalog, notebook_format
from infracourse.authoring.catalog import SERVICE_LABELS, Chapter, Notebook
from infracourse.paths import repo_root


@dataclass(frozen=True)
class SiteBuild:
    out: Path
    seconds: float
    pages: int
    status: int  # sphinx-build's exit code: 0 when the build had no warning


def build_dir(root: Path | None = None) -> Path:
    return (root or repo_root()) / "_build"


def _services_text(services: tuple[str, ...]) -> str:
    return ", ".join(SERVICE_LABELS[s] for s in services) if services else "none"


def _link(notebook: Notebook | None, text: str) -> str:
    return f"{{doc}}`{text} </{notebook.docname}>`" if notebook else ""


def _box(notebook: Notebook, chapter: Chapter) -> str:
    """The admonition put under the H1 of a notebook page: how to run this page yourself, and its lesson, lab
    and solution."""
    repo_path = f"{notebook.path.parent.name}/{notebook.path.name}"
    services = _services_text(notebook.services)
    lesson = chapter.lessons[0] if chapter.lessons else None
    lab = next((lab for lab in chapter.labs if lab.name == notebook.name), chapter.labs[0] if chapter.labs else None)
    solution = chapter.solution_for(lab) if lab else None
    if notebook.kind == "lesson":
        title = "Run this lesson yourself"
        practice = f" Then practise with the {_link(lab, 'lab')}." if lab else ""
        body = (
            "This page shows the outputs of a real run, verified by the course's tests. To run it on your own "
            f"machine: clone the course, run `make lab` (it installs the packages and starts the services), open "
            f"`{repo_path}` in JupyterLab and run the cells from the top.{practice}\n\n"
            f"**Services:** {services}. No Docker? `make lab` runs them natively. No installation at all? "
            "See {doc}`/running`."
        )
    elif notebook.kind == "lab":
        compare = f" When every check passes, compare with the {_link(solution, 'solution')}." if solution else ""
        taught = f" The {_link(lesson, 'lesson')} teaches what it asks." if lesson else ""
        title = "Do this lab yourself"
        body = (
            f"The exercise cells below are stubs marked `# TODO`. After `make lab`, open `{repo_path}`, replace "
            "each stub with your code and run the check cell under it: it says *not done yet*, what is wrong, "
            f"or *passed*.{compare}{taught}\n\n**Services:** {services}. Other ways to run it: {{doc}}`/running`."
        )
    else:
        title = "Reference solution"
        body = "The code here passes every check. " + (
            f"Try the {_link(lab, 'lab')} first." if lab else "Try the exercises yourself first.") + (
            f" The {_link(lesson, 'lesson')} explains the ideas." if lesson else "")
    return f"```{{admonition}} {title}\n:class: tip\n{body}\n```"


def _is_solution_banner(cell: nbformat.NotebookNode) -> bool:
    """The notebook's own "Reference solution" note, which the page's box says again."""
    return "solution-only" in cell.metadata.get("tags", []) and cell.source.lstrip("> ").startswith(
        "**Reference solution.**")


def _staged_notebook(notebook: Notebook, chapter: Chapter) -> nbformat.NotebookNode:
    nb = notebook_format.read(notebook.path)
    heading = next(
        (i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and notebook.title in c.source), -1
    )
    if notebook.kind == "solution" and heading >= 0:
        # the lab and its solution share an H1; the pages (and browser tabs) should not
        nb.cells[heading].source = nb.cells[heading].source.replace(
            f"# {notebook.title}", f"# {notebook.title} · solution", 1
        )
    nb.cells.insert(heading + 1, nbformat.v4.new_markdown_cell(_box(notebook, chapter)))
    nb.cells = [cell for cell in nb.cells if not _is_solution_banner(cell)]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [_static_output(output) for output in cell.get("outputs", [])]
    return nb


def _first_sentence(text: str) -> str:
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    return match.group(1) if match else text


_EMPTY_HEADER = "<th></th>"
_NAMED_HEADER = '<th><span class="visually-hidden">row</span></th>'  # pandas' corner cell, named for screen readers


def _static_output(output: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A widget needs a live kernel (stored notebooks keep no widget state): say so instead of an empty box. A
    table's empty header cell (the corner above a DataFrame's index) gets a name screen readers announce."""
    html = output.get("data", {}).get("text/html")
    if isinstance(html, str) and _EMPTY_HEADER in html:
        output = nbformat.from_dict(output)
        output.data["text/html"] = html.replace(_EMPTY_HEADER, _NAMED_HEADER)
    if notebook_format.WIDGET_MIME not in output.get("data", {}):
        return output
    return nbformat.v4.new_output(
        "display_data", data={"text/html": f'<p class="widget-note">{notebook_format.WIDGET_NOTE}</p>',
                                 "text/plain": notebook_format.WIDGET_NOTE}
    )


def _course_map(chapters: list[Chapter]) -> str:
    if not chapters:
        return "No chapter has been written yet."
    rows = ["| # | lesson | what it shows | lab |", "|---|---|---|---|"]
    for chapter in chapters:
        lessons = " · ".join(f"{{doc}}`{nb.short_title} </{nb.docname}>`" for nb in chapter.lessons)
        labs = [f"{{doc}}`{nb.kind} </{nb.docname}>`" for _, nb in reading_order(chapter) if nb.kind != "lesson"]
        hook = _first_sentence(next((nb.hook for nb in chapter.lessons + chapter.labs if nb.hook), ""))
        rows.append(f"| {chapter.number} | {lessons or chapter.title} | {hook.replace('|', '/')} | "
                    f"{' · '.join(labs) or '-'} |")
    return "\n".join(rows) + "\n"


def reading_order(chapter: Chapter) -> list[tuple[str, Notebook]]:
    """(sidebar label, page) of a chapter in reading order: lessons, then each lab followed by its solution."""
    pages: list[tuple[str, Notebook]] = []
    many_lessons, many_labs = len(chapter.lessons) > 1, len(chapter.labs) > 1
    for nb in chapter.lessons:
        pages.append((f"Lesson: {nb.short_title}" if many_lessons else "Lesson", nb))
    for lab in chapter.labs:
        suffix = f": {lab.short_title}" if many_labs else ""
        pages.append((f"Lab{suffix}", lab))
        solution = chapter.solution_for(lab)
        if solution:
            pages.append((f"Solution{suffix}", solution))
    for solution in chapter.solutions:
        if not any(lab.name == solution.name for lab in chapter.labs):  # its lab is not generated yet
            pages.append((f"Solution: {solution.short_title}", solution))
    return pages


def _toctrees(chapters: list[Chapter]) -> str:
    """One hidden toctree a chapter: the sidebar groups its pages; prev/next follow the reading order."""
    blocks = []
    for chapter in chapters:
        entries = "\n".join(f"{label} </{nb.docname}>" for label, nb in reading_order(chapter))
        caption = f"{chapter.number} · {chapter.title}"
        blocks.append("```{toctree}\n:hidden:\n:caption: " + caption + "\n\n" + entries + "\n```")
    blocks.append("```{toctree}\n:hidden:\n:caption: About\n\nrunning\ninstructors\n```")
    return "\n\n".join(blocks) + "\n"


def stage(root: Path | None = None, staging: Path | None = None) -> Path:
    """Write the Sphinx source tree (docs/ + staged notebooks + generated pages) and return it."""
    root = root or repo_root()
    staging = staging or build_dir(root) / "site_src"
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(root / "docs", staging)
    chapters = catalog.chapters(root)
    for chapter in chapters:
        for notebook in chapter.lessons + chapter.labs + chapter.solutions:
            target = staging / f"{notebook.docname}.ipynb"
            target.parent.mkdir(exist_ok=True)
            nbformat.write(_staged_notebook(notebook, chapter), target)
    (staging / "_course_map.md").write_text(_course_map(chapters), encoding="utf-8")
    (staging / "_toc.md").write_text(_toctrees(chapters), encoding="utf-8")
    return staging


def html_pages(out: Path) -> list[Path]:
    """The content pages of a built site (not Sphinx's own genindex and search pages)."""
    return sorted(p for p in out.rglob("*.html") if p.name not in {"genindex.html", "search.html"}
                  and "_static" not in p.parts)


def build(root: Path | None = None, out: Path | None = None, jobs: int = 1) -> SiteBuild:
    """Stage and build the site into OUT (default _build/site) from scratch, warnings as errors."""
    from sphinx.cmd.build import build_main

    root = root or repo_root()
    out = out or build_dir(root) / "site"
    began = time.monotonic()
    staging = stage(root, out.parent / f"{out.name}_src")
    doctrees = out.parent / f"{out.name}_doctrees"
    for stale in (out, doctrees):
        if stale.exists():
            shutil.rmtree(stale)
    status = build_main(
        ["-b", "html", "-W", "--keep-going", "-q", "-j", str(jobs), "-d", str(doctrees), str(staging), str(out)]
    )
    # the download button serves _sources/: hand out the course's notebooks, not the staged copies
    for chapter in catalog.chapters(root):
        for notebook in chapter.lessons + chapter.labs + chapter.solutions:
            served = out / "_sources" / f"{notebook.docname}.ipynb"
            if served.exists():
                shutil.copyfile(notebook.path, served)
    return SiteBuild(out=out, seconds=time.monotonic() - began, pages=len(html_pages(out)), status=status)
