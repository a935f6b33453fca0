"""Experiments lesson 17 and its lab run against containers: what a build context ships, what PID 1 reports
about itself, and a stop under load that counts how many in-flight requests survive it."""

from __future__ import annotations

import http.client
import shutil
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg

from infracourse.lessons.http_service import call
from infracourse.namespace import Namespace
from infracourse.services.containers import Runtime
from infracourse.waiting import poll

APP_FILES = ("pyproject.toml", "orders_service/__init__.py", "orders_service/__main__.py", "orders_service/app.py",
             "orders_service/settings.py", "rootfs.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def copy_app(source: Path, dest: Path) -> Path:
    """A private copy of the app to build from (edits elsewhere in the checkout cannot change a build)."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "deploy"))
    return dest


def context_files(rt: Runtime, context: Path, tag: str) -> list[str]:
    """The files a build of CONTEXT receives (after its .dockerignore), as seen from inside an image built from it."""
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "Containerfile"  # outside the context: it does not list itself
        probe.write_text(f"FROM {rt.base_image}\nCOPY . /context\n")
        rt("build", "-q", "-f", str(probe), "-t", tag, str(context))
    try:
        listing = rt("run", "--rm", "--network", "none", tag, "find", "/context", "-type", "f")
    finally:
        rt.run("rmi", "-f", tag)
    return sorted(line.removeprefix("/context/") for line in listing.splitlines())


def proc_status(rt: Runtime, container: str, *fields: str) -> dict[str, str]:
    """FIELDS of /proc/1/status inside CONTAINER, read by its own Python (a distroless image has no grep)."""
    text = rt("exec", container, "python", "-c", "print(open('/proc/1/status').read())")
    values = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {name: " ".join(values[name].split()) for name in fields}


def stop_under_load(rt: Runtime, container: str, url: str, ns: Namespace, inflight: int = 8,
                    stop_timeout_s: float = 10, hold_s: float = 1.0) -> dict[str, object]:
    """Hold INFLIGHT orders inside the service (a lock on its outbox table makes each order wait), ask the runtime to
    stop CONTAINER with a grace period of STOP_TIMEOUT_S, release the orders HOLD_S later, and count the outcome."""
    with psycopg.connect(ns.postgres_dsn()) as blocker, psycopg.connect(ns.postgres_dsn(), autocommit=True) as watch:
        blocker.execute("LOCK TABLE outbox IN EXCLUSIVE MODE")
        with ThreadPoolExecutor(inflight) as pool:
            orders = [pool.submit(_order, url) for _ in range(inflight)]
            poll(lambda: watch.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass",
                                       [f"{ns.schema}.outbox"]).fetchone()[0],
                 lambda waiting: waiting >= inflight, timeout_s=20, what="the orders to be in flight")
            began = time.perf_counter()
            stopper = threading.Thread(target=rt.run, args=("stop", "-t", str(int(stop_timeout_s)), container),
                                       kwargs={"timeout_s": stop_timeout_s + 30})
            stopper.start()
            threading.Event().wait(min(hold_s, 1.0))  # the runtime has sent SIGTERM by now, and no SIGKILL yet
            accepting = _accepts(url)
            threading.Event().wait(hold_s - min(hold_s, 1.0))
            blocker.rollback()  # the orders go on (or, if the process is gone, nothing is left to go on)
            outcomes = [future.result() for future in orders]
            stopper.join()
    stop_s = time.perf_counter() - began
    exit_code = int(rt("inspect", "--format", "{{.State.ExitCode}}", container))
    return {"in flight at stop": inflight, "completed (201)": outcomes.count(201),
            "failed": inflight - outcomes.count(201), "accepting new requests during the stop": accepting,
            "exit code": exit_code, "stop took (s)": round(stop_s, 1)}


def _order(url: str) -> int:
    try:
        return call("POST", url + "/orders", json={"product_id": 3}, timeout_s=60).status
    except (OSError, http.client.HTTPException):
        return 0  # reset, refused or cut off mid-reply: the client never got an answer


def _accepts(url: str) -> bool:
    try:
        call("GET", url + "/health/live", timeout_s=0.5)
        return True
    except (OSError, http.client.HTTPException):
        return False
