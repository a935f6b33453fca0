"""`course grade` runs each kernel in the bubblewrap sandbox: a hostile lab 00 submission, graded next to an
honest one, reports from inside what it could reach (the course services, nothing of the grader's, no other port
of the host, no network off the machine), hits the resource caps, and leaves
a setsid child behind that must be gone; without bwrap the command refuses in one line unless
--trust-submissions, which the gradebook's header then admits."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import nbformat
import pytest

from infracourse import cli
from infracourse.grading import sandbox

pytestmark = pytest.mark.usefixtures("grading_sandbox")

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "00_start_here.ipynb"
SECRET = "instructor-secret-0451"
CHILD_MARKER = "sandbox-orphan-probe"
CHILD_SLEEP_S = 4

HIDDEN_CHECK = '''
from infracourse.checking import exercise, expect


@exercise("H1", "A hidden check that always passes")
def always():
    expect(True, "unreachable")
'''

# Placeholders {...} are filled in by _hostile; the cell prints one PROBE line of JSON for the test to read.
PROBE_CELL = '''
import json, os, resource, socket, subprocess, sys


def attempt(action):
    try:
        return ("allowed: " + repr(action()))[:120]
    except Exception as exc:
        return type(exc).__name__


def write(path):
    with open(path, "w") as f:
        return f.write("forged")


subprocess.Popen(["setsid", sys.executable, "-c", "import socket, time; time.sleep({sleep}); "
                  "socket.create_connection(('127.0.0.1', {port})).sendall(b'alive')", "{marker}"])
limits = {{name: resource.getrlimit(getattr(resource, "RLIMIT_" + name))[0]
          for name in ("AS", "NPROC", "CPU", "FSIZE")}}
probe = {{
    "uid": os.getuid(),
    "pid": os.getpid(),
    "limits": limits,
    "solutions": attempt(lambda: os.listdir({solutions!r})),
    "hidden": attempt(lambda: os.listdir({hidden!r})),
    "others": attempt(lambda: os.listdir({submissions!r})),
    "gradebook": attempt(lambda: write({out!r} + "/forged.txt")),
    "src": attempt(lambda: write({src!r} + "/sandbox_forged.py")),
    "grader_proc": attempt(lambda: open("/proc/{grader_pid}/environ").read()),
    "root_home": sorted(os.listdir("/root")),
    "env": dict(os.environ),
    "memory": attempt(lambda: len(bytearray(3 * 1024 ** 3))),
    "host_port": attempt(lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2)),
    "interfaces": sorted(name for _, name in socket.if_nameindex()),
}}
print("PROBE" + json.dumps(probe))
'''


def _hostile(path: Path, **paths: object) -> None:
    """The reference solution (so its checks pass) plus the probe cell at the end."""
    nb = nbformat.read(SOLUTION, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE_CELL.format(**paths)))
    nbformat.write(nb, path)


def _grade(*args: str) -> int:
    parsed = cli.build_parser().parse_args(["grade", *args, "--cell-timeout", "20", "--notebook-timeout", "120"])
    return parsed.func(parsed)


def _scores(out: Path) -> dict[str, tuple[int, int]]:
    """student -> (points earned, points possible), hidden checks included."""
    totals: dict[str, tuple[int, int]] = {}
    with (out / "gradebook.csv").open() as f:
        for row in csv.DictReader(f):
            earned, possible = totals.get(row["student"], (0, 0))
            totals[row["student"]] = (earned + int(float(row["score"])), possible + int(row["max_score"]))
    return totals


def _probe(out: Path, student: str) -> dict:
    nb = nbformat.read(next((out / "executed").glob(f"{student}*/*.ipynb")), as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    return json.loads(text.split("PROBE", 1)[1].splitlines()[0])


def _orphans() -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if CHILD_MARKER.encode() in cmdline.read_bytes():
                found.append(cmdline.parent.name)
        except OSError:  # the process ended while we looked
            continue
    return found


def test_a_hostile_submission_reaches_nothing_and_leaves_nothing(tmp_path, monkeypatch, capsys) -> None:
    submissions, hidden, out = tmp_path / "submissions", tmp_path / "hidden", tmp_path / "gradebook"
    for folder in (submissions / "alice", submissions / "mallory", hidden, out):  # all there to be reached
        folder.mkdir(parents=True)
    (hidden / "lab00.py").write_text(HIDDEN_CHECK)
    shutil.copy(SOLUTION, submissions / "alice" / "00_start_here.ipynb")
    listener = socket.create_server(("127.0.0.1", 0))
    _hostile(submissions / "mallory" / "00_start_here.ipynb", sleep=CHILD_SLEEP_S, port=listener.getsockname()[1],
             marker=CHILD_MARKER, solutions=str(ROOT / "solutions"), hidden=str(hidden),
             submissions=str(submissions), out=str(out), src=str(ROOT / "src" / "infracourse"), grader_pid=os.getpid())
    monkeypatch.setenv("INSTRUCTOR_SECRET", SECRET)
    began = time.monotonic()

    assert _grade(str(submissions), "--hidden", str(hidden), "--out", str(out), "--memory-mb", "2048") == 0
    assert "sandboxed, 2048 MiB" in capsys.readouterr().out

    scores = _scores(out)
    assert scores["alice"] == scores["mallory"], "the probe must not change the verdict"
    earned, possible = scores["alice"]
    assert earned == possible >= 3, scores  # two exercises and the hidden check
    probe = _probe(out, "mallory")
    assert probe["uid"] == sandbox.SANDBOX_UID
    assert probe["pid"] < 50, "a fresh pid namespace: only bwrap's init and the network bridge's threads came first"
    for reach in ("solutions", "hidden", "others", "gradebook", "src", "grader_proc"):
        assert not probe[reach].startswith("allowed"), f"{reach}: {probe[reach]}"
    assert probe["root_home"] in ([], [".pyenv"]), "only the Python install of the instructor's home is seen"
    assert SECRET not in json.dumps(probe["env"]) and str(hidden) not in json.dumps(probe["env"])
    assert set(probe["env"]) >= {"PATH", "HOME", "INFRACOURSE_NS_SUFFIX", "INFRACOURSE_RESULTS"}
    assert probe["limits"] == {"AS": 2048 * 1024 ** 2, "NPROC": 256, "CPU": 120, "FSIZE": 256 * 1024 ** 2}
    assert probe["memory"] == "MemoryError"
    assert probe["host_port"] == "ConnectionRefusedError", "a port of the host that is not a course service"
    assert probe["interfaces"] == ["lo"], "a network namespace of its own: no route off the machine"
    assert not (out / "forged.txt").exists() and not (ROOT / "src" / "infracourse" / "sandbox_forged.py").exists()

    assert _orphans() == [], "the setsid child outlived its submission"
    listener.settimeout(max(0.5, began + CHILD_SLEEP_S + 2 - time.monotonic()))  # the child's wake-up has passed
    with pytest.raises(TimeoutError):
        listener.accept()


def test_without_bwrap_grade_refuses_in_one_line_unless_trusted(tmp_path, monkeypatch, capsys) -> None:
    submissions, out = tmp_path / "submissions", tmp_path / "gradebook"
    (submissions / "alice").mkdir(parents=True)
    shutil.copy(SOLUTION, submissions / "alice" / "00_start_here.ipynb")
    tools = tmp_path / "bin"  # everything the grader needs but bwrap
    tools.mkdir()
    for name in ("prlimit", "setpriv", "setsid"):
        (tools / name).symlink_to(shutil.which(name))
    monkeypatch.setenv("PATH", f"{tools}:{Path(sys.executable).parent}")

    assert _grade(str(submissions), "--out", str(out)) == 2
    refusal = capsys.readouterr().out.strip().splitlines()
    assert len(refusal) == 1 and "bwrap" in refusal[0] and "apt-get install bubblewrap" in refusal[0], refusal
    assert not out.exists()

    assert _grade(str(submissions), "--out", str(out), "--trust-submissions") == 0
    assert "NOT sandboxed" in capsys.readouterr().out
    assert sandbox.active().sandboxed, "the trust lasts one run, not the rest of the process"
    header = (out / "gradebook.md").read_text().split("\n## ")[0]
    assert "Not sandboxed" in header and "--trust-submissions" in header
    earned, possible = _scores(out)["alice"]
    assert earned == possible >= 2


def test_the_kernel_environment_keeps_only_what_it_needs() -> None:
    env = sandbox.minimal_env({"COURSE_REDIS_PORT": "6380", "INFRACOURSE_RESULTS": "/tmp/r", "AWS_SECRET": "x",
                               "INFRACOURSE_HIDDEN_CHECKS": "/srv/hidden", "PATH": "/home/prof/bin:/usr/bin"})
    assert env["COURSE_REDIS_PORT"] == "6380" and env["INFRACOURSE_RESULTS"] == "/tmp/r"
    assert "AWS_SECRET" not in env and "INFRACOURSE_HIDDEN_CHECKS" not in env
    assert "/home/prof" not in env["PATH"] and env["HOME"] == sandbox.HOME


def test_too_little_memory_is_refused_before_grading(tmp_path, capsys) -> None:
    assert _grade(str(tmp_path), "--memory-mb", "64") == 2
    message = capsys.readouterr().out.strip()
    assert message.count("\n") == 0 and "--memory-mb" in message and "at least" in message


def test_an_app_the_submission_serves_is_scraped_by_prometheus(tmp_path) -> None:
    """Lab 13's checks read what Prometheus scraped from the notebook's own app: sandboxed, that app is in the
    kernel's network namespace, reached through the grader's relay."""
    submissions, out = tmp_path / "submissions", tmp_path / "gradebook"
    (submissions / "ada").mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / "13_metrics_with_prometheus.ipynb", submissions / "ada")
    assert _grade(str(submissions), "--out", str(out)) == 0
    earned, possible = _scores(out)["ada"]
    assert earned == possible >= 5, (out / "feedback" / "ada.md").read_text()
