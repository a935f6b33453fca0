import time

import matplotlib

from infracourse.lessons import latency

matplotlib.use("Agg")


def test_sample_ms_drops_warmup_and_runs_before_untimed():
    calls = []
    samples = latency.sample_ms(lambda: calls.append("call"), n=5, before=lambda: time.sleep(0.01), warmup=2)
    assert len(samples) == 5 and len(calls) == 7
    assert all(s < 5 for s in samples)  # the 10 ms sleep in BEFORE is not timed


def test_sample_in_turns_alternates_the_calls_and_times_only_them():
    order = []
    timed = latency.sample_in_turns_ms(3, before=lambda: time.sleep(0.01), warmup=1,
                                       a=lambda: order.append("a"), b=lambda: order.append("b"))
    assert order == ["a", "b"] * 4
    assert {name: len(s) for name, s in timed.items()} == {"a": 3, "b": 3}
    assert all(s < 5 for series in timed.values() for s in series)


def test_ops_per_s_keeps_the_best_run():
    durations = iter([0.05, 0.01, 0.05])
    rate = latency.ops_per_s(lambda: time.sleep(next(durations)), ops=100, repeat=3)
    assert 2_000 < rate < 10_000  # about 100 ops / 0.01 s, not / 0.05 s


def test_summary_table_has_percentiles_per_series():
    table = latency.summary(fast=[1.0] * 99 + [100.0], slow=[10.0, 20.0, 30.0])
    assert list(table.index) == ["fast", "slow"]
    assert table.loc["fast", "p50_ms"] == 1.0 and table.loc["fast", "max_ms"] == 100.0
    assert table.loc["slow", "n"] == 3 and table.loc["slow", "p50_ms"] == 20.0


def test_histograms_draw_without_a_display():
    latency.histograms("test", a=[0.1, 0.2, 0.3], b=[10.0, 20.0])
