"""The classroom hub end to end, as a class uses it: hub/jupyterhub_config.py spawns three learners' servers as
their own Unix users (in the bubblewrap view, under cgroup limits), each learner's kernel, reached through the
proxy and the server's websocket like a browser's, runs lab 00's reference answers and checks with its own
credentials and namespace, then tries to read the two others' data: every check passes, every attempt is
refused by the services, nothing crosses over."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket

import pytest

from infracourse.classroom import bench, limits, provision, registrar, users
from infracourse.paths import state_dir

NAMES = ["hubta", "hubtb", "hubtc"]
pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="the hub spawns Unix users: it needs root"),
              pytest.mark.usefixtures("grading_sandbox")]  # bubblewrap, which the learners' servers run in


def _free_block(size: int = 3) -> int:
    """A port P with P .. P+SIZE-1 free (the hub, its API, the proxy's API)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + size < 65535 and all(_free(base + i) for i in range(size)):
            return base
    raise RuntimeError("no block of free ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_three_learners_on_the_hub_run_their_lab_apart() -> None:
    state = state_dir() / "hub-test"
    shutil.rmtree(state, ignore_errors=True)
    bench.prepare(NAMES)
    block = _free_block()
    try:
        baseline, runs, _ = asyncio.run(bench.session(NAMES, "00", block, state))
        homes = {name: oct(users.ensure(name).stat().st_mode & 0o777) for name in NAMES}
        caps = {limits.memory_limit(name) for name in NAMES}
    finally:
        revoked = bench.clean_up(NAMES)
    figures = bench.report(baseline, runs)
    # nothing listens on the hub's ports any more: its proxy (in a session of its own) went with it
    assert not any(registrar.listening_uids(block + i) for i in range(3)), "the hub left its proxy running"
    assert figures["errors"] == 0, figures["first_errors"]
    assert figures["crosstalk"] == 0
    assert all(r.passed == 2 for r in [baseline, *runs])
    assert figures["refused_by_services"] == len(NAMES) * (len(NAMES) - 1) * 2  # Redis and PostgreSQL, each pair
    assert figures["others_files_hidden"] == len(NAMES) * (len(NAMES) - 1) * 2  # their home, their secrets
    assert set(homes.values()) == {"0o700"}
    assert caps in ({1 << 30}, {None})  # the config's 1G in each learner's cgroup (None: no cgroups here)
    assert all(r.memory_mib > 20 for r in runs)  # measured from the learners' own processes
    assert not any(users.exists(name) for name in NAMES)
    assert all(r.ok for r in revoked), [r.done for r in revoked]
    left = provision.present()
    assert not any(f"learner_{n}" in found for found in left.values() for n in NAMES), left


def test_a_learner_s_app_is_scraped_through_the_registrar() -> None:
    """Lab 13 registers the notebook's app with the shared Prometheus: on the hub the learner cannot write its
    folder, so the learner's server registers in the home and the hub's registrar relays it; every check passes."""
    name, state = "hubtm", state_dir() / "hub-test-metrics"
    shutil.rmtree(state, ignore_errors=True)
    bench.prepare([name])
    try:
        alone, _, _ = asyncio.run(bench.session([name], "13", _free_block(), state))
    finally:
        revoked = bench.clean_up([name])
    assert alone.errors == [] and alone.passed == 6, (alone.passed, alone.errors)
    assert all(r.ok for r in revoked), [r.done for r in revoked]
