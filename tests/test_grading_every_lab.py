"""Every lab's reference solution, graded by `course grade` in the sandbox the way a student's submission is,
gets full marks: what the checks need (the course services, Prometheus scraping the notebook's app, the
course CA, services/ configuration) is there inside the sandbox, and nothing the sandbox withholds is needed. A
lab whose check module says it cannot run there (containers) is not run, and its entries say how to grade it."""

from __future__ import annotations

import csv
import importlib
import shutil
from pathlib import Path

import pytest

from infracourse import cli
from infracourse.authoring import catalog
from infracourse.checking.status import NOT_RUN

pytestmark = pytest.mark.usefixtures("grading_sandbox")

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted(s.path for c in catalog.chapters(ROOT) for s in c.solutions)


def _checks_of(solution: Path):
    return importlib.import_module(f"infracourse.checks.lab{solution.name[:2]}")


def test_every_reference_solution_gets_full_marks_sandboxed(tmp_path: Path) -> None:
    submissions, out = tmp_path / "submissions", tmp_path / "gradebook"
    (submissions / "reference").mkdir(parents=True)
    for solution in SOLUTIONS:
        shutil.copy(solution, submissions / "reference" / solution.name)
    parsed = cli.build_parser().parse_args(["grade", str(submissions), "--out", str(out), "-j", "2"])
    assert parsed.func(parsed) == 0
    with (out / "gradebook.csv").open() as f:
        rows = list(csv.DictReader(f))
    outside = {s.stem for s in SOLUTIONS if hasattr(_checks_of(s), "OUTSIDE_THE_SANDBOX")}
    short = [f"{r['lab']} exercise {r['exercise']}: {r['status']}: {r['message']} ({r['hint']})"[:400]
             for r in rows if r["score"] != r["max_score"] and r["lab"] not in outside]
    assert not short, "\n".join(sorted(short))
    refused = [r for r in rows if r["lab"] in outside]
    assert all(r["status"] == NOT_RUN and "--trust-submissions" in r["message"] for r in refused), refused
    assert {r["lab"] for r in rows} == {s.stem for s in SOLUTIONS}
