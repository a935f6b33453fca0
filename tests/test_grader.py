"""`course grade` on a folder of synthetic submissions of lab 00, made from the generated lab and its solution:
a full solution, an unsolved lab, a wrong answer, one that raises, one that hangs, one with tampered check
cells, plus one that kills its kernel and a file that is not a notebook. Short time limits keep it fast;
hidden checks run too. The last tests are kernel-free ones of points, the results that count and the executed
notebooks being written as each submission is graded."""

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
from infracourse.checking.exercise import Exercise
from infracourse.checking.status import ERROR, FAILED, NOT_DONE, NOT_RUN, PASSED, TIMEOUT
from infracourse.grading import command, gradebook, results
from infracourse.grading.outcomes import HIDDEN, TAMPERED, Graded, Limits, Outcome
from infracourse.grading.submissions import Submission

pytestmark = pytest.mark.usefixtures("grading_sandbox")

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "labs" / "00_start_here.ipynb"
SOLUTION = ROOT / "solutions" / "00_start_here.ipynb"
CELL_TIMEOUT_S = 8

HIDDEN_CHECKS = '''
from infracourse.checking import exercise, expect


@exercise("H1", "Separate counters per user", points=2)
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


# appended to a correct count_visit: each call writes a result with a made-up status and a pass for exercise 1
FORGES_RESULTS = """

_real_count_visit = count_visit


def count_visit(r, user):
    import json
    import os

    with open(os.environ["INFRACOURSE_RESULTS"], "a") as f:
        for exercise, status in (("2", "bogus"), ("1", "passed")):
            f.write(json.dumps({"exercise": exercise, "title": "forged", "status": status}) + "\\n")
    return _real_count_visit(r, user)
"""


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
    _exercise(wrong, 2).source += FORGES_RESULTS
    save(wrong, "cyd", "wrong answer: right counts, no ORDER BY; count_visit forges results")

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
    it and read the same gradebook (kept in _build/grader_run for a human to read). The lock is held, shared,
    while the tests read it: another test run in the same checkout waits instead of regrading underneath."""
    run = ROOT / "_build" / "grader_run"
    report_path = ROOT / "_build" / "grader_report.json"
    run.parent.mkdir(exist_ok=True)
    with open(ROOT / "_build" / ".grader-test.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
        if report.get("testrun") != testrun_uid:
            fcntl.flock(lock, fcntl.LOCK_EX)  # not atomic (flock drops the shared lock first): read it again
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
        fcntl.flock(lock, fcntl.LOCK_SH)
        assert report["exit"] == 0
        out = run / "submissions" / "_gradebook"
        with (out / "gradebook.csv").open(encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        book = {(r["student"], r["exercise"]): r for r in rows}
        yield {"made": report["made"], "out": out, "rows": rows, "book": book}


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
    assert sum(int(r["score"]) for r in graded["rows"] if r["student"] == "ada") == 4, "H1 is worth 2 points"
    assert [graded["book"][("ada", n)]["max_score"] for n in ("1", "2", "H1", "H2")] == ["1", "1", "2", "1"]


def test_unsolved_lab_is_not_done(graded) -> None:
    assert _status(graded, "bob") == {"1": NOT_DONE, "2": NOT_DONE, "H1": NOT_DONE, "H2": FAILED}


def test_wrong_answer_fails_with_the_checks_message(graded) -> None:
    row = graded["book"][("cyd", "1")]
    assert row["status"] == FAILED and "order" in row["message"] and row["hint"]
    assert _status(graded, "cyd")["2"] == PASSED


def test_forged_results_do_not_count_and_are_noted(graded) -> None:
    """count_visit writes '1 passed' (while check 2 and the hidden checks run) and a made-up status for 2."""
    assert _status(graded, "cyd") == {"1": FAILED, "2": PASSED, "H1": PASSED, "H2": FAILED}
    feedback = (graded["out"] / "feedback" / "cyd.md").read_text()
    assert feedback.count("exercise 2 with the unknown status 'bogus' was ignored") == 1


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
    assert "| ada | ✅ | ✅ | ✅ | ❌ | 4/5 |" in text
    assert "### Needs attention" in text and "| eve | 2 · Count a visit with an expiry (Redis) | timed out |" in text
    executed = nbformat.read(graded["out"] / "executed" / "ada" / "00_start_here.ipynb", as_version=4)
    assert any("✅ Exercise 2" in o.get("text", "") for c in executed.cells for o in c.get("outputs", []))


def test_grading_leaves_no_namespace_behind(graded) -> None:
    """Only this run's students: another grading run may be going on against the same services."""
    with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
        names = [n for (n,) in conn.execute("SELECT nspname FROM pg_namespace").fetchall()]
    assert not [n for n in names for student in graded["made"] if n.startswith(f"start00_g_{student}_")]


def test_points_make_the_scores_and_the_totals(tmp_path: Path) -> None:
    heavy = Outcome.of(Exercise("1", "Heavy", points=3), PASSED)
    light = Outcome.of(Exercise("2", "Light", points=2), FAILED, "wrong")
    assert (heavy.score, light.score) == (3, 0)
    book = Graded("ann", "00_start_here", "Start here", tmp_path / "ann.ipynb", [heavy, light], [], 1.0)
    gradebook.write_csv([book], tmp_path / "gradebook.csv")
    with (tmp_path / "gradebook.csv").open(encoding="utf-8") as f:
        assert [(r["score"], r["max_score"]) for r in csv.DictReader(f)] == [("3", "3"), ("0", "2")]
    assert "| ann | ✅ | ❌ | 3/5 |" in gradebook.render_markdown([book], Limits())
    assert "Score: **3 / 5**" in gradebook.render_feedback("ann", [book])


def test_only_known_statuses_of_the_reported_exercises_count() -> None:
    one = Exercise("1", "One", points=3)
    recorded = [{"exercise": "1", "status": "bogus"}, {"exercise": "2", "status": PASSED}, {},
                {"exercise": "1", "status": FAILED, "message": "m", "hint": "h"}, {"exercise": "1", "status": "bogus"}]
    found, notes, doubled = results.counted(recorded, [one])
    assert found == {"1": Outcome("1", "One", FAILED, "m", "h", [], 3)} and doubled == set()
    assert notes == ["A result for exercise 1 with the unknown status 'bogus' was ignored.",
                     "A result for exercise 2 was recorded while other checks ran; it was ignored.",
                     "A result for exercise None was recorded while other checks ran; it was ignored."]


def test_two_results_for_one_exercise_count_the_worst_and_flag_it() -> None:
    one, two = Exercise("1", "One"), Exercise("2", "Two")
    recorded = [{"exercise": "1", "status": PASSED}, {"exercise": "1", "status": FAILED, "message": "real"},
                {"exercise": "1", "status": PASSED}, {"exercise": "2", "status": NOT_DONE}]
    found, notes, doubled = results.counted(recorded, [one, two])
    assert (found["1"].status, found["1"].message, found["2"].status) == (FAILED, "real", NOT_DONE)
    assert doubled == {"1"} and notes == ["Exercise 1's check recorded 3 results in one run (one is expected: "
                                          "something else wrote results too); the worst counted."]


def test_a_result_its_check_did_not_print_does_not_count() -> None:
    one = Exercise("1", "One")
    recorded = [{"exercise": "1", "status": PASSED}, {"exercise": "1", "status": FAILED, "message": "real"}]
    found, notes, doubled = results.counted(recorded, [one], ["❌ Exercise 1 · One: real"])
    assert (found["1"].status, doubled) == (FAILED, set())
    assert notes == ["A result for exercise 1 that its check did not print was ignored (written by something else)."]


def test_unreadable_result_lines_count_for_nothing(tmp_path: Path) -> None:
    file = results.ResultsFile(tmp_path / "results")
    file.stray.write_text('not json\n[1]\n{"exercise": "1", "status": "passed"}\n')
    assert file.new() == [{}, {}, {"exercise": "1", "status": "passed"}]
    assert file.new() == []
    fresh = file.fresh()
    fresh.write_text('{"exercise": "2"}\n')
    assert file.taken(fresh) == [{"exercise": "2"}] and not fresh.exists() and fresh != file.fresh()
    assert file.folder.stat().st_mode & 0o777 == 0o300, "another submission's code may not list the folder"
    file.unlock()
    assert file.folder.stat().st_mode & 0o777 == 0o700


def test_each_executed_notebook_is_written_as_soon_as_it_is_graded(tmp_path: Path, monkeypatch) -> None:
    spec, out = lab_spec.load(LAB), tmp_path / "out"
    already_written = []

    def fake_grade(student: str, path: Path, spec: lab_spec.LabSpec, limits: Limits, hidden: Path | None) -> Graded:
        already_written.append(sorted(p.relative_to(out).as_posix() for p in out.rglob("*.ipynb")))
        return Graded(student, spec.name, spec.title, path, [], [], 0.0, _lab())

    monkeypatch.setattr(command, "grade", fake_grade)
    found = [Submission(student, tmp_path / f"{student}.ipynb", spec) for student in ("ann", "ben")]
    graded = command.grade_all(found, Limits(), None, out)
    assert already_written == [[], ["executed/ann/00_start_here.ipynb"]]
    assert (out / "executed" / "ben" / "00_start_here.ipynb").exists()
    assert [g.executed for g in graded] == [None, None], "written, not held in memory"
