"""promql talks to the live Prometheus: results as plain numbers, short errors, bounded waits."""

from __future__ import annotations

import math
import time

import pytest

from infracourse import notebook
from infracourse.clients import promql
from infracourse.waiting import StillWaiting


@pytest.fixture(autouse=True)
def prometheus():
    notebook.require("prometheus")


def test_instant_query_returns_numbers_sorted_by_labels():
    result = promql.query('up{job="prometheus"}')
    assert result and result[0]["metric"]["job"] == "prometheus" and result[0]["value"] == 1.0
    assert promql.value("vector(2) + 1") == 3.0
    assert promql.query("scalar(vector(7))") == [{"metric": {}, "value": 7.0}]


def test_value_of_nothing_is_nan_and_many_series_is_an_error():
    assert math.isnan(promql.value('up{job="no-such-job"}'))
    with pytest.raises(promql.PromQLError, match="expected one series"):
        promql.value('label_replace(vector(1), "a", "x", "", "") or label_replace(vector(2), "a", "y", "", "")')


def test_bad_query_raises_a_short_error():
    with pytest.raises(promql.PromQLError, match="bad_data"):
        promql.query("rate(up)")
    with pytest.raises(promql.PromQLError, match="range vector"):
        promql.query("up[1m]")


def test_query_range_gives_one_value_a_step():
    end = time.time()
    (series,) = promql.query_range('up{job="prometheus"}', end - 5, end, step_s=1)
    assert 5 <= len(series["values"]) <= 6 and all(v == 1.0 for _, v in series["values"])


def test_wait_for_gives_up_with_the_last_result():
    started = time.monotonic()
    with pytest.raises(StillWaiting, match="still returns nothing"):
        promql.wait_for('up{job="no-such-job"}', timeout_s=0.5)
    assert time.monotonic() - started < 3


def test_rules_and_targets_are_listed():
    names = {rule["name"] for rule in promql.rules("example-app")}
    assert {"HighErrorRatio", "HighLatencyP95", "ServiceDown", "LowCacheHitRatio"} <= names
    assert promql.targets(job="prometheus")


def test_to_frame_keeps_chosen_labels():
    samples = [{"metric": {"status": "500", "x": "1"}, "value": 0.123456}, {"metric": {"status": "200"}, "value": 2.0}]
    frame = promql.to_frame(samples, ["status"], digits=2)
    assert frame.to_dict("records") == [{"status": "200", "value": 2.0}, {"status": "500", "value": 0.12}]


def test_substitute_variables_like_grafana():
    expr = 'rate(x{namespace="$namespace"}[${window}])'
    assert promql.substitute(expr, namespace="obs13", window="5s") == 'rate(x{namespace="obs13"}[5s])'
    with pytest.raises(promql.PromQLError, match=r"pass window="):
        promql.substitute(expr, namespace="obs13")
    assert promql.value('vector($n)', n="4") == 4.0
