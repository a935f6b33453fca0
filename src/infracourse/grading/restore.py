"""Put a submission's check cells back as the generated lab has them, so editing or deleting a check cannot
change its verdict, and the harness those cells call back as the grader found it; say which exercises were
affected."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

from infracourse.authoring.lab_spec import CheckCell, LabSpec, same_source


def _heading_before(nb: nbformat.NotebookNode, index: int) -> str:
    for cell in reversed(nb.cells[:index]):
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


def describe_cell(nb: nbformat.NotebookNode, index: int) -> str:
    """'cell 7 (under "Exercise 2 · ...")': how the feedback points a student at a cell."""
    heading = _heading_before(nb, index)
    return f"cell {index + 1}" + (f' (under "{heading}")' if heading else "")


def restore_check_cells(nb: nbformat.NotebookNode, spec: LabSpec) -> tuple[dict[int, CheckCell], set[str], list[str]]:
    """Put every check cell of the lab back as generated, in place.

    Returns {cell index: check cell}, the exercises whose check cell was edited or deleted, and notes.
    """
    notes, flagged = [], set()
    lab_ids = [c.get("id") for c in nbformat.read(spec.path, as_version=4).cells]
    for check in spec.check_cells:
        label = " and ".join(f"exercise {n}" for n in check.exercises)
        by_id = next((c for c in nb.cells if c.get("id") == check.cell_id), None)
        if by_id is not None and by_id.cell_type == "code" and same_source(by_id.source, check.source):
            continue
        by_source = next((c for c in nb.cells if c.cell_type == "code" and same_source(c.source, check.source)), None)
        cell = by_id if by_id is not None else by_source
        if cell is None:  # deleted: back after the cell that precedes it in the lab, else at the end
            previous = lab_ids[: lab_ids.index(check.cell_id)][-1:]
            anchor = next((i for i, c in enumerate(nb.cells) if c.get("id") in previous), len(nb.cells) - 1)
            cell = nbformat.v4.new_code_cell()
            nb.cells.insert(anchor + 1, cell)
            notes.append(f"The check cell of {label} was deleted; the grader put the original back.")
            flagged.update(check.exercises)
        elif by_id is not None:
            notes.append(f"The check cell of {label} was edited; the grader ran the original check.")
            flagged.update(check.exercises)
        cell.update(cell_type="code", source=check.source, id=check.cell_id)
        cell.setdefault("outputs", [])
        cell.setdefault("execution_count", None)
    indices = {i: c for i, cell in enumerate(nb.cells) for c in spec.check_cells if cell.get("id") == c.cell_id}
    return indices, flagged, notes


# The grader's harness guard, run in the submission's kernel: first before any learner cell (to record the
# untouched harness), then before every check cell (to put it back). It reaches `sys` through the import
# machinery's own globals because the import statement itself may have been replaced.
REPAIRS_MARKER = "infracourse-harness-repairs:"
_TRANSFORMERS = ("input_transformers_cleanup", "input_transformers_post", "ast_transformers")
_HARNESS = '''
def _infracourse_harness(repair):
    sys = next(c for c in ().__class__.__mro__[-1].__subclasses__()
               if c.__name__ == "BuiltinImporter").find_spec.__func__.__globals__["sys"]
    builtins, ip, repairs = sys.modules["builtins"], get_ipython(), []
    saved = getattr(sys, "_infracourse_pristine", None)
    if saved is None:
        if repair:
            repairs.append("the grader's record of the untouched harness was removed")
        saved = sys._infracourse_pristine = {{
            "builtins": {{n: getattr(builtins, n) for n in ("__import__", "print", "open")}},
            "streams": (sys.stdout, sys.stderr), "meta_path": list(sys.meta_path),
            "path_hooks": list(sys.path_hooks), "events": {{e: list(c) for e, c in ip.events.callbacks.items()}},
            "transformers": {{n: list(getattr(ip, n)) for n in {transformers!r}}}, "modules": {{}}}}
    for name, original in saved["builtins"].items():
        if getattr(builtins, name) is not original:
            setattr(builtins, name, original)
            repairs.append(f"builtins.{{name}} was replaced")
    if (sys.stdout, sys.stderr) != saved["streams"]:
        sys.stdout, sys.stderr = saved["streams"]
        repairs.append("sys.stdout or sys.stderr was replaced")

    def prune(where, items, kept):
        added = [i for i in items if not any(i is k for k in kept)]
        for item in added:
            items.remove(item)
        if added:
            repairs.append(f"{{len(added)}} {{where}} added")

    prune("sys.meta_path finder(s)", sys.meta_path, saved["meta_path"])
    prune("sys.path_hooks hook(s)", sys.path_hooks, saved["path_hooks"])
    for event, callbacks in ip.events.callbacks.items():
        prune(f"IPython {{event}} callback(s)", callbacks, saved["events"].get(event, []))
    for name, kept in saved["transformers"].items():
        prune(f"IPython {{name}}", getattr(ip, name), kept)
    untouched = set()
    for name, (module, attrs, classes) in saved["modules"].items():
        if sys.modules.get(name) is not module:
            repairs.append(f"sys.modules[{{name!r}}] was replaced")
            continue
        changed = [k for k in set(attrs) | set(vars(module)) if vars(module).get(k, attrs) is not attrs.get(k)
                   and getattr(vars(module).get(k), "__name__", None) != f"{{name}}.{{k}}"]  # a submodule imported
        changed += [f"{{c}}.{{k}}" for c, before in classes.items() for k in set(before) | set(vars(attrs[c]))
                    if vars(attrs[c]).get(k, before) is not before.get(k)]
        if changed:
            repairs.append(f"{{name}}: {{', '.join(sorted(changed)[:5])}} changed")
        else:
            untouched.add(name)
    # the checks and the exercise API always come fresh from the package's files; any other course module stays
    # as it was recorded when untouched, so the objects the learner made (a Response, a protobuf message) are of
    # the classes the checks compare with
    fresh = ("infracourse.checking", "infracourse.checks")
    for name in [n for n in sys.modules if n == "infracourse" or n.startswith("infracourse.")]:
        if name not in untouched or name.startswith(fresh):
            del sys.modules[name]
    sys.path_importer_cache.clear()
    import importlib.util

    if "infracourse" not in sys.modules:
        spec = importlib.util.spec_from_file_location("infracourse", {package_init!r},
                                                      submodule_search_locations=[{package_dir!r}])
        sys.modules["infracourse"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["infracourse"])
    return sys, repairs


def _infracourse_snapshot(sys):
    saved = sys._infracourse_pristine["modules"]
    saved.clear()
    for name, module in list(sys.modules.items()):
        if name == "infracourse" or name.startswith("infracourse."):
            attrs = dict(vars(module))
            saved[name] = (module, attrs, {{k: dict(vars(v)) for k, v in attrs.items()
                                          if isinstance(v, type) and v.__module__ == name}})


_infracourse_sys, _infracourse_repairs = _infracourse_harness({repair})
{check_imports}
_infracourse_snapshot(_infracourse_sys)
print("\\n{marker}" + __import__("json").dumps(_infracourse_repairs))
del _infracourse_harness, _infracourse_snapshot, _infracourse_sys, _infracourse_repairs
'''


def harness_source(check_imports: str, repair: bool) -> str:
    """Kernel code that records (REPAIR False) or puts back (True) the harness, then runs CHECK_IMPORTS from the
    package's own files; it prints the repairs it made as its last line (see repairs_made)."""
    import infracourse

    package = Path(infracourse.__file__)
    return _HARNESS.format(transformers=_TRANSFORMERS, package_init=str(package), package_dir=str(package.parent),
                           repair=repair, check_imports=check_imports, marker=REPAIRS_MARKER)


def repairs_made(printed: str) -> list[str] | None:
    """The repairs harness_source printed; None when it did not get that far (it failed, or its output was lost)."""
    for line in reversed(printed.splitlines()):
        if line.startswith(REPAIRS_MARKER):
            try:
                value = json.loads(line[len(REPAIRS_MARKER):])
            except ValueError:
                return None
            return [str(v) for v in value] if isinstance(value, list) else None
    return None
