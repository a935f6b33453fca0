"""NATS: an account per learner (subjects and JetStream streams never cross accounts) whose one user may only
publish and subscribe on its namespace's subjects (`ada__.>`, plus JetStream's API and reply inboxes), with
per-account JetStream limits. The accounts file the native server includes (services/nats_config.py) is
rewritten from every stored learner and the server reloaded with SIGHUP: connected clients stay connected."""

from __future__ import annotations

import fcntl
import os
import signal
import time
from pathlib import Path
from urllib.parse import quote

from infracourse import config
from infracourse.classroom import credentials
from infracourse.classroom.roster import Learner
from infracourse.services import native, nats_config
from infracourse.waiting import run_coroutine

RELOAD_WAIT_S = 10.0


def _learners() -> list[nats_config.NatsLearner]:
    found = []
    for who in credentials.stored():
        env = credentials.load(who) or {}
        found.append(nats_config.NatsLearner(who.principal, who.principal, env["COURSE_NATS_PASSWORD"],
                                             f"{who.prefix}.>"))
    return found


def write_accounts() -> Path:
    """Write the accounts file for the learners stored now. Under a lock: two provisionings at once each write
    every learner stored when they hold it, so none is lost."""
    path = native.dirs_of("nats").root / nats_config.ACCOUNTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(credentials.folder() / "nats.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        temporary = path.with_suffix(".tmp")
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(nats_config.accounts_conf(_learners()))
        temporary.replace(path)
    return path


def sync() -> str:
    """Write the accounts file and reload the server that includes it (connected clients stay connected)."""
    path = write_accounts()
    pids = native.our_pids("nats")
    if not pids:
        return f"wrote {path}: include it in your nats-server's configuration and reload it"
    for pid in pids:
        os.kill(pid, signal.SIGHUP)
    return f"accounts reloaded ({len(_learners())} learner accounts)"


def _url(who: Learner, password: str) -> str:
    return f"nats://{quote(who.principal)}:{quote(password)}@{config.endpoint('nats').address}"


def reachable(who: Learner, password: str) -> bool:
    """WHO can log in (a reload takes effect a moment after the signal)."""
    import nats

    async def attempt() -> bool:
        try:
            nc = await nats.connect(_url(who, password), connect_timeout=2, max_reconnect_attempts=0,
                                    allow_reconnect=False)
        except Exception:  # noqa: BLE001 - refused until the reload is done
            return False
        await nc.close()
        return True

    deadline = time.monotonic() + RELOAD_WAIT_S
    while not run_coroutine(attempt, timeout_s=5):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def wipe(who: Learner, password: str) -> int:
    """Delete every stream of WHO's account (before the account goes: the server keeps the files otherwise)."""
    import nats

    async def run() -> int:
        nc = await nats.connect(_url(who, password), connect_timeout=3, max_reconnect_attempts=0)
        try:
            js = nc.jetstream()
            names = [info.config.name for info in await js.streams_info()]
            for name in names:
                await js.delete_stream(name)
            return len(names)
        finally:
            await nc.close()

    return run_coroutine(run, timeout_s=30)


def present() -> set[str]:
    return {learner.account for learner in _learners()}
