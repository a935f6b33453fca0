"""prometheus_targets writes file_sd files Prometheus accepts, atomically, one per namespace."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from infracourse import notebook
from infracourse.clients import promql
from infracourse.lessons.http_service import HttpService
from infracourse.services import prometheus_targets
from infracourse.services.probes import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def state(tmp_path, monkeypatch):
    """A checkout of its own and no Prometheus answering: the targets go to this checkout's state folder."""
    monkeypatch.setenv("INFRACOURSE_HOME", str(tmp_path))
    monkeypatch.setenv("COURSE_PROMETHEUS_PORT", str(free_port()))
    (tmp_path / "services").mkdir()
    return tmp_path


def test_register_writes_one_labelled_group(state):
    path = prometheus_targets.register("obs13", "127.0.0.1:40123", app="shop")
    assert path == state / ".services" / "prometheus-targets" / "obs13.json"
    assert json.loads(path.read_text()) == [
        {"targets": ["127.0.0.1:40123"], "labels": {"namespace": "obs13", "app": "shop"}}
    ]
    assert not list(path.parent.glob("*.tmp"))


def test_register_replaces_and_unregister_removes(state):
    prometheus_targets.register("obs13", "127.0.0.1:1")
    prometheus_targets.register("obs13", "127.0.0.1:2", "127.0.0.1:3")
    prometheus_targets.register("obs14", "127.0.0.1:4")
    assert prometheus_targets.registered() == {"obs13": ["127.0.0.1:2", "127.0.0.1:3"], "obs14": ["127.0.0.1:4"]}
    assert prometheus_targets.unregister("obs13") is True
    assert prometheus_targets.unregister("obs13") is False
    assert list(prometheus_targets.registered()) == ["obs14"]


@pytest.mark.parametrize(
    ("namespace", "addresses", "labels"),
    [
        ("../etc", ("127.0.0.1:1",), {}),
        ("obs13", (), {}),
        ("obs13", ("http://127.0.0.1:1/metrics",), {}),
        ("obs13", ("127.0.0.1:1",), {"namespace": "other"}),
        ("obs13", ("127.0.0.1:1",), {"__address__": "x"}),
    ],
)
def test_register_rejects_what_prometheus_would_misread(state, namespace, addresses, labels):
    with pytest.raises(ValueError):
        prometheus_targets.register(namespace, *addresses, **labels)


def test_prometheus_config_reads_the_same_folder():
    """prometheus.yml's relative file_sd path must land on targets_dir() (paths resolve from its folder)."""
    import yaml

    from infracourse.paths import services_config

    config_dir = services_config() / "prometheus"
    conf = yaml.safe_load((config_dir / "prometheus.yml").read_text())
    job = next(j for j in conf["scrape_configs"] if j["job_name"] == prometheus_targets.JOB)
    (pattern,) = job["file_sd_configs"][0]["files"]
    assert (config_dir / pattern).parent.resolve() == prometheus_targets.targets_dir().resolve()


def test_a_second_checkout_writes_where_the_running_prometheus_looks(tmp_path, monkeypatch):
    notebook.require("prometheus")
    first = prometheus_targets.targets_dir()
    monkeypatch.setenv("INFRACOURSE_HOME", str(tmp_path))  # another clone, with its own state folder
    (tmp_path / "services").mkdir()
    assert prometheus_targets.targets_dir() == first != tmp_path / ".services" / "prometheus-targets"
    with HttpService({}, registry=CollectorRegistry()) as app:
        namespace = f"pytest_second_{uuid.uuid4().hex[:6]}"
        prometheus_targets.register(namespace, app.address)
        try:
            up = promql.wait_for('up{namespace="$ns"} == 1', ns=namespace, timeout_s=20)
        finally:
            prometheus_targets.unregister(namespace)
    assert up and up[0]["value"] == 1


def test_the_watched_folder_is_found_before_anything_was_registered_in_it(tmp_path):
    other = tmp_path / "first-clone"
    (other / "services" / "prometheus").mkdir(parents=True)
    (other / ".services").mkdir()  # `course up` made the state folder; no notebook registered a target yet
    config_file = other / "services" / "prometheus" / "prometheus.yml"
    config_file.write_text((REPO / "services" / "prometheus" / "prometheus.yml").read_text())
    assert prometheus_targets.watched_folder(config_file) == other / ".services" / "prometheus-targets"
    (other / ".services").rmdir()
    assert prometheus_targets.watched_folder(config_file) is None  # not on this machine (a container's path)
