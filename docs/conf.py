"""Sphinx configuration of the rendered course. `course site` stages this folder together with the
notebooks and builds it; notebooks are rendered from their stored outputs, never executed here."""

import os

project = "Infrastructure integrations in Python"
author = "the course authors"
copyright = "the course authors, Apache-2.0"

extensions = ["myst_nb", "sphinx_copybutton"]

# CI executed and verified every notebook already; the site shows those stored outputs as they are.
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3

exclude_patterns = ["_*.md", "**/.ipynb_checkpoints"]

html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static"]
templates_path = ["_templates"]
# the theme's sidebar, its logo wrapped in a landmark (axe-core: "all page content should be in landmarks")
html_sidebars = {"**": ["course-logo.html", "search-button-field.html", "sbt-sidebar-nav.html"]}
html_css_files = ["course.css"]
html_favicon = "_static/favicon.svg"
# Light by default: figures are rendered on white; readers can still switch to dark.
html_context = {"default_mode": "light"}
html_last_updated_fmt = None
html_theme_options = {
    "home_page_in_toc": False,
    "navbar_persistent": [],  # the sidebar has the search field; no second one in a header bar
    "show_navbar_depth": 1,
    "show_toc_level": 2,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "navigation_with_keys": False,
}

# Launch buttons and a repository link once the course is published (a GitHub URL).
REPOSITORY_URL = os.environ.get("COURSE_REPOSITORY_URL", "")
if REPOSITORY_URL:
    html_theme_options |= {
        "repository_url": REPOSITORY_URL,
        "repository_branch": os.environ.get("COURSE_REPOSITORY_BRANCH", "main"),
        "use_repository_button": True,
        "launch_buttons": {"binderhub_url": "https://mybinder.org", "notebook_interface": "jupyterlab"},
    }

# Copy buttons on code a reader types (cell inputs, shell snippets), not on cell outputs.
copybutton_selector = "div:not(.output) > div.highlight > pre"
