"""http_service: routes by template, middleware order, 404/500, /metrics negotiation, clean shutdown."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter

from infracourse.lessons.http_service import HttpService, Response, call, drive, get


def test_routes_params_middleware_and_errors():
    seen: list[tuple[str, str]] = []

    def tag(name):
        def middleware(handler):
            def wrapped(request):
                seen.append((name, request.route))
                return handler(request)
            return wrapped
        return middleware

    routes = {
        "GET /items/{item_id}": lambda req: Response(200, {"id": req.params["item_id"], "q": req.query}),
        "POST /items": lambda req: Response(201, req.json()),
        "GET /boom": lambda req: 1 / 0,
    }
    with HttpService(routes, middleware=[tag("outer"), tag("inner")]) as app:
        assert get(app.url + "/items/7?x=1").json() == {"id": "7", "q": {"x": "1"}}
        assert call("POST", app.url + "/items", json={"a": 1}).json() == {"a": 1}
        missing = get(app.url + "/nope")
        crash = get(app.url + "/boom")
    assert (missing.status, crash.status) == (404, 500)
    assert seen[:2] == [("outer", "/items/{item_id}"), ("inner", "/items/{item_id}")]
    assert ("outer", "unmatched") in seen


def test_metrics_endpoint_negotiates_openmetrics():
    registry = CollectorRegistry()
    Counter("demo_total", "demo", registry=registry).inc()
    with HttpService({}, registry=registry) as app:
        text = get(app.url + "/metrics")
        openmetrics = get(app.url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert text.status == 200 and b"demo_total 1.0" in text.body
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics.body.rstrip().endswith(b"# EOF")


def test_drive_keeps_request_order_and_close_leaves_no_thread():
    before = threading.active_count()
    with HttpService({"GET /s/{code}": lambda req: Response(int(req.params["code"]))}) as app:
        statuses = drive(app.url, [("GET", f"/s/{code}") for code in (200, 404, 503, 200)], concurrency=3)
    assert statuses == [200, 404, 503, 200]
    assert threading.active_count() <= before
