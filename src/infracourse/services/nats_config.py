"""The native nats-server's configuration file: listen addresses and JetStream, plus an `include` of an accounts
file. Alone on a laptop that file holds one account, COURSE, which unauthenticated clients land in
(`no_auth_user`), so the lessons connect exactly as before; `course classroom provision` rewrites it with one
account per learner and reloads the server (classroom/nats_accounts.py)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from infracourse import config

ACCOUNTS_FILE = "accounts.conf"
COURSE_ACCOUNT = "COURSE"


@dataclass(frozen=True)
class NatsLearner:
    """One learner's NATS account: a user limited to its subjects, with JetStream limits of its own."""

    account: str
    user: str
    password: str
    subjects: str  # "ada__.>": the learner's namespaced subjects
    max_memory_mb: int = 64
    max_file_mb: int = 256
    max_streams: int = 50
    max_consumers: int = 200


def _q(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid NATS config string, quotes and escapes included


def server_conf(store_dir: Path) -> str:
    ep = config.endpoint("nats")
    monitoring_port = config.nats_monitoring_url().rsplit(":", 1)[1]
    return (f"listen: {_q(ep.address)}\nhttp: {_q(f'{ep.host}:{monitoring_port}')}\n"
            f"jetstream {{ store_dir: {_q(str(store_dir))} }}\ninclude {_q(ACCOUNTS_FILE)}\n")


def _learner_block(learner: NatsLearner) -> str:
    # its own subjects, JetStream's API (whose streams live in this account only) and reply inboxes
    allowed = json.dumps([learner.subjects, "$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "_INBOX.>", "$KV.>", "$O.>"])
    limits = (f"max_mem: {learner.max_memory_mb}M, max_file: {learner.max_file_mb}M, "
              f"max_streams: {learner.max_streams}, max_consumers: {learner.max_consumers}")
    user = (f"{{user: {_q(learner.user)}, password: {_q(learner.password)}, "
            f"permissions: {{publish: {{allow: {allowed}}}, subscribe: {{allow: {allowed}}}}}}}")
    return f"  {_q(learner.account)}: {{\n    jetstream: {{{limits}}}\n    users: [{user}]\n  }}\n"


def accounts_conf(learners: Iterable[NatsLearner] = ()) -> str:
    """The COURSE account (the course's own user, COURSE_NATS_USER/_PASSWORD; without a password, every
    unauthenticated client) and one account per learner."""
    ep = config.endpoint("nats")
    user, password = ep.user or "course", ep.password
    course = (f"  {COURSE_ACCOUNT}: {{\n    jetstream: enabled\n"
              f"    users: [{{user: {_q(user)}, password: {_q(password or 'unused-without-password')}}}]\n  }}\n")
    text = "accounts {\n" + course + "".join(_learner_block(lr) for lr in learners) + "}\n"
    return text + ("" if password else f"no_auth_user: {_q(user)}\n")


def write(root: Path, store_dir: Path) -> Path:
    """Write ROOT/nats.conf (and a laptop's accounts file the first time); return the config file's path."""
    accounts = root / ACCOUNTS_FILE
    if not accounts.exists():
        accounts.write_text(accounts_conf())
        accounts.chmod(0o600)
    conf = root / "nats.conf"
    conf.write_text(server_conf(store_dir))
    return conf
