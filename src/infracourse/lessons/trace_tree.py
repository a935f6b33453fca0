"""Finished OpenTelemetry spans drawn as a tree of text, one line a span: what Jaeger's timeline shows,
without Jaeger. Ids and durations are left out so a notebook's output stays the same from run to run.

    print(trace_tree.render(exporter.get_finished_spans(), show=("db.system", "http.route")))
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode


def _label(span: ReadableSpan, show: Sequence[str] | None) -> str:
    text = span.name
    if span.kind is not SpanKind.INTERNAL:
        text += f" [{span.kind.name.lower()}]"
    attributes = dict(span.attributes or {})
    keys = [k for k in (show if show is not None else sorted(attributes)) if k in attributes]
    if keys:
        text += " " + " ".join(f"{k}={_short(attributes[k])}" for k in keys)
    if span.status.status_code is StatusCode.ERROR:
        text += " !error"
    return text


def _short(value: object, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render(spans: Iterable[ReadableSpan], show: Sequence[str] | None = None, events: bool = True) -> str:
    """One tree a trace, children in the order they started. SHOW picks the attributes printed (default:
    all of them); EVENTS adds a line for each span event."""
    spans = sorted(spans, key=lambda s: s.start_time or 0)
    ids = {s.context.span_id for s in spans}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None and span.parent.span_id in ids else None
        children.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(span: ReadableSpan, prefix: str, last: bool, root: bool) -> None:
        branch = "" if root else ("└─ " if last else "├─ ")
        lines.append(prefix + branch + _label(span, show))
        inner = prefix + ("" if root else ("   " if last else "│  "))
        kids = children.get(span.context.span_id, [])
        if events:
            for event in span.events:
                lines.append(inner + ("│  " if kids else "   ") + f"· {event.name}")
        for index, child in enumerate(kids):
            walk(child, inner, index == len(kids) - 1, False)

    for root in children.get(None, []):
        walk(root, "", True, True)
    return "\n".join(lines)


def trace_count(spans: Iterable[ReadableSpan]) -> int:
    """How many distinct traces the spans belong to."""
    return len({s.context.trace_id for s in spans})
