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
import subprocess
import symtable
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from infracourse.paths import repo_root

MARKER = re.compile(r"^# saved to (?P<module>infracourse\.lessons\.[a-z_][a-z0-9_]*)\s*$")


class LessonCodeError(ValueError):
    pass


def module_path(root: Path, module: str) -> Path:
    return root / "src" / Path(*module.split(".")).with_suffix(".py")


@dataclass(frozen=True)
class GeneratedModule:
    module: str  # dotted name, e.g. infracourse.lessons.example_app
    notebook: Path
    root: Path

    @property
    def path(self) -> Path:
        return module_path(self.root, self.module)

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


def _sorted_by_ruff(text: str, path: Path) -> str:
    """TEXT with its imports sorted and wrapped as the project's ruff does (its own config, found from PATH)."""
    ruff = Path(sys.executable).with_name("ruff")
    done = subprocess.run([str(ruff), "check", "--select", "I", "--fix", "--quiet", "--exit-zero",
                           "--stdin-filename", str(path), "-"], input=text, capture_output=True, text=True, check=True)
    return done.stdout


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
    imports = ["from __future__ import annotations"] + [
        (f"import {module}" if member is None else f"from {module} import {member}")
        + (f" as {name}" if name != (member or module) else "")
        for name, (module, member) in sorted(available.items()) if name in needed]
    banner = f'"""Generated from {notebook.relative_to(root).as_posix()} by `course labs build`; do not edit."""'
    return _sorted_by_ruff(f"{banner}\n\n" + "\n".join(imports) + f"\n\n\n{body}\n", module_path(root, module))


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
