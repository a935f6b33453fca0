"""Write what the grader found: executed/<student>/<lab>.ipynb (each submission as it ran, written as soon as it
is graded), gradebook.csv (one row a student and exercise, for spreadsheets and LMS imports), gradebook.md (a
table a lab and a list of what needs attention) and feedback/<student>.md (what each student gets back: every
check's line, its hint, and what happened to the notebook). Scores are the exercises' points.

Everything a submission influences (names, messages, notes) is treated as hostile text: CSV cells cannot start a
formula, Markdown cannot break a table or carry HTML, and file names are unique per student."""

from __future__ import annotations

import csv
import hashlib
import html
import re
from collections import defaultdict
from pathlib import Path

import nbformat

from infracourse.authoring import notebook_format
from infracourse.checking.status import NOT_DONE, PASSED, SYMBOL, WORDS
from infracourse.grading.outcomes import HARNESS, HIDDEN, TAMPERED, Graded, Limits

CSV_COLUMNS = ("student", "lab", "exercise", "title", "status", "score", "max_score", "message", "hint", "flags",
               "submission")


def _file_name(student: str) -> str:
    """A safe file name for STUDENT, unique: when cleaning it changed the name (`ada!`, `Ada`), a hash of the
    name follows a `~`, which a clean name cannot contain."""
    clean = re.sub(r"[^a-z0-9._-]+", "_", student.lower()).strip("._") or "student"
    return clean if clean == student else f"{clean}~{hashlib.sha256(student.encode()).hexdigest()[:8]}"


def _symbol(status: str) -> str:
    return SYMBOL.get(status, "?")


def _words(status: str) -> str:
    return WORDS.get(status, str(status))


def _text(text: object) -> str:
    """TEXT for Markdown that must not turn into HTML."""
    return html.escape(str(text), quote=False)


def _cell(text: object) -> str:
    """TEXT for a Markdown table cell: one line, no HTML, a `|` that does not end the cell."""
    return _text(text).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _csv_safe(value: object) -> object:
    """VALUE, with text a spreadsheet would run as a formula made literal by a leading quote."""
    return f"'{value}" if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")) else value


def write_csv(graded: list[Graded], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for g in graded:
            for o in g.outcomes:
                writer.writerow([_csv_safe(v) for v in (g.student, g.lab, o.exercise, o.title, o.status, o.score,
                                                         o.points, o.message, o.hint, ";".join(o.flags), str(g.path))])


def render_markdown(graded: list[Graded], limits: Limits) -> str:
    lines = ["# Gradebook", "",
             f"{len(graded)} submission(s); limits: {limits.cell_s} s a cell, {limits.notebook_s} s a notebook. "
             "Legend: " + ", ".join(f"{SYMBOL[s]} {WORDS[s]}" for s in SYMBOL) + "; (h) hidden check, "
             "✎ check cell edited or deleted (the original was run), ⚠ harness tampered with (repaired, or results "
             "forged: the worst counted).", ""]
    by_lab: dict[str, list[Graded]] = defaultdict(list)
    for g in graded:
        by_lab[g.lab].append(g)
    for lab, rows in sorted(by_lab.items()):
        columns = [(o.exercise, HIDDEN in o.flags) for o in rows[0].outcomes]
        lines += [f"## {rows[0].lab_title} ({lab})", "",
                  "| student | " + " | ".join(f"{_cell(n)}{' (h)' if h else ''}" for n, h in columns)
                  + " | score | time |",
                  "|---|" + "---|" * len(columns) + "---:|---:|"]
        for g in rows:
            marks = [_symbol(o.status) + (" ✎" if TAMPERED in o.flags else "") + (" ⚠" if HARNESS in o.flags else "")
                     for o in g.outcomes]
            lines.append(f"| {_cell(g.student)} | " + " | ".join(marks)
                         + f" | {g.score}/{g.max_score} | {g.seconds:.0f} s |")
        attention = [(g, o) for g in rows for o in g.outcomes
                     if o.status != PASSED or {TAMPERED, HARNESS} & set(o.flags)]
        notes = [(g, n) for g in rows for n in g.notes]
        if attention or notes:
            lines += ["", "### Needs attention", "", "| student | exercise | status | message |", "|---|---|---|---|"]
            lines += [f"| {_cell(g.student)} | {_cell(o.exercise)} · {_cell(o.title)} | {_cell(_words(o.status))} | "
                      f"{_cell(o.message)}{' (' + ', '.join(o.flags) + ')' if o.flags else ''} |" for g, o in attention]
            lines += [f"| {_cell(g.student)} | notebook | note | {_cell(n)} |" for g, n in notes]
        lines.append("")
    return "\n".join(lines)


def render_feedback(student: str, graded: list[Graded]) -> str:
    lines = [f"# Feedback for {_cell(student)}", ""]
    for g in graded:
        lines += [f"## {g.lab_title}", "", f"Score: **{g.score} / {g.max_score}**", ""]
        for o in g.outcomes:
            label = f"Exercise {_cell(o.exercise)} · {_cell(o.title)}" + (
                " (hidden check)" if HIDDEN in o.flags else "")
            detail = _text(o.message) if o.status not in (PASSED, NOT_DONE) else (
                f"passed ({_text(o.message)})" if o.status == PASSED and o.message else _words(o.status))
            lines.append(f"- {_symbol(o.status)} **{label}**: {detail}")
            if HARNESS in o.flags:
                lines.append("  - The checking harness was tampered with before this check (see below).")
            if o.hint and o.status != PASSED:
                lines.append(f"  - Hint: {_text(o.hint)}")
        if g.notes:
            lines += ["", "What happened when your notebook ran:", ""] + [f"- {_text(n)}" for n in g.notes]
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
