"""One way to write notebooks to disk, so stored files are reproducible and diffs stay reviewable."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from ipykernel.ipkernel import IPythonKernel

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
# all of what the kernel reports on start: with less, JupyterLab fills it in and marks the notebook modified on open
LANGUAGE_INFO = dict(IPythonKernel.language_info)
_CELL_METADATA_KEPT = ("tags", "jupyter", "editable", "deletable")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# what a reader sees where a widget will be: stored notebooks keep no widget state (it changes on every run),
# and without it JupyterLab and the site would show the widget's repr ("VBox(children=(IntSlider(...")
WIDGET_NOTE = "An interactive widget sits here: run this cell (Shift+Enter) to use it."


def normalise(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Keep what a reader or nbval needs; drop run-specific metadata (timings, widget state, versions)."""
    nb.metadata = nbformat.from_dict({"kernelspec": KERNELSPEC, "language_info": LANGUAGE_INFO})
    nb.nbformat, nb.nbformat_minor = 4, 5
    for index, cell in enumerate(nb.cells):
        cell.id = cell.get("id") or f"cell-{index}"
        cell.metadata = nbformat.from_dict(
            {k: v for k, v in cell.metadata.items() if k in _CELL_METADATA_KEPT and v}
        )
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                output.get("metadata", {}).pop("execution", None)
                if WIDGET_MIME in output.get("data", {}):
                    output["data"]["text/plain"] = WIDGET_NOTE
    return nb


def dumps(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(normalise(nb)) + "\n"


def write(nb: nbformat.NotebookNode, path: Path) -> None:
    path.write_text(dumps(nb), encoding="utf-8")


def same_apart_from_python_patch(a: str, b: str) -> bool:
    """Two stored notebooks are the same text but perhaps for the interpreter's patch version in language_info
    (3.11.2 on one machine, 3.11.7 on another: a lab built on either is up to date)."""
    if a == b:
        return True
    try:
        va, vb = (json.loads(text)["metadata"]["language_info"]["version"] for text in (a, b))
    except (ValueError, KeyError, TypeError):
        return False
    return a == b.replace(f'"version": "{vb}"', f'"version": "{va}"', 1)


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)
