"""Lesson 15's plumbing: file_sd files for notebooks' Alertmanagers and probes, the loopback inbox and SMTP sink,
a private Alertmanager, the Alertmanager client and amtool, and the shared alerting configuration in services/."""

from __future__ import annotations

import json
import shutil
import smtplib
import subprocess
import urllib.request
from email.message import EmailMessage
from pathlib import Path

import pytest

from infracourse.clients.alertmanager import Alertmanager, AlertmanagerError, now, routes_test
from infracourse.lessons.alert_inbox import Inbox, SmtpSink
from infracourse.paths import services_config
from infracourse.services import alerting_targets
from infracourse.services.probes import free_port

needs_alertmanager = pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool comes with Alertmanager")
SHARED = services_config() / "alertmanager" / "alertmanager.yml"


@pytest.fixture
def state(tmp_path, monkeypatch):
    """A checkout of its own and no Prometheus answering: the files go to this checkout's state folder."""
    monkeypatch.setenv("INFRACOURSE_HOME", str(tmp_path))
    monkeypatch.setenv("COURSE_PROMETHEUS_PORT", str(free_port()))
    (tmp_path / "services").mkdir()
    return tmp_path


def test_register_alertmanager_and_probe_then_unregister(state):
    am = alerting_targets.register_alertmanager("alert15", "127.0.0.1:40100")
    probe = alerting_targets.register_probe("alert15", "http://127.0.0.1:40101/health/ready", app="shop")
    assert am == state / ".services" / "alertmanager-targets" / "alert15.json"
    assert json.loads(am.read_text()) == [{"targets": ["127.0.0.1:40100"], "labels": {}}]
    assert json.loads(probe.read_text()) == [{"targets": ["http://127.0.0.1:40101/health/ready"],
                                              "labels": {"namespace": "alert15", "app": "shop"}}]
    assert alerting_targets.unregister("alert15") == ["alertmanager-targets", "probe-targets"]
    assert alerting_targets.unregister("alert15") == []


@pytest.mark.parametrize("bad", [lambda: alerting_targets.register_probe("alert15"),
                                 lambda: alerting_targets.register_probe("alert15", "127.0.0.1:1"),
                                 lambda: alerting_targets.register_alertmanager("alert15", "http://x:1"),
                                 lambda: alerting_targets.register_probe("../x", "http://127.0.0.1:1/")])
def test_register_rejects_what_prometheus_would_misread(state, bad):
    with pytest.raises(ValueError):
        bad()


def test_the_folders_are_the_ones_prometheus_yml_names():
    config_file = services_config() / "prometheus" / "prometheus.yml"
    repo = config_file.parents[2]
    assert alerting_targets.watched_folder(config_file, "alertmanager-targets") in (
        None, repo / ".services" / "alertmanager-targets")
    assert alerting_targets._patterns(config_file) == {
        "alertmanager-targets": "../../.services/alertmanager-targets/*.json",
        "probe-targets": "../../.services/probe-targets/*.json"}


def test_inbox_records_posts_and_answers_like_telegram():
    with Inbox() as inbox:
        for path, body in (("/pager", {"alerts": [{"status": "firing", "labels": {"alertname": "A"}}]}),
                           ("/telegram/bot1:x/sendMessage", {"chat_id": "-5", "text": "hi"})):
            request = urllib.request.Request(inbox.service.url + path, data=json.dumps(body).encode(), method="POST")
            with urllib.request.urlopen(request, timeout=5) as reply:
                answer = reply.read().decode()
        assert json.loads(answer)["result"]["chat"]["id"] == -5
        assert inbox.alerts() == [("pager", "firing", "A")]
        assert [d.channel for d in inbox.wait(2)] == ["pager", "telegram"]
        inbox.clear()
        assert inbox.received() == []


def test_smtp_sink_keeps_each_message():
    with SmtpSink() as sink:
        message = EmailMessage()
        message["Subject"], message["From"], message["To"] = "[FIRING:1] Test", "am@example.test", "me@example.test"
        message.set_content("body")
        with smtplib.SMTP(*sink.address.split(":"), timeout=5) as smtp:
            smtp.send_message(message)
        assert sink.wait(1)[0]["Subject"] == "[FIRING:1] Test"


def test_client_errors_are_one_line():
    with pytest.raises(AlertmanagerError, match="did not answer"):
        Alertmanager(f"http://127.0.0.1:{free_port()}").status()


@needs_alertmanager
def test_shared_configuration_is_valid_and_routes_pages_and_tickets():
    checked = subprocess.run(["amtool", "check-config", str(SHARED)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert routes_test(SHARED, {"severity": "page"}) == ["pager"]
    assert routes_test(SHARED, {"severity": "page", "team": "db"}) == ["pager", "db-oncall"]
    assert routes_test(SHARED, {"severity": "ticket"}) == ["tickets"]
    assert routes_test(SHARED, {"alertname": "Anything"}) == ["blackhole"]


@pytest.mark.skipif(shutil.which("prometheus-blackbox-exporter") is None, reason="the blackbox exporter package")
def test_blackbox_configuration_is_valid():
    conf = services_config() / "blackbox" / "blackbox.yml"
    checked = subprocess.run(["prometheus-blackbox-exporter", "--config.check", f"--config.file={conf}"],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@needs_alertmanager
def test_private_alertmanager_delivers_resolves_and_silences():
    from infracourse.lessons.private_alertmanager import PrivateAlertmanager

    with Inbox() as inbox:
        config = ("route: {receiver: hook, group_wait: 1s, group_interval: 1s}\n"
                  f"receivers: [{{name: hook, webhook_configs: [{{url: '{inbox.url('hook')}'}}]}}]\n")
        with PrivateAlertmanager(config) as am:
            folder = Path(am.folder)
            silence = am.silence({"alertname": "Muted"}, minutes=5)
            am.post([{"labels": {"alertname": "Loud"}}, {"labels": {"alertname": "Muted"}}])
            inbox.wait(1)
            am.post([{"labels": {"alertname": "Loud"}, "endsAt": now()}])
            inbox.wait(2)
            assert [s for _, s, _ in inbox.alerts()] == ["firing", "resolved"]
            assert {a["labels"]["alertname"] for d in inbox.received() for a in d.body["alerts"]} == {"Loud"}
            am.expire(silence)
            assert {s["id"]: s["status"]["state"] for s in am.silences()}[silence] == "expired"
            with pytest.raises(AlertmanagerError):
                am.configure("route: {receiver: nobody}\n")
        assert not folder.exists()


def test_native_recipes_bind_loopback_and_use_the_shared_configuration(tmp_path):
    from infracourse.services.recipes import SPECS, ServiceDirs

    alertmanager = SPECS["alertmanager"].command(ServiceDirs(tmp_path))
    assert "--web.listen-address=127.0.0.1:9093" in alertmanager and "--cluster.listen-address=" in alertmanager
    assert f"--config.file={SHARED}" in alertmanager
    blackbox = SPECS["blackbox"].command(ServiceDirs(tmp_path))
    assert "--web.listen-address=127.0.0.1:9115" in blackbox
    assert any(arg.endswith("services/blackbox/blackbox.yml") for arg in blackbox)
