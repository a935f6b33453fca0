"""Checks of labs/13_metrics_with_prometheus.ipynb: metric types and labels (parsed from the exposition), a
queue-depth gauge, PromQL run against the live Prometheus, and an alert rule run through `promtool test rules`."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from infracourse.checking import exercise, expect, time_limit
from infracourse.clients import promql

WORKER_BUCKETS = (0.1, 0.5, 1.0, 5.0, 30.0)
LIMIT_S = 5


def _families(registry: CollectorRegistry) -> dict:
    return {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}


def _show(value: float | None) -> str:
    return "missing" if value is None else f"{value:g}"


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    for family in _families(registry).values():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


# exercise 1 ----------------------------------------------------------------------------------------------
def reference_worker_metrics(registry: CollectorRegistry) -> tuple[Counter, Histogram, Gauge]:
    """What exercise 1 asks for (used by exercise 2's check, so it does not depend on your exercise 1)."""
    return (
        Counter("jobs_processed_total", "Jobs processed.", ["queue", "outcome"], registry=registry),
        Histogram("job_duration_seconds", "Job duration.", ["queue"], buckets=WORKER_BUCKETS, registry=registry),
        Gauge("jobs_in_progress", "Jobs being processed.", ["queue"], registry=registry),
    )


def _labels_ok(metric: object, labels: dict[str, str]) -> bool:
    try:
        metric.labels(**labels)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


@exercise("1", "Metric types and labels for a worker")
def worker_metrics(define_worker_metrics) -> str:
    registry = CollectorRegistry()
    metrics = define_worker_metrics(registry)
    expect(isinstance(metrics, tuple) and len(metrics) == 3,
           "define_worker_metrics should return a tuple (processed, duration, in_progress)")
    families = _families(registry)
    expect(families, "the registry you were given is empty",
           hint="create every metric with registry=registry, not in the global default registry")
    wanted = {"jobs_processed": ("counter", "jobs_processed_total"), "job_duration_seconds": ("histogram", None),
              "jobs_in_progress": ("gauge", None)}
    for family, (kind, shown) in wanted.items():
        expect(family in families, f"no metric named {shown or family} in the registry",
               hint="check the names in the exercise text (counters end in _total)")
        expect(families[family].type == kind,
               f"{shown or family} is a {families[family].type}; it should be a {kind}",
               hint="a count of things that happened only goes up; a level goes up and down; a latency is a "
                    "distribution")
    processed, duration, in_progress = metrics
    expect(_labels_ok(processed, {"queue": "emails", "outcome": "ok"}),
           "jobs_processed_total should have exactly the labels queue and outcome")
    expect(_labels_ok(duration, {"queue": "emails"}), "job_duration_seconds should have exactly the label queue",
           hint="the outcome is not known when you start timing; keep histograms' labels few")
    expect(_labels_ok(in_progress, {"queue": "emails"}), "jobs_in_progress should have exactly the label queue")
    duration.labels(queue="emails").observe(0.2)
    bounds = {s.labels["le"] for s in _families(registry)["job_duration_seconds"].samples
              if s.name.endswith("_bucket")}
    expected_bounds = {str(b) for b in WORKER_BUCKETS} | {"+Inf"}
    shown = sorted(bounds - {"+Inf"}, key=float)
    expect(bounds == expected_bounds, f"job_duration_seconds has the bucket bounds {shown}",
           hint="pass buckets=(...) with the bounds the exercise lists, in seconds")
    return "3 metrics, labels and buckets as asked"


# exercise 2 ----------------------------------------------------------------------------------------------
class JobFailed(Exception):
    """What the check's failing job raises (not a RuntimeError: NotImplementedError is one)."""


@exercise("2", "Instrument the worker")
def process_job(process) -> str:
    registry = CollectorRegistry()
    metrics = reference_worker_metrics(registry)
    during: list[float | None] = []

    def ok_job() -> None:
        during.append(_sample(registry, "jobs_in_progress", queue="emails"))
        time.sleep(0.05)

    def failing_job() -> None:
        raise JobFailed("SMTP server unreachable")

    results = []
    for job in (ok_job, failing_job, ok_job):
        try:
            results.append(time_limit.call(LIMIT_S, process, "emails", job, metrics))
        except JobFailed:
            expect(False, "process() let the job's exception escape",
                   hint="a worker records the failure (outcome='error') and returns False, then goes on")
    expect(results == [True, False, True], f"process() returned {results} for an ok, a failing and an ok job",
           hint="return True when the job succeeded, False when it raised")
    ok = _sample(registry, "jobs_processed_total", queue="emails", outcome="ok")
    error = _sample(registry, "jobs_processed_total", queue="emails", outcome="error")
    expect(ok == 2, f"jobs_processed_total{{outcome=\"ok\"}} is {_show(ok)}, expected 2 after two successful jobs",
           hint="increment the counter with labels(queue=..., outcome='ok') once per successful job")
    expect(error == 1, f"jobs_processed_total{{outcome=\"error\"}} is {_show(error)}, expected 1 after one failing job",
           hint="use outcome='error' for a job that raised")
    count = _sample(registry, "job_duration_seconds_count", queue="emails")
    expect(count == 3, f"job_duration_seconds counted {_show(count)} jobs, expected 3",
           hint="time every job, failures too (a try/finally, or the histogram's .time())")
    total = _sample(registry, "job_duration_seconds_sum", queue="emails") or 0.0
    expect(total >= 0.1, f"job_duration_seconds adds up to {total:.3f} s; two jobs slept 0.05 s each",
           hint="observe seconds (time.perf_counter() differences), not milliseconds or zero")
    after = _sample(registry, "jobs_in_progress", queue="emails")
    expect(after == 0 and during[-1:] != [2.0],
           f"jobs_in_progress is {_show(after)} after all jobs finished (one of them failed)",
           hint="decrement in a finally block (or use .track_inprogress()), so a failing job does not leave it raised")
    expect(during == [1.0, 1.0], f"jobs_in_progress read {[_show(v) for v in during]} while a job ran, expected 1",
           hint="increment before the job runs (or use .track_inprogress())")
    return "2 ok, 1 error, 3 timings, in-progress back to 0"


# exercise 3 ----------------------------------------------------------------------------------------------
@exercise("3", "Queue depth read at scrape time")
def queue_depth(queue_depth_gauge, r, key: str) -> str:
    registry = CollectorRegistry()
    r.delete(key)
    try:
        time_limit.call(LIMIT_S, queue_depth_gauge, registry, r, key)
        r.rpush(key, "a", "b", "c")
        first = _sample(registry, "queue_depth", queue="emails")
        expect(first is not None, "no queue_depth{queue=\"emails\"} series in the registry",
               hint="a Gauge named queue_depth with a label queue, and the child labels(queue='emails')")
        expect(first == 3, f"queue_depth shows {_show(first)} with 3 messages waiting",
               hint="the value must be read from Redis when the registry is collected: set_function()")
        r.rpush(key, "d", "e")
        second = _sample(registry, "queue_depth", queue="emails")
        expect(second == 5, f"queue_depth still shows {_show(second)} after 2 more messages arrived",
               hint="set() stores one value; set_function() reads a fresh one on every scrape")
    finally:
        r.delete(key)
    return "follows LLEN on every scrape"


# exercises 4 and 5: PromQL against the live Prometheus -----------------------------------------------------
REFERENCE_ERROR_RATIO = (
    'sum by (endpoint) (rate(http_requests_total{namespace="$namespace", status=~"5.."}[$window]))'
    ' / sum by (endpoint) (rate(http_requests_total{namespace="$namespace"}[$window]))'
)
REFERENCE_P95 = (
    'histogram_quantile(0.95, sum by (le, endpoint) '
    '(rate(http_request_duration_seconds_bucket{namespace="$namespace"}[$window])))'
)


def _by_endpoint(expr: str, at: float, namespace: str) -> dict[str, float]:
    samples = promql.query(expr, at=at, namespace=namespace, window="3s")
    expect(all("endpoint" in s["metric"] for s in samples),
           "your query returns series without an endpoint label",
           hint="aggregate with sum by (..., endpoint) so each endpoint keeps its own series")
    return {s["metric"]["endpoint"]: s["value"] for s in samples}


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def _compare_queries(expr: str, reference: str, namespace: str, traffic, what: str, hint: str) -> str:
    expect(isinstance(expr, str) and expr.strip(), "the answer should be a PromQL string")
    expect("$namespace" in expr, 'select this lab\'s series with namespace="$namespace"',
           hint="other notebooks' apps are scraped by the same Prometheus")
    expect("$window" in expr, "use [$window] as the range of rate(): the check evaluates with several windows")
    try:
        promql.query(expr, at=traffic.end, namespace=namespace, window="3s")
    except promql.PromQLError as exc:
        expect(False, f"Prometheus rejected the query: {exc}")
    checked = 0
    for offset in (4.0, 6.0, 8.0, traffic.duration_s):
        at = traffic.start + min(offset, traffic.duration_s)
        got = _by_endpoint(expr, at, namespace)
        expected = _by_endpoint(reference, at, namespace)
        when = f"{at - traffic.start:.0f} s into the traffic"
        expect(got or not expected, f"your query returned nothing at {when}", hint=hint)
        for endpoint, value in sorted(got.items()):
            if endpoint not in expected:
                expect(value == 0 or math.isnan(value),
                       f"{endpoint} gets {what} {value:.3g} at {when}, but it should not appear (or be 0)", hint=hint)
                continue
            expect(_same(value, expected[endpoint]), f"{what} of {endpoint} at {when} is {value:.3g}: not right",
                   hint=hint)
        missing = sorted(set(expected) - set(got))
        expect(not missing, f"no {what} for {', '.join(missing)} at {when}", hint=hint)
        checked += 1
    return f"matches at {checked} moments of the traffic"


@exercise("4", "PromQL: error ratio per endpoint")
def error_ratio_query(expr: str, namespace: str, traffic) -> str:
    return _compare_queries(
        expr, REFERENCE_ERROR_RATIO, namespace, traffic, "the error ratio",
        hint="rate() of the 5xx responses divided by rate() of all responses, each summed by endpoint; "
             "4xx are the client's mistakes",
    )


@exercise("5", "PromQL: p95 latency per endpoint")
def p95_query(expr: str, namespace: str, traffic) -> str:
    return _compare_queries(
        expr, REFERENCE_P95, namespace, traffic, "the p95 latency",
        hint="histogram_quantile(0.95, ...) over the rate() of the _bucket series, summed by le and endpoint",
    )


# exercise 6: an alert rule under promtool's unit tests ------------------------------------------------------
def _buckets(cumulative: dict[str, int], endpoint: str = "/checkout", **labels: str) -> list[dict[str, str]]:
    """Input series of one histogram: each bucket (le -> requests per 15 s step, cumulative) grows linearly."""
    labels = {"namespace": "shop", "method": "GET" if endpoint.startswith("/products") else "POST",
              "endpoint": endpoint, **labels}
    return [
        {"series": "http_request_duration_seconds_bucket{"
                   + ", ".join(f'{k}="{v}"' for k, v in {**labels, "le": le}.items()) + "}",
         "values": f"0+{count}x80"}
        for le, count in cumulative.items()
    ]


def _case(name: str, series: list[dict[str, str]], *checks: tuple[str, list[dict[str, str]]]) -> dict:
    return {"name": name, "interval": "15s", "input_series": series, "alert_rule_test": [
        {"eval_time": at, "alertname": "CheckoutSlow", "exp_alerts": [{"exp_labels": {"severity": "page", **labels}}
                                                                      for labels in alerts]}
        for at, alerts in checks
    ]}


SLOW = {"0.1": 5, "0.25": 20, "0.5": 100, "+Inf": 100}  # p95 about 0.48 s
FAST = {"0.1": 100, "0.25": 100, "0.5": 100, "+Inf": 100}
ALERT_TESTS = yaml.safe_dump({
    "rule_files": ["rules.yml"],
    "evaluation_interval": "15s",
    "tests": [
        _case("a slow checkout (p95 about 0.48 s) fires after 5 minutes, not before", _buckets(SLOW),
              ("4m", []), ("15m", [{"namespace": "shop"}])),
        _case("slow product lookups with a fast checkout do not fire",
              _buckets(FAST) + _buckets({"0.1": 0, "0.25": 0, "0.5": 0, "+Inf": 900}, "/products/{id}"),
              ("15m", [])),
        _case("a checkout with 4% of requests above 0.25 s does not fire (its p95 is under 0.25 s)",
              _buckets({"0.1": 90, "0.25": 96, "0.5": 100, "+Inf": 100}), ("15m", [])),
        _case("most checkouts fast but the slowest 20% between 0.25 and 0.5 s fires (the p95 is what counts)",
              _buckets({"0.1": 80, "0.25": 80, "0.5": 100, "+Inf": 100}), ("15m", [{"namespace": "shop"}])),
        _case("two namespaces, one with two instances, get one alert each",
              _buckets({"0.25": 0, "0.5": 50, "+Inf": 50}, namespace="a", instance="1")
              + _buckets({"0.25": 0, "0.5": 50, "+Inf": 50}, namespace="a", instance="2")
              + _buckets({"0.25": 0, "0.5": 50, "+Inf": 50}, namespace="b", instance="3"),
              ("15m", [{"namespace": "a"}, {"namespace": "b"}])),
    ],
}, sort_keys=False)


def _promtool(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, cwd=folder)


def _failed_cases(output: str) -> list[str]:
    return sorted(set(re.findall(r"^\s*name: (.+?),\s*$", output, re.MULTILINE)))


@exercise("6", "An alert rule that passes promtool's tests", stretch=True)
def alert_rule(rules_yaml: str) -> str:
    expect(shutil.which("promtool"), "promtool is not installed (it comes with Prometheus)")
    expect(isinstance(rules_yaml, str) and rules_yaml.strip(), "the answer should be the YAML text of a rule file")
    try:
        document = yaml.safe_load(rules_yaml)
    except yaml.YAMLError as exc:
        expect(False, f"this is not valid YAML: {str(exc).splitlines()[0]}", hint="indent with spaces")
    rules = [rule for g in (document or {}).get("groups", []) or [] for rule in g.get("rules", []) or []] \
        if isinstance(document, dict) else []
    names = [rule.get("alert") for rule in rules if isinstance(rule, dict)]
    expect("CheckoutSlow" in names, "no alerting rule named CheckoutSlow",
           hint="groups: - name: ... rules: - alert: CheckoutSlow")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder)
        (path / "rules.yml").write_text(rules_yaml, encoding="utf-8")
        (path / "tests.yml").write_text(ALERT_TESTS, encoding="utf-8")
        checked = _promtool(path, "check", "rules", "rules.yml")
        problems = [ln.strip() for ln in (checked.stdout + checked.stderr).splitlines() if ln.strip()]
        expect(checked.returncode == 0, "promtool check rules failed: " + " | ".join(problems[1:4]),
               hint="promtool check rules <file> says the same on the command line")
        # promtool compares annotations exactly; the cases test when and with which labels the alert fires
        for rule in rules:
            rule.pop("annotations", None)
        (path / "rules.yml").write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        tested = _promtool(path, "test", "rules", "tests.yml")
        failed = _failed_cases(tested.stdout + tested.stderr)
        expect(tested.returncode == 0,
               "promtool test rules failed in: " + ("; ".join(failed) or tested.stdout.strip()[-200:]),
               hint="the p95 of /checkout only, per namespace (labels: namespace and severity), above 0.25 s "
                    "for 5 minutes")
    return "promtool check and 5 test cases pass"
