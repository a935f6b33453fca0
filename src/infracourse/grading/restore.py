"""Put a submission's check cells back as the generated lab has them, so editing or deleting a check cannot
change its verdict; say which exercises were affected."""

from __future__ import annotations

import nbformat

from infracourse.authoring.lab_spec import CheckCell, LabSpec, same_source


def _heading_before(nb: nbformat.NotebookNode, index: int) -> str:
    for cell in reversed(nb.cells[:index]):
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


def describe_cell(nb: nbformat.NotebookNode, index: int) -> str:
    """'cell 7 (under "Exercise 2 · ...")': how the feedback points a student at a cell."""
    heading = _heading_before(nb, index)
    return f"cell {index + 1}" + (f' (under "{heading}")' if heading else "")


def restore_check_cells(nb: nbformat.NotebookNode, spec: LabSpec) -> tuple[dict[int, CheckCell], set[str], list[str]]:
    """Put every check cell of the lab back as generated, in place.

    Returns {cell index: check cell}, the exercises whose check cell was edited or deleted, and notes.
    """
    notes, flagged = [], set()
    lab_ids = [c.get("id") for c in nbformat.read(spec.path, as_version=4).cells]
    for check in spec.check_cells:
        label = " and ".join(f"exercise {n}" for n in check.exercises)
        by_id = next((c for c in nb.cells if c.get("id") == check.cell_id), None)
        if by_id is not None and by_id.cell_type == "code" and same_source(by_id.source, check.source):
            continue
        by_source = next((c for c in nb.cells if c.cell_type == "code" and same_source(c.source, check.source)), None)
        cell = by_id if by_id is not None else by_source
        if cell is None:  # deleted: back after the cell that precedes it in the lab, else at the end
            previous = lab_ids[: lab_ids.index(check.cell_id)][-1:]
            anchor = next((i for i, c in enumerate(nb.cells) if c.get("id") in previous), len(nb.cells) - 1)
            cell = nbformat.v4.new_code_cell()
            nb.cells.insert(anchor + 1, cell)
            notes.append(f"The check cell of {label} was deleted; the grader put the original back.")
            flagged.update(check.exercises)
        elif by_id is not None:
            notes.append(f"The check cell of {label} was edited; the grader ran the original check.")
            flagged.update(check.exercises)
        cell.update(cell_type="code", source=check.source, id=check.cell_id)
        cell.setdefault("outputs", [])
        cell.setdefault("execution_count", None)
    indices = {i: c for i, cell in enumerate(nb.cells) for c in spec.check_cells if cell.get("id") == c.cell_id}
    return indices, flagged, notes
