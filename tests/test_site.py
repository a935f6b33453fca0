"""The rendered course, built from the stored notebooks and checked in a real browser (headless Chromium):
every page has its title and rendered outputs, every internal link resolves, search and navigation work,
figures load, axe-core finds no accessibility violation, and screenshots land in _build/screenshots for a human
to look at."""

from __future__ import annotations

import fcntl
import functools
import http.server
import json
import threading
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest
from browser import axe_violations, chrome

from infracourse.authoring import catalog, website

# Sphinx 9 warns that extensions use APIs it will remove in Sphinx 11: the pinned extensions' business.
pytestmark = pytest.mark.filterwarnings("ignore:.*Check CHANGES for Sphinx API modifications")

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build"
SITE = BUILD / "site"
SHOTS = BUILD / "screenshots"
CHAPTERS = catalog.chapters(ROOT)
NOTEBOOKS = [nb for c in CHAPTERS for nb in c.lessons + c.labs + c.solutions]


@pytest.fixture(scope="module")
def built_site(testrun_uid: str) -> Path:
    """Build once per test run, whichever xdist worker gets here first (the others wait and reuse it)."""
    BUILD.mkdir(exist_ok=True)
    stamp = BUILD / "site_report.json"
    with open(BUILD / ".site-test.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        report = json.loads(stamp.read_text()) if stamp.exists() else {}
        if report.get("testrun") != testrun_uid or not (SITE / "index.html").exists():
            result = website.build(ROOT)
            assert result.status == 0, "the site build had warnings (they are errors): run `make site`"
            report = {"testrun": testrun_uid, "seconds": round(result.seconds, 1), "pages": result.pages}
            stamp.write_text(json.dumps(report) + "\n")
    return SITE


@pytest.fixture(scope="module")
def base_url(built_site: Path):
    handler = functools.partial(QuietHandler, directory=str(built_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    thread.join()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chrome(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


def page_url(base_url: str, notebook: catalog.Notebook) -> str:
    return urljoin(base_url, f"{notebook.docname}.html")


def expected_title(notebook: catalog.Notebook) -> str:
    return notebook.title + (" · solution" if notebook.kind == "solution" else "")


def console_errors(driver, base_url: str) -> list[str]:
    """SEVERE browser messages about our own pages (an offline machine cannot reach CDNs: not ours)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE" and base_url in e["message"]]


def screenshot(driver, path: Path, full_page: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    if full_page:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, min(height, 12000))
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 900)


def test_build_has_a_page_per_notebook(built_site: Path) -> None:
    for notebook in NOTEBOOKS:
        assert (built_site / f"{notebook.docname}.html").exists(), f"no page for {notebook.path.name}"
    for page in ("index", "running", "instructors", "search"):
        assert (built_site / f"{page}.html").exists()
    report = json.loads((BUILD / "site_report.json").read_text())
    assert report["pages"] == len(NOTEBOOKS) + 3


def test_landing_page_shows_the_course_map(browser, base_url: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(base_url)
    assert browser.find_element(By.CSS_SELECTOR, "article h1").text.strip() == "Infrastructure integrations in Python"
    rows = browser.find_elements(By.CSS_SELECTOR, "#course-map table tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows] == [c.number for c in CHAPTERS]
    hrefs = {a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#course-map table a")}
    assert {page_url(base_url, nb) for nb in NOTEBOOKS} <= hrefs
    sidebar = browser.find_elements(By.CSS_SELECTOR, "nav.bd-links p.caption")
    assert [c.text for c in sidebar][: len(CHAPTERS)] == [f"{c.number} · {c.title}" for c in CHAPTERS]
    assert not console_errors(browser, base_url)
    screenshot(browser, SHOTS / "landing.png", full_page=True)
    assert (SHOTS / "landing.png").stat().st_size > 10_000


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.docname for nb in NOTEBOOKS])
def test_notebook_page_renders(browser, base_url: str, notebook: catalog.Notebook) -> None:
    from selenium.webdriver.common.by import By

    browser.get(page_url(base_url, notebook))
    assert browser.find_element(By.CSS_SELECTOR, "article h1").text.strip() == expected_title(notebook)
    assert browser.title.startswith(expected_title(notebook))
    box = browser.find_element(By.CSS_SELECTOR, "div.admonition.tip p.admonition-title").text
    assert box == {"lesson": "Run this lesson yourself", "lab": "Do this lab yourself",
                   "solution": "Reference solution"}[notebook.kind]
    assert browser.find_elements(By.CSS_SELECTOR, "div.cell_input"), "no code cell rendered"
    outputs = browser.find_elements(By.CSS_SELECTOR, "div.cell_output")
    if notebook.kind == "lab":
        assert not outputs, "labs are stored without outputs"
    else:
        assert outputs, "no rendered output: was the notebook saved with `course run`?"
    assert browser.find_elements(By.CSS_SELECTOR, "div.cell_input button.copybtn"), "no copy button"
    assert not browser.find_elements(By.CSS_SELECTOR, "div.cell_output button.copybtn"), "copy button on output"
    broken = browser.execute_script(
        "return [...document.querySelectorAll('div.cell_output img')]"
        ".filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
    )
    assert not broken, f"figures that did not load: {broken}"
    overflowing = browser.execute_script(
        "const w = document.querySelector('article.bd-article').getBoundingClientRect().width;"
        "return [...document.querySelectorAll('div.cell_output img')]"
        ".filter(i => i.getBoundingClientRect().width > w + 1).length"
    )
    assert overflowing == 0, "a figure is wider than the page's text column"
    assert not console_errors(browser, base_url)
    if notebook.kind == "lesson":
        _screenshots_of(browser, notebook)


def _screenshots_of(browser, notebook: catalog.Notebook) -> None:
    """A full page of the first lesson; the first figure and first table of every lesson."""
    from selenium.webdriver.common.by import By

    if notebook is CHAPTERS[0].lessons[0]:
        screenshot(browser, SHOTS / f"{notebook.name}.png", full_page=True)
    for kind, selector in (("figure", "div.cell_output img"), ("table", "div.cell_output table")):
        found = browser.find_elements(By.CSS_SELECTOR, selector)
        if found:
            browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", found[0])
            SHOTS.mkdir(parents=True, exist_ok=True)
            found[0].screenshot(str(SHOTS / f"{notebook.name}_{kind}.png"))


def test_prev_next_follow_the_course_order(browser, base_url: str) -> None:
    from selenium.webdriver.common.by import By

    order = [nb for chapter in CHAPTERS for _, nb in website.reading_order(chapter)]
    for current, following in zip(order, order[1:], strict=False):
        browser.get(page_url(base_url, current))
        nxt = browser.find_element(By.CSS_SELECTOR, "a.right-next").get_attribute("href")
        assert nxt == page_url(base_url, following), f"after {current.docname} comes {following.docname}"


def test_search_finds_a_lesson(browser, base_url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(urljoin(base_url, "search.html?q=namespace"))
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#search-results ul.search li"))
    hits = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#search-results li a")]
    assert any("notebooks/00_start_here.html" in h for h in hits), hits


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        for name in ("href", "src"):
            if values.get(name) and not (tag == "link" and values.get("rel") in {"preconnect", "dns-prefetch"}):
                self.links.append(values[name])


def _fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_every_internal_link_resolves(base_url: str, built_site: Path) -> None:
    pages = [urljoin(base_url, p.relative_to(built_site).as_posix()) for p in website.html_pages(built_site)]
    fetched: dict[str, tuple[int, _Links]] = {}

    def fetch(url: str) -> tuple[int, _Links]:
        if url not in fetched:
            status, body = _fetch(url)
            links = _Links()
            if url.endswith(".html"):
                links.feed(body)
            fetched[url] = (status, links)
        return fetched[url]

    broken = []
    for page in pages:
        for link in fetch(page)[1].links:
            target, fragment = urldefrag(urljoin(page, link))
            if urlparse(target).netloc != urlparse(base_url).netloc:
                continue
            status, parsed = fetch(target)
            if status != 200:
                broken.append(f"{page} -> {link} (HTTP {status})")
            elif fragment and target.endswith(".html") and fragment not in parsed.ids:
                broken.append(f"{page} -> {link} (no #{fragment} there)")
    assert len(fetched) > len(pages), "no link was followed"
    assert not broken, "\n".join(sorted(set(broken)))


WIDTH_PAGES = ["index", "notebooks/05_caching_patterns", "notebooks/13_metrics_with_prometheus",
               "labs/05_caching_patterns", "solutions/05_caching_patterns", "instructors"]


def test_course_code_fits_a_desktop_page(browser, base_url: str) -> None:
    browser.set_window_size(1400, 900)
    try:
        for page in WIDTH_PAGES:
            browser.get(urljoin(base_url, f"{page}.html"))
            scrolling = browser.execute_script(
                "return [...document.querySelectorAll('div.cell_input pre, div.highlight pre')]"
                ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent.split('\\n')[0])")
            assert scrolling == [], f"{page}: code blocks scroll sideways at 1400 px: {scrolling[:3]}"
    finally:
        browser.set_window_size(1280, 900)


def test_no_page_is_wider_than_a_phone(browser, base_url: str) -> None:
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
    try:
        for page in WIDTH_PAGES:
            browser.get(urljoin(base_url, f"{page}.html"))
            width = browser.execute_script("return document.documentElement.scrollWidth")
            assert width <= 390, f"{page} is {width} px wide on a 390 px phone"
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_a_solution_page_has_one_banner_and_links_its_lab_and_lesson(browser, base_url: str) -> None:
    from selenium.webdriver.common.by import By

    chapter = next(c for c in CHAPTERS if c.solutions and c.lessons)
    solution = chapter.solutions[0]
    browser.get(page_url(base_url, solution))
    assert browser.page_source.count("Reference solution") == 1
    links = {a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "div.admonition.tip a")}
    assert page_url(base_url, chapter.solutions[0]).replace("solutions/", "labs/") in links
    assert page_url(base_url, chapter.lessons[0]) in links


# axe-core takes 5-60 s on a long notebook page: the full audit runs on a page of each kind (the lesson and its lab
# and solution with tables, figures and widgets), a cheap check of the rule those pages broke runs on every page
AUDITED_PAGES = ["index", "running", "instructors", "notebooks/05_caching_patterns", "labs/05_caching_patterns",
                 "solutions/05_caching_patterns"]


@pytest.mark.parametrize("page", AUDITED_PAGES)
def test_axe_finds_no_accessibility_violation(browser, base_url: str, page: str) -> None:
    browser.set_script_timeout(120)
    browser.get(urljoin(base_url, f"{page}.html"))
    assert axe_violations(browser) == []


class _EmptyHeaders(HTMLParser):
    """Counts table header cells with no text (axe-core's empty-table-header)."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] | None = None
        self.empty = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "th":
            self.open = []

    def handle_data(self, data: str) -> None:
        if self.open is not None:
            self.open.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "th" and self.open is not None:
            self.empty += not "".join(self.open).strip()
            self.open = None


def test_no_table_has_an_empty_header_cell(built_site: Path) -> None:
    found = {}
    for page in website.html_pages(built_site):
        parser = _EmptyHeaders()
        parser.feed(page.read_text(encoding="utf-8"))
        if parser.empty:
            found[str(page.relative_to(built_site))] = parser.empty
    assert found == {}, "name the first column of these tables (a markdown table's first header cell is empty)"
