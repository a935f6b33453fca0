"""pytest plugin (-p infracourse.authoring.timing_report): seconds per notebook, printed at the end of a run and
merged into _build/notebook_timings.json / .md across the runs of one `make test`."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from infracourse.paths import repo_root

_seconds: dict[str, float] = defaultdict(float)


def _report_path() -> Path:
    return repo_root() / "_build" / "notebook_timings.json"


def _key(report) -> str | None:
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        return path
    if "[" in report.nodeid and ".ipynb" in report.nodeid:  # parametrised over notebooks (lab contract)
        return report.nodeid.split("[", 1)[1].rstrip("]") + " (lab contract)"
    return None


def pytest_runtest_logreport(report) -> None:
    key = _key(report)
    if key:
        _seconds[key] += report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    if hasattr(terminalreporter.config, "workerinput") or not _seconds:
        return
    path = _report_path()
    path.parent.mkdir(exist_ok=True)
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged.update({k: round(v, 1) for k, v in _seconds.items()})
    path.write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n")
    lines = ["| notebook | seconds |", "|---|---:|", *(f"| {k} | {v:.1f} |" for k, v in sorted(merged.items()))]
    lines.append(f"| **total** | {sum(merged.values()):.1f} |")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    terminalreporter.write_sep("-", "seconds per notebook (all runs of this make test)")
    for key, value in sorted(merged.items()):
        terminalreporter.write_line(f"{value:8.1f}  {key}")
