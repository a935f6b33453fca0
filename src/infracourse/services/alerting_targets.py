"""File-based discovery of lesson 15's extras for the shared Prometheus: a notebook's own Alertmanager (where
Prometheus sends its alerts too) and the URLs the blackbox exporter probes, one JSON file a namespace each.

    alerting_targets.register_alertmanager(ns.slug, "127.0.0.1:40123")   # alerts reach it within seconds
    alerting_targets.register_probe(ns.slug, "http://127.0.0.1:40124/health/ready")   # probe_success{namespace=..}
    alerting_targets.unregister(ns.slug)                                  # at clean-up: both files go

As for scrape targets (prometheus_targets.py), the folders are the ones the *running* Prometheus watches, read
from the configuration file it was started with, so a second checkout's notebooks are seen too; otherwise this
checkout's state folder.
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

ALERTMANAGERS = "alertmanager-targets"
PROBES = "probe-targets"
PROBE_JOB = "course-probes"
FOLDER_ENV = "COURSE_ALERTING_TARGETS_DIR"  # set by the grader's sandbox, which relays what is registered there
_URL_RE = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(/\S*)?$")
_ADDRESS_RE = re.compile(r"^[A-Za-z0-9.\-\[\]]+:\d{1,5}$")


def _patterns(config_file: Path) -> dict[str, str]:
    """kind -> the file_sd glob CONFIG_FILE gives it (alertmanagers, and the probe job's)."""
    conf = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    found = {}
    for am in (conf.get("alerting") or {}).get("alertmanagers") or []:
        for sd in am.get("file_sd_configs") or []:
            found[ALERTMANAGERS] = sd["files"][0]
    for job in conf.get("scrape_configs") or []:
        if job.get("job_name") == PROBE_JOB and job.get("file_sd_configs"):
            found[PROBES] = job["file_sd_configs"][0]["files"][0]
    return found


def watched_folder(config_file: Path, kind: str) -> Path | None:
    """The folder CONFIG_FILE's Prometheus watches for KIND, if it is (or can be made) on this machine."""
    try:
        pattern = _patterns(config_file)[kind]
    except (OSError, KeyError, TypeError, AttributeError, IndexError, yaml.YAMLError):
        return None
    folder = (config_file.parent / pattern).parent.resolve()
    here = folder if folder.is_dir() else folder.parent
    return folder if here.is_dir() and os.access(here, os.W_OK) else None


def _running_config_file() -> Path | None:
    try:
        with urllib.request.urlopen(f"{config.prometheus_url()}/api/v1/status/flags", timeout=1) as reply:
            return Path(json.load(reply)["data"]["config.file"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def folder(kind: str) -> Path:
    chosen = os.environ.get(FOLDER_ENV)
    if chosen:
        found = Path(chosen) / kind
    else:
        running = _running_config_file()
        found = (watched_folder(running, kind) if running else None) or state_dir() / kind
    found.mkdir(parents=True, exist_ok=True)
    return found


def _file(kind: str, namespace: str) -> Path:
    if not re.fullmatch(r"[a-z0-9_]+", namespace):
        raise ValueError(f"namespace {namespace!r}: use the notebook's slug (lowercase letters, digits, _)")
    return folder(kind) / f"{namespace}.json"


def _write(path: Path, targets: list[str], labels: dict[str, str]) -> Path:
    tmp = path.with_suffix(".json.tmp")  # not matched by *.json while half written
    tmp.write_text(json.dumps([{"targets": targets, "labels": labels}], indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def register_alertmanager(namespace: str, address: str) -> Path:
    """Make Prometheus send its alerts to the Alertmanager at ADDRESS ("127.0.0.1:PORT") as well."""
    if not _ADDRESS_RE.match(address):
        raise ValueError(f"not host:port: {address}")
    return _write(_file(ALERTMANAGERS, namespace), [address], {})


def register_probe(namespace: str, /, *urls: str, **labels: str) -> Path:
    """Make the blackbox exporter probe URLS, labelled namespace=NAMESPACE (and LABELS)."""
    bad = [u for u in urls if not _URL_RE.match(u)] or ([] if urls else ["(none given)"])
    if bad:
        raise ValueError(f"not an http(s) URL: {', '.join(bad)}")
    return _write(_file(PROBES, namespace), list(urls), {"namespace": namespace, **labels})


def unregister(namespace: str) -> list[str]:
    """Remove NAMESPACE's Alertmanager and probe files; the kinds that had one."""
    removed = []
    for kind in (ALERTMANAGERS, PROBES):
        try:
            _file(kind, namespace).unlink()
            removed.append(kind)
        except FileNotFoundError:
            pass
    return removed
