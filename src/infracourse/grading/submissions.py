"""Find the submitted notebooks in a folder and tell whose they are and which lab they answer.

Two layouts, mixed freely:
    SUBMISSIONS/alice/00_start_here.ipynb         one folder a student (any depth below it)
    SUBMISSIONS/alice__00_start_here.ipynb        one file a student and lab: the student is the name minus the lab
A notebook is matched to a lab by the lab's name in its file name, else by the cell ids it shares with a lab
(Jupyter keeps cell ids, so a renamed file is still recognised), else by --lab.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import nbformat

from infracourse.authoring.lab_spec import LabSpec

MIN_SHARED_IDS = 0.5  # share of a lab's cells a renamed notebook must still carry to count as that lab


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path
    lab: LabSpec | None  # None: not recognised as any lab

    @property
    def key(self) -> str:
        return f"{self.student}/{self.lab.name if self.lab else self.path.name}"


def _skipped(path: Path, folder: Path) -> bool:
    parts = path.relative_to(folder).parts
    return any(p.startswith((".", "_")) for p in parts) or ".ipynb_checkpoints" in parts


def _student(path: Path, folder: Path, lab: LabSpec | None) -> str:
    relative = path.relative_to(folder)
    if len(relative.parts) > 1:
        return relative.parts[0]
    stem = path.stem
    if lab and lab.name in stem:
        stem = stem.replace(lab.name, "")
    return re.sub(r"^[\s_.-]+|[\s_.-]+$", "", stem) or path.stem


def identify(path: Path, specs: dict[str, LabSpec]) -> LabSpec | None:
    """The lab PATH answers, by file name, else by shared cell ids."""
    by_name = [spec for name, spec in specs.items() if name in path.name]
    if by_name:
        return max(by_name, key=lambda s: len(s.name))
    try:
        ids = {cell.get("id") for cell in nbformat.read(path, as_version=4).cells}
    except Exception:  # noqa: BLE001 - an unreadable notebook is reported by the grader, not here
        return None
    overlap = {name: len(spec.cell_ids & ids) / max(1, len(spec.cell_ids)) for name, spec in specs.items()}
    best = max(overlap, key=overlap.get, default=None)
    return specs[best] if best and overlap[best] >= MIN_SHARED_IDS else None


def collect(folder: Path, specs: dict[str, LabSpec], only_lab: str | None = None) -> list[Submission]:
    """Every submission under FOLDER, sorted by student then lab. ONLY_LAB ("00") keeps that lab's and
    grades unrecognised notebooks as that lab."""
    forced = next((s for s in specs.values() if s.number == only_lab), None) if only_lab else None
    if only_lab and forced is None:
        raise ValueError(f"no lab {only_lab} in labs/ (with a solution): {', '.join(sorted(specs)) or 'none'}")
    found = []
    for path in sorted(folder.rglob("*.ipynb")):
        if _skipped(path, folder):
            continue
        lab = identify(path, specs) or forced
        if forced and lab is not forced:
            continue
        found.append(Submission(_student(path, folder, lab), path, lab))
    counts = Counter(s.key for s in found)
    # two files of one student for one lab: keep both, told apart by file name
    return sorted(
        (Submission(f"{s.student} ({s.path.name})", s.path, s.lab) if counts[s.key] > 1 else s for s in found),
        key=lambda s: (s.student, s.lab.name if s.lab else ""),
    )
