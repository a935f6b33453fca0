"""JupyterLab itself, driven in headless Chromium the way a learner uses it: open lab 00, Run All Cells, see
exercise 2 'not done yet', paste its solution into the exercise cell, run it and its check and see it pass;
then open a lesson and see that its tab does not turn 'modified' once the kernel has started (a notebook whose
stored language_info differs from the kernel's is marked dirty on open, and nags the learner to save).
Screenshots land in _build/screenshots/jupyterlab_*.png for a human to look at."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from browser import chrome  # tests/ is on sys.path (rootdir conftest)

from infracourse.services.probes import free_port
from infracourse.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "_build" / "screenshots"
LAB = "labs/00_start_here.ipynb"
LESSON = "notebooks/00_start_here.ipynb"
NOT_DONE = "⏳ Exercise 2"
PASSED = "✅ Exercise 2 · Count a visit with an expiry (Redis): passed"
# User settings of a fresh JupyterLab: no news/update prompt (and no request for them), and no autosave, so
# the edited lab never reaches the learner-facing file on disk.
SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}


class Lab:
    def __init__(self, url: str, token: str, log: Path, results: Path) -> None:
        self.url, self.token, self.log, self.results = url, token, log, results

    def api(self, path: str, method: str = "GET") -> bytes:
        request = urllib.request.Request(self.url + path, method=method, data=b"" if method != "GET" else None,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read()


def _answers(lab: Lab, server: subprocess.Popen) -> bool:
    if server.poll() is not None:
        raise AssertionError(f"jupyter lab exited ({server.returncode}):\n{lab.log.read_text()[-3000:]}")
    try:
        return json.loads(lab.api("api/status")) is not None
    except (OSError, ValueError):
        return False


def _stop(lab: Lab, server: subprocess.Popen) -> None:
    """Shut the server down through its API (it shuts its kernels down first); then make sure, by pid, that
    neither it nor any kernel it started outlives the test."""
    try:
        started = psutil.Process(server.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        started = []
    try:
        lab.api("api/shutdown", method="POST")
        server.wait(timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    for child in started:  # psutil checks the start time too: never another process that got the pid
        try:
            child.terminate()
            child.wait(timeout=10)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            child.kill()


@pytest.fixture
def jupyter_lab(tmp_path: Path):
    config = tmp_path / "config"  # no ~/.jupyter: user settings and workspaces of a first run
    for plugin, values in SETTINGS.items():
        path = config / "lab" / "user-settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    lab = Lab(f"http://127.0.0.1:{port}/", token, tmp_path / "jupyter.log", tmp_path / "results.jsonl")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        # namespaces of its own: the lab contract test runs labs/00 at the same time, and a namespace is one
        # kernel's; results go to a scratch file instead of the learner's progress
        "INFRACOURSE_NS_SUFFIX": f"_jlab_{secrets.token_hex(4)}", "INFRACOURSE_RESULTS": str(lab.results),
    }
    command = [
        str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser", f"--ServerApp.root_dir={ROOT}",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
        "--ServerApp.log_level=DEBUG",  # successful requests (saves among them) are logged at debug level
    ] + (["--allow-root"] if os.geteuid() == 0 else [])  # CI containers run as root; Jupyter refuses it unasked
    with open(lab.log, "wb") as log:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: _answers(lab, server), timeout_s=60, interval_s=0.2, what="jupyter lab to answer")
        yield lab
    finally:
        _stop(lab, server)


@pytest.fixture
def driver(tmp_path: Path):
    browser = chrome(tmp_path / "chromium-profile")
    yield browser
    browser.quit()


def _cells(driver) -> list[dict]:
    """The current notebook's cells: kind, editor text, prompt and output text."""
    return driver.execute_script("""
        return [...document.querySelectorAll(arguments[0] + ' .jp-Notebook .jp-Cell')].map(c => ({
            code: c.classList.contains('jp-CodeCell'),
            text: [...c.querySelectorAll('.jp-Cell-inputArea .cm-line')].map(l => l.textContent).join('\\n'),
            prompt: (c.querySelector('.jp-InputPrompt') || {}).textContent || '',
            output: (c.querySelector('.jp-Cell-outputArea') || {}).innerText || '',
        }));""", _panel(driver))


def _cell_index(driver, starts: str) -> int:
    return next(i for i, c in enumerate(_cells(driver)) if c["text"].startswith(starts))


def _kernel_idle(driver, lab: Lab, path: str) -> bool:
    """PATH's kernel is idle for the server, and the current notebook's toolbar says so too."""
    try:
        sessions = json.loads(lab.api("api/sessions"))
    except (OSError, ValueError):  # a busy server may time out once: ask again
        return False
    if not any(s["path"] == path and s["kernel"]["execution_state"] == "idle" for s in sessions):
        return False
    return bool(driver.execute_script(
        "return document.querySelector(arguments[0] + ' .jp-Notebook-ExecutionIndicator[data-status=idle]')",
        _panel(driver)))


def _all_ran(driver, lab: Lab) -> bool:
    """Every code cell has an execution count (none queued '[*]' or unrun '[ ]') and the kernel is idle."""
    code = [c for c in _cells(driver) if c["code"]]
    return bool(code) and all(c["prompt"].strip("[]: ").isdigit() for c in code) and _kernel_idle(driver, lab, LAB)


def _clickable(driver, xpath: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, 30).until(expected_conditions.element_to_be_clickable((By.XPATH, xpath)))


def _tab(driver, path: str = "") -> dict:
    """The main area's tab of PATH (default: the current tab): its caption, widget id and whether it is dirty;
    read in one script, so that JupyterLab re-rendering the tab bar meanwhile cannot make it stale."""
    return driver.execute_script("""
        const tabs = [...document.querySelectorAll('#jp-main-dock-panel .lm-TabBar-tab')];
        const tab = tabs.find(t => arguments[0] ? t.title.includes('Path: ' + arguments[0] + '\\n')
                                                : t.classList.contains('lm-mod-current'));
        return tab ? {title: tab.title, id: tab.dataset.id, dirty: tab.classList.contains('jp-mod-dirty')}
                   : {title: '', id: '', dirty: false};""", path)


def _panel(driver) -> str:
    """A selector for the current tab's notebook panel (a notebook just opened may not be current yet)."""
    return "#" + _tab(driver)["id"]


def _solution(starts: str) -> str:
    cells = json.loads((ROOT / "solutions" / Path(LAB).name).read_text())["cells"]
    return next("".join(c["source"]) for c in cells if "".join(c["source"]).startswith(starts))


def _paste(driver, lab: Lab, text: str) -> None:
    """Paste TEXT into the focused editor with Ctrl+V, as a learner would: typing it key by key lets the
    editor's auto-indent and bracket closing rewrite it."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": lab.url.rstrip("/"), "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    error = driver.execute_async_script(
        "navigator.clipboard.writeText(arguments[0]).then(() => arguments[1](null), e => arguments[1](String(e)))",
        text)
    assert error is None, f"could not fill the clipboard: {error}"
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("v").key_up(Keys.CONTROL).perform()


def _shot(driver, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"jupyterlab_{name}.png"
    driver.save_screenshot(str(path))
    return path


def test_learner_runs_lab_00_solves_exercise_2_and_lessons_open_clean(jupyter_lab: Lab, driver) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(f"{jupyter_lab.url}lab/tree/{LAB}?token={jupyter_lab.token}")
    wait_until(lambda: f"Path: {LAB}\n" in _tab(driver)["title"], timeout_s=60, what="the lab's tab to open")
    wait_until(lambda: _kernel_idle(driver, jupyter_lab, LAB), timeout_s=90, interval_s=0.2,
               what="the lab's kernel to be idle")
    assert not _all_ran(driver, jupyter_lab), "the stored lab has run cells: Run All Cells would prove nothing"

    # Run > Run All Cells, from the menu bar
    _clickable(driver, "//li[contains(@class, 'lm-MenuBar-item')][normalize-space()='Run']").click()
    _clickable(driver, "//li[contains(@class, 'lm-Menu-item')][not(contains(@class, 'lm-mod-disabled'))]"
                       "[div[contains(@class, 'lm-Menu-itemLabel')][normalize-space()='Run All Cells']]").click()
    wait_until(lambda: _all_ran(driver, jupyter_lab), timeout_s=90, interval_s=0.2, what="Run All Cells to finish")
    check = _cell_index(driver, "checks.count_visit(")
    assert _cells(driver)[check]["output"].startswith(NOT_DONE), _cells(driver)[check]

    # replace exercise 2's stub with the solution, run it (Shift+Enter moves on to the check) and the check
    exercise = _cell_index(driver, "def visit_key(user):")
    assert exercise == check - 1
    solution = _solution("def visit_key(user):")
    cell = driver.find_elements(By.CSS_SELECTOR, f"{_panel(driver)} .jp-Notebook .jp-Cell")[exercise]
    cell.find_element(By.CSS_SELECTOR, ".jp-Cell-inputArea .cm-content").click()
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).perform()
    _paste(driver, jupyter_lab, solution)
    wait_until(lambda: _cells(driver)[exercise]["text"] == solution, timeout_s=10,
               what="the editor to hold the pasted solution")
    ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
    ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
    wait_until(lambda: PASSED in _cells(driver)[check]["output"], timeout_s=60, interval_s=0.2,
               what=f"the check cell to show {PASSED!r}")
    assert _cells(driver)[check]["output"].strip().startswith(PASSED)  # then the TTL it measured
    _shot(driver, "lab00_exercise2_passed")
    statuses = [(r["exercise"], r["status"]) for r in map(json.loads, jupyter_lab.results.read_text().splitlines())]
    assert statuses[-1] == ("2", "passed") and ("2", "not_done") in statuses, statuses
    assert _tab(driver, LAB)["dirty"], "the edited lab shows no modified mark: the check below would see none"

    # open the lesson from the file browser, as a learner does: home, notebooks/, the lesson
    _clickable(driver, "//span[contains(@class, 'jp-BreadCrumbs-home')]").click()
    ActionChains(driver).double_click(_clickable(
        driver, "//li[contains(@class, 'jp-DirListing-item')][@data-isdir='true'][starts-with(@title, "
                "'Name: notebooks')]")).perform()
    ActionChains(driver).double_click(_clickable(  # the Path: line tells it from the lab of the same name
        driver, "//li[contains(@class, 'jp-DirListing-item')][starts-with(@title, 'Name: 00_start_here.ipynb')]"
                "[contains(@title, 'Path: notebooks')]")).perform()
    wait_until(lambda: f"Path: {LESSON}\n" in _tab(driver)["title"], timeout_s=60, what="the lesson's tab to open")
    wait_until(lambda: _kernel_idle(driver, jupyter_lab, LESSON), timeout_s=90, interval_s=0.2,
               what="the lesson's kernel to be idle")
    # the kernel's info reply lands around the first idle: a language_info that differs marks it dirty then
    held = time.monotonic() + 5
    while time.monotonic() < held:
        assert not _tab(driver, LESSON)["dirty"], "the lesson is marked modified without anyone editing it"
        time.sleep(0.2)
    _shot(driver, "lesson00_clean")
    saves = [line for line in jupyter_lab.log.read_text().splitlines() if "PUT /api/contents" in line]
    assert not saves, f"the test saved a notebook of the course: {saves}"
