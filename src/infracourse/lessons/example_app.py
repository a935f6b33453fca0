"""Generated from notebooks/13_metrics_with_prometheus.ipynb by `course labs build`; do not edit."""

from __future__ import annotations

import json
import random
import time

import psycopg
import redis
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from infracourse import config
from infracourse.lessons.http_service import Handler, HttpService, Request, Response, drive
from infracourse.lessons.served_app import ServedApp, Traffic
from infracourse.namespace import Namespace

PRODUCTS = 200
CACHE_TTL_S = 60


def create_products(conn: psycopg.Connection) -> None:
    conn.execute("DROP TABLE IF EXISTS products")
    conn.execute("CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price_cents int NOT NULL)")
    conn.execute(f"INSERT INTO products SELECT i, 'product ' || i, 100 + 7 * i FROM generate_series(1, {PRODUCTS}) i")


OUTAGE = (41, 70)  # order ids during which the provider has a bad minute, in the middle of our traffic


class PaymentDeclined(Exception):
    pass


def pay(order_id: int, outage: tuple[int, int] = OUTAGE) -> None:
    """The simulated payment provider: about 50 ms; in the outage 4x slower, and most payments fail."""
    rng = random.Random(order_id)
    in_outage = outage[0] <= order_id <= outage[1]
    time.sleep(rng.lognormvariate(-3.0, 0.4) * (4 if in_outage else 1))
    if rng.random() < (0.9 if in_outage else 0.02):
        raise PaymentDeclined(order_id)


LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class RedMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("http_requests_total", "HTTP requests by method, route and status.",
                                ["method", "endpoint", "status"], registry=registry)
        self.latency = Histogram("http_request_duration_seconds", "HTTP request latency.", ["method", "endpoint"],
                                 buckets=LATENCY_BUCKETS_S, registry=registry)
        self.in_flight = Gauge("http_requests_in_flight", "HTTP requests being served.", registry=registry)

    def middleware(self, handler: Handler) -> Handler:
        def observed(request: Request) -> Response:
            status, started = 500, time.perf_counter()  # a crash counts as a 500
            with self.in_flight.track_inprogress():
                try:
                    response = handler(request)
                    status = response.status
                    return response
                finally:
                    self.latency.labels(request.method, request.route).observe(time.perf_counter() - started)
                    self.requests.labels(request.method, request.route, str(status)).inc()

        return observed


class ShopMetrics(RedMetrics):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.cache = Counter("cache_requests_total", "Cache lookups by result.", ["cache", "result"],
                             registry=registry)
        self.queue_depth = Gauge("queue_depth", "Messages waiting in a queue.", ["queue"], registry=registry)


def product_lookup(ns: Namespace, conn: psycopg.Connection, r: redis.Redis, cache: Counter) -> Handler:
    """GET /products/{id}: Redis first, PostgreSQL on a miss, then cached for CACHE_TTL_S."""

    def get_product(request: Request) -> Response:
        key = ns.key("product", request.params["id"])
        if (cached := r.get(key)) is not None:
            cache.labels("products", "hit").inc()
            return Response(200, json.loads(cached))
        cache.labels("products", "miss").inc()
        row = conn.execute("SELECT id, name, price_cents FROM products WHERE id = %s", [int(request.params["id"])])
        if (product := row.fetchone()) is None:
            return Response(404, {"error": "no such product"})
        body = dict(zip(("id", "name", "price_cents"), product, strict=True))
        r.set(key, json.dumps(body), ex=CACHE_TTL_S)
        return Response(200, body)

    return get_product


def checkout_queue(ns: Namespace, r: redis.Redis, outage: tuple[int, int] = OUTAGE) -> Handler:
    """POST /checkout: pay, then push the order id onto the orders list."""

    def checkout(request: Request) -> Response:
        order_id = r.incr(ns.key("order_seq"))
        try:
            pay(order_id, outage)
        except PaymentDeclined:
            return Response(502, {"error": "payment declined", "order": order_id})
        r.rpush(ns.key("orders"), order_id)
        return Response(201, {"order": order_id})

    return checkout


def shop_service(ns: Namespace, conn: psycopg.Connection, r: redis.Redis,
                 outage: tuple[int, int] = OUTAGE) -> HttpService:
    registry = CollectorRegistry()
    metrics = ShopMetrics(registry)
    metrics.queue_depth.labels("orders").set_function(lambda: r.llen(ns.key("orders")))
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    routes = {"GET /products/{id}": product_lookup(ns, conn, r, metrics.cache),
              "POST /checkout": checkout_queue(ns, r, outage)}
    return HttpService(routes, middleware=[metrics.middleware], registry=registry)


class ExampleShop(ServedApp):
    def __init__(self, ns: Namespace, outage: tuple[int, int] = OUTAGE) -> None:
        self.ns = ns
        self.conn = psycopg.connect(ns.postgres_dsn(), autocommit=True)
        self.r = redis.Redis.from_url(config.redis_url(), decode_responses=True, socket_timeout=5)
        super().__init__(shop_service(ns, self.conn, self.r, outage), self.conn, self.r)

    def reset(self) -> None:
        create_products(self.conn)
        if keys := list(self.r.scan_iter(match=self.ns.key("*"))):
            self.r.delete(*keys)

    def drive(self, rounds: int = 10, lookups: int = 25, checkouts: int = 10, seed: int = 7) -> Traffic:
        return send_traffic(self.url, rounds, lookups, checkouts, seed)


def send_traffic(url: str, rounds: int = 10, lookups: int = 25, checkouts: int = 10, seed: int = 7) -> Traffic:
    rng = random.Random(seed)
    traffic = Traffic(start=time.time(), end=0.0)
    for _ in range(rounds):
        round_start = time.monotonic()
        ids = [rng.randint(1, 20) if rng.random() < 0.8 else rng.randint(1, PRODUCTS + 20) for _ in range(lookups)]
        requests = [("GET", f"/products/{i}") for i in ids] + [("POST", "/checkout")] * checkouts
        for (method, path), status in zip(requests, drive(url, requests, concurrency=4), strict=True):
            traffic.sent[(method, "/products/{id}" if path.startswith("/products/") else path, status)] += 1
        time.sleep(max(0.0, 1 - (time.monotonic() - round_start)))
    traffic.end = time.time()
    return traffic
