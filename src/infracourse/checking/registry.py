"""The exercise registry: every exercise is declared once, on its check (@exercise / @async_exercise), and read
from there by the lab generator, the lab contract and the grader. Nothing is parsed out of stored outputs."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from types import ModuleType

from infracourse.checking.exercise import Exercise


def checks_of(module: ModuleType) -> dict[str, Exercise]:
    """{check function name: its exercise} for every check MODULE defines, in the order they are written."""
    found = [(name, f) for name, f in vars(module).items() if isinstance(getattr(f, "spec", None), Exercise)]
    found = [(name, f) for name, f in found if getattr(inspect.unwrap(f), "__module__", None) == module.__name__]
    found.sort(key=lambda item: inspect.unwrap(item[1]).__code__.co_firstlineno)
    return {name: f.spec for name, f in found}


def exercises_of(module: ModuleType) -> tuple[Exercise, ...]:
    return tuple(checks_of(module).values())


def load_file(path: Path) -> ModuleType:
    """A check module outside the package (an instructor's hidden checks), imported from its file."""
    spec = importlib.util.spec_from_file_location(f"infracourse_hidden_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
