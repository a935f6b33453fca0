"""Labs are generated from solutions (the single source of truth) and never edited by hand.

In a solution code cell the learner's part is either a block

    # BEGIN SOLUTION: what the learner should do
    ...reference code...
    # END SOLUTION

or one line ending in `# SOLUTION: what to do`. In the lab a block inside a function becomes
`raise NotImplementedError` under a `# TODO:` comment; a top-level block becomes `NAME = ...` for every
name it assigns (checks report `...` as not done yet); a single line keeps its assignment target
(`x = ...`), or becomes `raise NotImplementedError` for a `return`. Markdown or code cells tagged
`solution-only` are dropped from the lab; cells tagged `lab-only` are kept in the lab only.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat

from infracourse.authoring import lab_spec, notebook_format
from infracourse.paths import repo_root

BEGIN = re.compile(r"^(?P<indent>\s*)#\s*BEGIN SOLUTION(?::\s*(?P<todo>.*))?$")
END = re.compile(r"^\s*#\s*END SOLUTION\s*$")
ONE_LINE = re.compile(r"^(?P<code>.*?)\s*#\s*SOLUTION(?::\s*(?P<todo>.*))?$")
DEFAULT_TODO = "write your code here"


class LabSourceError(ValueError):
    pass


def _assigned_names(block: str) -> list[str]:
    names: list[str] = []
    for node in ast.parse(block).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            if isinstance(target, ast.Name) and target.id not in names:
                names.append(target.id)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
    return names


def _stub_block(indent: str, todo: str, body: list[str]) -> list[str]:
    lines = [f"{indent}# TODO: {todo}"]
    if indent:
        return [*lines, f"{indent}raise NotImplementedError"]
    names = _assigned_names("\n".join(body))
    return [*lines, *(f"{name} = ..." for name in names)] if names else [*lines, "..."]


def _stub_line(line: str) -> str:
    match = ONE_LINE.match(line)
    code, todo = match["code"], match["todo"] or DEFAULT_TODO
    indent = code[: len(code) - len(code.lstrip())]
    stripped = code.strip()
    if stripped.startswith("return"):
        return f"{indent}raise NotImplementedError  # TODO: {todo}"
    assignment = re.match(r"^([\w.\[\]'\"]+(?:\s*:\s*[\w\[\], .]+)?)\s*=(?!=)", stripped)
    if assignment:
        return f"{indent}{assignment.group(1)} = ...  # TODO: {todo}"
    return f"{indent}...  # TODO: {todo}"


def strip_solution(source: str) -> str:
    """The lab version of one code cell's source."""
    out: list[str] = []
    block: list[str] | None = None
    header: re.Match[str] | None = None
    for line in source.splitlines():
        if block is not None:
            if END.match(line):
                out += _stub_block(header["indent"], header["todo"] or DEFAULT_TODO, block)
                block = None
            else:
                block.append(line)
        elif match := BEGIN.match(line):
            block, header = [], match
        elif ONE_LINE.match(line) and not line.lstrip().startswith("#"):
            out.append(_stub_line(line))
        else:
            out.append(line)
    if block is not None:
        raise LabSourceError("a '# BEGIN SOLUTION' has no '# END SOLUTION'")
    return "\n".join(out)


def _has_marker(source: str) -> bool:
    return any(
        BEGIN.match(line) or (ONE_LINE.match(line) and not line.lstrip().startswith("#"))
        for line in source.splitlines()
    )


def lab_from_solution(solution: nbformat.NotebookNode, name: str = "") -> nbformat.NotebookNode:
    lab = nbformat.v4.new_notebook()
    for index, cell in enumerate(solution.cells):
        tags = cell.metadata.get("tags", [])
        if "solution-only" in tags:
            continue
        new = nbformat.from_dict(dict(cell))
        if cell.cell_type == "code":
            new.outputs, new.execution_count = [], None
            if _has_marker(cell.source):
                new.source = strip_solution(cell.source)
                try:
                    ast.parse(new.source)
                except SyntaxError as exc:
                    raise LabSourceError(f"{name} cell {index}: the lab version does not parse ({exc})") from exc
        lab.cells.append(new)
    return notebook_format.normalise(lab)


def lab_path_for(solution_path: Path) -> Path:
    return solution_path.parent.parent / "labs" / solution_path.name


def solution_paths(root: Path | None = None) -> list[Path]:
    return sorted(((root or repo_root()) / "solutions").glob("[0-9][0-9]_*.ipynb"))


def render(solution_path: Path) -> str:
    return notebook_format.dumps(lab_from_solution(notebook_format.read(solution_path), solution_path.name))


def build_all(root: Path | None = None) -> list[Path]:
    written = []
    for path in solution_paths(root):
        target = lab_path_for(path)
        target.parent.mkdir(exist_ok=True)
        target.write_text(render(path), encoding="utf-8")
        written.append(target)
    return written


def registry_problems(root: Path | None = None) -> list[str]:
    """Every place where a solution disagrees with its check module's exercise registry."""
    return [problem for path in solution_paths(root) for problem in lab_spec.problems(path)]


def stale_labs(root: Path | None = None) -> list[Path]:
    """Labs whose file differs from what build_all() would write (or that are missing / orphaned)."""
    root = root or repo_root()
    expected = {lab_path_for(p): render(p) for p in solution_paths(root)}
    stale = [p for p, text in expected.items()
             if not p.exists() or not notebook_format.same_apart_from_python_patch(p.read_text(encoding="utf-8"), text)]
    orphans = [p for p in sorted((root / "labs").glob("*.ipynb")) if p not in expected]
    return stale + orphans
