"""The namespaces graded submissions run in: a suffix no other submission or grading run shares
(INFRACOURSE_NS_SUFFIX, see namespace.py), the ones a kernel reports having made, and afterwards the removal
of everything carrying it, so grading a class leaves the shared services as it found them."""

from __future__ import annotations

import json
import re
import secrets

from infracourse import config
from infracourse.namespace import Namespace

# run in the submission's kernel after its last cell: print the slugs of its Namespace objects as JSON (by type
# name: the grader loads the infracourse modules afresh before each check, so there may be several classes)
REPORT_SOURCE = """
import json as _json
print(_json.dumps(sorted({v.slug for v in list(globals().values())
                          if type(v).__name__ == "Namespace" and isinstance(getattr(v, "slug", None), str)})))
"""
SLUG_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")  # what Namespace makes, and a PostgreSQL name's length
# the clean-up connection never waits long: a hostile name or a lock left behind cannot stretch the grading run
CLEANUP_OPTIONS = "-c statement_timeout=5000 -c lock_timeout=2000"


def suffix_for(student: str) -> str:
    """Readable student name plus a random token: `_g_alice_1f2e3d`."""
    name = re.sub(r"[^a-z0-9]+", "_", student.lower()).strip("_")[:12] or "student"
    return f"_g_{name}_{secrets.token_hex(3)}"


def reported(printed: str) -> set[str]:
    """The slugs REPORT_SOURCE printed (none if its last line is not such a list: a learner's thread printed)."""
    try:
        value = json.loads(printed.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return set()
    return {v for v in value if isinstance(v, str)} if isinstance(value, list) else set()


def _connect():
    import psycopg

    return psycopg.connect(config.postgres_dsn(options=CLEANUP_OPTIONS), autocommit=True, connect_timeout=5)


def _glob_escaped(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _schemas(suffix: str) -> set[str]:
    with _connect() as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE right(nspname, %s) = %s",
                            [len(suffix), suffix]).fetchall()
    return {name for (name,) in rows}


def _redis_prefixes(suffix: str) -> set[str]:
    import redis

    with redis.Redis.from_url(config.redis_url(), socket_timeout=5) as r:
        keys = r.scan_iter(match=f"*{_glob_escaped(suffix)}:*", count=1000)
        return {key.split(b":", 1)[0].decode(errors="replace") for key in keys}


def _drop_roles(suffix: str) -> None:
    """The login roles a lab made for its namespace (lab 02: `<slug>_reporter`, ...) carry the suffix inside."""
    from infracourse.lessons.pg_roles import drop_role

    pattern = "%" + re.sub(r"([%_\\])", r"\\\1", suffix) + "\\_%"
    with _connect() as conn:
        for (name,) in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", [pattern]).fetchall():
            drop_role(conn, name)


def _drop_schemas(names: set[str]) -> None:
    from psycopg import sql

    with _connect() as conn:
        for name in sorted(names):
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def _delete_keys(prefixes: set[str]) -> None:
    import redis

    with redis.Redis.from_url(config.redis_url(), socket_timeout=5) as r:
        for prefix in sorted(prefixes):
            keys = list(r.scan_iter(match=f"{_glob_escaped(prefix)}:*", count=1000))
            for start in range(0, len(keys), 500):
                r.delete(*keys[start : start + 500])


def clean(suffix: str, reported: set[str], services: tuple[str, ...]) -> list[str]:
    """Remove every namespace of this submission: the ones its kernel REPORTED (untrusted: only well-formed slugs
    ending in SUFFIX) and whatever carries SUFFIX in PostgreSQL and Redis (even if the kernel hung); return the
    slugs removed. Names are quoted, never pasted into SQL or a key pattern."""
    slugs = {s for s in reported if s.endswith(suffix) and SLUG_RE.fullmatch(s)}
    found: set[str] = set()
    for service, find in (("postgres", _schemas), ("redis", _redis_prefixes)):
        if service in services:
            try:
                found |= {name for name in find(suffix) if name.endswith(suffix)}
            except Exception:  # noqa: BLE001 - a service that went away took the submission's data with it
                pass
    for service, remove in (("postgres", _drop_schemas), ("redis", _delete_keys)):
        if service in services:
            try:
                remove(slugs | found)
            except Exception:  # noqa: BLE001 - same: nothing left to clean in a service that is down
                pass
    if "postgres" in services:
        try:
            _drop_roles(suffix)
        except Exception:  # noqa: BLE001 - same
            pass
    others = tuple(s for s in services if s not in ("postgres", "redis"))
    for slug in sorted(slugs | {s for s in found if SLUG_RE.fullmatch(s)}) if others else ():
        try:
            Namespace(slug).reset(*others)
        except Exception:  # noqa: BLE001 - same
            pass
    return sorted(slugs | found)
