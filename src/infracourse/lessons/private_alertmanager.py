"""An Alertmanager of a notebook's own, on a free loopback port with a temporary data folder: its configuration
is rewritten and reloaded at will without touching the shared one at 127.0.0.1:9093 that every notebook's
alerts reach.

    with PrivateAlertmanager(config_yaml) as am:     # an Alertmanager client (post, alerts, silence, ...)
        am.configure(other_yaml)                     # rewrite alertmanager.yml and reload it
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Self

from infracourse.clients.alertmanager import Alertmanager, AlertmanagerError
from infracourse.services.probes import free_port
from infracourse.waiting import StillWaiting, poll

BINARIES = ("prometheus-alertmanager", "alertmanager")
READY_TIMEOUT_S = 15.0


def _binary() -> str:
    for name in BINARIES:
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/bin")
        if found:
            return found
    raise FileNotFoundError("Alertmanager is not installed: run `course setup` (Debian: prometheus-alertmanager)")


class PrivateAlertmanager(Alertmanager):
    def __init__(self, config_yaml: str, templates: dict[str, str] | None = None) -> None:
        self.binary = _binary()
        self.folder = Path(tempfile.mkdtemp(prefix="private-alertmanager-"))
        self.port = free_port()
        super().__init__(f"http://127.0.0.1:{self.port}")
        self._process: subprocess.Popen[bytes] | None = None
        self._write(config_yaml, templates or {})

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.folder / "alertmanager.yml"

    def _write(self, config_yaml: str, templates: dict[str, str]) -> None:
        for name, text in templates.items():  # config files name them by path, relative to the config file
            (self.folder / name).write_text(text, encoding="utf-8")
        self.config_file.write_text(config_yaml, encoding="utf-8")

    def start(self) -> Self:
        if self._process is not None and self._process.poll() is None:
            return self
        with (self.folder / "alertmanager.log").open("ab") as log:
            self._process = subprocess.Popen(
                [self.binary, f"--config.file={self.config_file}", f"--storage.path={self.folder / 'data'}",
                 f"--web.listen-address={self.address}", f"--web.external-url={self.url}",
                 "--cluster.listen-address="],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            )
        try:
            poll(self._ready, bool, READY_TIMEOUT_S, what="the private Alertmanager's /-/ready", interval_s=0.1)
        except StillWaiting:
            self.close()
            raise AlertmanagerError(f"Alertmanager did not start: {self.log_tail()}") from None
        return self

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise AlertmanagerError(f"Alertmanager exited: {self.log_tail()}")
        try:
            self._call("GET", "/-/ready")
        except AlertmanagerError:
            return False
        return True

    def log_tail(self, lines: int = 3) -> str:
        log = self.folder / "alertmanager.log"
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"

    def configure(self, config_yaml: str, templates: dict[str, str] | None = None) -> None:
        """Replace the configuration (and templates) and reload; a configuration it rejects raises."""
        self._write(config_yaml, templates or {})
        self.reload()

    def close(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
