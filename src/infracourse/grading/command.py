"""`course grade SUBMISSIONS_DIR [--lab NN]`: find the submissions, grade each in isolation (optionally a few
at a time) with each kernel in the bubblewrap sandbox (sandbox.py; --trust-submissions runs without and the
gradebook says so), write each executed notebook as soon as it is graded, then the gradebook and the feedback,
and print a one-line summary per submission."""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from infracourse.authoring import lab_spec
from infracourse.checking.status import NOT_RUN, SYMBOL
from infracourse.grading import gradebook, sandbox, submissions
from infracourse.grading.outcomes import Graded, Limits, Outcome
from infracourse.grading.run import grade
from infracourse.grading.submissions import Submission

MIN_MEMORY_MB = 512  # a Python kernel with the course's clients maps a few hundred MiB before running anything
TRUSTED_WARNING = ("> **Not sandboxed:** graded with `--trust-submissions`: submissions ran with the grader's "
                   "own rights, environment and files.")


def hidden_module(hidden_dir: Path | None, spec: lab_spec.LabSpec) -> Path | None:
    """DIR/labNN.py (or DIR/NN_name.py): the instructor's extra checks for SPEC, if there are any."""
    if hidden_dir is None:
        return None
    for candidate in (hidden_dir / f"lab{spec.number}.py", hidden_dir / f"{spec.name}.py"):
        if candidate.exists():
            return candidate
    return None


def _unrecognised(submission: Submission) -> Graded:
    outcome = Outcome("-", "which lab?", NOT_RUN,
                      "this notebook matches no lab by name or content; grade it with --lab NN")
    return Graded(submission.student, "unknown", "Unrecognised notebooks", submission.path, [outcome],
                  [f"{submission.path.name} was not graded: no lab matches its name or its cells."], 0.0)


def grade_all(found: list[Submission], limits: Limits, hidden_dir: Path | None, out: Path,
              jobs: int = 1) -> list[Graded]:
    """Grade FOUND, writing each executed notebook under OUT as soon as it is graded (a run stopped halfway
    keeps them, and a class's notebooks are not all held in memory)."""

    def one(submission: Submission) -> Graded:
        if submission.lab is None:
            return _unrecognised(submission)
        graded = grade(submission.student, submission.path, submission.lab, limits,
                       hidden_module(hidden_dir, submission.lab))
        gradebook.write_executed(graded, out)
        symbols = "".join(SYMBOL[o.status] for o in graded.outcomes)
        print(f"  {submission.student:<24} {submission.lab.name:<28} {symbols}  {graded.score}/"
              f"{graded.max_score}  {graded.seconds:.1f} s", flush=True)
        return replace(graded, executed=None)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, found))


def _policy(args: argparse.Namespace) -> sandbox.Policy | str:
    """The sandbox policy the flags ask for, or why it cannot be had (one line)."""
    if args.memory_mb < MIN_MEMORY_MB:
        return f"--memory-mb {args.memory_mb} is too small for a kernel; give at least {MIN_MEMORY_MB}"
    policy = sandbox.Policy(sandboxed=not args.trust_submissions, memory_mb=args.memory_mb)
    return (policy.sandboxed and sandbox.unavailable()) or policy


def _mark_trusted(markdown: Path) -> None:
    """Put TRUSTED_WARNING under the gradebook's title, where nobody reading it can miss it."""
    title, _, rest = markdown.read_text(encoding="utf-8").partition("\n")
    markdown.write_text(f"{title}\n\n{TRUSTED_WARNING}\n{rest}", encoding="utf-8")


def main(args: argparse.Namespace) -> int:
    folder = Path(args.submissions).resolve()
    if not folder.is_dir():
        print(f"course grade: {folder} is not a folder of submissions")
        return 2
    policy = _policy(args)
    if isinstance(policy, str):
        print(f"course grade: {policy}")
        return 2
    specs = {name: spec for name, spec in lab_spec.all_specs().items() if spec.exercises}
    hidden_dir = args.hidden or os.environ.get("INFRACOURSE_HIDDEN_CHECKS")
    hidden_dir = Path(hidden_dir).resolve() if hidden_dir else None
    limits = Limits(cell_s=args.cell_timeout, notebook_s=args.notebook_timeout)
    try:
        found = submissions.collect(folder, specs, args.lab)
    except ValueError as exc:
        print(f"course grade: {exc}")
        return 2
    if not found:
        print(f"course grade: no notebook under {folder}" + (f" for lab {args.lab}" if args.lab else ""))
        return 1
    print(f"Grading {len(found)} submission(s) from {folder} (limits: {limits.cell_s} s a cell, "
          f"{limits.notebook_s} s a notebook{', hidden checks from ' + str(hidden_dir) if hidden_dir else ''}; "
          f"{f'sandboxed, {policy.memory_mb} MiB' if policy.sandboxed else 'NOT sandboxed'}):")
    out = Path(args.out).resolve() if args.out else folder / "_gradebook"
    began = time.monotonic()
    with sandbox.use(policy):
        graded = grade_all(found, limits, hidden_dir, out, args.jobs)
    paths = gradebook.write_all(graded, out, limits)
    if not policy.sandboxed:
        _mark_trusted(paths["markdown"])
    print(f"Graded in {time.monotonic() - began:.1f} s. Gradebook: {paths['markdown']} and {paths['csv'].name}; "
          f"feedback: {paths['feedback']}/; executed notebooks: {paths['executed']}/")
    return 0
