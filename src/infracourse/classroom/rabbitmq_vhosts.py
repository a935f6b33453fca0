"""RabbitMQ: a virtual host per learner and a user whose only permissions (configure, write, read: everything)
are on it, tagged `management` so the course's namespace reset can list its queues through the HTTP API (which
shows such a user its own vhosts only). Queues, exchanges and bindings never cross vhosts."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from urllib.parse import quote

from infracourse import config
from infracourse.classroom.roster import Learner


def quoted(name: str) -> str:
    return quote(name, safe="")


def request(method: str, path: str, body: object | None = None, login: tuple[str, str] | None = None) -> object:
    """One management API call with LOGIN, by default the course's (the instructor's) credentials."""
    ep = config.endpoint("rabbitmq")
    user, password = login or (ep.user, ep.password)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{config.rabbitmq_management_url()}/api/{path}", data=data, method=method,
                                 headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def create(who: Learner, password: str) -> str:
    name = quoted(who.principal)
    request("PUT", f"vhosts/{name}", {"description": f"course learner {who.name}"})
    request("PUT", f"users/{name}", {"password": password, "tags": "management"})
    request("PUT", f"permissions/{name}/{name}", {"configure": ".*", "write": ".*", "read": ".*"})
    return f"vhost {who.principal} and its only user"


def drop(who: Learner) -> str:
    name = quoted(who.principal)
    done = []
    for path in (f"vhosts/{name}", f"users/{name}"):  # deleting the vhost drops its queues and connections
        try:
            request("DELETE", path)
            done.append(path.split("/")[0][:-1])
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
    return f"{' and '.join(done) or 'nothing'} {who.principal} deleted"


def present() -> set[str]:
    return {u["name"] for u in request("GET", "users?columns=name") if u["name"].startswith("learner_")}

