"""The instructor's hidden checks (a check module outside the repository, see docs/instructors.md): which
exercises they grade, read from its registry, and the code that runs them in a submission's kernel. The kernel
gets the module's source inside that code, never its path: a sandboxed kernel cannot read the instructor's files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from infracourse.checking import registry
from infracourse.checking.exercise import Exercise


def hidden_exercises(module_path: Path) -> list[Exercise]:
    """The exercises of the hidden checks in MODULE_PATH, from its registry (no learner code runs), marked
    hidden whether or not their declaration says so: the lab has no check cell for them."""
    return [replace(e, hidden=True) for e in registry.exercises_of(registry.load_file(module_path))]


def hidden_check_source(module_path: Path) -> str:
    """Code for the kernel: run every check of MODULE_PATH (its registry), passing each parameter the notebook's
    global of the same name (a missing one fails that check, it does not stop the others)."""
    name = f"infracourse_hidden_{module_path.stem}"
    return f'''
def _infracourse_hidden_checks():
    import inspect, sys, types
    from infracourse.checking import registry
    from infracourse.checking.exercise import expect, outcome
    module = sys.modules[{name!r}] = types.ModuleType({name!r})  # registered while it runs, as an import would
    try:
        exec(compile({module_path.read_text(encoding="utf-8")!r}, {module_path.name!r}, "exec"), vars(module))
    finally:
        del sys.modules[{name!r}]
    scope = globals()
    for name, spec in registry.checks_of(module).items():
        check = getattr(module, name)
        names = list(inspect.signature(inspect.unwrap(check)).parameters)
        missing = [n for n in names if n not in scope]
        if missing:
            message = "the notebook defines no " + ", ".join(missing)
            outcome(spec, lambda: expect(False, message))
        else:
            check(**{{n: scope[n] for n in names}})
_infracourse_hidden_checks()
del _infracourse_hidden_checks
'''
