"""The course's example app: the small shop lesson 11 builds step by step, packaged for the labs and the capstone.

Products live in PostgreSQL (the notebook's schema) behind a Redis cache-aside; a checkout calls a simulated
payment provider (about 50 ms, failing during a seeded "outage") and queues the order in a Redis list. The app
serves RED metrics, cache and queue metrics and the process collectors on /metrics:

    shop = ExampleShop(ns).start()
    prometheus_targets.register(ns.slug, shop.address)
    traffic = shop.drive(rounds=8)          # seeded: the same requests, statuses and errors every run
    shop.close()
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter as Tally
from dataclasses import dataclass, field

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
from infracourse.namespace import Namespace

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
PRODUCTS = 200
CACHE_TTL_S = 60


class PaymentDeclined(Exception):
    pass


@dataclass
class Traffic:
    """What drive() sent: (method, endpoint, status) -> requests, and when (Unix seconds)."""

    start: float
    end: float
    sent: Tally = field(default_factory=Tally)

    @property
    def duration_s(self) -> float:
        return self.end - self.start


class ShopMetrics:
    """RED metrics (rate, errors, duration), in-flight requests, cache results and queue depth."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("http_requests_total", "HTTP requests by method, route and status.",
                                ["method", "endpoint", "status"], registry=registry)
        self.latency = Histogram("http_request_duration_seconds", "HTTP request latency.", ["method", "endpoint"],
                                 buckets=LATENCY_BUCKETS_S, registry=registry)
        self.in_flight = Gauge("http_requests_in_flight", "HTTP requests being served.", registry=registry)
        self.cache = Counter("cache_requests_total", "Cache lookups by result.", ["cache", "result"],
                             registry=registry)
        self.queue_depth = Gauge("queue_depth", "Messages waiting in a queue.", ["queue"], registry=registry)

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


class ExampleShop:
    def __init__(self, ns: Namespace, outage: tuple[int, int] = (41, 70)) -> None:
        self.ns = ns
        self.outage = outage  # order ids whose payments mostly fail (and take 4x longer)
        self.registry = CollectorRegistry()
        self.metrics = ShopMetrics(self.registry)
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        self.conn = psycopg.connect(ns.postgres_dsn(), autocommit=True)
        self.r = redis.Redis.from_url(config.redis_url(), decode_responses=True, socket_timeout=5)
        self.metrics.queue_depth.labels("orders").set_function(lambda: self.r.llen(ns.key("orders")))
        self.service = HttpService(
            {"GET /products/{id}": self.get_product, "POST /checkout": self.checkout},
            middleware=[self.metrics.middleware], registry=self.registry,
        )

    # life cycle ------------------------------------------------------------------------------------
    def start(self) -> ExampleShop:
        """Create the products table (again), empty the cache and queue, then serve."""
        self.conn.execute("DROP TABLE IF EXISTS products")
        self.conn.execute("CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price_cents int NOT NULL)")
        self.conn.execute(f"INSERT INTO products SELECT i, 'product ' || i, 100 + 7 * i "
                          f"FROM generate_series(1, {PRODUCTS}) i")
        keys = list(self.r.scan_iter(match=self.ns.key("*")))
        if keys:
            self.r.delete(*keys)
        self.service.start()
        return self

    def close(self) -> None:
        self.service.close()
        self.conn.close()
        self.r.close()

    def __enter__(self) -> ExampleShop:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def address(self) -> str:
        return self.service.address

    @property
    def url(self) -> str:
        return self.service.url

    # handlers --------------------------------------------------------------------------------------
    def pay(self, order_id: int) -> None:
        rng = random.Random(order_id)  # decided by the order id: every run sees the same failures
        in_outage = self.outage[0] <= order_id <= self.outage[1]
        time.sleep(rng.lognormvariate(-3.0, 0.4) * (4 if in_outage else 1))
        if rng.random() < (0.9 if in_outage else 0.02):
            raise PaymentDeclined(order_id)

    def get_product(self, request: Request) -> Response:
        key = self.ns.key("product", request.params["id"])
        if (cached := self.r.get(key)) is not None:
            self.metrics.cache.labels("products", "hit").inc()
            return Response(200, json.loads(cached))
        self.metrics.cache.labels("products", "miss").inc()
        row = self.conn.execute("SELECT id, name, price_cents FROM products WHERE id = %s",
                                [int(request.params["id"])]).fetchone()
        if row is None:
            return Response(404, {"error": "no such product"})
        body = dict(zip(("id", "name", "price_cents"), row, strict=True))
        self.r.set(key, json.dumps(body), ex=CACHE_TTL_S)
        return Response(200, body)

    def checkout(self, request: Request) -> Response:
        order_id = self.r.incr(self.ns.key("order_seq"))
        try:
            self.pay(order_id)
        except PaymentDeclined:
            return Response(502, {"error": "payment declined", "order": order_id})
        self.r.rpush(self.ns.key("orders"), order_id)
        return Response(201, {"order": order_id})

    # traffic ---------------------------------------------------------------------------------------
    def drive(self, rounds: int = 10, lookups: int = 25, checkouts: int = 10, seed: int = 7) -> Traffic:
        """ROUNDS of about one second: LOOKUPS product reads (80% on 20 popular products, a few missing ids)
        and CHECKOUTS orders, from 4 client threads."""
        rng = random.Random(seed)
        traffic = Traffic(start=time.time(), end=0.0)
        for _ in range(rounds):
            round_start = time.monotonic()
            ids = [rng.randint(1, 20) if rng.random() < 0.8 else rng.randint(1, PRODUCTS + 20) for _ in range(lookups)]
            requests = [("GET", f"/products/{i}") for i in ids] + [("POST", "/checkout")] * checkouts
            for (method, path), status in zip(requests, drive(self.url, requests, concurrency=4), strict=True):
                traffic.sent[(method, "/products/{id}" if path.startswith("/products/") else path, status)] += 1
            time.sleep(max(0.0, 1 - (time.monotonic() - round_start)))
        traffic.end = time.time()
        return traffic
