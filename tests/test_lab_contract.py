"""The lab contract: an unsolved lab runs top to bottom and every check says 'not done yet'; the stored
solution passes every check the lab has (nbval re-runs the solution and compares those lines); the exercises
both report on are the ones the registry (the @exercise declarations of the lab's check module) names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from infracourse.authoring import lab_spec, notebook_format, runner
from infracourse.authoring.labgen import solution_paths

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = solution_paths(ROOT)
RESULT_LINE = re.compile(r"^(✅|⏳|❌) Exercise (\S+) · ", re.MULTILINE)


def stored_results(solution: Path) -> list[tuple[str, str]]:
    """(symbol, exercise) for every check line in the solution's stored outputs."""
    found = []
    for cell in notebook_format.read(solution).cells:
        for output in cell.get("outputs", []):
            found += RESULT_LINE.findall(output.get("text", ""))
    return found


def _registered(solution: Path) -> list[str]:
    return sorted(e.number for e in lab_spec.load(ROOT / "labs" / solution.name).exercises)


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_solution_passes_every_check_the_registry_names(solution: Path) -> None:
    results = stored_results(solution)
    assert results, f"{solution.name} has no check output: run `course run {solution}`"
    assert all(symbol == "✅" for symbol, _ in results), f"{solution.name}: not every check passed: {results}"
    assert sorted(number for _, number in results) == _registered(solution)
    assert lab_spec.problems(solution) == []


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_unsolved_lab_runs_and_every_check_is_not_done(solution: Path, tmp_path: Path) -> None:
    lab = ROOT / "labs" / solution.name
    results_file = tmp_path / "results.jsonl"
    runner.execute(lab, timeout_s=120, extra_env={"INFRACOURSE_RESULTS": str(results_file)})
    results = [json.loads(line) for line in results_file.read_text().splitlines()]
    assert results, "the lab ran no check"
    not_done = [r for r in results if r["status"] != "not_done"]
    assert not not_done, f"checks that should say 'not done yet' on the unsolved lab: {not_done}"
    assert sorted(r["exercise"] for r in results) == _registered(solution)
