"""A small client of the Alertmanager API (/api/v2) and of amtool: post alerts as Prometheus does, list them,
create and expire silences, reload, and ask amtool which receivers a label set is routed to. Plumbing for lesson
15; the configuration and the alerts themselves are written in the notebook.

    am = Alertmanager("http://127.0.0.1:9093")
    am.post([{"labels": {"alertname": "Down", "namespace": "alert15"}}])
    silence_id = am.silence({"alertname": "Down"}, minutes=5, comment="deploying")
    routes_test("alertmanager.yml", {"severity": "page"})   -> ["pager"]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from infracourse import config
from infracourse.errors import CourseError

TIMEOUT_S = 5.0


class AlertmanagerError(CourseError):
    """Alertmanager refused a request (a bad alert, matcher or configuration) or did not answer."""


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def now() -> datetime:
    return datetime.now(UTC)


class Alertmanager:
    def __init__(self, url: str | None = None) -> None:
        self.url = (url or config.alertmanager_url()).rstrip("/")

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as reply:
                text = reply.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace").strip()
            raise AlertmanagerError(f"{method} {path}: HTTP {exc.code}: {detail[:300]}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AlertmanagerError(f"Alertmanager at {self.url} did not answer: {reason}") from None
        return json.loads(text) if text.strip().startswith(("{", "[")) else text

    def post(self, alerts: list[dict[str, Any]]) -> None:
        """Send ALERTS as Prometheus does: labels, annotations, and startsAt/endsAt (an endsAt in the past
        resolves an alert). Times may be datetimes."""
        sent = [{k: rfc3339(v) if isinstance(v, datetime) else v for k, v in a.items()} for a in alerts]
        self._call("POST", "/api/v2/alerts", sent)

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds whose labels include LABELS, with their status (active, suppressed)."""
        found = self._call("GET", "/api/v2/alerts")
        return [a for a in found if all(a["labels"].get(k) == v for k, v in labels.items())]

    def silence(self, matchers: dict[str, str], minutes: float = 60, comment: str = "", author: str = "course") -> str:
        """Silence alerts whose labels equal MATCHERS for MINUTES; the silence's id."""
        start = now()
        body = {"matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers.items()],
                "startsAt": rfc3339(start), "endsAt": rfc3339(start + timedelta(minutes=minutes)),
                "createdBy": author, "comment": comment or "silenced from a notebook"}
        return self._call("POST", "/api/v2/silences", body)["silenceID"]

    def silences(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/v2/silences")

    def expire(self, silence_id: str) -> None:
        self._call("DELETE", f"/api/v2/silence/{silence_id}")

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/api/v2/status")

    def reload(self) -> None:
        """Re-read the configuration file; a configuration Alertmanager rejects raises (the old one stays)."""
        self._call("POST", "/-/reload")


def amtool_path() -> str:
    found = shutil.which("amtool")
    if found is None:
        raise AlertmanagerError("amtool is not installed (Debian: apt-get install prometheus-alertmanager)")
    return found


def amtool(*args: str, check: bool = True) -> str:
    """Run amtool with ARGS; its standard output (stderr too when it fails)."""
    done = subprocess.run([amtool_path(), *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise AlertmanagerError(f"amtool {args[0] if args else ''}: {(done.stderr or done.stdout).strip()[:400]}")
    return done.stdout if done.returncode == 0 else done.stdout + done.stderr


def routes_test(config_file: Path | str, labels: dict[str, str]) -> list[str]:
    """The receivers the routing tree of CONFIG_FILE picks for an alert with LABELS, in order."""
    pairs = [f"{k}={v}" for k, v in sorted(labels.items())]
    out = amtool("config", "routes", "test", f"--config.file={config_file}", *pairs)
    return [name.strip() for name in out.strip().split(",") if name.strip()]


def prometheus_sends_to() -> list[str]:
    """The Alertmanager URLs the course's Prometheus sends alerts to right now (its discovered targets)."""
    try:
        with urllib.request.urlopen(f"{config.prometheus_url()}/api/v1/alertmanagers", timeout=TIMEOUT_S) as reply:
            return sorted(am["url"] for am in json.load(reply)["data"]["activeAlertmanagers"])
    except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError, KeyError) as exc:
        raise AlertmanagerError(f"Prometheus at {config.prometheus_url()} did not list Alertmanagers: {exc}") from None
