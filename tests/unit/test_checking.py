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
