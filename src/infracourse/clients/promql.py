"""A small client of the Prometheus HTTP API (/api/v1/...): instant and range queries, waiting for a series,
rules and alerts. Plumbing for the observability lessons; the PromQL itself is written in the notebooks.

    promql.query('sum by (status) (http_requests_total{namespace="obs13"})')
    -> [{"metric": {"status": "200"}, "value": 412.0}, ...]

Queries may use Grafana-style variables, so a notebook and a dashboard share one expression:
    promql.query('sum(rate(http_requests_total{namespace="$namespace"}[5s]))', namespace=ns.slug)
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from infracourse import config
from infracourse.errors import CourseError
from infracourse.waiting import poll

TIMEOUT_S = 5.0


class PromQLError(CourseError):
    """Prometheus rejected a query (bad syntax, unknown function) or did not answer."""


Sample = dict[str, Any]  # {"metric": {label: value}, "value": float} or {"metric": ..., "values": [(t, v)]}


def _get(path: str, params: dict[str, Any] | None = None, timeout_s: float = TIMEOUT_S) -> Any:
    url = f"{config.prometheus_url()}{path}"
    if params:
        url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            payload = json.load(resp)
    except urllib.error.HTTPError as exc:  # 400/422: the body says what is wrong with the query
        try:
            payload = json.load(exc)
        except (json.JSONDecodeError, ValueError):
            raise PromQLError(f"HTTP {exc.code} from {path}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PromQLError(f"Prometheus at {config.prometheus_url()} did not answer: {reason}") from None
    if payload.get("status") != "success":
        raise PromQLError(f"{payload.get('errorType', 'error')}: {payload.get('error', payload)}")
    return payload["data"]


T = TypeVar("T")


def substitute(expr: str, **variables: str) -> str:
    """Replace $name and ${name} by VARIABLES[name], as Grafana does in a dashboard's queries."""

    def replace(match: re.Match[str]) -> str:
        name = match["braced"] or match["bare"]
        if name not in variables:
            raise PromQLError(f"the query uses ${name}: pass {name}=... to give it a value")
        return str(variables[name])

    return re.sub(r"\$(?:\{(?P<braced>\w+)\}|(?P<bare>[A-Za-z_]\w*))", replace, expr)


def _number(text: str) -> float:
    return float(text)  # Prometheus sends "NaN", "+Inf" and "-Inf" as strings float() understands


def query(expr: str, at: float | None = None, **variables: str) -> list[Sample]:
    """Evaluate EXPR at time AT (Unix seconds; default now). A vector comes back as a list of samples,
    sorted by labels; a scalar as one sample with no labels."""
    data = _get("/api/v1/query", {"query": substitute(expr, **variables), "time": at})
    if data["resultType"] in ("scalar", "string"):
        return [{"metric": {}, "value": _number(data["result"][1])}]
    if data["resultType"] == "matrix":
        raise PromQLError("this is a range vector (it ends in [..]): wrap it in rate(), avg_over_time() ...")
    samples = [{"metric": r["metric"], "value": _number(r["value"][1])} for r in data["result"]]
    return sorted(samples, key=lambda s: sorted(s["metric"].items()))


def query_range(expr: str, start: float, end: float, step_s: float = 1.0, **variables: str) -> list[Sample]:
    """Evaluate EXPR every STEP_S seconds from START to END: one sample list ("values") a series."""
    params = {"query": substitute(expr, **variables), "start": start, "end": end, "step": step_s}
    data = _get("/api/v1/query_range", params)
    series = [
        {"metric": r["metric"], "values": [(float(t), _number(v)) for t, v in r["values"]]} for r in data["result"]
    ]
    return sorted(series, key=lambda s: sorted(s["metric"].items()))


def value(expr: str, at: float | None = None, **variables: str) -> float:
    """The single number EXPR evaluates to (NaN when it returns nothing)."""
    samples = query(expr, at, **variables)
    if len(samples) > 1:
        raise PromQLError(f"expected one series, got {len(samples)}: aggregate with sum(...) or filter more")
    return samples[0]["value"] if samples else math.nan


def wait_for(
    expr: str, until: Callable[[list[Sample]], bool] = bool, timeout_s: float = 20.0, **variables: str
) -> list[Sample]:
    """Re-run EXPR until UNTIL(result) holds (default: some series came back); return that result."""
    expr = substitute(expr, **variables)

    def fetch() -> list[Sample]:
        return query(expr)

    return poll(fetch, until, timeout_s, what=f"`{expr}`")


def rules(group: str | None = None) -> list[dict[str, Any]]:
    """The alerting and recording rules Prometheus loaded (optionally of one group)."""
    groups = _get("/api/v1/rules")["groups"]
    return [rule for g in groups if group in (None, g["name"]) for rule in g["rules"]]


def alerts(**labels: str) -> list[dict[str, Any]]:
    """Pending and firing alerts whose labels include LABELS, e.g. alerts(namespace="obs13")."""
    found = _get("/api/v1/alerts")["alerts"]
    return [a for a in found if all(a["labels"].get(k) == v for k, v in labels.items())]


def targets(**labels: str) -> list[dict[str, Any]]:
    """Active scrape targets whose labels include LABELS, e.g. targets(namespace="obs13")."""
    active = _get("/api/v1/targets", {"state": "active"})["activeTargets"]
    return [t for t in active if all(t["labels"].get(k) == v for k, v in labels.items())]


def reload() -> None:
    """Ask Prometheus to re-read prometheus.yml and the rule files (needs --web.enable-lifecycle)."""
    request = urllib.request.Request(f"{config.prometheus_url()}/-/reload", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S):
            pass
    except urllib.error.HTTPError as exc:
        raise PromQLError(f"reload refused (HTTP {exc.code}): {exc.read().decode(errors='replace').strip()}") from None
    except urllib.error.URLError as exc:
        raise PromQLError(f"Prometheus at {config.prometheus_url()} did not answer: {exc.reason}") from None


def to_frame(samples: list[Sample], labels: list[str] | None = None, digits: int | None = None):
    """A pandas table of an instant-query result: one row a series, the chosen LABELS then its value."""
    import pandas as pd

    labels = labels or sorted({k for s in samples for k in s["metric"]})
    rows = [{**{k: s["metric"].get(k, "") for k in labels}, "value": s["value"]} for s in samples]
    frame = pd.DataFrame(rows, columns=[*labels, "value"])
    if digits is not None:
        frame["value"] = frame["value"].round(digits)
    return frame.sort_values(labels).reset_index(drop=True) if labels else frame
