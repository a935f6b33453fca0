"""The package's tree is its architecture, and imports follow it:

- the top level (config, notebook, namespace, errors, paths, waiting: what a Setup cell uses) probes services/
  and resets namespaces with clients/, and never imports lessons, the checks, the harness or the grader;
- services/ and clients/ never import lessons/; lessons/ (props lessons show) never import checking/ or grading/;
- checking/ (the exercise API and the harness) never imports checks/, authoring/ or grading/;
- checks/labNN build on checking/ only: never on each other, authoring/ or grading/;
- authoring/ never imports grading/; classroom/ (a class on shared services) builds on grading/ and the rest,
  and nothing but cli imports it; only cli imports everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "infracourse"
TOP = {"config", "notebook", "namespace", "errors", "paths", "waiting"}
FORBIDDEN = {
    "top": {"lessons", "checking", "checks", "authoring", "grading", "classroom", "cli"},
    "services": {"clients", "lessons", "checking", "checks", "authoring", "grading", "classroom", "cli"},
    "clients": {"lessons", "checking", "checks", "authoring", "grading", "classroom", "cli"},
    "lessons": {"checking", "checks", "authoring", "grading", "classroom", "cli"},
    "checking": {"checks", "authoring", "grading", "classroom", "cli"},
    "checks": {"checks", "authoring", "grading", "classroom", "cli"},
    "authoring": {"grading", "classroom", "cli"},
    "grading": {"classroom", "cli"},
    "classroom": {"cli"},
}


def _part(module: str) -> str:
    """'infracourse.checking.time_limit' -> 'checking'; top-level modules -> 'top'."""
    first = module.split(".")[1] if module.count(".") else ""
    return "top" if first in TOP else first


def imports_of(path: Path) -> set[str]:
    """The infracourse modules PATH imports (absolute imports only: the package uses no relative ones)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            found.add("infracourse.<relative>")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("infracourse"):
            is_package = node.module.count(".") <= 1  # `from infracourse.checks import lab02` names a module
            found.update(f"{node.module}.{a.name}" for a in node.names) if is_package else found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("infracourse"))
    return found


def violations(package: Path) -> list[str]:
    """'<module> imports <module>' for every import that goes against the direction above."""
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).with_suffix("")
        if relative.parts[0] == "grpc_generated":
            continue
        module = ".".join(("infracourse", *relative.parts)).removesuffix(".__init__")
        part = _part(module) if len(relative.parts) > 1 else ("cli" if relative.parts[0] == "cli" else "top")
        for imported in imports_of(path):
            if imported.endswith("<relative>"):
                found.append(f"{module} uses a relative import: write infracourse.<part>.<module>")
                continue
            target = _part(imported)
            if target in FORBIDDEN.get(part, set()):
                found.append(f"{module} imports {imported}")
    return found


def test_every_import_goes_down_the_tree() -> None:
    assert violations(PACKAGE) == []


def test_a_forbidden_import_is_reported(tmp_path: Path) -> None:
    for part in ("lessons", "checking", "checks"):
        (tmp_path / part).mkdir()
    (tmp_path / "lessons" / "props.py").write_text("from infracourse.checking import expect\n")
    (tmp_path / "checks" / "lab01.py").write_text("from infracourse.checks import lab02\nimport infracourse.grading\n")
    (tmp_path / "config.py").write_text("from infracourse.lessons import props\n")
    (tmp_path / "checking" / "exercise.py").write_text("from . import status\n")
    assert sorted(violations(tmp_path)) == [
        "infracourse.checking.exercise uses a relative import: write infracourse.<part>.<module>",
        "infracourse.checks.lab01 imports infracourse.checks.lab02",
        "infracourse.checks.lab01 imports infracourse.grading",
        "infracourse.config imports infracourse.lessons.props",
        "infracourse.lessons.props imports infracourse.checking.expect",
    ]


def test_no_module_outside_checks_is_over_300_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if "checks" not in p.parts and "grpc_generated" not in p.parts
            and (n := len(p.read_text(encoding="utf-8").splitlines())) > 300}
    assert long == {}
