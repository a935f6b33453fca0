"""File-based service discovery for the shared Prometheus: one JSON file of scrape targets a namespace.

Notebooks serve /metrics on ephemeral loopback ports, so services/prometheus/prometheus.yml cannot list them.
Its `course-apps` job reads every *.json file in .services/prometheus-targets/ instead; each file carries the
label namespace="<slug>" so a query selects one notebook's series: `http_requests_total{namespace="obs13"}`.

    path = prometheus_targets.register(ns.slug, app.address)   # Prometheus scrapes it within seconds
    prometheus_targets.unregister(ns.slug)                      # at clean-up: the target disappears

Any number of checkouts share one Prometheus: the folder is the one the *running* Prometheus watches, found
through its API (the config file it was started with, and that file's `course-apps` job), so a second clone's
notebooks are scraped too. When that folder is not on this machine (Prometheus in a container) or Prometheus
does not answer, it is this checkout's own state folder.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from pathlib import Path

import yaml

from infracourse import config
from infracourse.paths import state_dir

JOB = "course-apps"  # the scrape job in prometheus.yml that reads these files
NAMESPACE_LABEL = "namespace"
FOLDER_ENV = "COURSE_PROMETHEUS_TARGETS_DIR"  # set by the grader's sandbox, whose Prometheus folder is relayed
_ADDRESS_RE = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def watched_folder(config_file: Path) -> Path | None:
    """The file_sd folder of the `course-apps` job in CONFIG_FILE, if it is (or can be made) on this machine. It
    may not exist yet (nothing registered since that Prometheus started): its parent, the state folder, does."""
    try:
        scrape = yaml.safe_load(config_file.read_text(encoding="utf-8"))["scrape_configs"]
        pattern = next(job for job in scrape if job["job_name"] == JOB)["file_sd_configs"][0]["files"][0]
    except (OSError, KeyError, StopIteration, TypeError, yaml.YAMLError):
        return None
    folder = (config_file.parent / pattern).parent.resolve()
    here = folder if folder.is_dir() else folder.parent
    return folder if here.is_dir() and os.access(here, os.W_OK) else None


def _watched_by_running_prometheus() -> Path | None:
    """The folder the Prometheus at the course's endpoint watches, if it is on this machine."""
    try:
        with urllib.request.urlopen(f"{config.prometheus_url()}/api/v1/status/flags", timeout=1) as reply:
            return watched_folder(Path(json.load(reply)["data"]["config.file"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def targets_dir() -> Path:
    """The folder Prometheus watches (see above), created on first use in this checkout's state folder."""
    chosen = os.environ.get(FOLDER_ENV)
    folder = Path(chosen) if chosen else _watched_by_running_prometheus() or state_dir() / "prometheus-targets"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def target_file(namespace: str) -> Path:
    if not re.fullmatch(r"[a-z0-9_]+", namespace):
        raise ValueError(f"namespace {namespace!r}: use the notebook's slug (lowercase letters, digits, _)")
    return targets_dir() / f"{namespace}.json"


def register(namespace: str, /, *addresses: str, **labels: str) -> Path:
    """Ask Prometheus to scrape ADDRESSES ("127.0.0.1:PORT") with the label namespace=NAMESPACE.

    Replaces this namespace's previous file. The file is written under a temporary name and renamed, so
    Prometheus never reads half of it.
    """
    if not addresses:
        raise ValueError("give at least one host:port to scrape")
    bad = [a for a in addresses if not _ADDRESS_RE.match(a)]
    if bad:
        raise ValueError(f"not host:port: {', '.join(bad)}")
    bad_labels = [k for k in labels if not _LABEL_RE.match(k) or k.startswith("__") or k == NAMESPACE_LABEL]
    if bad_labels:
        raise ValueError(f"label names not allowed here: {', '.join(bad_labels)}")
    path = target_file(namespace)
    group = [{"targets": list(addresses), "labels": {NAMESPACE_LABEL: namespace, **labels}}]
    tmp = path.with_suffix(".json.tmp")  # does not match the *.json glob while it is being written
    tmp.write_text(json.dumps(group, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def unregister(namespace: str) -> bool:
    """Stop scraping NAMESPACE's targets; True when there was a file to remove."""
    path = target_file(namespace)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def registered() -> dict[str, list[str]]:
    """namespace -> addresses, for every target file present."""
    found: dict[str, list[str]] = {}
    for path in sorted(targets_dir().glob("*.json")):
        try:
            groups = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        found[path.stem] = [t for g in groups for t in g.get("targets", [])]
    return found
