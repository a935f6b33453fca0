"""Lesson code is written once: package modules generated from marked lesson cells (d2l's `#@save`, made explicit).

A code cell of `notebooks/` whose first line is

    # saved to infracourse.lessons.example_app

is copied, minus that line, into `src/infracourse/lessons/example_app.py`, in notebook order, after a banner
and the imports the copied code uses. Those imports are taken from the notebook's own import statements (its
Setup cell), so the lesson imports once and the module gets exactly what it needs. A marked cell imports
nothing itself, and may use no name of the notebook that no marked cell defines (`ns`, `conn`): the module
would fail where the lesson worked. `course labs build` writes the modules; `course labs check` fails when one
differs from its lesson.
"""

from __future__ import annotations

import ast
import builtins
import re
import symtable
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from infracourse.paths import repo_root

MARKER = re.compile(r"^# saved to (?P<module>infracourse\.lessons\.[a-z_][a-z0-9_]*)\s*$")
LINE_LENGTH = 120  # the project's ruff line length: a longer from-import is wrapped as ruff would


class LessonCodeError(ValueError):
    pass


@dataclass(frozen=True)
class GeneratedModule:
    module: str  # dotted name, e.g. infracourse.lessons.example_app
    notebook: Path
    root: Path

    @property
    def path(self) -> Path:
        return self.root / "src" / Path(*self.module.split(".")).with_suffix(".py")

    def render(self) -> str:
        return render(self.notebook, self.module, self.root)

    def __str__(self) -> str:
        return f"{self.path.relative_to(self.root)} (from {self.notebook.relative_to(self.root)})"


def _code_cells(notebook: Path) -> list[str]:
    cells = nbformat.read(notebook, as_version=4).cells
    return [cell.source for cell in cells if cell.cell_type == "code"]


def _marked(source: str) -> str | None:
    match = MARKER.match(source.split("\n", 1)[0])
    return match["module"] if match else None


def _imports(sources: list[str]) -> dict[str, tuple[str, str | None]]:
    """Every name the notebook's top-level imports bind -> (module, imported name or None for `import x`)."""
    bound: dict[str, tuple[str, str | None]] = {}
    for source in sources:
        for node in ast.parse(source).body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    bound.setdefault(alias.asname or alias.name, (alias.name, None))
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    bound.setdefault(alias.asname or alias.name, (node.module, alias.name))
    return bound


def _globals_used(body: str) -> set[str]:
    """Names the code reads from module scope without defining them there (symtable resolves the scopes)."""
    top = symtable.symtable(body, "<lesson cells>", "exec")
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
    used, tables = set(), [top]
    while tables:
        table = tables.pop()
        tables.extend(table.get_children())
        used |= {s.get_name() for s in table.get_symbols()
                 if s.is_referenced() and (table is top or s.is_global())}
    return used - defined - set(dir(builtins))


def _section(module: str) -> int:
    top = module.split(".")[0]
    if top == "__future__":
        return 0
    if top in sys.stdlib_module_names:
        return 1
    return 3 if top == "infracourse" else 2


def _member_key(member: str) -> tuple[int, str]:
    """ruff's isort order (order-by-type): CONSTANTS, then Classes, then functions, each case-insensitively."""
    name = member.split(" as ")[0]
    kind = 0 if len(name) > 1 and name.isupper() else 1 if name[0].isupper() else 2
    return kind, name.lower()


def _import_block(used: dict[str, tuple[str, str | None]]) -> str:
    plain: set[tuple[int, str]] = set()
    members: dict[str, set[str]] = {}
    for bound_as, (module, name) in used.items():
        if name is None:
            plain.add((_section(module), module if bound_as == module else f"{module} as {bound_as}"))
        else:
            members.setdefault(module, set()).add(name if bound_as == name else f"{name} as {bound_as}")
    sections: dict[int, list[str]] = {}
    for section, module in sorted(plain, key=lambda item: (item[0], item[1].lower())):
        sections.setdefault(section, []).append(f"import {module}")
    for module in sorted(members, key=lambda m: (_section(m), m.lower())):
        names = sorted(members[module], key=_member_key)
        line = f"from {module} import {', '.join(names)}"
        if len(line) > LINE_LENGTH:
            line = f"from {module} import (\n" + "".join(f"    {name},\n" for name in names) + ")"
        sections.setdefault(_section(module), []).append(line)
    return "\n\n".join("\n".join(lines) for _, lines in sorted(sections.items()))


def render(notebook: Path, module: str, root: Path | None = None) -> str:
    """The text of MODULE as NOTEBOOK's cells marked for it give it."""
    root = root or repo_root()
    sources = _code_cells(notebook)
    bodies = [source.split("\n", 1)[1].strip("\n") if "\n" in source else "" for source in sources
              if _marked(source) == module]
    if not bodies:
        raise LessonCodeError(f"{notebook.name} has no cell marked `# saved to {module}`")
    body = "\n\n\n".join(b for b in bodies if b)
    tree = ast.parse(body)
    if any(isinstance(node, ast.Import | ast.ImportFrom) for node in tree.body):
        raise LessonCodeError(f"{notebook.name}: a cell marked for {module} imports; import in the Setup cell")
    available = _imports(sources)
    needed = _globals_used(body)
    missing = sorted(needed - available.keys())
    if missing:
        raise LessonCodeError(f"{notebook.name}: the cells marked for {module} use {', '.join(missing)}, "
                              "which no marked cell defines and no import provides")
    imports = _import_block({"annotations": ("__future__", "annotations"),
                             **{name: available[name] for name in needed}})
    banner = f'"""Generated from {notebook.relative_to(root).as_posix()} by `course labs build`; do not edit."""'
    starts_with_definition = isinstance(tree.body[0], ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    gap = "\n\n\n" if starts_with_definition else "\n\n"  # ruff's isort: two blank lines before a def or class
    return f"{banner}\n\n{imports}{gap}{body}\n"


def generated_modules(root: Path | None = None) -> list[GeneratedModule]:
    """Every module some lesson generates, in module order; one module comes from exactly one notebook."""
    root = root or repo_root()
    found: dict[str, GeneratedModule] = {}
    for notebook in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for module in dict.fromkeys(m for m in map(_marked, _code_cells(notebook)) if m):
            if module in found:
                raise LessonCodeError(f"{module} is marked in both {found[module].notebook.name} and {notebook.name}")
            found[module] = GeneratedModule(module, notebook, root)
    return [found[module] for module in sorted(found)]


def write_all(root: Path | None = None) -> list[Path]:
    """Write every generated module; return the paths written."""
    written = []
    for generated in generated_modules(root):
        generated.path.write_text(generated.render())
        written.append(generated.path)
    return written


def stale(root: Path | None = None) -> list[GeneratedModule]:
    """The generated modules whose file differs from (or lacks) what their lesson's marked cells give."""
    return [g for g in generated_modules(root)
            if not g.path.exists() or g.path.read_text() != g.render()]
