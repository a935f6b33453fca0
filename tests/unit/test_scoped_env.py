"""scoped_env: the variables a configuration lesson or check sets are gone afterwards, and hidden ones return."""

from __future__ import annotations

import os

import pytest

from infracourse.lessons.scoped_env import scoped_env


def test_sets_hides_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO16_KEEP", "mine")
    monkeypatch.setenv("DEMO16_GONE", "also mine")
    with scoped_env("DEMO16_", DEMO16_NEW="set", DEMO16_GONE=None):
        assert {k: v for k, v in os.environ.items() if k.startswith("DEMO16_")} == {"DEMO16_NEW": "set"}
        os.environ["DEMO16_LEAK"] = "written by the block"
    assert {k: v for k, v in os.environ.items() if k.startswith("DEMO16_")} == {
        "DEMO16_KEEP": "mine", "DEMO16_GONE": "also mine"}


def test_restores_after_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEMO16_X", raising=False)
    with pytest.raises(RuntimeError), scoped_env(DEMO16_X="1"):
        raise RuntimeError
    assert "DEMO16_X" not in os.environ
