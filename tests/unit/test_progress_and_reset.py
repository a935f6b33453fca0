"""`course progress` shows the learner's own last check results; `course reset NN` empties one lab's namespace."""

from __future__ import annotations

import uuid
from pathlib import Path

import nbformat
import redis

from infracourse import cli, config, notebook
from infracourse.checking import progress
from infracourse.checks import lab00


def test_checks_run_in_a_lab_are_remembered_and_shown(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INFRACOURSE_HOME", str(tmp_path))
    monkeypatch.delenv("INFRACOURSE_RESULTS", raising=False)
    (tmp_path / "labs").mkdir()
    monkeypatch.chdir(tmp_path)
    lab00.add(lambda a, b: a + b)
    assert progress.read() == {}, "outside labs/ nothing is recorded"
    monkeypatch.chdir(tmp_path / "labs")
    lab00.add(lambda a, b: a - b)
    lab00.add(lambda a, b: a + b)  # the last result counts
    assert progress.read()["00"]["0"]["status"] == "passed"
    monkeypatch.setenv("INFRACOURSE_HOME", str(Path(__file__).resolve().parents[2]))
    monkeypatch.setattr(progress, "path", lambda: tmp_path / ".services" / "progress.json")
    capsys.readouterr()
    assert cli.main(["progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.strip().startswith("00 · Start here") and "0 passed, 0 failed, 0 not done, 2 not tried" in line
               for line in lines), lines  # exercise 0 is the lesson's warm-up, not one of the lab's two


def test_reset_empties_the_labs_namespace_and_says_what_it_removed(tmp_path, monkeypatch, capsys):
    notebook.require("redis")
    slug = f"pytest_reset_{uuid.uuid4().hex[:6]}"
    (tmp_path / "labs").mkdir()
    lab = nbformat.v4.new_notebook()
    lab.cells = [nbformat.v4.new_markdown_cell("# 42 · A lab"),
                 nbformat.v4.new_code_cell(f'from infracourse import notebook\nns = notebook.setup("{slug}", "redis")')]
    nbformat.write(lab, tmp_path / "labs" / "42_a_lab.ipynb")
    monkeypatch.setenv("INFRACOURSE_HOME", str(tmp_path))
    r = redis.Redis.from_url(config.redis_url())
    r.set(f"{slug}_lab:a", 1)
    r.set(f"{slug}_lab:b", 2)
    r.set(f"{slug}_other:c", 3)
    try:
        assert cli.main(["reset", "42"]) == 0
        assert capsys.readouterr().out.strip() == f"Emptied lab 42's namespace {slug}_lab: redis: 2 keys"
        assert r.exists(f"{slug}_lab:a", f"{slug}_lab:b") == 0 and r.exists(f"{slug}_other:c") == 1
        assert cli.main(["reset", "7"]) == 2
        assert "no lab 7; the labs are 42" in capsys.readouterr().out
    finally:
        r.delete(f"{slug}_other:c")
        r.close()
