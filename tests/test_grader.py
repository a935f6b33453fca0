"""`course grade` on a folder of synthetic submissions of lab 00, made from the generated lab and its solution:
a full solution, an unsolved lab, a wrong answer, one that raises, one that hangs, one with tampered check
cells, plus one that kills its kernel and a file that is not a notebook. Short time limits keep it fast;
hidden checks run too."""

from __future__ import annotations

import csv
import fcntl
import json
import shutil
import time
from pathlib import Path

import nbformat
import psycopg
import pytest

from infracourse import cli, config, notebook
from infracourse.authoring import lab_spec
from infracourse.checking import FAILED, NOT_DONE, PASSED
from infracourse.grading.run import ERROR, HIDDEN, NOT_RUN, TAMPERED, TIMEOUT

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "labs" / "00_start_here.ipynb"
SOLUTION = ROOT / "solutions" / "00_start_here.ipynb"
CELL_TIMEOUT_S = 8

HIDDEN_CHECKS = '''
from infracourse.checking import exercise, expect


@exercise("H1", "Separate counters per user")
def separate_users(count_visit, r, visit_key):
    for user in ("hidden_a", "hidden_b"):
        r.delete(visit_key(user))
    count_visit(r, "hidden_a")
    count_visit(r, "hidden_a")
    expect(int(count_visit(r, "hidden_b")) == 1, "a second user's counter should start at 1")


@exercise("H2", "Uses a helper the lab never asked for")
def needs_missing_name(helper_that_does_not_exist):
    expect(True, "unreachable")
'''


def _lab() -> nbformat.NotebookNode:
    return nbformat.read(LAB, as_version=4)


def _by_title(nb: nbformat.NotebookNode, heading: str) -> int:
    """Index of the first code cell after the markdown cell whose heading starts with HEADING."""
    start = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith(heading))
    return next(i for i in range(start, len(nb.cells)) if nb.cells[i].cell_type == "code")


def _solved() -> nbformat.NotebookNode:
    """The lab with every exercise cell replaced by the reference code, as a learner would submit it."""
    nb = _lab()
    reference = {c.id: c.source for c in nbformat.read(SOLUTION, as_version=4).cells}
    for cell in nb.cells:
        if cell.cell_type == "code" and "# TODO" in cell.source:
            cell.source = reference[cell.id]
    return nb


def _exercise(nb, number: int) -> nbformat.NotebookNode:
    return nb.cells[_by_title(nb, f"## Exercise {number}")]


def _check(nb, number: int) -> nbformat.NotebookNode:
    exercise = _by_title(nb, f"## Exercise {number}")
    return next(c for c in nb.cells[exercise + 1 :] if c.cell_type == "code")


def make_submissions(folder: Path) -> dict[str, str]:
    """Write the synthetic submissions; return student -> what it is."""
    made = {}

    def save(nb, student: str, what: str, flat: bool = False) -> None:
        path = folder / (f"{student}__00_start_here.ipynb" if flat else f"{student}/00_start_here.ipynb")
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        made[student] = what

    save(_solved(), "ada", "full solution")
    save(_lab(), "bob", "unsolved lab", flat=True)

    wrong = _solved()
    _exercise(wrong, 1).source = 'VISITS_PER_COUNTRY = "SELECT country, count(*) AS visits FROM visits GROUP BY 1"'
    save(wrong, "cyd", "wrong answer: right counts, no ORDER BY")

    raises = _solved()
    _exercise(raises, 1).source = "VISITS_PER_COUNTRY = 1 / 0"
    _exercise(raises, 2).source = _exercise(raises, 2).source.replace(
        "key = visit_key(user)", "key = {}[user]")
    save(raises, "dan", "raises: at top level in exercise 1, inside the function in exercise 2")

    hangs = _solved()
    _exercise(hangs, 2).source = "import time\n\n\ndef count_visit(r, user):\n    time.sleep(3600)\n"
    _exercise(hangs, 2).source = "def visit_key(user):\n    return ns.key('visits', user)\n\n\n" + \
        _exercise(hangs, 2).source
    save(hangs, "eve", "hangs in exercise 2")

    tampered = _lab()
    _exercise(tampered, 1).source = "checks.visits_per_country(checks.EXPECTED_VISITS_SQL, conn)\n" \
        "VISITS_PER_COUNTRY = ..."
    _check(tampered, 1).source = 'print("✅ Exercise 1 · Visits per country (PostgreSQL): passed")'
    solved_2 = _exercise(_solved(), 2).source
    _exercise(tampered, 2).source = solved_2 + "\n\n\nclass checks:  # a stand-in that passes everything\n" \
        "    def count_visit(*args):\n        print('✅ passed')\n"
    tampered.cells.remove(_check(tampered, 2))
    save(tampered, "fay", "tampered: check 1 edited, check 2 deleted, a fake checks object, a check called early")

    dies = _solved()
    _exercise(dies, 2).source = "import os\n\nos._exit(3)"
    save(dies, "hal", "kills its own kernel in exercise 2")

    (folder / "gus").mkdir()
    (folder / "gus" / "00_start_here.ipynb").write_text("this is not JSON")
    made["gus"] = "not a notebook"
    return made


@pytest.fixture(scope="module")
def graded(testrun_uid: str):
    """Grade the synthetic folder once per test run, whichever xdist worker comes first; the others wait for
    it and read the same gradebook (kept in _build/grader_run for a human to read)."""
    run = ROOT / "_build" / "grader_run"
    report_path = ROOT / "_build" / "grader_report.json"
    run.parent.mkdir(exist_ok=True)
    with open(ROOT / "_build" / ".grader-test.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
        if report.get("testrun") != testrun_uid:
            notebook.require("postgres", "redis")
            shutil.rmtree(run, ignore_errors=True)
            (run / "hidden").mkdir(parents=True)
            (run / "hidden" / "lab00.py").write_text(HIDDEN_CHECKS)
            made = make_submissions(run / "submissions")
            began = time.monotonic()
            code = cli.main(["grade", str(run / "submissions"), "--lab", "00", "--hidden", str(run / "hidden"),
                             "--cell-timeout", str(CELL_TIMEOUT_S), "--notebook-timeout", "60", "-j", "2"])
            report = {"testrun": testrun_uid, "exit": code, "made": made,
                      "seconds": round(time.monotonic() - began, 1)}
            report_path.write_text(json.dumps(report, indent=1) + "\n")
    assert report["exit"] == 0
    out = run / "submissions" / "_gradebook"
    with (out / "gradebook.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    book = {(r["student"], r["exercise"]): r for r in rows}
    return {"made": report["made"], "out": out, "rows": rows, "book": book}


def _status(graded, student: str) -> dict[str, str]:
    return {ex: row["status"] for (s, ex), row in graded["book"].items() if s == student}


def test_every_submission_has_every_exercise(graded) -> None:
    spec = lab_spec.load(LAB)
    exercises = [e.number for e in spec.exercises] + ["H1", "H2"]
    for student in graded["made"]:
        assert list(_status(graded, student)) == exercises, student


def test_full_solution_passes_everything_but_the_missing_helper(graded) -> None:
    assert _status(graded, "ada") == {"1": PASSED, "2": PASSED, "H1": PASSED, "H2": FAILED}
    assert "defines no helper_that_does_not_exist" in graded["book"][("ada", "H2")]["message"]
    assert graded["book"][("ada", "H1")]["flags"] == HIDDEN
    assert sum(int(r["score"]) for r in graded["rows"] if r["student"] == "ada") == 3


def test_unsolved_lab_is_not_done(graded) -> None:
    assert _status(graded, "bob") == {"1": NOT_DONE, "2": NOT_DONE, "H1": NOT_DONE, "H2": FAILED}


def test_wrong_answer_fails_with_the_checks_message(graded) -> None:
    row = graded["book"][("cyd", "1")]
    assert row["status"] == FAILED and "order" in row["message"] and row["hint"]
    assert _status(graded, "cyd")["2"] == PASSED


def test_raising_submission_gets_errors_not_a_crash(graded) -> None:
    first = graded["book"][("dan", "1")]
    assert first["status"] == ERROR and "NameError" in first["message"]
    assert "ZeroDivisionError" in first["hint"], "the hint should point at the cell that raised"
    second = graded["book"][("dan", "2")]
    assert second["status"] == FAILED and "KeyError" in second["message"]


def test_hanging_submission_times_out_and_the_rest_still_runs(graded) -> None:
    assert _status(graded, "eve")["1"] == PASSED
    row = graded["book"][("eve", "2")]
    assert row["status"] == TIMEOUT and f"{CELL_TIMEOUT_S} s" in row["message"]
    assert _status(graded, "eve")["H1"] == TIMEOUT, "the hidden check calls the hanging function too"


def test_tampered_checks_are_restored_flagged_and_not_fooled(graded) -> None:
    first, second = graded["book"][("fay", "1")], graded["book"][("fay", "2")]
    assert first["status"] == NOT_DONE and TAMPERED in first["flags"]
    assert second["status"] == PASSED and TAMPERED in second["flags"], "the restored check grades the real code"
    feedback = (graded["out"] / "feedback" / "fay.md").read_text()
    assert "was edited" in feedback and "was deleted" in feedback and "outside its check cell" in feedback


def test_unreadable_file_is_an_entry(graded) -> None:
    assert set(_status(graded, "gus").values()) == {NOT_RUN}
    assert "not a readable notebook" in (graded["out"] / "feedback" / "gus.md").read_text()


def test_dead_kernel_is_an_entry(graded) -> None:
    assert _status(graded, "hal") == {"1": PASSED, "2": NOT_RUN, "H1": NOT_RUN, "H2": NOT_RUN}
    assert "kernel died" in graded["book"][("hal", "2")]["message"]
    assert "The kernel died" in (graded["out"] / "feedback" / "hal.md").read_text()


def test_gradebook_markdown_and_executed_notebooks(graded) -> None:
    text = (graded["out"] / "gradebook.md").read_text()
    assert "| ada | ✅ | ✅ | ✅ | ❌ | 3/4 |" in text
    assert "### Needs attention" in text and "| eve | 2 · Count a visit with an expiry (Redis) | timed out |" in text
    executed = nbformat.read(graded["out"] / "executed" / "ada" / "00_start_here.ipynb", as_version=4)
    assert any("✅ Exercise 2" in o.get("text", "") for c in executed.cells for o in c.get("outputs", []))


def test_grading_leaves_no_namespace_behind(graded) -> None:
    with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
        left = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'start00\\_g\\_%'").fetchall()
    assert not left
