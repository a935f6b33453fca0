"""trace_tree draws parents before children, in start order, with kinds, chosen attributes and events."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from infracourse.lessons import trace_tree


def test_render_a_small_trace():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("request", kind=SpanKind.SERVER, attributes={"http.route": "/x", "n": 1}):
        with tracer.start_as_current_span("cache", kind=SpanKind.CLIENT) as span:
            span.add_event("miss")
        with tracer.start_as_current_span("db") as span:
            span.set_status(Status(StatusCode.ERROR))
    with tracer.start_as_current_span("other trace"):
        pass
    spans = exporter.get_finished_spans()
    assert trace_tree.render(spans, show=("http.route",)) == "\n".join([
        "request [server] http.route=/x",
        "├─ cache [client]",
        "│     · miss",
        "└─ db !error",
        "other trace",
    ])
    assert trace_tree.trace_count(spans) == 2
    assert "n=1" in trace_tree.render(spans)
