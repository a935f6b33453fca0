"""The example shop serves its routes, records RED and business metrics, and its traffic is reproducible."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from infracourse.lessons.example_app import ExampleShop
from infracourse.lessons.http_service import call, get


def _value(shop: ExampleShop, name: str, **labels: str) -> float:
    families = text_string_to_metric_families(generate_latest(shop.registry).decode())
    return sum(s.value for f in families for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_routes_cache_and_queue(pg_ns):
    with ExampleShop(pg_ns, outage=(0, 0)) as shop:
        assert get(shop.url + "/products/3").json() == {"id": 3, "name": "product 3", "price_cents": 121}
        assert get(shop.url + "/products/3").status == 200
        assert get(shop.url + "/products/999").status == 404
        assert call("POST", shop.url + "/checkout").json() == {"order": 1}
        assert _value(shop, "cache_requests_total", result="hit") == 1
        assert _value(shop, "cache_requests_total", result="miss") == 2
        assert _value(shop, "queue_depth", queue="orders") == 1
        assert _value(shop, "http_requests_total", endpoint="/products/{id}", status="404") == 1
        assert _value(shop, "http_request_duration_seconds_count", endpoint="/checkout") == 1
        assert _value(shop, "http_requests_in_flight") == 0


def test_seeded_traffic_is_the_same_every_run(pg_ns):
    runs = []
    for _ in range(2):
        with ExampleShop(pg_ns, outage=(3, 6)) as shop:
            traffic = shop.drive(rounds=1, lookups=20, checkouts=8)
            runs.append(dict(traffic.sent))
            assert _value(shop, "http_requests_total") == sum(traffic.sent.values())
    assert runs[0] == runs[1]
    assert runs[0][("POST", "/checkout", 502)] >= 3  # orders 3-6 fail 90% of the time
