"""`course classroom bench --learners 20`: learners spawned by the hub (Unix users, hub/jupyterhub_config.py),
each running a lab's reference answers and checks in their own kernel at the same moment, against one set of
services. First one learner alone (the baseline), then all of them at once. Reports spawn time, check time
p50/p95 against the baseline, errors, cross-talk (a learner reading another's data: must be 0) and memory per
learner; removes its learners, their credentials and Unix users afterwards (unless --keep)."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from infracourse.classroom import credentials, provision, roster, users
from infracourse.classroom.hub import Hub, Kernel
from infracourse.paths import repo_root, state_dir

PASSED = "✅"
TIMED = "@@bench-check-seconds"
P95_GOAL = 3.0  # the issue's goal: 20 learners' p95 check time within 3x one learner's
# run in each kernel once every learner has written its token: try to read every other learner's token (Redis)
# and to connect to their database (PostgreSQL); a read that works is cross-talk, a refusal must come from the
# service (NoPermissionError, "permission denied"), anything else is an error
PROBE = """
import json as _json, os as _os, psycopg as _pg, redis as _redis
from infracourse import config as _config
_r = _redis.Redis.from_url(_config.redis_url())
_seen = {"crosstalk": [], "refused": 0, "hidden": 0, "errors": []}
for _other in OTHERS:
    try:
        if _r.get(ns.slug.replace(PREFIX, _other + "__", 1) + ":bench:token") is not None:
            _seen["crosstalk"].append(f"redis:{_other}")
        else:
            _seen["errors"].append(f"redis:{_other}: read allowed")
    except _redis.exceptions.NoPermissionError:
        _seen["refused"] += 1
    try:
        _pg.connect(_config.postgres_dsn(dbname="learner_" + _other)).close()
        _seen["crosstalk"].append(f"postgres:{_other}")
    except _pg.OperationalError as _exc:
        if "permission denied" in str(_exc):
            _seen["refused"] += 1
        else:
            _seen["errors"].append(f"postgres:{_other}: {str(_exc)[:120]}")
    for _path, _look in ((f"/home/{_other}", _os.listdir), (f"{SECRETS}/{_other}.env", _os.stat)):
        try:  # their files, their secrets: not in this learner's view, or closed to its uid
            _look(_path)
            _seen["crosstalk"].append(f"file:{_path}")
        except (PermissionError, FileNotFoundError):
            _seen["hidden"] += 1
print(_json.dumps(_seen))
"""
TOKEN = "import redis as _redis; from infracourse import config as _config; " \
        "_redis.Redis.from_url(_config.redis_url()).set(ns.key('bench', 'token'), 'x')"


@dataclass
class Run:
    name: str
    spawn_s: float = 0.0
    check_s: float = 0.0  # in the lab's check cells
    lab_s: float = 0.0  # the whole lab: Setup (imports, namespace reset), answers and checks
    passed: int = 0
    errors: list[str] = field(default_factory=list)
    crosstalk: list[str] = field(default_factory=list)
    refused: int = 0
    memory_mib: float = 0.0
    kernel_s: float = 0.0  # starting the learner's kernel through the hub
    in_kernel_s: float = 0.0  # the check cells' own time inside the kernel (no Jupyter messaging)
    hidden: int = 0  # other learners' homes and secret files this learner's server could not open


def lab_cells(number: str) -> tuple[list[str], int]:
    """The code cells of the lab's reference solution and how many checks pass on it."""
    path = next((repo_root() / "solutions").glob(f"{number}_*.ipynb"), None)
    if path is None:
        raise SystemExit(f"course classroom bench: no solution for lab {number}")
    nb = nbformat.read(path, as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code"]
    stored = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    return cells, stored.count(PASSED)


async def open_kernel(hub: Hub, run: Run) -> Kernel | None:
    began = time.monotonic()
    try:
        kernel = await hub.kernel(run.name)
    except Exception as exc:  # noqa: BLE001 - counted as this learner's error
        run.errors.append(f"kernel: {type(exc).__name__}: {exc}"[:200])
        return None
    run.kernel_s = time.monotonic() - began
    return kernel


async def _cells(kernel: Kernel, run: Run, cells: list[str]) -> str | None:
    """Run CELLS in order; what they printed (None: the kernel went away)."""
    printed = []
    for code in cells:
        try:
            out, error = await kernel.run(code)
        except Exception as exc:  # noqa: BLE001 - a closed websocket or a timeout: this learner's error
            run.errors.append(f"kernel: {type(exc).__name__}: {exc}"[:200])
            return None
        printed.append(out)
        if error:
            run.errors.append(error[:200])
    return "".join(printed)


async def run_lab(kernel: Kernel, run: Run, cells: list[str], expected: int) -> None:
    """The whole lab (Setup, answers, checks), timed as lab_s."""
    began = time.monotonic()
    printed = await _cells(kernel, run, cells)
    run.lab_s = time.monotonic() - began
    if printed is not None and printed.count(PASSED) != expected:
        run.errors.append(f"{printed.count(PASSED)}/{expected} checks passed in the lab")


async def run_checks(kernel: Kernel, run: Run, cells: list[str], expected: int) -> None:
    """The lab's check cells again (checks survive re-running), timed as check_s: every learner's at once."""
    checks = [f"_bench_t = __import__('time').perf_counter()\n{code}\n"
              f"print('{TIMED}', __import__('time').perf_counter() - _bench_t)"
              for code in cells if code.lstrip().startswith(("checks.", "await checks."))]  # async checks too
    began = time.monotonic()
    printed = await _cells(kernel, run, checks)
    run.check_s = time.monotonic() - began
    run.in_kernel_s = sum(float(line.split()[1]) for line in (printed or "").splitlines() if line.startswith(TIMED))
    run.passed = (printed or "").count(PASSED)
    if run.passed != expected:
        run.errors.append(f"{run.passed}/{expected} checks passed")


async def probe(kernel, run: Run, others: list[str]) -> None:
    code = f"OTHERS = {others!r}; PREFIX = {run.name + '__'!r}; SECRETS = {str(credentials.folder())!r}\n{PROBE}"
    try:
        out, error = await kernel.run(code)
    except Exception as exc:  # noqa: BLE001 - this learner's error
        run.errors.append(f"probe: {type(exc).__name__}: {exc}"[:200])
        return
    if error:
        run.errors.append(f"probe: {error[:200]}")
        return
    seen = json.loads(out.strip().splitlines()[-1])
    run.crosstalk += seen["crosstalk"]
    run.refused += seen["refused"]
    run.hidden += seen["hidden"]
    run.errors += seen["errors"]


async def _spawn(hub: Hub, run: Run, gate: asyncio.Semaphore) -> bool:
    async with gate:
        try:
            run.spawn_s = await hub.spawn(run.name)
            return True
        except Exception as exc:  # noqa: BLE001 - a learner whose server failed is an error, not the end
            run.errors.append(f"spawn: {type(exc).__name__}: {exc}"[:200])
            return False


async def session(names: list[str], lab: str, port: int, state: Path,
                  spawn_parallel: int = 4) -> tuple[Run, list[Run], float]:
    """(the first learner alone, every learner together, seconds until all servers answered). Servers start
    SPAWN_PARALLEL at a time (a class logs in over minutes, not in one instant); the labs then run at once."""
    cells, expected = lab_cells(lab)
    runs = {name: Run(name) for name in names}
    async with Hub(state, port) as hub:
        alone = runs[names[0]]
        if not await _spawn(hub, alone, asyncio.Semaphore(1)):
            return alone, list(runs.values()), 0.0
        kernel = await open_kernel(hub, alone)
        if kernel is None:
            return alone, list(runs.values()), 0.0
        await run_lab(kernel, alone, cells, expected)
        await run_checks(kernel, alone, cells, expected)
        await kernel.close()
        baseline = Run(alone.name, alone.spawn_s, alone.check_s, alone.lab_s, alone.passed, list(alone.errors),
                       kernel_s=alone.kernel_s, in_kernel_s=alone.in_kernel_s)
        alone.errors.clear()
        alone.check_s = alone.lab_s = 0.0
        began, gate = time.monotonic(), asyncio.Semaphore(spawn_parallel)
        spawned = await asyncio.gather(*(_spawn(hub, runs[n], gate) for n in names[1:]))
        all_ready_s = time.monotonic() - began
        ready = [names[0], *(n for n, ok in zip(names[1:], spawned, strict=True) if ok)]
        opened = await asyncio.gather(*(open_kernel(hub, runs[n]) for n in ready))  # then the labs, at once
        ready, kernels = [n for n, k in zip(ready, opened, strict=True) if k], [k for k in opened if k]
        pairs = list(zip(ready, kernels, strict=True))
        await asyncio.gather(*(run_lab(k, runs[n], cells, expected) for n, k in pairs))
        await asyncio.gather(*(run_checks(k, runs[n], cells, expected) for n, k in pairs))  # the same moment
        await asyncio.gather(*(_cells(k, runs[n], [TOKEN]) for n, k in pairs))
        for name in ready:
            runs[name].memory_mib = users.memory_mib(name)
        await asyncio.gather(*(probe(k, runs[n], [o for o in ready if o != n]) for n, k in zip(ready, kernels,
                                                                                             strict=True)))
        await asyncio.gather(*(kernel.close() for kernel in kernels))
    return baseline, [runs[n] for n in names], all_ready_s


def prepare(names: list[str]) -> None:
    learners = [roster.learner(n) for n in names]
    failed = [r for r in provision.provision(learners) if not r.ok]
    if failed:
        raise SystemExit(f"course classroom bench: provisioning failed: {failed[0].done}")
    for name in names:
        users.ensure(name)


def clean_up(names: list[str]) -> list[provision.Report]:
    reports = provision.revoke([roster.learner(n) for n in names])
    for name in names:
        users.remove(name)
    return reports


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def report(baseline: Run, runs: list[Run], all_ready_s: float = 0.0) -> dict[str, object]:
    ran = [r for r in runs if r.lab_s] or runs
    checks = [r.check_s for r in ran]
    spawns = [r.spawn_s for r in runs[1:] if r.spawn_s] or [baseline.spawn_s]
    return {
        "learners": len(runs), "spawn_alone_s": round(baseline.spawn_s, 1),
        "learners_ran_lab": len([r for r in runs if r.lab_s]),
        "spawn_others_p50_s": round(statistics.median(spawns), 1), "spawn_others_max_s": round(max(spawns), 1),
        "all_servers_ready_s": round(all_ready_s, 1),
        "kernel_start_alone_s": round(baseline.kernel_s, 1),
        "kernel_start_together_max_s": round(max(r.kernel_s for r in ran), 1),
        "check_alone_s": round(baseline.check_s, 2), "check_p50_s": round(percentile(checks, 0.5), 2),
        "check_p95_s": round(percentile(checks, 0.95), 2),
        "p95_over_alone": round(percentile(checks, 0.95) / max(baseline.check_s, 1e-6), 2),
        "check_in_kernel_alone_s": round(baseline.in_kernel_s, 3),
        "check_in_kernel_p50_s": round(percentile([r.in_kernel_s for r in ran], 0.5), 3),
        "check_in_kernel_p95_s": round(percentile([r.in_kernel_s for r in ran], 0.95), 3),
        "lab_alone_s": round(baseline.lab_s, 2), "lab_p50_s": round(percentile([r.lab_s for r in ran], 0.5), 2),
        "lab_p95_s": round(percentile([r.lab_s for r in ran], 0.95), 2),
        "errors": sum(len(r.errors) for r in [baseline, *runs]), "crosstalk": sum(len(r.crosstalk) for r in runs),
        "refused_by_services": sum(r.refused for r in runs),
        "others_files_hidden": sum(r.hidden for r in runs),
        "memory_per_learner_mib_p50": round(statistics.median(r.memory_mib for r in ran), 0),
        "memory_per_learner_mib_max": round(max(r.memory_mib for r in ran), 0),
        "first_errors": [f"{r.name}: {e}" for r in [baseline, *runs] for e in r.errors][:5],
    }


def main(args: argparse.Namespace) -> int:
    names = [f"bench{i:02d}" for i in range(1, args.learners + 1)]
    print(f"Benchmark: {len(names)} learners on the hub, lab {args.lab}, one set of services ...", flush=True)
    prepare(names)
    try:
        state = state_dir() / "hub-bench"  # kept: its hub.log is what to read when something failed
        shutil.rmtree(state, ignore_errors=True)
        baseline, runs, all_ready_s = asyncio.run(session(names, args.lab, args.port, state,
                                                          args.spawn_parallel))
    finally:
        if not args.keep:
            clean_up(names)
    figures = report(baseline, runs, all_ready_s)
    for key, value in figures.items():
        print(f"  {key:<28} {value}")
    ok = figures["errors"] == 0 and figures["crosstalk"] == 0
    ratio = figures["p95_over_alone"]
    print(f"{'PASS' if ok else 'FAIL'}: {figures['errors']} errors, {figures['crosstalk']} cross-talk; check p95 "
          f"{ratio}x one learner alone ({'within' if ratio <= P95_GOAL else 'NOT within'} the {P95_GOAL}x goal)")
    return 0 if ok else 1
