"""Write what the grader found: executed/<student>/<lab>.ipynb (each submission as it ran, written as soon as it
is graded), gradebook.csv (one row a student and exercise, for spreadsheets and LMS imports), gradebook.md (a
table a lab and a list of what needs attention) and feedback/<student>.md (what each student gets back: every
check's line, its hint, and what happened to the notebook). Scores are the exercises' points."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

import nbformat

from infracourse.authoring import notebook_format
from infracourse.checking.status import NOT_DONE, PASSED, SYMBOL, WORDS
from infracourse.grading.outcomes import HIDDEN, TAMPERED, Graded, Limits

CSV_COLUMNS = ("student", "lab", "exercise", "title", "status", "score", "max_score", "message", "hint", "flags",
               "submission")


def _file_name(student: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", student).strip("_") or "student"


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def write_csv(graded: list[Graded], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for g in graded:
            for o in g.outcomes:
                writer.writerow([g.student, g.lab, o.exercise, o.title, o.status, o.score, o.points, o.message, o.hint,
                                 ";".join(o.flags), str(g.path)])


def render_markdown(graded: list[Graded], limits: Limits) -> str:
    lines = ["# Gradebook", "",
             f"{len(graded)} submission(s); limits: {limits.cell_s} s a cell, {limits.notebook_s} s a notebook. "
             "Legend: " + ", ".join(f"{SYMBOL[s]} {WORDS[s]}" for s in SYMBOL) + "; (h) hidden check, "
             "✎ check cell edited or deleted (the original was run).", ""]
    by_lab: dict[str, list[Graded]] = defaultdict(list)
    for g in graded:
        by_lab[g.lab].append(g)
    for lab, rows in sorted(by_lab.items()):
        columns = [(o.exercise, HIDDEN in o.flags) for o in rows[0].outcomes]
        lines += [f"## {rows[0].lab_title} ({lab})", "",
                  "| student | " + " | ".join(f"{n}{' (h)' if h else ''}" for n, h in columns) + " | score | time |",
                  "|---|" + "---|" * len(columns) + "---:|---:|"]
        for g in rows:
            marks = [SYMBOL[o.status] + (" ✎" if TAMPERED in o.flags else "") for o in g.outcomes]
            lines.append(f"| {_cell(g.student)} | " + " | ".join(marks)
                         + f" | {g.score}/{g.max_score} | {g.seconds:.0f} s |")
        attention = [(g, o) for g in rows for o in g.outcomes if o.status != PASSED or TAMPERED in o.flags]
        notes = [(g, n) for g in rows for n in g.notes]
        if attention or notes:
            lines += ["", "### Needs attention", "", "| student | exercise | status | message |", "|---|---|---|---|"]
            lines += [f"| {_cell(g.student)} | {o.exercise} · {_cell(o.title)} | {WORDS[o.status]} | "
                      f"{_cell(o.message)}{' (' + ', '.join(o.flags) + ')' if o.flags else ''} |" for g, o in attention]
            lines += [f"| {_cell(g.student)} | notebook | note | {_cell(n)} |" for g, n in notes]
        lines.append("")
    return "\n".join(lines)


def render_feedback(student: str, graded: list[Graded]) -> str:
    lines = [f"# Feedback for {student}", ""]
    for g in graded:
        lines += [f"## {g.lab_title}", "", f"Score: **{g.score} / {g.max_score}**", ""]
        for o in g.outcomes:
            label = f"Exercise {o.exercise} · {o.title}" + (" (hidden check)" if HIDDEN in o.flags else "")
            detail = o.message if o.status not in (PASSED, NOT_DONE) else (
                f"passed ({o.message})" if o.status == PASSED and o.message else WORDS[o.status])
            lines.append(f"- {SYMBOL[o.status]} **{label}**: {detail}")
            if o.hint and o.status != PASSED:
                lines.append(f"  - Hint: {o.hint}")
        if g.notes:
            lines += ["", "What happened when your notebook ran:", ""] + [f"- {n}" for n in g.notes]
        lines.append("")
    return "\n".join(lines)


def write_executed(g: Graded, out: Path) -> None:
    """Write G's notebook as it ran under OUT/executed, if anything ran."""
    if g.executed is not None:
        target = out / "executed" / _file_name(g.student) / f"{g.lab}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook_format.normalise(g.executed), target)


def write_all(graded: list[Graded], out: Path, limits: Limits) -> dict[str, Path]:
    """Write the gradebook and the feedback files under OUT (the executed notebooks are there already); return
    the main paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "gradebook.csv", "markdown": out / "gradebook.md", "feedback": out / "feedback",
             "executed": out / "executed"}
    write_csv(graded, paths["csv"])
    paths["markdown"].write_text(render_markdown(graded, limits), encoding="utf-8")
    by_student: dict[str, list[Graded]] = defaultdict(list)
    for g in graded:
        by_student[g.student].append(g)
    paths["feedback"].mkdir(exist_ok=True)
    for student, rows in by_student.items():
        (paths["feedback"] / f"{_file_name(student)}.md").write_text(render_feedback(student, rows), encoding="utf-8")
    return paths
