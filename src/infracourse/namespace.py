"""Per-notebook namespaces: every schema, key, topic, queue, subject and stream a notebook uses is derived
from one slug, so notebooks never touch each other's data and can run in parallel or twice in a row.

The slug gets a suffix from where the notebook runs: lessons (notebooks/) none, solutions/ "_sol", labs/
"_lab". INFRACOURSE_NS_SUFFIX overrides it (the grader gives every submission its own). On a classroom server
COURSE_NAMESPACE_PREFIX (`ada__`, set by the hub) goes in front, so every slug is that learner's.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from infracourse import config
from infracourse.errors import CourseError
from infracourse.waiting import run_coroutine, wait_until

_FOLDER_SUFFIX = {"notebooks": "", "solutions": "_sol", "labs": "_lab"}
_SLUG_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


def _suffix() -> str:
    if "INFRACOURSE_NS_SUFFIX" in os.environ:
        raw = os.environ["INFRACOURSE_NS_SUFFIX"].lower()
        return re.sub(r"[^a-z0-9_]", "_", raw)
    return _FOLDER_SUFFIX.get(Path.cwd().name, "")


def _prefix() -> str:
    return re.sub(r"[^a-z0-9_]", "_", os.environ.get(config.LEARNER_PREFIX_ENV, "").lower())


class NamespaceBusy(CourseError):
    """Another kernel already runs a notebook with this namespace."""


_CLAIMS: dict[str, IO[str]] = {}  # slug -> the open lock file that holds it, for this process's lifetime


def _claims_dir() -> Path:
    path = Path(tempfile.gettempdir()) / f"infracourse-{os.getuid()}-namespaces"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


@dataclass(frozen=True)
class Namespace:
    slug: str

    @classmethod
    def for_notebook(cls, base: str) -> Namespace:
        if not _SLUG_RE.match(base):
            raise ValueError(f"namespace {base!r}: use lowercase letters, digits and _ (e.g. 'pg01')")
        return cls(_prefix() + base + _suffix())

    def claim(self) -> None:
        """Hold this namespace for as long as this process lives, or raise NamespaceBusy if another live
        process holds it (two kernels resetting and filling one namespace would break each other's checks).
        The lock is an flock, so it goes with the process that held it: never stale."""
        if self.slug in _CLAIMS:
            return
        lock = open(_claims_dir() / f"{self.slug}.lock", "a+")  # noqa: SIM115 - kept open on purpose
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            lock.close()
            raise NamespaceBusy(
                f"this notebook (namespace {self.slug}) is already running in another kernel ({holder}); shut "
                "that kernel down (Kernel > Shut Down Kernel in its tab) and run this cell again") from None
        lock.truncate(0)
        lock.write(f"pid {os.getpid()}\n")
        lock.flush()
        _CLAIMS[self.slug] = lock

    # names -----------------------------------------------------------------------------------------
    @property
    def schema(self) -> str:
        """PostgreSQL schema owned by this notebook."""
        return self.slug

    def key(self, *parts: object) -> str:
        """Redis key: ns.key("user", 42) -> 'redis04:user:42'."""
        return ":".join([self.slug, *map(str, parts)])

    def topic(self, name: str) -> str:
        """Kafka topic (also used for consumer group ids)."""
        return f"{self.slug}.{name}"

    def queue(self, name: str) -> str:
        """RabbitMQ queue or exchange name."""
        return f"{self.slug}.{name}"

    exchange = queue

    def subject(self, name: str) -> str:
        """NATS subject: ns.subject("orders.>") -> 'nats08.orders.>'. A learner's start with their prefix as a
        token of its own ('ada__.ada__nats08.orders.>'): NATS permissions match whole tokens only."""
        return f"{_prefix()}.{self.slug}.{name}" if _prefix() else f"{self.slug}.{name}"

    def stream(self, name: str) -> str:
        """JetStream stream, consumer or KV bucket name (no dots allowed there). The '-' cannot occur in a
        slug, so 'nats08-...' never matches the solution's 'nats08_sol-...' when a namespace is reset."""
        return f"{self.slug}-{name}"

    def postgres_dsn(self, **options: object) -> str:
        """A DSN whose search_path is this notebook's schema (then public, for extensions)."""
        return config.postgres_dsn(options=f"-c search_path={self.schema},public", **options)

    # reset -----------------------------------------------------------------------------------------
    def reset(self, *services: str) -> None:
        """Remove everything this namespace owns in SERVICES, leaving them empty and ready."""
        self.empty(*services)

    def empty(self, *services: str) -> dict[str, str]:
        """reset(SERVICES), saying per service what was removed ("3 tables", "12 keys", ...)."""
        return {service: getattr(self, f"_reset_{service}", lambda: "")() for service in services}

    def _reset_postgres(self) -> str:
        import psycopg

        with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
            conn.execute("SET client_min_messages = warning")
            (tables,) = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s", [self.schema]).fetchone()
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{self.schema}"')
        return _removed(tables, "table")

    def _reset_redis(self) -> str:
        import redis

        with redis.Redis.from_url(config.redis_url(), socket_timeout=5) as r:
            keys = list(r.scan_iter(match=f"{self.slug}:*", count=1000))
            for start in range(0, len(keys), 500):
                r.delete(*keys[start : start + 500])
        return _removed(len(keys), "key")

    def _reset_kafka(self) -> str:
        from confluent_kafka.admin import AdminClient

        from infracourse.clients.kafka_logging import quiet_logger

        admin = AdminClient({"bootstrap.servers": config.kafka_bootstrap(), "logger": quiet_logger()})
        prefix = f"{self.slug}."
        groups = [
            g.group_id
            for g in admin.list_consumer_groups(request_timeout=10).result().valid
            if g.group_id.startswith(prefix)
        ]
        if groups:
            for future in admin.delete_consumer_groups(groups, request_timeout=10).values():
                future.exception()  # a group that vanished meanwhile is fine
        topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        if topics:
            for future in admin.delete_topics(topics, operation_timeout=10).values():
                future.exception()
        # deletion is asynchronous on Apache Kafka: recreating a topic too early fails
        wait_until(lambda: not any(t.startswith(prefix) for t in admin.list_topics(timeout=10).topics),
                   timeout_s=15, interval_s=0.2)
        return f"{_removed(len(topics), 'topic')}, {_removed(len(groups), 'consumer group')}"

    def _reset_rabbitmq(self) -> str:
        """AMQP cannot list queues, so the management HTTP API (on in both modes) finds ours."""
        from infracourse.clients import rabbitmq_admin

        prefix = f"{self.slug}."
        removed = {}
        for kind in ("queues", "exchanges"):
            names = [name for name in rabbitmq_admin.names(kind) if name.startswith(prefix)]
            for name in names:
                rabbitmq_admin.delete(kind, name)
            removed[kind] = len(names)
        return f"{_removed(removed['queues'], 'queue')}, {_removed(removed['exchanges'], 'exchange')}"

    def _reset_nats(self) -> str:
        import nats

        async def wipe() -> int:
            nc = await nats.connect(config.nats_url(), connect_timeout=3, max_reconnect_attempts=0)
            try:
                js = nc.jetstream()
                ours = [info.config.name for info in await js.streams_info()
                        if info.config.name.startswith((self.stream(""), f"KV_{self.stream('')}"))]
                for name in ours:
                    await js.delete_stream(name)
                return len(ours)
            finally:
                await nc.close()

        return _removed(run_coroutine(wipe, timeout_s=30), "stream")

    def _reset_prometheus(self) -> str:
        from infracourse.services import prometheus_targets

        return _removed(int(prometheus_targets.unregister(self.slug)), "scrape target file")


def _removed(count: int, what: str) -> str:
    return f"{count} {what}{'' if count == 1 else 's'}"
