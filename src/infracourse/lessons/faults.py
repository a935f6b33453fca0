"""Failure injection for lessons: a loopback TCP proxy in front of a shared service that a notebook can
cut, restore or slow down, without touching the service other notebooks are using.

    with TcpProxy.to("redis") as proxy:          # or TcpProxy("127.0.0.1", 6379)
        r = redis.Redis(port=proxy.port)         # talk through the proxy
        proxy.cut()                              # live connections drop, new ones are refused
        proxy.restore()
        proxy.delay_s = 0.2                      # every chunk is held 200 ms, each way
"""

from __future__ import annotations

import socket
import threading

from infracourse import config


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.delay_s = 0.0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._cut = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.connections_accepted = 0
        self._accepter = threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)
        self._accepter.start()

    @classmethod
    def to(cls, service: str) -> TcpProxy:
        """A proxy in front of one of the course services."""
        ep = config.endpoint(service)
        return cls(ep.host, ep.port)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Drop every live connection and refuse new ones until restore()."""
        self._cut.set()
        self._drop_all()

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._closed.set()
        self._drop_all()
        self._accepter.join(timeout=2)
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drop_all(self) -> None:
        with self._lock:
            live, self._live = self._live, set()
        for sock in live:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.settimeout(None)
                # forward each chunk at once: Nagle + delayed ACK would add ~40 ms stalls of their own
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._live.update((client, upstream))
                self.connections_accepted += 1
            for src, dst in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(src, dst), daemon=True)
                thread.start()
                self._threads.append(thread)
            self._threads = [t for t in self._threads if t.is_alive()]

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                if self.delay_s and self._closed.wait(self.delay_s):  # a delayed chunk does not hold up close()
                    break
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
