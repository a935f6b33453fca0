"""lesson_code: package modules generated from the lesson cells marked `# saved to infracourse.lessons.X`."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from infracourse.authoring import lesson_code

MARK = "# saved to infracourse.lessons.tiny\n"


def _lesson(root: Path, *cells: nbformat.NotebookNode) -> Path:
    (root / "notebooks").mkdir(exist_ok=True)
    (root / "src" / "infracourse" / "lessons").mkdir(parents=True, exist_ok=True)
    path = root / "notebooks" / "01_tiny.ipynb"
    nbformat.write(new_notebook(cells=list(cells)), path)
    return path


def _setup() -> nbformat.NotebookNode:
    return new_code_cell("import json\nimport random\nfrom collections import Counter as Tally\n"
                         "from pathlib import Path\n\nns = 'lesson-only'\nrng = random.Random(1)")


def test_marked_cells_become_the_module_after_banner_and_used_imports(tmp_path):
    _lesson(tmp_path, _setup(),
            new_markdown_cell(MARK + "not code: ignored"),
            new_code_cell(MARK + "def dump(data: dict) -> str:\n    return json.dumps(data, sort_keys=True)"),
            new_code_cell("print(dump({'shown': 'in the lesson only'}))"),
            new_code_cell(MARK + "def tally(words: list[str]) -> Tally:\n    return Tally(words)"))
    (generated,) = lesson_code.generated_modules(tmp_path)
    assert generated.module == "infracourse.lessons.tiny"
    assert generated.path == tmp_path / "src" / "infracourse" / "lessons" / "tiny.py"
    assert generated.render() == (
        '"""Generated from notebooks/01_tiny.ipynb by `course labs build`; do not edit."""\n\n'
        "from __future__ import annotations\n\n"
        "import json\n"
        "from collections import Counter as Tally\n\n\n"
        "def dump(data: dict) -> str:\n    return json.dumps(data, sort_keys=True)\n\n\n"
        "def tally(words: list[str]) -> Tally:\n    return Tally(words)\n")
    namespace: dict[str, object] = {}
    exec(generated.render(), namespace)  # the module runs on its own, without the notebook's globals
    assert namespace["tally"](["a", "b", "a"]) == {"a": 2, "b": 1}


def test_written_module_is_fresh_until_edited(tmp_path):
    _lesson(tmp_path, _setup(), new_code_cell(MARK + "LIMIT = 3"))
    (path,) = lesson_code.write_all(tmp_path)
    assert lesson_code.stale(tmp_path) == []
    path.write_text(path.read_text().replace("LIMIT = 3", "LIMIT = 4"))
    (stale,) = lesson_code.stale(tmp_path)
    assert str(stale) == "src/infracourse/lessons/tiny.py (from notebooks/01_tiny.ipynb)"


def test_a_name_only_the_notebook_defines_is_refused(tmp_path):
    notebook = _lesson(tmp_path, _setup(), new_code_cell(MARK + "def key(suffix: str) -> str:\n"
                                                                "    return f'{ns}:{suffix}'"))
    with pytest.raises(lesson_code.LessonCodeError, match="use ns, which no marked cell defines"):
        lesson_code.render(notebook, "infracourse.lessons.tiny", tmp_path)


def test_notebooks_without_marked_cells_generate_nothing(tmp_path):
    _lesson(tmp_path, _setup(), new_code_cell("# saved to somewhere.else\nx = 1"))
    assert lesson_code.generated_modules(tmp_path) == []


def test_the_course_modules_match_their_lessons():
    assert {g.module for g in lesson_code.generated_modules()} >= {
        "infracourse.lessons.example_app", "infracourse.lessons.grpc_handlers"}
    assert lesson_code.stale() == []
