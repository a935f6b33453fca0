"""The course as it is on disk: chapters by number, each with its lessons, labs and solutions, their titles
and the services they use. Globbed on every call, so the site and the grader follow the course as it grows."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from infracourse.authoring import notebook_format
from infracourse.config import SERVICE_NAMES
from infracourse.paths import repo_root

FOLDERS = {"lesson": "notebooks", "lab": "labs", "solution": "solutions"}
PATTERN = "[0-9][0-9]_*.ipynb"
SERVICE_LABELS = {
    "postgres": "PostgreSQL", "pgbouncer": "PgBouncer", "postgres_replica": "PostgreSQL read replica",
    "redis": "Redis", "kafka": "Kafka", "rabbitmq": "RabbitMQ",
    "nats": "NATS", "prometheus": "Prometheus", "alertmanager": "Alertmanager", "blackbox": "blackbox exporter",
}
_NUMBER_PREFIX = re.compile(r"^\d\d\s*·\s*")


@dataclass(frozen=True)
class Notebook:
    path: Path
    kind: str  # lesson, lab or solution
    title: str  # the H1, e.g. "00 · Start here"
    hook: str  # the first paragraph under the H1
    services: tuple[str, ...]
    slug: str = ""  # the namespace base its Setup cell passes to notebook.setup ("" if none)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def number(self) -> str:
        return self.name[:2]

    @property
    def docname(self) -> str:
        """Path without suffix relative to the repository root: the Sphinx document name."""
        return f"{FOLDERS[self.kind]}/{self.name}"

    @property
    def short_title(self) -> str:
        """The title without its "NN · " prefix."""
        return _NUMBER_PREFIX.sub("", self.title)


@dataclass
class Chapter:
    number: str
    lessons: list[Notebook] = field(default_factory=list)
    labs: list[Notebook] = field(default_factory=list)
    solutions: list[Notebook] = field(default_factory=list)

    @property
    def title(self) -> str:
        first = (self.lessons or self.labs or self.solutions)[0]
        return first.short_title

    @property
    def services(self) -> tuple[str, ...]:
        used = {s for nb in self.lessons + self.labs + self.solutions for s in nb.services}
        return tuple(s for s in SERVICE_NAMES if s in used)

    def solution_for(self, lab: Notebook) -> Notebook | None:
        return next((s for s in self.solutions if s.name == lab.name), None)


def _title_and_hook(nb: nbformat.NotebookNode, fallback: str) -> tuple[str, str]:
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.splitlines()
        for index, line in enumerate(lines):
            if line.startswith("# "):
                rest = "\n".join(lines[index + 1 :]).strip()
                hook = rest.split("\n\n")[0].replace("\n", " ").strip() if rest else ""
                return line[2:].strip(), hook if not hook.startswith(("**", "#", "-", ">")) else ""
    return fallback, ""


def _setup_calls(nb: nbformat.NotebookNode) -> tuple[tuple[str, ...], str]:
    """Services named in notebook.setup(slug, ...) / notebook.require(...) calls of the code cells, and the
    slug of the setup call."""
    used: set[str] = set()
    slug = ""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython magics or a lab stub: nothing to learn from this cell
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if not (isinstance(node.func.value, ast.Name) and node.func.value.id == "notebook"):
                continue
            names = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if node.func.attr == "setup" and names:
                slug = slug or names[0]
                names = names[1:]
            if node.func.attr in ("setup", "require"):
                used |= {n for n in names if n in SERVICE_NAMES}
    return tuple(s for s in SERVICE_NAMES if s in used), slug


def read_notebook(path: Path, kind: str) -> Notebook:
    nb = notebook_format.read(path)
    title, hook = _title_and_hook(nb, path.stem)
    services, slug = _setup_calls(nb)
    return Notebook(path=path, kind=kind, title=title, hook=hook, services=services, slug=slug)


def chapters(root: Path | None = None) -> list[Chapter]:
    """Every chapter that has at least one lesson, lab or solution, in course order."""
    root = root or repo_root()
    by_number: dict[str, Chapter] = {}
    for kind, folder in FOLDERS.items():
        for path in sorted((root / folder).glob(PATTERN)):
            notebook = read_notebook(path, kind)
            chapter = by_number.setdefault(notebook.number, Chapter(notebook.number))
            getattr(chapter, f"{kind}s").append(notebook)
    return [by_number[n] for n in sorted(by_number)]


def labs(root: Path | None = None) -> list[Path]:
    """Every generated lab notebook, in course order."""
    return sorted(((root or repo_root()) / FOLDERS["lab"]).glob(PATTERN))
