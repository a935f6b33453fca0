"""The sandbox's bridges (grading/network.py) without a sandbox: a service socket relays to the service, a target
the kernel registers reaches Prometheus' folder through a port of the grader's, and only in its own namespace."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from infracourse.grading import network
from infracourse.services import prometheus_targets

SUFFIX = "_g_ada_123abc"


def _wait_for(predicate, timeout_s: float = 5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := predicate():
            return found
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def relay(tmp_path: Path, monkeypatch):
    """An Outside bridge whose Prometheus folder is a temporary one (FOLDER_ENV is the grader's here)."""
    monkeypatch.setenv(prometheus_targets.FOLDER_ENV, str(tmp_path / "prometheus"))
    folder = tmp_path / "net"
    folder.mkdir()
    with network.Outside(folder, SUFFIX) as outside:
        yield outside


def test_every_course_service_gets_a_socket(relay) -> None:
    ports = network.service_ports()
    assert {5432, 6379, 9092, 5672, 4222, 9090} <= set(ports)
    assert all((relay.folder / f"service-{port}.sock").is_socket() for port in ports)


def test_a_service_socket_relays_to_the_service(relay) -> None:
    redis_port = network.service_ports()[6379][1]
    conn = socket.socket(socket.AF_UNIX)
    conn.connect(str(relay.folder / f"service-{redis_port}.sock"))
    conn.sendall(b"PING\r\n")
    assert conn.recv(16) == b"+PONG\r\n"
    conn.close()


def _fake_inbound(folder: Path) -> list[int]:
    """What the sandbox's inbound socket would do: read the port line, answer with it."""
    asked: list[int] = []
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(folder / network.INBOUND))
    listener.listen(4)

    def serve() -> None:
        conn, _ = listener.accept()
        asked.append(network._read_port(conn))
        conn.sendall(f"port {asked[-1]}".encode())
        conn.close()
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return asked


def test_a_registered_target_is_relayed_under_its_own_namespace_only(relay) -> None:
    asked = _fake_inbound(relay.folder)
    targets = relay.folder / network.TARGETS
    group = [{"targets": ["127.0.0.1:8123"], "labels": {"namespace": "someone_else", "app": "shop"}}]
    (targets / f"obs13{SUFFIX}.json").write_text(json.dumps(group))
    (targets / "obs13_g_bob_999999.json").write_text(json.dumps(group))  # another submission's namespace

    found = _wait_for(lambda: prometheus_targets.registered().get(f"obs13{SUFFIX}"))
    assert list(prometheus_targets.registered()) == [f"obs13{SUFFIX}"]
    written = json.loads(prometheus_targets.target_file(f"obs13{SUFFIX}").read_text())
    assert written[0]["labels"] == {"namespace": f"obs13{SUFFIX}", "app": "shop"}, "the namespace is forced"
    host, port = found[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=2) as scrape:
        assert scrape.recv(32) == b"port 8123"
    assert asked == [8123]

    (targets / f"obs13{SUFFIX}.json").unlink()
    _wait_for(lambda: not prometheus_targets.registered())


def test_a_port_line_is_bounded() -> None:
    left, right = socket.socketpair()
    left.sendall(b"99999999999\n")
    with pytest.raises(ValueError):
        network._read_port(right)
    left.close()
    right.close()
