"""The namespaces graded submissions run in: a suffix no other submission or grading run shares
(INFRACOURSE_NS_SUFFIX, see namespace.py), the ones a kernel reports having made, and afterwards the removal
of everything carrying it, so grading a class leaves the shared services as it found them."""

from __future__ import annotations

import json
import re
import secrets

from infracourse import config
from infracourse.namespace import Namespace

# run in the submission's kernel after its last cell: print the slugs of its Namespace objects as JSON
REPORT_SOURCE = """
import json as _json
from infracourse.namespace import Namespace as _Namespace
print(_json.dumps(sorted({v.slug for v in list(globals().values()) if isinstance(v, _Namespace)})))
"""


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


def _found_in_services(suffix: str, services: tuple[str, ...]) -> set[str]:
    """Slugs ending in SUFFIX that own a PostgreSQL schema or Redis keys (even if the kernel hung)."""
    found: set[str] = set()
    if "postgres" in services:
        import psycopg

        with psycopg.connect(config.postgres_dsn(), autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute("SELECT nspname FROM pg_namespace WHERE right(nspname, %s) = %s",
                                [len(suffix), suffix]).fetchall()
            found |= {name for (name,) in rows}
    if "redis" in services:
        import redis

        with redis.Redis.from_url(config.redis_url(), socket_timeout=5) as r:
            found |= {key.split(b":", 1)[0].decode() for key in r.scan_iter(match=f"*{suffix}:*", count=1000)}
    return found


def clean(suffix: str, reported: set[str], services: tuple[str, ...]) -> list[str]:
    """Reset (and for PostgreSQL drop) every namespace of this submission; return the slugs removed."""
    slugs = {s for s in reported if s.endswith(suffix)}
    try:
        slugs |= _found_in_services(suffix, services)
    except Exception:  # noqa: BLE001 - a service that went away took the submission's data with it
        pass
    for slug in sorted(slugs):
        try:
            Namespace(slug).reset(*services)
            if "postgres" in services:
                import psycopg

                with psycopg.connect(config.postgres_dsn(), autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{slug}" CASCADE')
        except Exception:  # noqa: BLE001 - same: nothing left to clean in a service that is down
            pass
    return sorted(slugs)
