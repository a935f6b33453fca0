"""`course classroom grade SUBMISSIONS_DIR`: `course grade` for a class on shared services. Each learner's
submissions run in the grading sandbox (grading/sandbox.py) exactly as `course grade` runs them, with that
learner's own credentials and namespace prefix in the kernel's environment (the sandbox passes COURSE_*), so a
submission can touch nothing but its author's data; the grader's clean-up runs with them too. Learners are
graded one after another (the credentials are process environment); one gradebook for the class."""

from __future__ import annotations

import argparse
import os
from itertools import groupby
from pathlib import Path

from infracourse.authoring import lab_spec
from infracourse.classroom import credentials, roster
from infracourse.classroom.command import learner_environment
from infracourse.grading import command as grading
from infracourse.grading import gradebook, sandbox, submissions
from infracourse.grading.outcomes import Limits


def main(args: argparse.Namespace) -> int:
    folder = Path(args.submissions).resolve()
    if not folder.is_dir():
        print(f"course classroom grade: {folder} is not a folder of submissions")
        return 2
    policy = sandbox.Policy(memory_mb=args.memory_mb)
    why_not = sandbox.unavailable()
    if why_not:
        print(f"course classroom grade: {why_not}")
        return 2
    specs = {name: spec for name, spec in lab_spec.all_specs().items() if spec.exercises}
    found = submissions.collect(folder, specs, args.lab)
    if not found:
        print(f"course classroom grade: no notebook under {folder}")
        return 1
    hidden = Path(args.hidden or os.environ.get("INFRACOURSE_HIDDEN_CHECKS") or "").resolve() \
        if (args.hidden or os.environ.get("INFRACOURSE_HIDDEN_CHECKS")) else None
    limits = Limits(cell_s=args.cell_timeout, notebook_s=args.notebook_timeout)
    out = Path(args.out).resolve() if args.out else folder / "_gradebook"
    graded = []
    print(f"Grading {len(found)} submission(s), each with its learner's own credentials (sandboxed):")
    with sandbox.use(policy):
        for student, theirs in groupby(found, key=lambda s: s.student):
            try:
                env = credentials.load(roster.learner(student))
            except roster.RosterError:
                env = None
            if env is None:
                print(f"  {student}: not provisioned (`course classroom list`): not graded")
                continue
            with learner_environment(env):
                graded += grading.grade_all(list(theirs), limits, hidden, out, jobs=1)
    if not graded:
        return 1
    paths = gradebook.write_all(graded, out, limits)
    print(f"Gradebook: {paths['markdown']} and {paths['csv'].name}; feedback: {paths['feedback']}/")
    return 0
