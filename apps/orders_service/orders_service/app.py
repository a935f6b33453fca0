"""The orders service: HTTP on the standard library's threaded server, PostgreSQL through a pool, Redis as a
cache-aside layer, an outbox relayed to Kafka, RED metrics, JSON logs on stdout, and a drain on SIGTERM.

It never imports the course package: it runs alone in a container, configured only by `Settings`."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import redis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from orders_service.settings import Settings

POOL_SIZE = 10
POOL_TIMEOUT_S = 5.0  # a request waits this long for a connection, then gets a 503
SEED_PRODUCTS = 100  # demo catalogue, inserted once per namespace
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
log = logging.getLogger("orders_service")
Reply = tuple[int, Any]


class JsonFormatter(logging.Formatter):
    """One JSON object a line: what log collectors (Docker, Kubernetes, Loki) parse without rules."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name,
               "msg": record.getMessage(), **getattr(record, "fields", {})}
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(doc)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)  # reconnect chatter: readiness reports it


def event(message: str, **fields: Any) -> None:
    log.info(message, extra={"fields": fields})


def conninfo(settings: Settings) -> str:
    return settings.postgres.conninfo(options=f"-c search_path={settings.namespace}",
                                      application_name="orders-service")


def create_schema(conn: psycopg.Connection, namespace: str) -> None:
    """Idempotent, and safe when the service and its worker start at once (an advisory lock serialises them)."""
    schema = sql.Identifier(namespace)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [namespace])
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        for ddl in (
            "CREATE TABLE IF NOT EXISTS {}.products (product_id int PRIMARY KEY, name text NOT NULL,"
            " price numeric(10, 2) NOT NULL)",
            "CREATE TABLE IF NOT EXISTS {}.orders (order_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " product_id int NOT NULL, quantity int NOT NULL, amount numeric(12, 2) NOT NULL,"
            " ordered_at timestamptz NOT NULL DEFAULT now())",
            "CREATE TABLE IF NOT EXISTS {}.outbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " topic text NOT NULL, key text NOT NULL, payload jsonb NOT NULL)",
        ):
            conn.execute(sql.SQL(ddl).format(schema))
        conn.execute(sql.SQL("INSERT INTO {}.products SELECT i, 'product ' || i, 1 + mod(i * 37, 100) / 4.0"
                             " FROM generate_series(1, %s) AS i ON CONFLICT DO NOTHING").format(schema),
                     [SEED_PRODUCTS])


class OrdersService:
    """The request handlers and what they share: the pool, the Redis client, the metrics, the in-flight count."""

    ROUTES = {("GET", re.compile(r"/products/(\d+)")): "/products/{id}", ("POST", re.compile(r"/orders")): "/orders",
              ("GET", re.compile(r"/health/live")): "/health/live", ("GET", re.compile(r"/health/ready")):
              "/health/ready", ("GET", re.compile(r"/metrics")): "/metrics"}

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self.requests = Counter("http_requests_total", "HTTP requests by method, route and status.",
                                ["method", "endpoint", "status"], registry=self.registry)
        self.latency = Histogram("http_request_duration_seconds", "HTTP request latency.", ["method", "endpoint"],
                                 buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.pool = ConnectionPool(conninfo(settings), min_size=1, max_size=POOL_SIZE, timeout=POOL_TIMEOUT_S,
                                   open=False, name="orders")
        self.r = redis.Redis.from_url(settings.redis_url, socket_timeout=2, decode_responses=True)
        self.draining = threading.Event()
        self._idle = threading.Condition()
        self.inflight = 0

    def open(self) -> None:
        with psycopg.connect(conninfo(self.settings), autocommit=True) as conn:
            create_schema(conn, self.settings.namespace)
        self.pool.open(wait=True, timeout=10)

    def close(self) -> None:
        self.pool.close(timeout=2.0)  # requests still running after the drain lose their connection here
        self.r.close()

    # requests ------------------------------------------------------------------------------------------
    def dispatch(self, method: str, path: str, body: bytes) -> Reply:
        """Route, time, count; a database failure is a 503, an unknown route a 404 (counted as 'other')."""
        endpoint, match = "other", None
        for (verb, pattern), name in self.ROUTES.items():
            match = pattern.fullmatch(path) if verb == method else None
            if match:
                endpoint = name
                break
        started, status = time.perf_counter(), 500
        try:
            handler = self._handlers().get(endpoint)
            status, payload = (404, {"error": "not found"}) if handler is None else handler(match, body)
            return status, payload
        except (psycopg.OperationalError, PoolTimeout):
            status = 503
            return status, {"error": "database unavailable"}
        except (ValueError, KeyError):
            status = 400
            return status, {"error": "bad request"}
        finally:
            self.latency.labels(method, endpoint).observe(time.perf_counter() - started)
            self.requests.labels(method, endpoint, str(status)).inc()

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        """Count a request from its first byte read to its last byte written: a drain that waited only for the
        handler would exit while replies are still on their way."""
        with self._idle:
            self.inflight += 1
        try:
            yield
        finally:
            with self._idle:
                self.inflight -= 1
                self._idle.notify_all()

    def _handlers(self) -> dict[str, Callable[[re.Match[str], bytes], Reply]]:
        return {"/products/{id}": self.get_product, "/orders": self.create_order, "/health/live": self.live,
                "/health/ready": self.ready, "/metrics": self.metrics}

    def live(self, _match: re.Match[str], _body: bytes) -> Reply:
        return 200, {"status": "alive"}  # touches no dependency: a slow database must not get us restarted

    def ready(self, _match: re.Match[str], _body: bytes) -> Reply:
        checks = {"postgres": self._check(self._ping_postgres), "redis": self._check(self.r.ping),
                  "draining": self.draining.is_set()}
        ok = checks["postgres"] == checks["redis"] == "ok" and not checks["draining"]
        return (200 if ok else 503), checks

    def _ping_postgres(self) -> None:
        with self.pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1")

    @staticmethod
    def _check(probe: Callable[[], object]) -> str:
        try:
            probe()
            return "ok"
        except Exception as exc:  # noqa: BLE001 - readiness reports any failure, it never raises
            return type(exc).__name__

    def metrics(self, _match: re.Match[str], _body: bytes) -> Reply:
        return 200, generate_latest(self.registry)

    def get_product(self, match: re.Match[str], _body: bytes) -> Reply:
        product_id, key = int(match[1]), f"{self.settings.namespace}:product:{match[1]}"
        try:
            cached = self.r.get(key)
        except redis.RedisError:
            cached = None  # a sick cache must not take reads down: treat it as a miss
        if cached is not None:
            return 200, json.loads(cached)
        with self.pool.connection() as conn:
            row = conn.execute("SELECT product_id, name, price::float FROM products WHERE product_id = %s",
                               [product_id]).fetchone()
        if row is None:
            return 404, {"error": "no such product"}
        product = dict(zip(("product_id", "name", "price"), row, strict=True))
        try:
            self.r.set(key, json.dumps(product), ex=self.settings.cache_ttl_s)
        except redis.RedisError:
            pass
        return 200, product

    def create_order(self, _match: re.Match[str], body: bytes) -> Reply:
        order = json.loads(body or b"{}")
        product_id, quantity = int(order["product_id"]), int(order.get("quantity", 1))
        with self.pool.connection() as conn, conn.transaction():
            row = conn.execute("""INSERT INTO orders (product_id, quantity, amount)
                                  SELECT product_id, %s, %s * price FROM products WHERE product_id = %s
                                  RETURNING order_id, amount::float""", [quantity, quantity, product_id]).fetchone()
            if row is None:
                return 404, {"error": "no such product"}
            payload = {"event_id": f"order-{row[0]}", "order_id": row[0], "product_id": product_id,
                       "quantity": quantity, "amount": row[1]}
            conn.execute("INSERT INTO outbox (topic, key, payload) VALUES (%s, %s, %s)",
                         [topic(self.settings), str(product_id), Jsonb(payload)])
        return 201, {"order_id": row[0]}

    def wait_idle(self, timeout_s: float) -> int:
        """Wait until no request is in flight or TIMEOUT_S passed; return how many are still running."""
        with self._idle:
            self._idle.wait_for(lambda: self.inflight == 0, timeout=timeout_s)
            return self.inflight


def topic(settings: Settings) -> str:
    return f"{settings.namespace}.orders"


def make_server(service: OrdersService, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            with service.in_flight():
                length = int(self.headers.get("Content-Length") or 0)
                status, payload = service.dispatch(self.command, self.path.split("?")[0], self.rfile.read(length))
                text = isinstance(payload, bytes)
                data = payload if text else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST if text else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()

        do_GET = do_POST = _reply

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass  # access logs would double the metrics; errors are logged by the service

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True  # the drain below waits for requests, not for threads
    return server


def install_stop_signals() -> threading.Event:
    """SIGTERM (docker/podman stop, Kubernetes) and SIGINT set the returned event. Without a handler, Python as
    PID 1 of a container ignores SIGTERM: the kernel drops signals PID 1 has not asked for."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def serve(settings: Settings, stop: threading.Event | None = None) -> int:
    """Serve until STOP is set (by SIGTERM by default), then drain: stop accepting, let in-flight requests
    finish within shutdown_grace_s, close the pool, exit 0."""
    configure_logging(settings.log_level)
    stop = stop or install_stop_signals()
    service = OrdersService(settings)
    try:
        service.open()
    except psycopg.OperationalError as error:  # one line a log reader understands, then a non-zero exit
        log.error("PostgreSQL unreachable at start", extra={"fields": {"error": str(error).strip()}})
        return 1
    server = make_server(service, settings.http_host, settings.http_port)
    loop = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="http")
    loop.start()
    event("listening", host=settings.http_host, port=server.server_address[1], namespace=settings.namespace)
    stop.wait()
    service.draining.set()
    server.shutdown()  # no new requests: the listening socket closes below, clients get "refused" and retry
    server.server_close()
    loop.join()
    inflight = service.inflight
    left = service.wait_idle(settings.shutdown_grace_s)
    event("drained", inflight_at_stop=inflight, unfinished=left)
    service.close()
    return 0 if left == 0 else 1


def relay(settings: Settings, stop: threading.Event | None = None, batch: int = 500) -> int:
    """The worker: publish outbox rows to Kafka, delete them once Kafka confirmed them (at least once)."""
    from confluent_kafka import KafkaError, KafkaException, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    configure_logging(settings.log_level)
    stop = stop or install_stop_signals()
    kafka = {"bootstrap.servers": settings.kafka_bootstrap, "logger": logging.getLogger("orders_service.kafka")}
    admin = AdminClient(kafka)  # kept in a variable: a collected client cancels its own futures
    created = admin.create_topics([NewTopic(topic(settings), num_partitions=4, replication_factor=1)])
    try:
        created[topic(settings)].result(15)
    except KafkaException as error:
        if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    producer = Producer({**kafka, "enable.idempotence": True, "linger.ms": 5})
    published = 0
    with psycopg.connect(conninfo(settings)) as conn:
        event("relaying", topic=topic(settings))
        while not stop.is_set():
            with conn.transaction():
                rows = conn.execute("SELECT id, key, payload FROM outbox ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                                    [batch]).fetchall()
                for _, key, payload in rows:
                    producer.produce(topic(settings), key=key, value=json.dumps(payload))
                if producer.flush(10):
                    raise RuntimeError("Kafka did not confirm the batch: the rows stay in the outbox")
                conn.execute("DELETE FROM outbox WHERE id = ANY(%s)", [[row[0] for row in rows]])
            published += len(rows)
            if rows:
                event("published", rows=len(rows), total=published)
            else:
                stop.wait(0.2)
    event("stopped", published=published)
    return 0
