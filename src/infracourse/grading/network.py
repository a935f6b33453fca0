"""The sandbox's network: a namespace of its own (`bwrap --unshare-net`) whose loopback reaches the course
services and nothing else, and one way back in, for Prometheus to scrape an app the submission serves.

All crossings are Unix sockets in a folder both sides see (the network namespace does not apply to them):
- outside, the grader relays `service-PORT.sock` to the course service on PORT;
- inside, `inside()` (the sandbox's first process, before the kernel) listens on 127.0.0.1:PORT for each
  service and relays to that socket, so the kernel uses the usual endpoints; it also serves `inbound.sock`,
  relaying to 127.0.0.1:PORT inside, PORT named on the connection's first line;
- the kernel's ZMQ channels are Unix sockets too (jupyter's ipc transport, see kernel.py);
- what the kernel registers for a service outside to call into it (a scrape target, a URL for the blackbox
  exporter to probe, its own Alertmanager) lands in a folder here; the grader relays each address through a
  port of its own and registers that with the real service, under the submission's namespace only.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from urllib.parse import urlsplit

from infracourse import config
from infracourse.services import alerting_targets, prometheus_targets

INBOUND = "inbound.sock"
TARGETS = "targets"
POLL_S = 0.5
CHUNK = 65536


def service_ports() -> dict[int, tuple[str, int]]:
    """Port inside -> the address it relays to: every course endpoint and the HTTP side ports."""
    found = {ep.port: (ep.host, ep.port) for ep in map(config.endpoint, config.SERVICE_NAMES)}
    for url in (config.rabbitmq_management_url(), config.nats_monitoring_url()):
        parts = urlsplit(url)
        if parts.hostname and parts.port:
            found[parts.port] = (parts.hostname, parts.port)
    return found


def registration_env(folder: Path) -> dict[str, str]:
    """Where a kernel's registrations go instead of the shared folders: FOLDER, relayed by Registrations."""
    return {prometheus_targets.FOLDER_ENV: str(folder / TARGETS), alerting_targets.FOLDER_ENV: str(folder)}


def kernel_env(folder: Path) -> dict[str, str]:
    """What the kernel's environment gains: every service is on its own loopback, targets go to FOLDER."""
    hosts = {f"COURSE_{name.upper()}_HOST": "127.0.0.1" for name in config.SERVICE_NAMES}
    return {**hosts, **registration_env(folder)}


def entry_command(folder: Path) -> list[str]:
    """The command the sandbox runs first; the kernel's command follows it."""
    ports = [str(port) for port in sorted(service_ports())]
    return [sys.executable, "-m", "infracourse.grading.network", str(folder), *ports, "--"]


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def _relay(client: socket.socket, connect: Callable[[socket.socket], socket.socket]) -> None:
    """Connect CLIENT's upstream and copy both ways until both ends are done."""
    try:
        upstream = connect(client)
    except (OSError, ValueError):
        client.close()
        return
    back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
    back.start()
    _pipe(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _serve(listener: socket.socket, connect: Callable[[socket.socket], socket.socket]) -> None:
    """Accept on LISTENER until it is closed; each connection relays in a thread of its own."""
    def accept_all() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_relay, args=(client, connect), daemon=True).start()

    threading.Thread(target=accept_all, daemon=True).start()


def _tcp_connection(address: tuple[str, int]) -> socket.socket:
    conn = socket.create_connection(address, timeout=5)
    conn.settimeout(None)  # connected: from now on the client's own timeouts apply (a blocking read may idle)
    return conn


def _unix_listener(path: Path) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    path.chmod(0o666)  # the sandbox's uid connects to the grader's sockets and the other way round
    listener.listen(64)
    return listener


def _unix_connection(path: Path, first_line: bytes = b"") -> socket.socket:
    conn = socket.socket(socket.AF_UNIX)
    conn.connect(str(path))
    if first_line:
        conn.sendall(first_line)
    return conn


def _read_port(conn: socket.socket) -> int:
    """The port named on CONN's first line (at most 6 bytes, so a stray client cannot make us wait on it)."""
    line = b""
    while not line.endswith(b"\n") and len(line) < 7:
        byte = conn.recv(1)
        if not byte:
            break
        line += byte
    port = int(line.strip())
    if not 0 < port < 65536:
        raise ValueError(port)
    return port


def _register_scrape(namespace: str, targets: list[str], labels: dict[str, str]) -> None:
    prometheus_targets.register(namespace, *targets, **labels)


def _register_probe(namespace: str, targets: list[str], labels: dict[str, str]) -> None:
    alerting_targets.register_probe(namespace, *targets, **labels)


def _register_alertmanager(namespace: str, targets: list[str], labels: dict[str, str]) -> None:
    alerting_targets.register_alertmanager(namespace, *targets[:1])


# what the kernel may register for a service outside to call into it: its folder here -> how to register it there
REGISTRATIONS: dict[str, Callable[[str, list[str], dict[str, str]], None]] = {
    TARGETS: _register_scrape,  # Prometheus scrapes the notebook's app (lab 13)
    alerting_targets.PROBES: _register_probe,  # the blackbox exporter probes it (lab 15)
    alerting_targets.ALERTMANAGERS: _register_alertmanager,  # Prometheus alerts the notebook's Alertmanager
}
_TARGET_RE = re.compile(r"^(?P<scheme>https?://)?(?P<host>[^/]+):(?P<port>\d{1,5})(?P<path>/.*)?$")


class Registrations:
    """What a kernel registers in FOLDER/<kind>/ for a service outside to call into it (REGISTRATIONS), registered
    with the real services: only the namespaces ACCEPTS takes, each target as OUTSIDE_TARGET maps it (raising
    ValueError for one that may not pass). poll() picks up new, changed and removed files."""

    def __init__(self, folder: Path, accepts: Callable[[str], bool], outside_target: Callable[[str], str]) -> None:
        self.folder = folder
        self.accepts = accepts
        self.outside_target = outside_target
        self.registered: dict[tuple[str, str], str] = {}  # (kind, namespace) -> the kernel's file, as relayed

    def poll(self) -> None:
        for kind in REGISTRATIONS:
            files = {p.stem: p for p in (self.folder / kind).glob("*.json")
                     if self.accepts(p.stem) and not p.is_symlink()}  # a link could name someone else's file
            for gone in [key for key in self.registered if key[0] == kind and key[1] not in files]:
                _unregister(kind, gone[1])
                del self.registered[gone]
            for namespace, path in files.items():
                with suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
                    self._relay_file(kind, namespace, path.read_text(encoding="utf-8"))

    def unregister_all(self) -> None:
        for kind, namespace in self.registered:
            _unregister(kind, namespace)
        self.registered.clear()

    def _relay_file(self, kind: str, namespace: str, text: str) -> None:
        if self.registered.get((kind, namespace)) == text:
            return
        groups = json.loads(text)
        targets = [self.outside_target(t) for g in groups for t in g["targets"]]
        labels = {k: str(v) for g in groups for k, v in g.get("labels", {}).items()
                  if k != prometheus_targets.NAMESPACE_LABEL}
        REGISTRATIONS[kind](namespace, targets, labels)
        self.registered[(kind, namespace)] = text


def _unregister(kind: str, namespace: str) -> None:
    (prometheus_targets.unregister if kind == TARGETS else alerting_targets.unregister)(namespace)


def parse_target(target: str) -> re.Match[str]:
    """TARGET ("host:PORT" or "http://host:PORT/path") as scheme, host, port and path; ValueError for anything
    else."""
    match = _TARGET_RE.match(target)
    if match is None:
        raise ValueError(target)
    return match


class Outside:
    """The grader's half for one kernel: service sockets in FOLDER, and the relay of what the kernel registers
    for a service to call into it (Registrations), in namespaces ending with SUFFIX (its own) only, each target
    through a port of the grader's."""

    def __init__(self, folder: Path, suffix: str) -> None:
        self.folder = folder
        self.listeners: list[socket.socket] = []
        self.relayed: dict[int, int] = {}  # port inside -> port outside
        self.registrations = Registrations(folder, lambda namespace: namespace.endswith(suffix),
                                           self._outside_target)
        self.stopped = threading.Event()

    def __enter__(self) -> Outside:
        for kind in REGISTRATIONS:
            (self.folder / kind).mkdir()
            (self.folder / kind).chmod(0o777)  # the kernel writes there; FOLDER admits only it and the grader
        for port, address in service_ports().items():
            listener = _unix_listener(self.folder / f"service-{port}.sock")
            self.listeners.append(listener)
            _serve(listener, lambda _client, address=address: _tcp_connection(address))
        self.poller = threading.Thread(target=self._poll, daemon=True)
        self.poller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopped.set()
        self.poller.join()
        self.registrations.unregister_all()
        for listener in self.listeners:
            listener.close()

    def _poll(self) -> None:
        while not self.stopped.wait(POLL_S):
            self.registrations.poll()

    def _outside_target(self, target: str) -> str:
        """TARGET ("host:PORT" or "http://host:PORT/path") inside, as it is reached from outside."""
        match = parse_target(target)
        port = self._outside_port(int(match["port"]))
        return f"{match['scheme'] or ''}127.0.0.1:{port}{match['path'] or ''}"

    def _outside_port(self, inside: int) -> int:
        if inside not in self.relayed:
            try:  # the same port when it is free here too: what a check reads back from the service matches
                listener = socket.create_server(("127.0.0.1", inside))
            except OSError:
                listener = socket.create_server(("127.0.0.1", 0))
            self.listeners.append(listener)
            line = f"{inside}\n".encode()
            _serve(listener, lambda _client: _unix_connection(self.folder / INBOUND, line))
            self.relayed[inside] = listener.getsockname()[1]
        return self.relayed[inside]


def inside(folder: Path, ports: list[int], argv: list[str]) -> int:
    """Run ARGV (the kernel) with the services on this namespace's loopback; its exit code."""
    for port in ports:
        listener = socket.create_server(("127.0.0.1", port))
        _serve(listener, lambda _client, port=port: _unix_connection(folder / f"service-{port}.sock"))
    inbound = _unix_listener(folder / INBOUND)
    _serve(inbound, lambda client: _tcp_connection(("127.0.0.1", _read_port(client))))
    return subprocess.call(argv)


if __name__ == "__main__":
    split = sys.argv.index("--")
    sys.exit(inside(Path(sys.argv[1]), [int(p) for p in sys.argv[2:split]], sys.argv[split + 1:]))
