"""Any number of checkouts use one set of running services: a second clone (a fork, a grading folder, a scratch
copy) runs lab 13, whose checks need Prometheus to scrape the notebook's own app."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from infracourse import notebook
from infracourse.authoring import runner

ROOT = Path(__file__).resolve().parents[1]


def test_a_second_checkout_passes_lab_11_against_the_running_services(tmp_path: Path) -> None:
    notebook.require("prometheus", "redis", "postgres")
    second = tmp_path / "second-clone"
    shutil.copytree(ROOT / "services", second / "services")
    shutil.copy(ROOT / "pyproject.toml", second / "pyproject.toml")
    results = tmp_path / "results.jsonl"
    runner.execute(ROOT / "solutions" / "13_metrics_with_prometheus.ipynb", timeout_s=180, extra_env={
        "INFRACOURSE_HOME": str(second), "INFRACOURSE_NS_SUFFIX": "_second", "INFRACOURSE_RESULTS": str(results)})
    statuses = {r["exercise"]: r["status"] for r in map(json.loads, results.read_text().splitlines())}
    assert statuses == dict.fromkeys(("1", "2", "3", "4", "5", "6"), "passed")
    assert not (second / ".services" / "prometheus-targets").exists() or not any(
        (second / ".services" / "prometheus-targets").iterdir())
