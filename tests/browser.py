"""Headless Chromium for the browser tests (the site's pages and JupyterLab): the system's chromium and
chromedriver, installed on demand; a throw-away profile; no traffic of its own to the outside."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from infracourse.services import system_packages

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--window-size=1280,900",
)


def chrome(profile: Path):
    """A Chrome webdriver with PROFILE as its user data dir; fails the test clearly when the tools are missing."""
    missing = system_packages.ensure_test_tools()
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: install with `apt-get install "
                    f"{' '.join(system_packages.TEST_TOOL_PACKAGES)}` (make test does it as root or with sudo)")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    return driver
