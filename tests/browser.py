"""Headless Chromium for the browser tests (the site's pages and JupyterLab): the system's chromium and
chromedriver, installed on demand; a throw-away profile; no traffic of its own to the outside."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
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


AXE_CORE = "axe-core@4.10.3"  # the accessibility engine the site's pages are audited with
NPM_FOLDER = Path(__file__).resolve().parents[1] / ".venv" / "npm"  # git-ignored, beside the Python packages


def axe_script() -> str:
    """axe-core's browser bundle, installed with npm into the venv the first time (pinned, no lock file)."""
    bundle = NPM_FOLDER / "node_modules" / "axe-core" / "axe.min.js"
    NPM_FOLDER.mkdir(parents=True, exist_ok=True)
    with open(NPM_FOLDER / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist workers share the folder
        if not bundle.exists():
            if shutil.which("npm") is None:
                pytest.fail("npm is missing: install Node.js with npm (`apt-get install npm`) for the axe-core audit")
            done = subprocess.run(["npm", "install", "--prefix", str(NPM_FOLDER), "--no-package-lock", "--no-audit",
                                   "--no-fund", "--loglevel=error", AXE_CORE], capture_output=True, text=True,
                                  timeout=300)
            if done.returncode != 0:
                pytest.fail(f"npm could not install {AXE_CORE}: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return bundle.read_text(encoding="utf-8")


def axe_violations(driver) -> list[str]:
    """One line per axe-core violation on the page DRIVER shows: rule, impact, how many elements, the first."""
    driver.execute_script(axe_script())
    found = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map(v =>"
        " `${v.id} (${v.impact}, ${v.nodes.length}x): ${v.help} at ${v.nodes[0].target.join(' ')}`)));"
    )
    return list(found)
