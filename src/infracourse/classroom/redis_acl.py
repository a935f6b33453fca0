"""Redis: an ACL user per learner whose keys must start with its namespace prefix (`~ada__*`) and whose Pub/Sub
channels too (`&ada__*`), with the commands that would let it read, wipe or reconfigure what others hold
removed (FLUSHALL, FLUSHDB, KEYS, CONFIG SET, ACL, DEBUG, MONITOR, CLIENT LIST/KILL, PUBSUB CHANNELS, ...:
every @dangerous command, then back the few read-only ones the lessons use).

One limit, said plainly: SCAN is kept, because resetting a namespace needs it, and Redis applies no key pattern
to SCAN's replies: a learner can list other learners' key NAMES (never read, change or delete the keys)."""

from __future__ import annotations

from infracourse import config
from infracourse.classroom.roster import Learner

ALLOWED_BACK = ("+info", "+config|get", "+client|setname", "+client|getname", "+client|id",
                "+memory|usage", "+object|encoding", "+object|freq", "+object|idletime", "+object|refcount",
                "+pubsub|numsub", "+pubsub|numpat", "+ping", "+hello", "+auth")
REMOVED = ("-@dangerous", "-keys", "-flushall", "-flushdb", "-swapdb", "-select", "-move", "-function",
           "-script|flush", "-script|kill", "-pubsub|channels", "-pubsub|shardchannels")


def _admin():
    import redis

    return redis.Redis.from_url(config.redis_url(), socket_timeout=5)


def rules(who: Learner, password: str) -> list[str]:
    return ["reset", "on", f">{password}", f"~{who.prefix}*", f"&{who.prefix}*", "+@all", *REMOVED,
            *ALLOWED_BACK]


def persist(r) -> str:
    """ACL SAVE: the native server reloads its ACL file at every start; a Redis without one forgets on restart."""
    import redis

    try:
        r.execute_command("ACL", "SAVE")
    except redis.ResponseError:
        return " (this Redis has no ACL file: provision again after it restarts)"
    return ""


def create(who: Learner, password: str) -> str:
    with _admin() as r:
        r.execute_command("ACL", "SETUSER", who.principal, *rules(who, password))
        kept = persist(r)
    return f"ACL user {who.principal} on keys and channels {who.prefix}*{kept}"


def drop(who: Learner) -> str:
    with _admin() as r:
        deleted = r.execute_command("ACL", "DELUSER", who.principal)
        persist(r)
        for client in r.client_list():
            if client.get("user") == who.principal:
                r.client_kill_filter(_id=client["id"])
        keys = list(r.scan_iter(match=f"{who.prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            r.delete(*keys[start : start + 500])
    return f"ACL user {who.principal} {'deleted' if deleted else 'absent'}, {len(keys)} keys removed"


def present() -> set[str]:
    with _admin() as r:
        names = [n.decode() if isinstance(n, bytes) else n for n in r.acl_users()]
    return {n for n in names if n.startswith("learner_")}

