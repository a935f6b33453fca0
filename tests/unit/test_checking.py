import json

from infracourse.checking import FAILED, NOT_DONE, PASSED, exercise, expect


@exercise("7", "Positive")
def check_positive(value):
    expect(value > 0, f"{value} is not positive", hint="use abs()")
    return "ok"


def test_pass_fail_not_done_and_crash(capsys):
    assert check_positive(3).status == PASSED
    failed = check_positive(-1)
    assert (failed.status, failed.message, failed.hint) == (FAILED, "-1 is not positive", "use abs()")
    assert check_positive(...).status == NOT_DONE
    crashed = check_positive("a")
    assert crashed.status == FAILED and crashed.message.startswith("your code raised TypeError")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "✅ Exercise 7 · Positive: passed (ok)"
    assert lines[1] == "❌ Exercise 7 · Positive: -1 is not positive" and lines[2] == "   Hint: use abs()"
    assert lines[3] == "⏳ Exercise 7 · Positive: not done yet (replace the TODO in the exercise cell)"


def test_not_implemented_in_learner_code_is_not_done():
    @exercise("8", "Calls")
    def check_calls(fn):
        fn()

    def stub():
        raise NotImplementedError

    assert check_calls(stub).status == NOT_DONE


def test_results_are_recorded_for_the_grader(tmp_path, monkeypatch):
    results = tmp_path / "results.jsonl"
    monkeypatch.setenv("INFRACOURSE_RESULTS", str(results))
    check_positive(1)
    check_positive(...)
    recorded = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["exercise"], r["status"]) for r in recorded] == [("7", PASSED), ("7", NOT_DONE)]


def test_the_declaration_is_the_registry_entry():
    @exercise("3", "Stretch me", stretch=True, points=2)
    def check_more(fn):
        return None

    spec = check_more.spec
    assert (spec.number, spec.title, spec.stretch, spec.points, spec.hidden, spec.check) == (
        "3", "Stretch me", True, 2, False, "check_more")
    assert spec.label == "Stretch me (stretch)" and spec.heading == "## Exercise 3 · Stretch me (stretch)"
    assert check_more(lambda: 1).title == "Stretch me (stretch)"


def test_registry_lists_a_modules_checks_in_the_order_written():
    from infracourse.checking import registry
    from infracourse.checks import lab01

    assert [e.number for e in registry.exercises_of(lab01)] == ["1", "2", "3", "4", "5", "6", "7"]
    assert registry.checks_of(lab01)["find_user"].title == "Find a user, injection-proof"


def test_learner_frames_name_the_learners_line():
    def learner_code():
        return 1 / 0

    crashed = exercise("4", "Divide")(lambda fn: fn())(learner_code)
    assert crashed.message.splitlines()[0] == "your code raised ZeroDivisionError: division by zero"
    last = crashed.message.splitlines()[-1].strip()
    assert last.startswith("in learner_code, line ") and last.endswith(": return 1 / 0")


def test_a_learner_error_names_the_call_the_check_made_with_its_arguments_shortened():
    def find_user(conn, name, limit=10):
        return {}[name]

    crashed = exercise("5", "Lookup")(lambda fn: fn("a connection", "x" * 300))(find_user)
    first, call = crashed.message.splitlines()[:2]
    assert first.startswith("your code raised KeyError: 'xxx") and len(first) < 200
    assert call.strip().startswith("when the check called find_user(conn='a connection', name='xxx")
    assert call.strip().endswith(", limit=10)") and len(call) < 120
