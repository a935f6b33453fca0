"""Latency measurement for lessons: time a call many times, summarise percentiles, plot histograms.

    hits = latency.sample_ms(lambda: r.get(key), n=500)
    misses = latency.sample_ms(lambda: get_report("books"), n=30, before=lambda: r.delete(key))
    latency.summary(hit=hits, miss=misses)          # a table: n, p50, p95, max in ms
    latency.histograms("GET latency", hit=hits, miss=misses)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np


def sample_ms(call: Callable[[], object], n: int, *, before: Callable[[], object] | None = None,
              warmup: int = 3) -> list[float]:
    """Milliseconds of N calls of CALL; BEFORE (untimed) runs before each one, e.g. to empty a cache.

    The first WARMUP calls are dropped: they pay for connecting and for cold caches, not for the call.
    """
    samples = []
    for i in range(warmup + n):
        if before is not None:
            before()
        started = time.perf_counter()
        call()
        if i >= warmup:
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def sample_in_turns_ms(n: int, *, before: Callable[[], object] | None = None, warmup: int = 3,
                       **calls: Callable[[], object]) -> dict[str, list[float]]:
    """Milliseconds of N calls of each of CALLS, taken in turns (a, b, a, b, ...), so a slow spell of the
    machine (a checkpoint, another process) weighs on all of them alike; BEFORE runs untimed before each call.

        timed = latency.sample_in_turns_ms(30, before=empty_cache, query=run_query, miss=cached_read)
    """
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(warmup + n):
        for name, call in calls.items():
            if before is not None:
                before()
            started = time.perf_counter()
            call()
            if i >= warmup:
                samples[name].append((time.perf_counter() - started) * 1000)
    return samples


def ops_per_s(run: Callable[[], object], ops: int, repeat: int = 3) -> float:
    """Operations per second of RUN, a callable that performs OPS operations in one go: the best of REPEAT
    runs, because noise (other processes, a first run paying for TCP slow start) only ever slows a run down."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return ops / best


def p50(samples: Sequence[float]) -> float:
    return float(np.percentile(samples, 50))


def p95(samples: Sequence[float]) -> float:
    return float(np.percentile(samples, 95))


def summary(**series: Sequence[float]):
    """A table with one row a series: n, p50, p95 and max in milliseconds (3 significant decimals)."""
    import pandas as pd

    rows = {
        name: {"n": len(s), "p50_ms": p50(s), "p95_ms": p95(s), "max_ms": float(max(s))}
        for name, s in series.items()
    }
    return pd.DataFrame.from_dict(rows, orient="index").round(3)


def histograms(title: str, **series: Sequence[float]):
    """One histogram per series on a shared logarithmic millisecond axis (latencies span decades)."""
    import matplotlib.pyplot as plt

    everything = np.concatenate([np.asarray(s, dtype=float) for s in series.values()])
    low, high = max(everything.min(), 1e-3), everything.max()
    bins = np.logspace(np.log10(low) - 0.05, np.log10(high) + 0.05, 40)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for name, s in series.items():
        ax.hist(s, bins=bins, alpha=0.6, label=f"{name} (p50 {p50(s):.3g} ms)")
    ax.set_xscale("log")
    ax.set_xlabel("latency per call (ms, log scale)")
    ax.set_ylabel("calls")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    plt.show()
