"""The few calls of RabbitMQ's management HTTP API the course needs (listing and deleting by name, finding and
closing client connections)."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from urllib.parse import quote

from infracourse import config


def _request(method: str, path: str, headers: dict[str, str] | None = None) -> object:
    ep = config.endpoint("rabbitmq")
    url = f"{config.rabbitmq_management_url()}/api/{path}"
    token = base64.b64encode(f"{ep.user}:{ep.password}".encode()).decode()
    req = urllib.request.Request(
        url, method=method, headers={"Authorization": f"Basic {token}", **(headers or {})}
    )
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


def exchange_info(name: str) -> dict:
    """One exchange's settings: type, durable, auto_delete, arguments ..."""
    return _request("GET", f"exchanges/{_vhost()}/{quote(name, safe='')}")


def bindings(prefix: str) -> list[dict]:
    """Bindings from an exchange whose name starts with PREFIX: source, destination, routing_key, arguments."""
    return [b for b in _request("GET", f"bindings/{_vhost()}") if b["source"].startswith(prefix)]


def connections_named(client_name: str) -> list[str]:
    """Server-side names of the open connections whose client set connection_name=CLIENT_NAME."""
    rows = _request("GET", "connections?columns=name,client_properties")
    return [c["name"] for c in rows if c.get("client_properties", {}).get("connection_name") == client_name]


def close_connections(client_name: str, reason: str = "closed by the course", timeout_s: float = 10) -> int:
    """Close, from the broker's side, every connection named CLIENT_NAME; return how many were closed.

    The management API lists a new connection only after its next statistics event (about a second),
    so this waits up to TIMEOUT_S for at least one to appear.
    """
    deadline = time.monotonic() + timeout_s
    while not (names := connections_named(client_name)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for name in names:
        _request("DELETE", f"connections/{quote(name, safe='')}", headers={"X-Reason": reason})
    return len(names)
