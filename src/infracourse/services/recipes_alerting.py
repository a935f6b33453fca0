"""The alerting services, started natively from Debian's packages: Alertmanager (with amtool) and the blackbox
exporter. Their configuration lives in services/alertmanager and services/blackbox, shared with compose."""

from __future__ import annotations

from infracourse.paths import services_config
from infracourse.services.recipes import NativeSpec, ServiceDirs, _port, _which


def _binary(debian: str, upstream: str) -> str:
    """Debian prefixes the upstream names (Homebrew and release tarballs do not)."""
    return upstream if _which(debian) is None and _which(upstream) is not None else debian


class Alertmanager(NativeSpec):
    def __init__(self) -> None:
        super().__init__("alertmanager")

    def binaries(self) -> list[str]:
        return [_binary("prometheus-alertmanager", "alertmanager"), "amtool"]

    def command(self, dirs: ServiceDirs) -> list[str]:
        return [
            _which(self.binaries()[0]),
            f"--config.file={services_config() / 'alertmanager' / 'alertmanager.yml'}",
            f"--storage.path={dirs.data}", f"--web.listen-address=127.0.0.1:{_port('alertmanager')}",
            "--cluster.listen-address=",  # one instance: no gossip port on 0.0.0.0:9094
        ]


class Blackbox(NativeSpec):
    def __init__(self) -> None:
        super().__init__("blackbox")

    def binaries(self) -> list[str]:
        return [_binary("prometheus-blackbox-exporter", "blackbox_exporter")]

    def command(self, dirs: ServiceDirs) -> list[str]:
        return [
            _which(self.binaries()[0]),
            f"--config.file={services_config() / 'blackbox' / 'blackbox.yml'}",
            f"--web.listen-address=127.0.0.1:{_port('blackbox')}",
        ]


ALERTING_SPECS: tuple[NativeSpec, ...] = (Alertmanager(), Blackbox())
