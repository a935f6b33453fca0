"""Lab 11 checks fail on plausible wrong answers, with a message that helps, and pass the right one."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from prometheus_client import Counter, Gauge, Histogram

from infracourse import config, notebook
from infracourse.checking import FAILED, NOT_DONE, PASSED
from infracourse.checks import lab11 as checks
from infracourse.clients import promql
from infracourse.lessons.example_app import ExampleShop
from infracourse.namespace import Namespace
from infracourse.services import prometheus_targets


# exercise 1 ---------------------------------------------------------------------------------------------
def test_worker_metrics_reference_passes():
    assert checks.worker_metrics(checks.reference_worker_metrics).status == PASSED


def test_worker_metrics_gauge_for_a_count_fails():
    def wrong(registry):
        return (Gauge("jobs_processed_total", "x", ["queue", "outcome"], registry=registry),
                Histogram("job_duration_seconds", "x", ["queue"], buckets=checks.WORKER_BUCKETS, registry=registry),
                Gauge("jobs_in_progress", "x", ["queue"], registry=registry))

    result = checks.worker_metrics(wrong)
    assert result.status == FAILED and "no metric named jobs_processed_total" in result.message


def test_worker_metrics_outcome_on_histogram_fails():
    def wrong(registry):
        return (Counter("jobs_processed_total", "x", ["queue", "outcome"], registry=registry),
                Histogram("job_duration_seconds", "x", ["queue", "outcome"], buckets=checks.WORKER_BUCKETS,
                          registry=registry),
                Gauge("jobs_in_progress", "x", ["queue"], registry=registry))

    result = checks.worker_metrics(wrong)
    assert result.status == FAILED and "exactly the label queue" in result.message and result.hint


def test_worker_metrics_default_buckets_fail():
    def wrong(registry):
        return (Counter("jobs_processed_total", "x", ["queue", "outcome"], registry=registry),
                Histogram("job_duration_seconds", "x", ["queue"], registry=registry),
                Gauge("jobs_in_progress", "x", ["queue"], registry=registry))

    result = checks.worker_metrics(wrong)
    assert result.status == FAILED and "bucket bounds" in result.message


def test_worker_metrics_in_global_registry_fails():
    result = checks.worker_metrics(lambda registry: (None, None, None))
    assert result.status == FAILED and "registry" in result.message


# exercise 2 ---------------------------------------------------------------------------------------------
def reference_process(queue, job, metrics):
    processed, duration, in_progress = metrics
    with in_progress.labels(queue).track_inprogress(), duration.labels(queue).time():
        try:
            job()
        except Exception:
            processed.labels(queue, "error").inc()
            return False
    processed.labels(queue, "ok").inc()
    return True


def test_process_reference_passes():
    assert checks.process_job(reference_process).status == PASSED


def test_process_letting_exceptions_escape_fails():
    def wrong(queue, job, metrics):
        processed, duration, in_progress = metrics
        with in_progress.labels(queue).track_inprogress(), duration.labels(queue).time():
            job()
        processed.labels(queue, "ok").inc()
        return True

    result = checks.process_job(wrong)
    assert result.status == FAILED and "escape" in result.message


def test_process_timing_only_successes_fails():
    def wrong(queue, job, metrics):
        processed, duration, in_progress = metrics
        in_progress.labels(queue).inc()
        started = time.perf_counter()
        try:
            job()
        except Exception:
            processed.labels(queue, "error").inc()
            in_progress.labels(queue).dec()
            return False
        duration.labels(queue).observe(time.perf_counter() - started)
        processed.labels(queue, "ok").inc()
        in_progress.labels(queue).dec()
        return True

    result = checks.process_job(wrong)
    assert result.status == FAILED and "counted 2 jobs" in result.message


def test_process_gauge_left_raised_on_failure_fails():
    def wrong(queue, job, metrics):
        processed, duration, in_progress = metrics
        in_progress.labels(queue).inc()
        with duration.labels(queue).time():
            try:
                job()
            except Exception:
                processed.labels(queue, "error").inc()
                return False
        processed.labels(queue, "ok").inc()
        in_progress.labels(queue).dec()
        return True

    result = checks.process_job(wrong)
    assert result.status == FAILED and "after all jobs finished" in result.message and "finally" in result.hint


def test_process_milliseconds_fail():
    def wrong(queue, job, metrics):
        processed, duration, in_progress = metrics
        with in_progress.labels(queue).track_inprogress():
            started = time.perf_counter()
            ok = True
            try:
                job()
            except Exception:
                ok = False
            duration.labels(queue).observe((time.perf_counter() - started) / 1000)
        processed.labels(queue, "ok" if ok else "error").inc()
        return ok

    result = checks.process_job(wrong)
    assert result.status == FAILED and "adds up to" in result.message


def test_process_retrying_a_failing_job_forever_is_cut(monkeypatch):
    monkeypatch.setattr(checks, "LIMIT_S", 1)
    give_up = time.monotonic() + 15  # never, as far as the check is concerned (the old check waited it out)

    def retries(queue, job, metrics):
        while time.monotonic() < give_up:
            if reference_process(queue, job, metrics):
                return True
            time.sleep(0.05)
        return False

    result = checks.process_job(retries)
    assert result.status == FAILED and "retries() did not return within 1 s" in result.message


def test_process_stub_is_not_done():
    def stub(queue, job, metrics):
        raise NotImplementedError

    assert checks.process_job(stub).status == NOT_DONE


# exercise 3 ---------------------------------------------------------------------------------------------
@pytest.fixture
def queue_key(r, pg_ns):
    return pg_ns.key("emails")


def test_queue_depth_reference_passes(r, queue_key):
    def right(registry, client, key):
        Gauge("queue_depth", "x", ["queue"], registry=registry).labels("emails").set_function(lambda: client.llen(key))

    assert checks.queue_depth(right, r, queue_key).status == PASSED


def test_queue_depth_set_once_fails(r, queue_key):
    def wrong(registry, client, key):
        Gauge("queue_depth", "x", ["queue"], registry=registry).labels("emails").set(client.llen(key))

    result = checks.queue_depth(wrong, r, queue_key)
    assert result.status == FAILED and "shows 0 with 3 messages" in result.message and "set_function" in result.hint


def test_queue_depth_without_label_fails(r, queue_key):
    def wrong(registry, client, key):
        Gauge("queue_depth", "x", registry=registry).set_function(lambda: client.llen(key))

    result = checks.queue_depth(wrong, r, queue_key)
    assert result.status == FAILED and "no queue_depth" in result.message


def test_queue_depth_polling_loop_is_cut(r, queue_key, monkeypatch):
    monkeypatch.setattr(checks, "LIMIT_S", 1)
    give_up = time.monotonic() + 15  # never, as far as the check is concerned (the old check waited it out)

    def polls(registry, client, key):  # refreshes the gauge in a loop instead of at scrape time
        gauge = Gauge("queue_depth", "x", ["queue"], registry=registry).labels("emails")
        while time.monotonic() < give_up:
            gauge.set(client.llen(key))
            time.sleep(0.1)

    result = checks.queue_depth(polls, r, queue_key)
    assert result.status == FAILED and "polls() did not return within 1 s" in result.message


# exercises 4 and 5: live Prometheus ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scraped_traffic():
    notebook.require("postgres", "redis", "prometheus")
    ns = Namespace("pytest_lab11_" + uuid.uuid4().hex[:6])
    ns.reset("postgres", "redis")
    shop = ExampleShop(ns).start()
    prometheus_targets.register(ns.slug, shop.address)
    try:
        promql.wait_for('up{namespace="$namespace"} == 1', namespace=ns.slug)
        traffic = shop.drive(rounds=8)
        promql.wait_for('sum(http_requests_total{namespace="$namespace"})', namespace=ns.slug,
                        until=lambda res: res and res[0]["value"] == sum(traffic.sent.values()))
        yield ns.slug, traffic
    finally:
        prometheus_targets.unregister(ns.slug)
        shop.close()
        with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{ns.schema}" CASCADE')


def test_error_ratio_reference_passes(scraped_traffic):
    assert checks.error_ratio_query(checks.REFERENCE_ERROR_RATIO, *scraped_traffic).status == PASSED


@pytest.mark.parametrize(("wrong", "says"), [
    # counters without rate(): the ratio since the app started, not over the window
    ('sum by (endpoint) (http_requests_total{namespace="$namespace", status=~"5.."})'
     ' / sum by (endpoint) (http_requests_total{namespace="$namespace"}) + 0 * vector(0)[$window:]', "rejected"),
    ('sum by (endpoint) (increase(http_requests_total{namespace="$namespace", status=~"5.."}[1h]))'
     ' / sum by (endpoint) (increase(http_requests_total{namespace="$namespace"}[1h])) # $window', "not right"),
    ('sum by (endpoint) (rate(http_requests_total{namespace="$namespace", status=~"4..|5.."}[$window]))'
     ' / sum by (endpoint) (rate(http_requests_total{namespace="$namespace"}[$window]))', "should not appear"),
    ('sum(rate(http_requests_total{namespace="$namespace", status=~"5.."}[$window]))'
     ' / sum(rate(http_requests_total{namespace="$namespace"}[$window]))', "endpoint label"),
    ('sum by (endpoint) (rate(http_requests_total{status=~"5.."}[$window]))'
     ' / sum by (endpoint) (rate(http_requests_total[$window]))', "namespace"),
    ('sum by (endpoint) (rate(http_requests_total{namespace="$namespace", status=~"5.."}[$window]))', "not right"),
])
def test_error_ratio_wrong_answers_fail(scraped_traffic, wrong, says):
    result = checks.error_ratio_query(wrong, *scraped_traffic)
    assert result.status == FAILED and says in result.message + result.hint, result.message


def test_p95_reference_passes(scraped_traffic):
    assert checks.p95_query(checks.REFERENCE_P95, *scraped_traffic).status == PASSED


@pytest.mark.parametrize(("wrong", "says"), [
    ('histogram_quantile(0.95, sum by (endpoint) '
     '(rate(http_request_duration_seconds_bucket{namespace="$namespace"}[$window])))', "returned nothing"),
    ('histogram_quantile(0.5, sum by (le, endpoint) '
     '(rate(http_request_duration_seconds_bucket{namespace="$namespace"}[$window])))', "not right"),
    ('histogram_quantile(0.95, sum by (le, endpoint) '
     '(http_request_duration_seconds_bucket{namespace="$namespace"})) # $window', "not right"),
    ('sum by (endpoint) (rate(http_request_duration_seconds_sum{namespace="$namespace"}[$window]))'
     ' / sum by (endpoint) (rate(http_request_duration_seconds_count{namespace="$namespace"}[$window]))', "not right"),
])
def test_p95_wrong_answers_fail(scraped_traffic, wrong, says):
    result = checks.p95_query(wrong, *scraped_traffic)
    assert result.status == FAILED and says in result.message, result.message


def test_promql_stub_is_not_done(scraped_traffic):
    assert checks.p95_query(..., *scraped_traffic).status == NOT_DONE


# exercise 6 ---------------------------------------------------------------------------------------------
RULE = """
groups:
  - name: checkout
    rules:
      - alert: CheckoutSlow
        expr: |
          histogram_quantile(0.95,
            sum by (namespace, le) (rate(http_request_duration_seconds_bucket{endpoint="/checkout"}[5m]))
          ) > 0.25
        for: {for_}
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.namespace }}: checkout p95 is {{ $value | humanizeDuration }}"
"""


def test_alert_rule_reference_passes():
    assert checks.alert_rule(RULE.replace("{for_}", "5m")).status == PASSED


@pytest.mark.parametrize(("wrong", "says"), [
    (RULE.replace("{for_}", "1m"), "not before"),
    (RULE.replace("{for_}", "5m").replace('{endpoint="/checkout"}', ""), "slow product lookups"),
    (RULE.replace("{for_}", "5m").replace("0.95", "0.5"), "slowest 20%"),
    (RULE.replace("{for_}", "5m").replace("0.95", "0.99"), "4% of requests"),
    (RULE.replace("{for_}", "5m").replace("namespace, le", "namespace, instance, le"), "two namespaces"),
    (RULE.replace("{for_}", "5m").replace("severity: page", "severity: ticket"), "fires after 5 minutes"),
    (RULE.replace("{for_}", "5m").replace("rate(", "rate(("), "promtool check rules failed"),
    (RULE.replace("{for_}", "5m").replace("CheckoutSlow", "SlowCheckout"), "no alerting rule named"),
    ("groups:\n\t- name: x", "not valid YAML"),
])
def test_alert_rule_wrong_answers_fail(wrong, says):
    result = checks.alert_rule(wrong)
    assert result.status == FAILED and says in result.message, result.message
