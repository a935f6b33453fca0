"""A private nats-server with JetStream for one notebook: started, crashed and restarted at will, without
touching the shared server other notebooks use.

    with PrivateNatsServer() as server:        # ephemeral port, temporary store directory
        nc = await nats.connect(server.url)
        server.restart(crash=True)             # SIGKILL, then start again on the same port and store
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from infracourse.services.probes import free_port

BINARY = "nats-server"
READY_TIMEOUT_S = 10.0


class PrivateNatsServer:
    def __init__(self, binary: str = BINARY) -> None:
        path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/local/sbin:/usr/local/bin")
        if path is None:
            raise FileNotFoundError(f"{binary} is not installed (Debian: apt-get install nats-server)")
        self.binary = path
        self.store_dir = Path(tempfile.mkdtemp(prefix="private-nats-"))
        self.port = free_port()
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> PrivateNatsServer:
        """Start on the same port and store directory as before, so JetStream state survives a restart."""
        if self.running:
            return self
        log = (self.store_dir / "server.log").open("ab")
        # JetStream data lives in store_dir/jetstream; the log stays out of the notebook's stderr.
        self._process = subprocess.Popen(
            [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store_dir)],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )
        log.close()
        self._wait_until_ready()
        self.starts += 1
        return self

    def stop(self, crash: bool = False) -> None:
        """SIGTERM (a clean shutdown) or, with crash=True, SIGKILL: no chance to flush or say goodbye."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill() if crash else self._process.terminate()
            self._process.wait(timeout=10)
        self._process = None

    def restart(self, crash: bool = False) -> PrivateNatsServer:
        self.stop(crash=crash)
        return self.start()

    def close(self) -> None:
        """Stop the server and delete its store directory."""
        self.stop()
        shutil.rmtree(self.store_dir, ignore_errors=True)

    def __enter__(self) -> PrivateNatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait_until_ready(self) -> None:
        """Ready means a client connection gets an INFO line announcing JetStream."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self._process.returncode}; see {self.store_dir}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if b'"jetstream":true' in sock.recv(4096):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop(crash=True)
        raise TimeoutError(f"nats-server did not become ready within {READY_TIMEOUT_S:.0f} s")

