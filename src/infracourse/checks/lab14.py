"""Checks of labs/14_health_logs_traces.ipynb: liveness and readiness with Redis cut through a proxy, a log
redaction processor, request-id middleware, spans around a cache lookup, and trace context carried through a
Kafka message in both directions."""

from __future__ import annotations

import io
import uuid
from typing import Any

import structlog
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from infracourse.checking import CheckFailed, exercise, expect, time_limit
from infracourse.checking.explain import one_line
from infracourse.checking.kafka_readback import headers_of, read_back
from infracourse.clients import kafka_config
from infracourse.lessons.http_service import Request, Response

ANSWER_WITHIN_S = 5.0
HANG_S = 10.0  # how long the proxy holds every chunk to play a Redis that accepts but does not answer


def _request(path: str, headers: dict[str, str] | None = None) -> Request:
    return Request("GET", path, headers or {}, route=path)


def _response(value: object, what: str) -> Response:
    expect(isinstance(value, Response), f"{what} returned {type(value).__name__}; return a Response(status, body)")
    return value


def _probe(handler, what: str, path: str, scenario: str, hint: str, on_timeout=None) -> Response:
    """HANDLER's answer to GET PATH, with a deadline so a check never hangs on a dependency that does not answer
    (ON_TIMEOUT then frees the learner's thread); an exception it raises fails the check with HINT."""
    try:
        value = time_limit.bounded(ANSWER_WITHIN_S, handler, _request(path), what=what,
                                   hint="give every dependency check a short timeout (socket_timeout, connect_timeout)",
                                   on_timeout=on_timeout)
    except (CheckFailed, NotImplementedError):
        raise
    except Exception as exc:  # noqa: BLE001 - the learner's code touched a dependency that is down
        expect(False, f"{what} raised {type(exc).__name__} {scenario}", hint=hint)
    return _response(value, what)


class _Started(SpanProcessor):
    """Every span started: the exporter only sees ended ones, and a span never ended is a mistake of its own."""

    def __init__(self) -> None:
        self.spans: list[Span] = []

    def on_start(self, span: Span, parent_context: object = None) -> None:
        self.spans.append(span)

    def expect_all_ended(self, what: str) -> None:
        unended = [s.name for s in self.spans if s.end_time is None]
        expect(not unended, f"{what} started the span(s) {unended} but never ended them, so no exporter sees them",
               hint="start spans with `with tracer.start_as_current_span(...)`, which ends them (or call span.end())")


def _tracer() -> tuple[Any, InMemorySpanExporter, TracerProvider, _Started]:
    exporter, started = InMemorySpanExporter(), _Started()
    provider = TracerProvider()
    provider.add_span_processor(started)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("course.check"), exporter, provider, started


# exercise 1 ----------------------------------------------------------------------------------------------
@exercise("1", "Liveness without dependencies")
def liveness(health_live, redis_proxy) -> str:
    redis_proxy.cut()  # also drops the live connections: any use of Redis from now on must open a new one
    try:
        response = _probe(
            health_live, "health_live", "/health/live", "while Redis was down",
            hint="liveness asks 'is this process able to answer?'; restarting it would not bring Redis back")
    finally:
        redis_proxy.restore()
    expect(response.status == 200, f"health_live answered {response.status} while Redis was down",
           hint="liveness must not depend on Redis: a failing liveness probe restarts the process")
    expect(response.body == {"status": "ok"}, f"the body is {response.body!r}; expected the JSON {{'status': 'ok'}}")
    # a cut proxy refuses without counting, so whether Redis is touched is asked again with Redis up
    before = redis_proxy.connections_accepted
    _probe(health_live, "health_live", "/health/live", "with Redis up", hint="liveness touches no dependency")
    expect(redis_proxy.connections_accepted == before, "health_live opened a connection to Redis",
           hint="no dependency checks in liveness, not even one whose failure you ignore")
    return "200 with Redis down, no dependency touched"


# exercise 2 ----------------------------------------------------------------------------------------------
def _ready(health_ready, scenario: str, on_timeout=None) -> Response:
    response = _probe(health_ready, "health_ready", "/health/ready", scenario,
                      hint="catch each dependency's failure and report it in the JSON instead of crashing",
                      on_timeout=on_timeout)
    body = response.body
    expect(isinstance(body, dict) and isinstance(body.get("checks"), dict) and "status" in body,
           f"the body {scenario} is {body!r}: expected {{'status': ..., 'checks': {{'postgres': ..., 'redis': ...}}}}")
    expect({"postgres", "redis"} <= set(body["checks"]),
           f"the checks {scenario} are {sorted(body['checks'])}; report postgres and redis")
    return response


@exercise("2", "Readiness that fails when Redis is down")
def readiness(health_ready, redis_proxy) -> str:
    redis_proxy.restore()
    up = _ready(health_ready, "with everything up")
    expect(up.status == 200, f"health_ready answered {up.status} with everything up")
    expect(up.body["status"] == "ok" and up.body["checks"]["redis"] == "ok" and up.body["checks"]["postgres"] == "ok",
           f"with everything up the body is {up.body!r}", hint="status 'ok' and each check 'ok'")
    redis_proxy.cut()
    try:
        _expect_not_ready(_ready(health_ready, "while Redis was down"), "while Redis was down")
    finally:
        redis_proxy.restore()
    redis_proxy.delay_s = HANG_S
    try:
        hanging = _ready(health_ready, "while Redis hung (accepted, never answered)",
                         on_timeout=lambda: _unhang(redis_proxy))
    finally:
        _unhang(redis_proxy)
    _expect_not_ready(hanging, "while Redis hung")
    again = _ready(health_ready, "after Redis came back")
    expect(again.status == 200, f"health_ready still answered {again.status} after Redis came back",
           hint="check again on every request: no cached failure, a client that reconnects")
    return "200, then 503 with redis failing, then 200 again"


def _unhang(redis_proxy) -> None:
    """Answer again, dropping the connections held (a learner's thread blocked on one then gets an error)."""
    redis_proxy.delay_s = 0.0
    redis_proxy.cut()
    redis_proxy.restore()


def _expect_not_ready(down: Response, scenario: str) -> None:
    expect(down.status == 503, f"health_ready answered {down.status} {scenario}",
           hint="503 Service Unavailable takes the instance out of the load balancer (500 means a bug)")
    expect(str(down.body["checks"]["redis"]).startswith("fail"),
           f"{scenario} the redis check says {down.body['checks']['redis']!r}; it should start with 'fail'")
    expect(down.body["checks"]["postgres"] == "ok", f"{scenario} (only Redis) the postgres check did not say 'ok'")
    expect(down.body["status"] == "fail", f"{scenario} the status is {down.body['status']!r}, not 'fail'")


# exercise 3 ----------------------------------------------------------------------------------------------
@exercise("3", "Keep secrets out of the logs")
def redaction(redact) -> str:
    event = {"event": "login", "user": "ada", "password": "hunter2", "Authorization": "Bearer abc.def",
             "api_key": "sk-123", "token": "t0k3n", "attempt": 2}
    result = redact(None, "info", dict(event))
    expect(isinstance(result, dict), f"redact returned {type(result).__name__}",
           hint="a structlog processor returns the event dict for the next processor")
    for key in ("password", "Authorization", "api_key", "token"):
        expect(key in result, f"the key {key!r} disappeared",
               hint="keep the key and replace its value with '[REDACTED]': readers see a value was there")
        expect(result[key] == "[REDACTED]", f"{key!r} was logged as {result[key]!r}",
               hint="compare key names case-insensitively (HTTP headers arrive as 'Authorization')")
    expect({k: result[k] for k in ("event", "user", "attempt")} == {"event": "login", "user": "ada", "attempt": 2},
           "other fields were changed", hint="only the sensitive keys are masked")
    out = io.StringIO()
    logger = structlog.wrap_logger(structlog.PrintLogger(file=out),
                                   processors=[redact, structlog.processors.JSONRenderer(sort_keys=True)])
    logger.info("login", password="hunter2", user="ada")
    expect("hunter2" not in out.getvalue() and '"user": "ada"' in out.getvalue(),
           "in a structlog pipeline the secret still reaches the output")
    return "4 secrets masked, other fields kept"


# exercise 4 ----------------------------------------------------------------------------------------------
@exercise("4", "A request id on every log line")
def request_id_middleware(with_request_id) -> str:
    seen: list[dict[str, Any]] = []

    def handler(request: Request) -> Response:
        seen.append(dict(structlog.contextvars.get_contextvars()))
        if request.path == "/boom":
            raise ValueError("boom")
        return Response(201, {"path": request.path})

    wrapped = with_request_id(handler)
    expect(callable(wrapped), "with_request_id should return the wrapped handler")
    structlog.contextvars.clear_contextvars()
    given = _response(wrapped(_request("/a", {"X-Request-ID": "abc-123"})), "the wrapped handler")
    expect(seen[-1].get("request_id") == "abc-123",
           f"inside the handler the bound request_id is {seen[-1].get('request_id')!r}, expected the header's",
           hint="structlog.contextvars.bind_contextvars(request_id=...) before calling the handler")
    expect((given.status, given.body) == (201, {"path": "/a"}),
           f"the wrapped handler answered {given.status} {given.body!r}, not the handler's 201 {{'path': '/a'}}",
           hint="return the handler's own response, with the X-Request-ID header added")
    expect(given.headers.get("X-Request-ID") == "abc-123", "the response does not carry the X-Request-ID header")
    expect("request_id" not in structlog.contextvars.get_contextvars(),
           "request_id is still bound after the request ended",
           hint="clear_contextvars() in a finally block, or the next request on this thread inherits it")
    generated = [_response(wrapped(_request("/b")), "the wrapped handler").headers.get("X-Request-ID")
                 for _ in range(2)]
    expect(all(generated) and generated[0] != generated[1] and seen[-1].get("request_id") == generated[1],
           f"without a header the request ids were {generated}",
           hint="generate a fresh one per request (str(uuid.uuid4())) and bind and return it")
    try:
        wrapped(_request("/boom", {"X-Request-ID": "crash-1"}))
    except ValueError:
        pass
    expect("request_id" not in structlog.contextvars.get_contextvars(),
           "after a handler raised, request_id stayed bound", hint="clear in a finally block")
    return "taken from the header or generated, returned, cleared"


# exercise 5 ----------------------------------------------------------------------------------------------
def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def _lookup_spans(get_product_traced, tracer, exporter, started: _Started, product_id: int, r, key: str,
                  expect_hit: bool):
    exporter.clear()
    started.spans.clear()
    name = get_product_traced(tracer, product_id)
    expect(name == f"product {product_id}", f"get_product_traced(tracer, {product_id}) returned {name!r}",
           hint="return the product's name, from the cache or from PostgreSQL")
    started.expect_all_ended(f"get_product_traced(tracer, {product_id})")
    spans = list(exporter.get_finished_spans())
    roots = [s for s in spans if s.name == "get_product"]
    expect(len(roots) == 1, f"{len(roots)} spans named get_product; expected one per call",
           hint="use the tracer you are given: tracer.start_as_current_span('get_product')")
    root = roots[0]
    expect(len({s.context.trace_id for s in spans}) == 1, "the spans of one lookup belong to several traces",
           hint="start the inner spans inside the outer span's with-block so they become its children")
    expect((root.attributes or {}).get("product.id") == product_id, "get_product has no attribute product.id")
    expect((root.attributes or {}).get("cache.hit") is expect_hit,
           f"cache.hit is {(root.attributes or {}).get('cache.hit')!r} on a cache {'hit' if expect_hit else 'miss'}",
           hint="set_attribute('cache.hit', True or False) on get_product")
    kids = _children(spans, root)
    systems = [(s.attributes or {}).get("db.system") for s in kids]
    expect("redis" in systems, "no child span of get_product with db.system='redis'",
           hint="a span around the Redis GET, with the attribute db.system")
    expect(all(s.kind is SpanKind.CLIENT for s in kids if (s.attributes or {}).get("db.system")),
           "the spans around Redis and PostgreSQL calls should be of kind CLIENT",
           hint="kind=SpanKind.CLIENT: this process is the client of a remote service")
    if expect_hit:
        expect("postgresql" not in systems, "on a cache hit PostgreSQL was queried anyway")
    else:
        expect("postgresql" in systems, "on a cache miss there is no child span with db.system='postgresql'")
    expect(r.get(key) is not None, "after a lookup the product is not in the cache at the key you were given")
    ttl = r.ttl(key)
    expect(0 < ttl <= 60, f"the cached product lives {'forever' if ttl == -1 else f'{ttl} s'}; the exercise asks "
           "for 60 s", hint="r.set(key, name, ex=60)")
    return spans


@exercise("5", "Spans around a cache lookup")
def traced_lookup(get_product_traced, r, product_key) -> str:
    tracer, exporter, provider, started = _tracer()
    key = product_key(7)
    r.delete(key)
    try:
        _lookup_spans(get_product_traced, tracer, exporter, started, 7, r, key, expect_hit=False)
        _lookup_spans(get_product_traced, tracer, exporter, started, 7, r, key, expect_hit=True)
    finally:
        r.delete(key)
        provider.shutdown()
    return "a miss and a hit traced, with Redis and PostgreSQL client spans"


# exercises 6 and 7: Kafka ----------------------------------------------------------------------------------
def _end_offset(topic: str) -> int:
    """Where the check's own message will land in TOPIC (one partition, which may hold earlier runs' messages)."""
    consumer = Consumer(kafka_config.consumer(f"{topic}.check"))
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        consumer.close()


def _message_at(topic: str, offset: int) -> Message:
    messages = read_back(topic, start={0: offset}, timeout_s=10)
    expect(messages, "no message arrived on the topic within 10 s",
           hint="produce to the topic you are given, then flush")
    return messages[0]


@exercise("6", "Trace context into a Kafka message")
def kafka_publish(publish, topic: str) -> str:
    tracer, _, provider, _ = _tracer()
    producer = Producer(kafka_config.client())
    offset = _end_offset(topic)
    try:
        with tracer.start_as_current_span("place order") as span:
            publish(producer, topic, b"order-1")
            expected_trace = span.get_span_context().trace_id
        producer.flush(10)
        message = _message_at(topic, offset)
    finally:
        provider.shutdown()
    headers = {name: value.decode() for name, value in headers_of(message).items()}
    expect(message.value() == b"order-1", "the message's value is not the one passed to publish()")
    expect("traceparent" in headers, f"the message has no traceparent header (headers: {sorted(headers)})",
           hint="propagate.inject(carrier) fills a dict; pass its items as the message headers")
    context = propagate.extract(headers)
    extracted = trace.get_current_span(context).get_span_context()
    expect(extracted.is_valid, f"the traceparent header {headers['traceparent']!r} is not valid")
    expect(extracted.trace_id == expected_trace, "the message carries the context of another trace",
           hint="inject while the caller's span is current, inside publish()")
    return "traceparent header joins the producer's trace"


@exercise("7", "Continue the trace in the consumer", stretch=True)
def kafka_consume(handle, topic: str) -> str:
    tracer, exporter, provider, started = _tracer()
    producer = Producer(kafka_config.client())
    offset = _end_offset(topic)
    carrier: dict[str, str] = {}
    with tracer.start_as_current_span("place order") as sender:
        propagate.inject(carrier)
    producer.produce(topic, value=f"order-{uuid.uuid4().hex[:6]}".encode(), headers=list(carrier.items()))
    producer.flush(10)
    message = _message_at(topic, offset)
    exporter.clear()
    started.spans.clear()
    try:
        handle(message, tracer)
        spans = list(exporter.get_finished_spans())
    except (CheckFailed, NotImplementedError):
        raise
    except Exception as exc:  # noqa: BLE001 - bytes header values make the propagator raise
        expect(False, f"handle() raised {one_line(exc)}",
               hint="message.headers() is a list of (str, bytes) pairs: decode the values before extract()")
    finally:
        provider.shutdown()
    started.expect_all_ended("handle()")
    expect(spans, "handle() finished no span", hint="start a span with the tracer you are given")
    consumer_spans = [s for s in spans if s.kind is SpanKind.CONSUMER]
    expect(consumer_spans, "no span of kind CONSUMER", hint="kind=SpanKind.CONSUMER for processing a message")
    span = consumer_spans[0]
    expect(span.context.trace_id == sender.get_span_context().trace_id,
           "the consumer span started a new trace instead of continuing the producer's",
           hint="extract the context from the message headers (decode the bytes values) and pass context=...")
    expect(span.parent is not None and span.parent.span_id == sender.get_span_context().span_id,
           "the consumer span's parent is not the span that sent the message",
           hint="start the CONSUMER span directly with context=propagate.extract(...)")
    return "the consumer span continues the producer's trace"
