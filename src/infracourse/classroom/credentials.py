"""Each learner's secrets: generated with `secrets`, kept in one 0600 file per learner inside a 0700 folder of the
state directory (never in the repository), handed to that learner's server as COURSE_* variables, never printed
in full (masked() shows a prefix and the length), and deleted on revoke."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from infracourse import config
from infracourse.classroom.roster import Learner, learner
from infracourse.paths import classroom_dir

SECRET_SERVICES = ("postgres", "redis", "rabbitmq", "nats", "kafka")  # one leaked is not all leaked
SHOWN_CHARS = 4


def folder() -> Path:
    """The state folder of a class (paths.classroom_dir), made 0700."""
    path = classroom_dir()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _file(who: Learner) -> Path:
    return folder() / f"{who.name}.env"


def environment(who: Learner, passwords: dict[str, str]) -> dict[str, str]:
    """The variables the learner's server runs with: config.py and namespace.py read them, so the notebooks
    need no change."""
    env = {config.LEARNER_PREFIX_ENV: who.prefix}
    for service in SECRET_SERVICES:
        env[f"COURSE_{service.upper()}_USER"] = who.principal
        env[f"COURSE_{service.upper()}_PASSWORD"] = passwords[service]
    env["COURSE_POSTGRES_DATABASE"] = who.principal  # a database of its own
    env["COURSE_RABBITMQ_DATABASE"] = who.principal  # the vhost
    return env


def load(who: Learner) -> dict[str, str] | None:
    """WHO's stored variables, or None if WHO was never provisioned (or was revoked)."""
    try:
        text = _file(who).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def passwords(env: dict[str, str]) -> dict[str, str]:
    return {s: env[f"COURSE_{s.upper()}_PASSWORD"] for s in SECRET_SERVICES}


def create(who: Learner) -> dict[str, str]:
    """WHO's variables: the stored ones (provisioning twice keeps the secrets), else new ones, written 0600
    before any service learns them."""
    known = load(who)
    if known is not None:
        return known
    env = environment(who, {s: secrets.token_urlsafe(24) for s in SECRET_SERVICES})
    temporary = _file(who).with_suffix(".tmp")
    temporary.unlink(missing_ok=True)
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write("".join(f"{key}={value}\n" for key, value in env.items()))
    temporary.replace(_file(who))
    return env


def delete(who: Learner) -> bool:
    try:
        _file(who).unlink()
    except FileNotFoundError:
        return False
    return True


def stored() -> list[Learner]:
    return [learner(path.stem) for path in sorted(folder().glob("*.env"))]


def masked(secret: str) -> str:
    """'Xk3q… (32 chars)': enough to tell two secrets apart, never enough to use one."""
    return f"{secret[:SHOWN_CHARS]}… ({len(secret)} chars)"
