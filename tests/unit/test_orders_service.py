"""The deployable orders service (apps/orders_service): it starts, answers its health endpoints, serves reads and
orders, and drains in-flight requests on SIGTERM. Run as a real process, the way a container runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import tomllib
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from infracourse import config, waiting

APP = Path(__file__).resolve().parents[2] / "apps" / "orders_service"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _call(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method), timeout=20) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def service(pg_ns, tmp_path):
    port = _free_port()
    env = {**os.environ, "ORDERS_NAMESPACE": pg_ns.slug, "ORDERS_HTTP_PORT": str(port),
           "ORDERS_SHUTDOWN_GRACE_S": "8", "ORDERS_REDIS_URL": config.redis_url(),
           "ORDERS_POSTGRES__HOST": config.endpoint("postgres").host,
           "ORDERS_POSTGRES__PORT": str(config.endpoint("postgres").port)}
    log = (tmp_path / "service.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "orders_service"], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        waiting.poll(lambda: _probe(url), bool, timeout_s=20, what="the orders service")
        yield proc, url, pg_ns
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        log.close()


def _probe(url: str) -> bool:
    try:
        return _call("GET", url + "/health/live")[0] == 200
    except OSError:
        return False


def test_pins_are_the_courses_own():
    course = tomllib.loads((APP.parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]
    app = tomllib.loads((APP / "pyproject.toml").read_text())["project"]["dependencies"]
    assert set(app) <= set(course), f"pins differ from the course's: {sorted(set(app) - set(course))}"


def test_health_reads_orders_and_metrics(service):
    _, url, _ = service
    assert _call("GET", url + "/health/live") == (200, {"status": "alive"})
    assert _call("GET", url + "/health/ready") == (200, {"postgres": "ok", "redis": "ok", "draining": False})
    first, again = _call("GET", url + "/products/7"), _call("GET", url + "/products/7")
    assert first == again and first[0] == 200 and first[1]["product_id"] == 7
    assert _call("GET", url + "/products/99999")[0] == 404
    status, order = _call("POST", url + "/orders", {"product_id": 7, "quantity": 2})
    assert status == 201 and order["order_id"] >= 1
    with urllib.request.urlopen(url + "/metrics", timeout=5) as reply:
        text = reply.read().decode()
    assert 'http_requests_total{endpoint="/orders",method="POST",status="201"} 1.0' in text


def test_sigterm_lets_in_flight_orders_finish_and_exits_0(service):
    proc, url, ns = service
    inflight = 4
    with psycopg.connect(ns.postgres_dsn()) as blocker:
        blocker.execute("LOCK TABLE outbox IN EXCLUSIVE MODE")  # orders now wait inside the service
        with ThreadPoolExecutor(inflight) as pool:
            replies = [pool.submit(_call, "POST", url + "/orders", {"product_id": 3}) for _ in range(inflight)]
            with psycopg.connect(config.postgres_dsn(), autocommit=True) as watcher:
                waiting.poll(lambda: watcher.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = "
                                                     "%s::regclass", [f"{ns.schema}.outbox"]).fetchone()[0],
                             lambda n: n >= inflight, timeout_s=10, what="the orders to wait on the lock")
            proc.send_signal(signal.SIGTERM)
            threading.Event().wait(0.5)
            with pytest.raises(OSError):  # no longer accepting
                _call("GET", url + "/health/live")
            blocker.rollback()
            statuses = sorted(future.result()[0] for future in replies)
    assert statuses == [201] * inflight
    assert proc.wait(10) == 0
