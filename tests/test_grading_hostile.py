"""Hostile submissions of lab 00 graded next to honest ones (`course grade`, two at a time): each attacks the
harness that produces verdicts (patched checks, a stand-in module, a replaced import, an IPython hook, forged
result lines, another submission's results file), the gradebook (a 50 MB print, names made of formula and
Markdown) or the clean-up (a namespace named with SQL). Each attack starts from the unsolved lab or a wrong
answer, so an attack that worked would show as a pass. The last tests are kernel-free ones of the gradebook."""

from __future__ import annotations

import csv
from pathlib import Path

import nbformat
import psycopg
import pytest
from test_grader import _exercise, _lab, _solved

from infracourse import cli, config, notebook
from infracourse.authoring import lab_spec
from infracourse.checking.exercise import Exercise
from infracourse.checking.status import FAILED, NOT_DONE, PASSED
from infracourse.grading import gradebook, run, sandbox
from infracourse.grading.outcomes import HARNESS, Graded, Limits, Outcome

pytestmark = pytest.mark.usefixtures("grading_sandbox")

LAB = Path(__file__).resolve().parents[1] / "labs" / "00_start_here.ipynb"
SLEEP_S = 30  # what the hostile namespace name asks PostgreSQL to sleep

# appends a passing result for exercises 1 and 2 to wherever the checks record now, and prints a pass line
FORGE = '''
def _forge_passes():
    import json, os
    with open(os.environ["INFRACOURSE_RESULTS"], "a") as f:
        for number in ("1", "2"):
            f.write(json.dumps({"exercise": number, "title": "forged", "status": "passed"}) + "\\n")
    print("✅ passed")
'''

ATTACKS = {
    "patcher": FORGE + '''
import sys

_ex = sys.modules["infracourse.checking.exercise"]

_ex.outcome = lambda spec, run: _forge_passes()
_ex.expect = lambda *args, **kwargs: None
_ex.CheckResult.line = lambda self: "✅ passed"
checks.expect = _ex.expect
''',
    "standin": FORGE + '''
import sys, types

_fake = types.ModuleType("infracourse.checks.lab00")
_fake.visits_per_country = _fake.count_visit = lambda *args: _forge_passes()
sys.modules["infracourse.checks.lab00"] = sys.modules["infracourse.checking.exercise"] = _fake
sys.modules["infracourse.checks"].lab00 = _fake
''',
    "importer": FORGE + '''
import builtins, types

_real_import = builtins.__import__
_fake = types.SimpleNamespace(lab00=types.SimpleNamespace(visits_per_country=lambda *a: _forge_passes(),
                                                          count_visit=lambda *a: _forge_passes()))


def _import(name, globals=None, locals=None, fromlist=(), level=0):
    if name.startswith("infracourse.check"):
        return _fake
    return _real_import(name, globals, locals, fromlist, level)


builtins.__import__ = _import
''',
    "hooker": '''
def _forge_after(result):
    import json, os
    with open(os.environ["INFRACOURSE_RESULTS"], "a") as f:
        for number in ("1", "2"):
            f.write(json.dumps({"exercise": number, "title": "forged", "status": "passed"}) + "\\n")


get_ipython().events.register("post_run_cell", _forge_after)
get_ipython().input_transformers_post.append(lambda lines: [l.replace("checks.", "checks and 0 and checks.")
                                                            for l in lines])
''',
}

# exercise 2 without its expiry; each call of count_visit records (and prints) a forged pass for 2 and one for 1
FORGES_BESIDE_THE_REAL_ONE = '''


_real_count_visit = count_visit


def count_visit(r, user):
    import json, os
    with open(os.environ["INFRACOURSE_RESULTS"], "a") as f:
        for number in ("1", "2"):
            f.write(json.dumps({"exercise": number, "title": "forged", "status": "passed"}) + "\\n")
    print("✅ Exercise 2 · Count a visit with an expiry (Redis): passed")
    return _real_count_visit(r, user)
'''

# a thread that keeps appending failures (and passes) to every results file of another submission it can find
MEDDLES = '''
import glob, json, os, threading, time

def _meddle():
    mine = os.path.dirname(os.environ["INFRACOURSE_RESULTS"])
    lines = "".join(json.dumps({"exercise": n, "title": "x", "status": s}) + "\\n"
                    for n in ("1", "2") for s in ("failed", "passed"))
    end = time.monotonic() + 20
    while time.monotonic() < end:
        for path in glob.glob("/tmp/infracourse-grade-*/**", recursive=True):
            if not path.startswith(mine) and not os.path.isdir(path):
                with open(path, "a") as f:
                    f.write(lines)
        for folder in glob.glob("/tmp/infracourse-grade-*/results"):
            if not folder.startswith(mine):
                for name in ("stray.jsonl", "results.jsonl"):  # the names of an earlier grader
                    try:
                        with open(os.path.join(folder, name), "a") as f:
                            f.write(lines)
                    except OSError:
                        pass
        time.sleep(0.01)

threading.Thread(target=_meddle, daemon=True).start()
'''

HOSTILE_SLUG = f'''
import os
from psycopg import sql
from infracourse.namespace import Namespace

evil = Namespace('zz"; select pg_sleep({SLEEP_S}); --' + os.environ["INFRACOURSE_NS_SUFFIX"])
conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {{}}").format(sql.Identifier(evil.slug)))
r.set(evil.key("x"), 1)
'''


def _save(folder: Path, student: str, nb: nbformat.NotebookNode) -> None:
    (folder / student).mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / student / "00_start_here.ipynb")


def _with_cell(nb: nbformat.NotebookNode, source: str, after: int = 4) -> nbformat.NotebookNode:
    """NB with a code cell of SOURCE after cell AFTER (the setup and the data, before exercise 1)."""
    nb.cells.insert(after + 1, nbformat.v4.new_code_cell(source))
    return nb


def _grade(folder: Path, *extra: str) -> dict:
    code = cli.main(["grade", str(folder), "--lab", "00", "--cell-timeout", "20", "--notebook-timeout", "90",
                     "-j", "2", *extra])
    assert code == 0
    out = folder / "_gradebook"
    with (out / "gradebook.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {"out": out, "rows": rows, "book": {(r["student"], r["exercise"]): r for r in rows}}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    notebook.require("postgres", "redis")
    folder = tmp_path_factory.mktemp("hostile") / "submissions"
    _save(folder, "ada", _solved())
    _save(folder, "ada!", _solved())
    _save(folder, '=2+3|<i>bo', _lab())
    for student, attack in ATTACKS.items():
        _save(folder, student, _with_cell(_lab(), attack))
    forger = _solved()
    _exercise(forger, 2).source = _exercise(forger, 2).source.replace("pipe.expire(key, 60)", "pipe.ttl(key)") \
        + FORGES_BESIDE_THE_REAL_ONE
    _save(folder, "forger", forger)
    flooder = _solved()
    _exercise(flooder, 1).source = 'print("x" * 50_000_000)\n' + _exercise(flooder, 1).source
    _save(folder, "flooder", flooder)
    _save(folder, "slugger", _with_cell(_solved(), HOSTILE_SLUG))
    crasher = _solved()
    _exercise(crasher, 2).source += '''

_real_count_visit = count_visit


def count_visit(r, user):
    import json, os
    with open(os.environ["INFRACOURSE_RESULTS"], "a") as f:
        f.write(json.dumps({"exercise": "2", "status": "excellent"}) + "\\n")
        f.flush()
    os._exit(1)
'''
    _save(folder, "crasher", crasher)
    result = _grade(folder)
    result["feedback"] = {p.stem: p.read_text() for p in (result["out"] / "feedback").glob("*.md")}
    return result


def _status(graded, student: str) -> dict[str, str]:
    return {ex: row["status"] for (s, ex), row in graded["book"].items() if s == student}


def _feedback(graded, student: str) -> str:
    return next(text for text in graded["feedback"].values() if text.startswith(f"# Feedback for {student}\n"))


def test_honest_submissions_are_untouched(graded) -> None:
    for student in ("ada", "ada!"):
        assert _status(graded, student) == {"1": PASSED, "2": PASSED}, student
        assert all(not graded["book"][(student, n)]["flags"] for n in ("1", "2"))
        assert "harness" not in _feedback(graded, student)


@pytest.mark.parametrize("student, repair", [
    ("patcher", "infracourse.checking.exercise: CheckResult.line, expect, outcome changed"),
    ("standin", "sys.modules['infracourse.checking.exercise'] was replaced"),
    ("importer", "builtins.__import__ was replaced"),
    ("hooker", "1 IPython post_run_cell callback(s) added"),
])
def test_harness_attacks_are_undone_noted_and_flagged(graded, student: str, repair: str) -> None:
    """Every attack would pass exercises 1 and 2 of an unsolved lab; the repaired harness says not done. The check
    cell after the attack is flagged; the next one ran on a harness nothing had changed since."""
    assert _status(graded, student) == {"1": NOT_DONE, "2": NOT_DONE}
    assert HARNESS in graded["book"][(student, "1")]["flags"] and not graded["book"][(student, "2")]["flags"]
    assert repair in _feedback(graded, student)


def test_an_added_input_transformer_is_removed(graded) -> None:
    assert "1 IPython input_transformers_post added" in _feedback(graded, "hooker")


def test_a_forged_line_beside_the_real_result_counts_the_worst(graded) -> None:
    row = graded["book"][("forger", "2")]
    assert row["status"] == FAILED and "never expires" in row["message"] and HARNESS in row["flags"]
    assert row["score"] == "0"
    feedback = _feedback(graded, "forger")
    assert "Exercise 2's check recorded 4 results in one run" in feedback
    assert "A result for exercise 1 was recorded while other checks ran; it was ignored." in feedback
    assert graded["book"][("forger", "1")]["status"] == PASSED and not graded["book"][("forger", "1")]["flags"]


def test_a_50_mb_print_is_not_stored(graded) -> None:
    path = graded["out"] / "executed" / "flooder" / "00_start_here.ipynb"
    assert path.stat().st_size < 2 * run.MAX_OUTPUT_BYTES
    cell = _exercise(nbformat.read(path, as_version=4), 1)
    text = "".join(o.get("text", "") for o in cell.outputs)
    assert "[... output truncated by the grader: " in text and len(text) < run.MAX_OUTPUT_BYTES + 200
    assert _status(graded, "flooder") == {"1": PASSED, "2": PASSED}


def test_a_namespace_named_with_sql_is_removed_without_running_it(graded) -> None:
    assert _status(graded, "slugger") == {"1": PASSED, "2": PASSED}
    row = next(line for line in (graded["out"] / "gradebook.md").read_text().splitlines()
               if line.startswith("| slugger |"))
    assert int(row.split("|")[-2].strip().removesuffix(" s")) < SLEEP_S, "a pg_sleep run would stretch its time"
    with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
        left = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE '%pg_sleep%'").fetchall()
    assert not left


def test_a_dying_kernel_and_an_unknown_status_do_not_stop_the_others(graded) -> None:
    assert _status(graded, "crasher") == {"1": PASSED, "2": "not_run"}
    assert "The kernel died" in _feedback(graded, "crasher")
    assert {r["student"] for r in graded["rows"]} == {"ada", "ada!", "'=2+3|<i>bo", *ATTACKS, "forger",
                                                      "flooder", "slugger", "crasher"}


def test_names_cannot_inject_into_the_gradebook(graded) -> None:
    with (graded["out"] / "gradebook.csv").open(encoding="utf-8") as f:
        assert "'=2+3|<i>bo" in {row[0] for row in csv.reader(f)}
    table = (graded["out"] / "gradebook.md").read_text()
    assert "| =2+3\\|&lt;i&gt;bo | ⏳ |" in table and "<i>" not in table
    assert len(graded["feedback"]) == 3 + len(ATTACKS) + 4, "ada and ada! get a file each"
    assert (graded["out"] / "executed" / "ada").is_dir() and len(list((graded["out"] / "executed").iterdir())) == 11


def test_another_submissions_results_file_cannot_change_its_score(tmp_path: Path) -> None:
    """Without the sandbox (all kernels one uid, one /tmp): a neighbour appends to every results file it finds
    while an honest submission is graded beside it."""
    notebook.require("postgres", "redis")
    folder = tmp_path / "submissions"
    _save(folder, "ada", _solved())
    _save(folder, "mal", _with_cell(_lab(), MEDDLES))
    before = sandbox.active()
    sandbox.use(sandbox.Policy(sandboxed=False))
    try:
        result = _grade(folder)
    finally:
        sandbox.use(before)
    assert _status(result, "ada") == {"1": PASSED, "2": PASSED}
    assert not any(result["book"][("ada", n)]["flags"] for n in ("1", "2"))
    assert "What happened" not in (result["out"] / "feedback" / "ada.md").read_text(), "no line reached ada's files"


# kernel-free ------------------------------------------------------------------------------------------------


def _book(student: str, *outcomes: Outcome, notes: tuple[str, ...] = ()) -> Graded:
    return Graded(student, "00_start_here", "Start here", Path(f"{student}.ipynb"), list(outcomes), list(notes), 1.0)


def test_csv_cells_cannot_start_a_formula(tmp_path: Path) -> None:
    bad = Outcome("1", "@SUM(A1)", FAILED, "=HYPERLINK(\"http://x\")", "+1", ["-x"])
    gradebook.write_csv([_book("-ann", bad)], tmp_path / "book.csv")
    with (tmp_path / "book.csv").open(encoding="utf-8") as f:
        row = list(csv.DictReader(f))[0]
    assert (row["student"], row["title"], row["message"], row["hint"], row["flags"]) == \
        ("'-ann", "'@SUM(A1)", "'=HYPERLINK(\"http://x\")", "'+1", "'-x")
    assert row["score"] == "0"


def test_markdown_cells_are_escaped() -> None:
    outcome = Outcome("1", "One", FAILED, "got <script>alert(1)</script> | x\nnext")
    text = gradebook.render_markdown([_book("a|b", outcome, notes=("<img src=x>",))], Limits())
    assert "| a\\|b | ❌ |" in text
    assert "got &lt;script&gt;alert(1)&lt;/script&gt; \\| x next" in text and "<script>" not in text
    assert "&lt;img src=x&gt;" in text and "<img" not in text


def test_feedback_file_names_are_unique_per_student(tmp_path: Path) -> None:
    students = ["ada", "ada!", "ada?", "Ada", "ada_", "..", "a/b"]
    paths = gradebook.write_all([_book(s, Outcome("1", "One", PASSED)) for s in students], tmp_path, Limits())
    files = sorted(p.name for p in paths["feedback"].iterdir())
    assert len(files) == len(students) and "ada.md" in files
    assert all(p.parent == paths["feedback"] for p in paths["feedback"].iterdir())


def test_an_unknown_status_does_not_stop_the_gradebook(tmp_path: Path) -> None:
    odd = Outcome("1", "One", "excellent", "forged")
    paths = gradebook.write_all([_book("ann", odd), _book("ben", Outcome("1", "One", PASSED))], tmp_path, Limits())
    assert "| ann | ? |" in paths["markdown"].read_text() and "| ben | ✅ |" in paths["markdown"].read_text()


def test_a_grader_failure_is_the_submissions_entry(tmp_path: Path, monkeypatch) -> None:
    def broken(nb, spec):
        raise RuntimeError("boom")

    monkeypatch.setattr(run, "restore_check_cells", broken)
    path = tmp_path / "ann.ipynb"
    nbformat.write(_lab(), path)
    graded = run.grade("ann", path, lab_spec.load(LAB), Limits(), None)
    assert [o.status for o in graded.outcomes] == ["not_run"] * 2
    assert graded.notes == ["The grader failed on this notebook (RuntimeError: boom); nothing counted."]


def test_recorded_messages_are_shortened() -> None:
    from infracourse.grading import results

    found, _, _ = results.counted([{"exercise": "1", "status": FAILED, "message": "x" * 10**6}], [Exercise("1", "One")])
    assert len(found["1"].message) < results.MAX_MESSAGE + 10
