"""Lab 14 checks fail on plausible wrong answers, with a message that helps, and pass the right one."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest
import redis
import structlog
from confluent_kafka.admin import AdminClient, NewTopic
from opentelemetry import context, propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from redis.backoff import NoBackoff
from redis.retry import Retry
from verdicts import assert_fails, assert_not_done, assert_passes

from infracourse import config, notebook
from infracourse.checks import lab14 as checks
from infracourse.clients.kafka_logging import quiet_logger
from infracourse.lessons.faults import TcpProxy
from infracourse.lessons.http_service import Response


@pytest.fixture
def redis_proxy():
    notebook.require("redis")
    with TcpProxy.to("redis") as proxy:
        yield proxy


@pytest.fixture
def r_app(redis_proxy):
    # retries off: redis-py's default of 10 turns a 0.5 s timeout into ~10 s against a hanging Redis
    client = redis.Redis(host="127.0.0.1", port=redis_proxy.port, socket_timeout=0.5, socket_connect_timeout=0.5,
                         retry=Retry(NoBackoff(), 0))
    yield client
    client.close()


# exercise 1 ---------------------------------------------------------------------------------------------
def test_liveness_reference_passes(redis_proxy):
    assert_passes(checks.liveness(lambda request: Response(200, {"status": "ok"}), redis_proxy))


def test_liveness_pinging_redis_fails(redis_proxy, r_app):
    def live(request):
        r_app.ping()
        return Response(200, {"status": "ok"})

    assert_fails(checks.liveness(live, redis_proxy), "while Redis was down")


def test_liveness_pinging_redis_and_ignoring_the_failure_fails(redis_proxy, r_app):
    def live(request):
        try:
            r_app.ping()
        except redis.RedisError:
            pass  # "just a sanity check": still a dependency of the liveness probe
        return Response(200, {"status": "ok"})

    assert_fails(checks.liveness(live, redis_proxy), "opened a connection to Redis", in_hint=("no dependency",))


def test_liveness_reporting_redis_as_503_fails(redis_proxy, r_app):
    def live(request):
        try:
            r_app.ping()
        except redis.RedisError:
            return Response(503, {"status": "fail"})
        return Response(200, {"status": "ok"})

    assert_fails(checks.liveness(live, redis_proxy), "answered 503")


def test_liveness_stub_is_not_done(redis_proxy):
    def stub(request):
        raise NotImplementedError

    assert_not_done(checks.liveness(stub, redis_proxy))


# exercise 2 ---------------------------------------------------------------------------------------------
def make_ready(r_app, conn, down_status=503, swallow=True, status_words=("ok", "fail")):
    def ready(request):
        results = {}
        for name, check in (("postgres", lambda: conn.execute("SELECT 1")), ("redis", r_app.ping)):
            try:
                check()
                results[name] = "ok"
            except redis.RedisError:
                if not swallow:
                    raise
                results[name] = "fail"
        ok = all(v == "ok" for v in results.values())
        return Response(200 if ok else down_status, {"status": status_words[0] if ok else status_words[1],
                                                     "checks": results})
    return ready


def test_readiness_reference_passes_well_within_the_budget(redis_proxy, r_app, conn):
    started = time.monotonic()
    assert_passes(checks.readiness(make_ready(r_app, conn), redis_proxy))
    # four probes, one against a hanging Redis: each must leave a 3x margin on the check's budget
    assert time.monotonic() - started < checks.ANSWER_WITHIN_S / 3


def test_readiness_with_a_client_without_timeout_fails_on_a_hanging_redis(redis_proxy, conn, monkeypatch):
    monkeypatch.setattr(checks, "ANSWER_WITHIN_S", 2.0)
    no_timeout = redis.Redis(host="127.0.0.1", port=redis_proxy.port, retry=Retry(NoBackoff(), 0))
    started = time.monotonic()
    result = checks.readiness(make_ready(no_timeout, conn), redis_proxy)
    assert_fails(result, "health_ready did not return within 2 s", in_hint=("timeout",))
    assert time.monotonic() - started < 10  # the learner's thread was let go, not waited for
    no_timeout.close()


def test_readiness_always_200_fails(redis_proxy, r_app, conn):
    result = checks.readiness(make_ready(r_app, conn, down_status=200), redis_proxy)
    assert_fails(result, "answered 200 while Redis was down", in_hint=("503",))


def test_readiness_500_fails(redis_proxy, r_app, conn):
    assert_fails(checks.readiness(make_ready(r_app, conn, down_status=500), redis_proxy), "answered 500")


def test_readiness_exception_escaping_fails(redis_proxy, r_app, conn):
    assert_fails(checks.readiness(make_ready(r_app, conn, swallow=False), redis_proxy), "raised ConnectionError")


def test_readiness_without_timeout_fails(redis_proxy, conn, monkeypatch):
    monkeypatch.setattr(checks, "ANSWER_WITHIN_S", 1.0)

    def ready(request):
        time.sleep(3)  # a dependency call with no timeout, stuck
        return Response(200, {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}})

    assert_fails(checks.readiness(ready, redis_proxy), "health_ready did not return within 1 s")


def test_readiness_that_never_returns_does_not_hold_up_the_exit():
    # The check used to wait for it in a ThreadPoolExecutor, whose worker the interpreter joins at exit: forever.
    script = """
import time
from infracourse.checks import lab14 as checks
from infracourse.lessons.faults import TcpProxy
checks.ANSWER_WITHIN_S = 1.0
def ready(request):
    while True:
        time.sleep(0.05)
with TcpProxy.to("redis") as proxy:
    result = checks.readiness(ready, proxy)
print(result.status, result.message)
"""
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert "failed health_ready did not return within 1 s" in finished.stdout, finished.stdout + finished.stderr


def test_readiness_wrong_shape_fails(redis_proxy):
    result = checks.readiness(lambda request: Response(200, {"redis": True}), redis_proxy)
    assert_fails(result, "expected {'status'", hint=False)


# exercise 3 ---------------------------------------------------------------------------------------------
def reference_redact(logger, method_name, event_dict):
    for key in event_dict:
        if key.lower() in {"password", "token", "authorization", "api_key"}:
            event_dict[key] = "[REDACTED]"
    return event_dict


def test_redaction_reference_passes():
    assert_passes(checks.redaction(reference_redact))


def test_redaction_case_sensitive_fails():
    def wrong(logger, method_name, event_dict):
        for key in event_dict.keys() & {"password", "token", "authorization", "api_key"}:
            event_dict[key] = "[REDACTED]"
        return event_dict

    result = checks.redaction(wrong)
    assert_fails(result, "'Authorization' was logged", in_hint=("case",))


def test_redaction_dropping_keys_fails():
    def wrong(logger, method_name, event_dict):
        secret = {"password", "token", "authorization", "api_key"}
        return {k: v for k, v in event_dict.items() if k.lower() not in secret}

    assert_fails(checks.redaction(wrong), "disappeared")


def test_redaction_returning_nothing_fails():
    def wrong(logger, method_name, event_dict):
        reference_redact(logger, method_name, event_dict)

    assert_fails(checks.redaction(wrong), "returned NoneType")


# exercise 4 ---------------------------------------------------------------------------------------------
def reference_middleware(handler):
    def bound(request):
        request_id = request.headers.get("X-Request-ID") or str(uuid.uuid4())
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            response = handler(request)
            response.headers["X-Request-ID"] = request_id
            return response
        finally:
            structlog.contextvars.clear_contextvars()
    return bound


def test_request_id_reference_passes():
    assert_passes(checks.request_id_middleware(reference_middleware))


def test_request_id_never_cleared_fails():
    def wrong(handler):
        def bound(request):
            request_id = request.headers.get("X-Request-ID") or str(uuid.uuid4())
            structlog.contextvars.bind_contextvars(request_id=request_id)
            response = handler(request)
            response.headers["X-Request-ID"] = request_id
            return response
        return bound

    result = checks.request_id_middleware(wrong)
    structlog.contextvars.clear_contextvars()
    assert_fails(result, "still bound", in_hint=("finally",))


def test_request_id_fixed_default_fails():
    def wrong(handler):
        def bound(request):
            request_id = request.headers.get("X-Request-ID", "none")
            structlog.contextvars.bind_contextvars(request_id=request_id)
            try:
                response = handler(request)
                response.headers["X-Request-ID"] = request_id
                return response
            finally:
                structlog.contextvars.clear_contextvars()
        return bound

    assert_fails(checks.request_id_middleware(wrong), "without a header")


def test_request_id_dropping_the_handlers_response_fails():
    def drops(handler):
        def bound(request):
            request_id = request.headers.get("X-Request-ID") or str(uuid.uuid4())
            structlog.contextvars.bind_contextvars(request_id=request_id)
            try:
                handler(request)
                return Response(200, {"ok": True}, {"X-Request-ID": request_id})
            finally:
                structlog.contextvars.clear_contextvars()
        return bound

    result = checks.request_id_middleware(drops)
    assert_fails(result, "not the handler's 201", in_hint=("handler's own response",))


def test_request_id_not_returned_fails():
    def wrong(handler):
        def bound(request):
            structlog.contextvars.bind_contextvars(request_id=request.headers.get("X-Request-ID") or "x")
            try:
                return handler(request)
            finally:
                structlog.contextvars.clear_contextvars()
        return bound

    assert_fails(checks.request_id_middleware(wrong), "X-Request-ID header", hint=False)


# exercise 5 ---------------------------------------------------------------------------------------------
@pytest.fixture
def products(conn, r, pg_ns):
    conn.execute("CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL)")
    conn.execute("INSERT INTO products SELECT i, 'product ' || i FROM generate_series(1, 10) i")
    return lambda product_id: pg_ns.key("product", product_id)


def make_lookup(conn, r, key, client_kind=SpanKind.CLIENT, nested=True, always_query=False, ttl=60,
                attributes=("product.id", "cache.hit")):
    def lookup(tracer, product_id):
        outer = tracer.start_as_current_span(
            "get_product", attributes={"product.id": product_id} if "product.id" in attributes else {})
        with outer as span:
            inner_tracer_context = {} if nested else {"context": context.Context()}
            with tracer.start_as_current_span("GET", kind=client_kind, attributes={"db.system": "redis"},
                                              **inner_tracer_context):
                name = r.get(key(product_id))
            if "cache.hit" in attributes:
                span.set_attribute("cache.hit", name is not None)
            if name is None or always_query:
                with tracer.start_as_current_span("SELECT", kind=client_kind, attributes={"db.system": "postgresql"},
                                                  **inner_tracer_context):
                    name = conn.execute("SELECT name FROM products WHERE id = %s", [product_id]).fetchone()[0]
                r.set(key(product_id), name, ex=ttl)
            return name
    return lookup


def test_traced_lookup_reference_passes(conn, r, products):
    assert_passes(checks.traced_lookup(make_lookup(conn, r, products), r, products))


@pytest.mark.parametrize(("options", "says"), [
    ({"client_kind": SpanKind.INTERNAL}, "kind CLIENT"),
    ({"nested": False}, "several traces"),
    ({"always_query": True}, "queried anyway"),
    ({"ttl": None}, "lives forever"),
    ({"attributes": ("cache.hit",)}, "no attribute product.id"),
    ({"attributes": ("product.id",)}, "cache.hit is None"),
])
def test_traced_lookup_wrong_answers_fail(conn, r, products, options, says):
    result = checks.traced_lookup(make_lookup(conn, r, products, **options), r, products)
    # those messages say all there is to say
    assert_fails(result, says, hint=says not in ("queried anyway", "no attribute product.id"))


def test_traced_lookup_span_never_ended_fails(conn, r, products):
    def lookup(tracer, product_id):
        span = tracer.start_span("get_product", attributes={"product.id": product_id})  # never ended
        name = r.get(products(product_id))
        span.set_attribute("cache.hit", name is not None)
        if name is None:
            name = conn.execute("SELECT name FROM products WHERE id = %s", [product_id]).fetchone()[0]
            r.set(products(product_id), name, ex=60)
        return name

    result = checks.traced_lookup(lookup, r, products)
    assert_fails(result, "['get_product'] but never ended", in_hint=("with tracer.start_as_current_span",))
    assert "tracer you are given" not in result.hint


def test_traced_lookup_untraced_fails(conn, r, products):
    def untraced(tracer, product_id):
        return conn.execute("SELECT name FROM products WHERE id = %s", [product_id]).fetchone()[0]

    assert_fails(checks.traced_lookup(untraced, r, products), "0 spans named get_product")


# exercises 6 and 7 ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def topic():
    notebook.require("kafka")
    name = f"pytest_lab14_{uuid.uuid4().hex[:6]}.orders"
    admin = AdminClient({"bootstrap.servers": config.kafka_bootstrap(), "logger": quiet_logger()})
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result()
    yield name
    for future in admin.delete_topics([name], operation_timeout=10).values():
        future.exception()


def test_publish_reference_passes(topic):
    def publish(producer, topic_name, value):
        carrier = {}
        propagate.inject(carrier)
        producer.produce(topic_name, value=value, headers=list(carrier.items()))

    assert_passes(checks.kafka_publish(publish, topic))


def test_publish_without_headers_fails(topic):
    result = checks.kafka_publish(lambda producer, topic_name, value: producer.produce(topic_name, value=value), topic)
    assert_fails(result, "no traceparent", in_hint=("inject",))


def test_publish_with_a_new_trace_fails(topic):
    other = TracerProvider().get_tracer("other")

    def publish(producer, topic_name, value):
        with other.start_as_current_span("send", context=context.Context()):
            carrier = {}
            propagate.inject(carrier)
        producer.produce(topic_name, value=value, headers=list(carrier.items()))

    assert_fails(checks.kafka_publish(publish, topic), "another trace")


def test_consume_reference_passes(topic):
    def handle(message, tracer):
        parent = propagate.extract({k: v.decode() for k, v in message.headers() or []})
        with tracer.start_as_current_span("process", context=parent, kind=SpanKind.CONSUMER):
            pass

    assert_passes(checks.kafka_consume(handle, topic))


def test_consume_bytes_headers_start_a_new_trace(topic):
    def handle(message, tracer):
        parent = propagate.extract(dict(message.headers() or []))  # values still bytes: nothing extracted
        with tracer.start_as_current_span("process", context=parent, kind=SpanKind.CONSUMER):
            pass

    result = checks.kafka_consume(handle, topic)
    assert_fails(result, "raised", in_hint=("decode",))


def test_consume_span_never_ended_fails(topic):
    def handle(message, tracer):
        parent = propagate.extract({k: v.decode() for k, v in message.headers() or []})
        tracer.start_span("process", context=parent, kind=SpanKind.CONSUMER)

    assert_fails(checks.kafka_consume(handle, topic), "never ended", in_hint=("span.end()",))


def test_consume_internal_span_fails(topic):
    def handle(message, tracer):
        parent = propagate.extract({k: v.decode() for k, v in message.headers() or []})
        with tracer.start_as_current_span("process", context=parent):
            pass

    assert_fails(checks.kafka_consume(handle, topic), "CONSUMER")


# requirements the tests above did not break on their own -----------------------------------------------
def test_request_id_ignoring_the_incoming_header_fails():
    def always_new(handler):
        def bound(request):
            request_id = str(uuid.uuid4())
            structlog.contextvars.bind_contextvars(request_id=request_id)
            try:
                response = handler(request)
                response.headers["X-Request-ID"] = request_id
                return response
            finally:
                structlog.contextvars.clear_contextvars()
        return bound

    assert_fails(checks.request_id_middleware(always_new))


REQUIREMENTS = {
    "1": {
        "returns `Response(200, {\"status\": \"ok\"})`": "test_liveness_reporting_redis_as_503_fails",
        "must not open a connection to Redis": ("test_liveness_pinging_redis_fails",
                                                "test_liveness_pinging_redis_and_ignoring_the_failure_fails"),
    },
    "2": {
        "answer\n`Response(200, {\"status\": \"ok\", \"checks\": {\"postgres\": \"ok\", \"redis\": \"ok\"}})`":
            "test_readiness_wrong_shape_fails",
        "503 with\n`\"status\": \"fail\"` when one does not": ("test_readiness_always_200_fails",
                                                              "test_readiness_500_fails"),
        "Never let an exception\nescape": "test_readiness_exception_escaping_fails",
        "never wait long": ("test_readiness_without_timeout_fails",
                            "test_readiness_with_a_client_without_timeout_fails_on_a_hanging_redis"),
    },
    "3": {
        "(in any letter case, e.g. `Authorization`)": "test_redaction_case_sensitive_fails",
        "keep everything else": "test_redaction_dropping_keys_fails",
        "return the event dict": "test_redaction_returning_nothing_fails",
    },
    "4": {
        "takes the request id from the\n`X-Request-ID` header": "test_request_id_ignoring_the_incoming_header_fails",
        "(or generates one with `uuid.uuid4()`)": "test_request_id_fixed_default_fails",
        "returns it in the\nresponse's `X-Request-ID` header": ("test_request_id_not_returned_fails",
                                                                "test_request_id_dropping_the_handlers_response_fails"),
        "always clears the context afterwards, even when the handler raises": "test_request_id_never_cleared_fails",
    },
    "5": {
        "Trace it with `tracer`": "test_traced_lookup_untraced_fails",
        "inside it one span of kind `CLIENT` around each call": "test_traced_lookup_wrong_answers_fail",
        "(then cache it for 60 s)": "test_traced_lookup_wrong_answers_fail",
        "the\nattributes `product.id` and `cache.hit` (True/False)": "test_traced_lookup_wrong_answers_fail",
        "a span `get_product`": "test_traced_lookup_span_never_ended_fails",
    },
    "6": {
        "with the current trace context in the\nmessage headers": ("test_publish_without_headers_fails",
                                                                  "test_publish_with_a_new_trace_fails"),
    },
    "7": {
        "(their values are\nbytes)": "test_consume_bytes_headers_start_a_new_trace",
        "inside a span of kind `CONSUMER`": "test_consume_internal_span_fails",
        "that continues that trace": "test_consume_span_never_ended_fails",
    },
}
