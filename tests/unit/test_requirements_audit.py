"""The requirements audit stays true: every lab's wrong-answer module (tests/wrong_answers/test_labNN.py) has a
REQUIREMENTS mapping {exercise number: {requirement sentence: test function(s) that break only it}}. Each
sentence must still be in that exercise's text in the solution notebook (quoted verbatim, or an exact part of
it), each named test must exist, and every exercise of the lab's check module must be listed. Edit an
exercise's text and this test tells you which requirement's quote and wrong-answer test to revisit.

Read statically (ast), so this stays fast and imports no service client.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from infracourse.authoring import catalog, lab_spec, notebook_format
from infracourse.checking import registry

REPO = Path(__file__).resolve().parents[2]
WRONG_ANSWERS = REPO / "tests" / "wrong_answers"


def _flat(text: str) -> str:
    """Whitespace-insensitive: a quote may wrap at other places than the notebook's markdown does."""
    return re.sub(r"\s+", " ", text).strip()


def exercise_texts(solution: Path) -> dict[str, str]:
    """{exercise number: the markdown of its section}: from its heading to the next heading of any kind."""
    texts: dict[str, list[str]] = {}
    current = None
    for cell in notebook_format.read(solution).cells:
        if cell.cell_type != "markdown":
            continue
        heading = lab_spec.HEADING.search(cell.source)
        if heading:
            current = heading["number"]
            texts[current] = [cell.source]
        elif cell.source.lstrip().startswith("#"):
            current = None
        elif current is not None:
            texts[current].append(cell.source)
    return {number: _flat("\n\n".join(parts)) for number, parts in texts.items()}


def _module_facts(path: Path) -> tuple[dict | None, set[str]]:
    """The literal REQUIREMENTS of a test module (None if it has none) and its test function names."""
    tree = ast.parse(path.read_text())
    requirements = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "REQUIREMENTS"
                                                for t in node.targets):
            requirements = ast.literal_eval(node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                and node.target.id == "REQUIREMENTS":
            requirements = ast.literal_eval(node.value)
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    return requirements, functions


def _labs() -> list[Path]:
    return [path for path in catalog.labs(REPO) if (WRONG_ANSWERS / f"test_lab{path.name[:2]}.py").exists()]


@pytest.mark.parametrize("lab", _labs(), ids=lambda p: p.stem)
def test_every_stated_requirement_names_its_wrong_answer_test(lab: Path) -> None:
    number = lab.name[:2]
    requirements, functions = _module_facts(WRONG_ANSWERS / f"test_lab{number}.py")
    assert requirements, f"tests/wrong_answers/test_lab{number}.py has no REQUIREMENTS mapping"
    texts = exercise_texts(REPO / catalog.FOLDERS["solution"] / lab.name)
    declared = {e.number for e in registry.exercises_of(importlib.import_module(f"infracourse.checks.lab{number}"))
                if e.points and e.number in texts}
    problems = [f"exercise {n} is not audited (no entry in REQUIREMENTS)" for n in sorted(declared - set(requirements))]
    for exercise, sentences in requirements.items():
        text = texts.get(exercise)
        if text is None:
            problems.append(f"REQUIREMENTS names exercise {exercise}, which the solution has no heading for")
            continue
        for sentence, tests in sentences.items():
            if _flat(sentence) not in text:
                problems.append(f"exercise {exercise}: {sentence!r} is no longer in its text")
            for test in (tests,) if isinstance(tests, str) else tests:
                if test not in functions:
                    problems.append(f"exercise {exercise}: {sentence!r} names {test}, which does not exist")
    assert not problems, f"test_lab{number}.py REQUIREMENTS:\n" + "\n".join(problems)


def test_exercise_texts_run_from_heading_to_the_next_heading(tmp_path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("## Exercise 1 · One\n\nWrite `f(x)`:\nreturn x."),
        nbformat.v4.new_code_cell("def f(x):\n    return x"),
        nbformat.v4.new_markdown_cell("*Hint:* read the lesson."),
        nbformat.v4.new_markdown_cell("## Clean up"),
        nbformat.v4.new_markdown_cell("Not part of any exercise."),
    ])
    path = tmp_path / "00_x.ipynb"
    nbformat.write(nb, path)
    assert exercise_texts(path) == {"1": "## Exercise 1 · One Write `f(x)`: return x. *Hint:* read the lesson."}
