"""Load for lesson 18's local pods: each pod gets its own steady rate of product reads, so the per-pod request
rate Prometheus measures (and the autoscaling decision made from it) is known in advance.

    load = k8s_load.drive(pods, [50, 90], seconds=8)    # -> Load(start, end, sent={address: 400, ...}, failed=0)
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from infracourse.lessons.k8s_pods import LocalPod

WORKERS_PER_POD = 4


@dataclass
class Load:
    """Requests sent to each pod (by address) between start and end (Unix seconds), and how many failed."""

    start: float
    end: float
    sent: dict[str, int] = field(default_factory=dict)
    failed: int = 0


def drive(pods: list[LocalPod], rates_per_s: list[float], seconds: float) -> Load:
    """Send GET /products/{id} to each pod at its rate (requests a second) for SECONDS. Request k to a pod is due
    k / rate seconds after the start, whoever sends it: WORKERS_PER_POD clients share each pod's schedule, so a
    slow answer (a busy 2-core machine) delays one request, not the rate."""
    started, load = time.monotonic(), Load(start=time.time(), end=0.0)

    def client(pod: LocalPod, rate: float, schedule: Iterator[int]) -> tuple[int, int]:
        sent = failed = 0
        while (due := (k := next(schedule)) / rate) < seconds:  # next() on a count is atomic under the GIL
            time.sleep(max(0.0, started + due - time.monotonic()))
            status, _ = pod.get(f"/products/{k % 100 + 1}")
            sent, failed = sent + 1, failed + (status != 200)
        return sent, failed

    work = [(pod, rate, schedule) for pod, rate in zip(pods, rates_per_s, strict=True)
            for schedule in [itertools.count()] for _ in range(WORKERS_PER_POD)]
    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        results = list(pool.map(lambda args: client(*args), work))
    load.end = time.time()
    for (pod, _, _), (sent, failed) in zip(work, results, strict=True):
        load.sent[pod.address] = load.sent.get(pod.address, 0) + sent
        load.failed += failed
    return load
