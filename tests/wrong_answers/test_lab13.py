"""Lab 13 checks fail on plausible wrong answers, with a message that helps, and pass the right one."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from prometheus_client import Counter, Gauge, Histogram
from verdicts import assert_fails, assert_not_done, assert_passes

from infracourse import config, notebook
from infracourse.checks import lab13 as checks
from infracourse.clients import promql
from infracourse.lessons.example_app import ExampleShop
from infracourse.namespace import Namespace
from infracourse.services import prometheus_targets


# exercise 1 ---------------------------------------------------------------------------------------------
def test_worker_metrics_reference_passes():
    assert_passes(checks.worker_metrics(checks.reference_worker_metrics))


def worker_metrics(*, processed=Counter, duration_labels=("queue",), buckets=checks.WORKER_BUCKETS):
    """A define_worker_metrics like the reference, but for the choice the arguments change."""
    def define(registry):
        return (processed("jobs_processed_total", "x", ["queue", "outcome"], registry=registry),
                Histogram("job_duration_seconds", "x", duration_labels, buckets=buckets, registry=registry),
                Gauge("jobs_in_progress", "x", ["queue"], registry=registry))
    return define


def test_worker_metrics_gauge_for_a_count_fails():
    assert_fails(checks.worker_metrics(worker_metrics(processed=Gauge)), "no metric named jobs_processed_total")


def test_worker_metrics_outcome_on_histogram_fails():
    assert_fails(checks.worker_metrics(worker_metrics(duration_labels=("queue", "outcome"))), "exactly the label queue")


def test_worker_metrics_default_buckets_fail():
    assert_fails(checks.worker_metrics(worker_metrics(buckets=Histogram.DEFAULT_BUCKETS)), "bucket bounds")


def test_worker_metrics_in_global_registry_fails():
    assert_fails(checks.worker_metrics(lambda registry: (None, None, None)), "registry")


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
    assert_passes(checks.process_job(reference_process))


def test_process_letting_exceptions_escape_fails():
    def wrong(queue, job, metrics):
        processed, duration, in_progress = metrics
        with in_progress.labels(queue).track_inprogress(), duration.labels(queue).time():
            job()
        processed.labels(queue, "ok").inc()
        return True

    assert_fails(checks.process_job(wrong), "escape")


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

    assert_fails(checks.process_job(wrong), "counted 2 jobs")


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
    assert_fails(result, "after all jobs finished", in_hint=("finally",))


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

    assert_fails(checks.process_job(wrong), "adds up to")


def test_process_retrying_a_failing_job_forever_is_cut(monkeypatch):
    monkeypatch.setattr(checks, "LIMIT_S", 1)
    give_up = time.monotonic() + 15  # never, as far as the check is concerned (the old check waited it out)

    def retries(queue, job, metrics):
        while time.monotonic() < give_up:
            if reference_process(queue, job, metrics):
                return True
            time.sleep(0.05)
        return False

    assert_fails(checks.process_job(retries), "retries() did not return within 1 s")


def test_process_stub_is_not_done():
    def stub(queue, job, metrics):
        raise NotImplementedError

    assert_not_done(checks.process_job(stub))


# exercise 3 ---------------------------------------------------------------------------------------------
@pytest.fixture
def queue_key(r, pg_ns):
    return pg_ns.key("emails")


def test_queue_depth_reference_passes(r, queue_key):
    def right(registry, client, key):
        Gauge("queue_depth", "x", ["queue"], registry=registry).labels("emails").set_function(lambda: client.llen(key))

    assert_passes(checks.queue_depth(right, r, queue_key))


def test_queue_depth_set_once_fails(r, queue_key):
    def wrong(registry, client, key):
        Gauge("queue_depth", "x", ["queue"], registry=registry).labels("emails").set(client.llen(key))

    result = checks.queue_depth(wrong, r, queue_key)
    assert_fails(result, "shows 0 with 3 messages", in_hint=("set_function",))


def test_queue_depth_without_label_fails(r, queue_key):
    def wrong(registry, client, key):
        Gauge("queue_depth", "x", registry=registry).set_function(lambda: client.llen(key))

    assert_fails(checks.queue_depth(wrong, r, queue_key), "no queue_depth")


def test_queue_depth_polling_loop_is_cut(r, queue_key, monkeypatch):
    monkeypatch.setattr(checks, "LIMIT_S", 1)
    give_up = time.monotonic() + 15  # never, as far as the check is concerned (the old check waited it out)

    def polls(registry, client, key):  # refreshes the gauge in a loop instead of at scrape time
        gauge = Gauge("queue_depth", "x", ["queue"], registry=registry).labels("emails")
        while time.monotonic() < give_up:
            gauge.set(client.llen(key))
            time.sleep(0.1)

    assert_fails(checks.queue_depth(polls, r, queue_key), "polls() did not return within 1 s")


# exercises 4 and 5: live Prometheus ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scraped_traffic():
    notebook.require("postgres", "redis", "prometheus")
    ns = Namespace("pytest_lab13_" + uuid.uuid4().hex[:6])
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
    assert_passes(checks.error_ratio_query(checks.REFERENCE_ERROR_RATIO, *scraped_traffic))


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
    # a query Prometheus rejects gets Prometheus's own error, which names the problem: no hint there
    assert_fails(checks.error_ratio_query(wrong, *scraped_traffic), says, hint=says != "rejected")


def test_p95_reference_passes(scraped_traffic):
    assert_passes(checks.p95_query(checks.REFERENCE_P95, *scraped_traffic))


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
    assert_fails(checks.p95_query(wrong, *scraped_traffic), says)


def test_promql_stub_is_not_done(scraped_traffic):
    assert_not_done(checks.p95_query(..., *scraped_traffic))


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
    assert_passes(checks.alert_rule(RULE.replace("{for_}", "5m")))


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
    assert_fails(checks.alert_rule(wrong), says)


# requirements the tests above did not break on their own -----------------------------------------------
def test_process_returning_nothing_fails():
    def no_verdict(queue, job, metrics):
        reference_process(queue, job, metrics)

    assert_fails(checks.process_job(no_verdict))


def test_process_counting_failures_as_ok_fails():
    def all_ok(queue, job, metrics):
        processed, duration, in_progress = metrics
        with in_progress.labels(queue).track_inprogress(), duration.labels(queue).time():
            try:
                job()
            except Exception:
                processed.labels(queue, "ok").inc()
                return False
        processed.labels(queue, "ok").inc()
        return True

    assert_fails(checks.process_job(all_ok))


REQUIREMENTS = {
    "1": {
        "create these three metrics **in `registry`**": "test_worker_metrics_in_global_registry_fails",
        "jobs finished, successfully or not": "test_worker_metrics_gauge_for_a_count_fails",
        "buckets 0.1, 0.5, 1, 5 and 30 s": "test_worker_metrics_default_buckets_fail",
        "`queue`, `outcome` (`\"ok\"` or `\"error\"`)": "test_worker_metrics_outcome_on_histogram_fails",
    },
    "2": {
        "A job that raises is a failure, not a crash of the worker": "test_process_letting_exceptions_escape_fails",
        "count it with\n`outcome=\"error\"`": "test_process_counting_failures_as_ok_fails",
        "and return `False`": "test_process_returning_nothing_fails",
        "Time every job, failures too": ("test_process_timing_only_successes_fails", "test_process_milliseconds_fail"),
        "keep `jobs_in_progress` at the number of jobs running, even after a failure":
            "test_process_gauge_left_raised_on_failure_fails",
    },
    "3": {
        "a gauge `queue_depth` with a label `queue`": "test_queue_depth_without_label_fails",
        "read when Prometheus scrapes (not once, when you define it)": ("test_queue_depth_set_once_fails",
                                                                         "test_queue_depth_polling_loop_is_cut"),
    },
    "4": {
        "failed with a **server error** (status 5xx)": "test_error_ratio_wrong_answers_fail",
        "per endpoint": "test_error_ratio_wrong_answers_fail",
        "over\nthe last `$window`": "test_error_ratio_wrong_answers_fail",
        "Select this lab's series with `namespace=\"$namespace\"`.": "test_error_ratio_wrong_answers_fail",
    },
    "5": {
        "the 95th percentile of request latency per endpoint": "test_p95_wrong_answers_fail",
        "over the last `$window`": "test_p95_wrong_answers_fail",
    },
    "6": {
        "one alerting rule named `CheckoutSlow`": "test_alert_rule_wrong_answers_fail",
        "the 95th percentile latency of the\n`/checkout` endpoint": "test_alert_rule_wrong_answers_fail",
        "computed per `namespace`": "test_alert_rule_wrong_answers_fail",
        "stays above 0.25 s for 5 minutes": "test_alert_rule_wrong_answers_fail",
        "Its alerts carry the labels `namespace` and `severity: page`, nothing else.":
            "test_alert_rule_wrong_answers_fail",
    },
}
