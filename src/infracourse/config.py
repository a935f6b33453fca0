"""Service endpoints and credentials: one place, the same defaults as docker-compose.yml.

Every value can be overridden by an environment variable named COURSE_<SERVICE>_<FIELD>,
for example COURSE_POSTGRES_PORT=5433 or COURSE_REDIS_HOST=10.0.0.5. On a shared server that
`course classroom harden` closed, the admin passwords it generated come next (from a file only the
instructor can read), then the public defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from psycopg.conninfo import make_conninfo

from infracourse.paths import admin_secrets_file


@dataclass(frozen=True)
class Endpoint:
    service: str
    host: str
    port: int
    user: str = ""
    password: str = field(default="", repr=False)
    database: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


# service -> (port, user, password, database); host is 127.0.0.1 for all of them
_DEFAULTS: dict[str, tuple[int, str, str, str]] = {
    "postgres": (5432, "course", "course", "course"),
    "pgbouncer": (6432, "course", "course", "course"),  # lesson 03: pools in front of postgres
    "postgres_replica": (5433, "course", "course", "course"),  # lesson 03: a streaming hot standby
    "redis": (6379, "", "", "0"),
    "kafka": (9092, "", "", ""),
    "rabbitmq": (5672, "course", "course", "/"),
    "nats": (4222, "", "", ""),
    "prometheus": (9090, "", "", ""),
    "alertmanager": (9093, "", "", ""),
    "blackbox": (9115, "", "", ""),
}

SERVICE_NAMES: tuple[str, ...] = tuple(_DEFAULTS)
LEARNER_PREFIX_ENV = "COURSE_NAMESPACE_PREFIX"  # a class's learner (set by the hub and `course classroom grade`)


def on_a_class_server(env: Mapping[str, str] = os.environ) -> bool:
    """ENV is a learner's of `course classroom`: shared services, and only that learner's own logins on them."""
    return bool(env.get(LEARNER_PREFIX_ENV))


def instructor_secrets() -> dict[str, str]:
    """The COURSE_* variables `course classroom harden` stored, if this process may read them (the instructor's
    may; a learner's, another uid, gets nothing)."""
    try:
        text = admin_secrets_file().read_text(encoding="utf-8")
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in text.splitlines() if line.startswith("COURSE_") and "=" in line)


def endpoint(service: str) -> Endpoint:
    """The endpoint of SERVICE, with COURSE_<SERVICE>_* environment overrides applied."""
    if service not in _DEFAULTS:
        raise KeyError(f"unknown service {service!r}; the course knows {', '.join(SERVICE_NAMES)}")
    port, user, password, database = _DEFAULTS[service]
    prefix = f"COURSE_{service.upper()}_"
    overrides = {**instructor_secrets(), **os.environ}
    env = overrides.get
    raw_port = env(prefix + "PORT", str(port))
    if not raw_port.isdigit():
        raise ValueError(f"{prefix}PORT must be a number, got {raw_port!r}")
    return Endpoint(
        service=service,
        host=env(prefix + "HOST", "127.0.0.1"),
        port=int(raw_port),
        user=env(prefix + "USER", user),
        password=env(prefix + "PASSWORD", password),
        database=env(prefix + "DATABASE", database),
    )


def public_password(service: str) -> str:
    """The password this repository publishes for SERVICE's admin user ("": none): what `course classroom harden`
    replaces."""
    return _DEFAULTS[service][2]


def postgres_dsn(**options: object) -> str:
    """A libpq connection string for psycopg, e.g. postgres_dsn(application_name="lesson01")."""
    ep = endpoint("postgres")
    parts = {
        "host": ep.host,
        "port": ep.port,
        "user": ep.user,
        "password": ep.password,
        "dbname": ep.database,
        "connect_timeout": 3,
        **options,
    }
    return make_conninfo(**parts)  # libpq's quoting: spaces, quotes, backslashes


def redis_url() -> str:
    ep = endpoint("redis")
    auth = f"{quote(ep.user)}:{quote(ep.password)}@" if ep.password else ""  # an ACL user (classroom) or none
    return f"redis://{auth}{ep.host}:{ep.port}/{ep.database}"


def kafka_bootstrap() -> str:
    return endpoint("kafka").address


def amqp_url() -> str:
    ep = endpoint("rabbitmq")
    return f"amqp://{quote(ep.user)}:{quote(ep.password)}@{ep.host}:{ep.port}/{quote(ep.database, safe='')}"


def rabbitmq_management_url() -> str:
    ep = endpoint("rabbitmq")
    return f"http://{ep.host}:{os.environ.get('COURSE_RABBITMQ_MANAGEMENT_PORT', '15672')}"


def nats_url() -> str:
    ep = endpoint("nats")
    auth = f"{quote(ep.user)}:{quote(ep.password)}@" if ep.password else ""  # a classroom learner's NATS user
    return f"nats://{auth}{ep.address}"


def nats_monitoring_url() -> str:
    """NATS's HTTP monitoring endpoint (/varz, /jsz, /healthz)."""
    return f"http://{endpoint('nats').host}:{os.environ.get('COURSE_NATS_MONITORING_PORT', '8222')}"


def prometheus_url() -> str:
    return f"http://{endpoint('prometheus').address}"


def alertmanager_url() -> str:
    return f"http://{endpoint('alertmanager').address}"


def blackbox_url() -> str:
    return f"http://{endpoint('blackbox').address}"
