"""The shared Prometheus configuration is valid and its alert rules pass their promtool unit tests."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from infracourse.paths import services_config

PROMETHEUS = services_config() / "prometheus"
pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool comes with Prometheus")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, cwd=PROMETHEUS)


def test_config_is_valid():
    result = _promtool("check", "config", "--syntax-only", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_are_valid():
    files = sorted(str(p.relative_to(PROMETHEUS)) for p in (PROMETHEUS / "rules").glob("*.yml"))
    assert files, "no rule files"
    result = _promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass():
    files = sorted(str(p.relative_to(PROMETHEUS)) for p in (PROMETHEUS / "tests").glob("*.yml"))
    assert files, "no rule tests"
    result = _promtool("test", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr
