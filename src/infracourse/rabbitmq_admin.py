"""The few calls of RabbitMQ's management HTTP API the course needs (listing and deleting by name)."""

from __future__ import annotations

import base64
import json
import urllib.request
from urllib.parse import quote

from . import config


def _request(method: str, path: str) -> object:
    ep = config.endpoint("rabbitmq")
    url = f"{config.rabbitmq_management_url()}/api/{path}"
    token = base64.b64encode(f"{ep.user}:{ep.password}".encode()).decode()
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def _vhost() -> str:
    return quote(config.endpoint("rabbitmq").database, safe="")


def names(kind: str) -> list[str]:
    """Names of all 'queues' or 'exchanges' in the course's virtual host."""
    return [item["name"] for item in _request("GET", f"{kind}/{_vhost()}?columns=name")]


def delete(kind: str, name: str) -> None:
    _request("DELETE", f"{kind}/{_vhost()}/{quote(name, safe='')}")


def queue_info(name: str) -> dict:
    """Counters of one queue: messages, messages_ready, messages_unacknowledged, consumers ..."""
    return _request("GET", f"queues/{_vhost()}/{quote(name, safe='')}")
