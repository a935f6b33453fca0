"""What every stored notebook must be, whoever saved it: clean to open in JupyterLab, and free of the build
machine's paths (a reader sees the page, not where it was made)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
import pytest
from ipykernel.ipkernel import IPythonKernel

REPO = Path(__file__).resolve().parents[2]
STORED = sorted(p for folder in ("notebooks", "solutions", "labs") for p in (REPO / folder).glob("*.ipynb"))


@pytest.mark.parametrize("path", STORED, ids=[f"{p.parent.name}/{p.name}" for p in STORED])
def test_language_info_is_all_the_kernel_reports(path: Path) -> None:
    info = nbformat.read(path, as_version=4).metadata.language_info
    assert set(info) == set(IPythonKernel.language_info)


@pytest.mark.parametrize("path", STORED, ids=[f"{p.parent.name}/{p.name}" for p in STORED])
def test_outputs_show_no_path_of_the_machine_that_ran_them(path: Path) -> None:
    outputs = json.dumps([c.get("outputs", []) for c in nbformat.read(path, as_version=4).cells])
    for local in {str(REPO), os.path.expanduser("~")} - {"/"}:
        shown = re.search(re.escape(local) + r"(?![\w.-])", outputs)  # a whole path component: /rootfs is not /root
        assert shown is None, f"a stored output shows {local}: catch the error or print less"
