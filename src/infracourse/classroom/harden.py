"""`course classroom harden`: on a shared server, replace the admin logins this repository publishes (PostgreSQL's
and RabbitMQ's course/course, a Redis and a NATS that let anyone in) with generated secrets, through each service's
own access control, and end the sessions that logged in the old way. The secrets go to a 0600 file in the 0700
classroom folder (paths.admin_secrets_file), from which config.py gives them to the instructor's `course` and
nobody else. Running it again is harmless: each service is reached with the new secret or, failing that, the
public one; after a service's state was wiped (a new PostgreSQL cluster, a new RabbitMQ node), run it again."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import time
from collections.abc import Callable

from infracourse import config
from infracourse.classroom import credentials, nats_accounts, rabbitmq_vhosts, redis_acl
from infracourse.errors import CourseError
from infracourse.paths import admin_secrets_file
from infracourse.services import native
from infracourse.services.recipes_postgres_scale import REPLICATION_ROLE, PgBouncer
from infracourse.waiting import run_coroutine

# one secret for the three PostgreSQL endpoints (PgBouncer and the replica log in as the primary's superuser)
SECRET_VARIABLES = {
    "postgres": ("COURSE_POSTGRES_PASSWORD", "COURSE_PGBOUNCER_PASSWORD", "COURSE_POSTGRES_REPLICA_PASSWORD"),
    "redis": ("COURSE_REDIS_PASSWORD",),
    "rabbitmq": ("COURSE_RABBITMQ_PASSWORD",),
    "nats": ("COURSE_NATS_PASSWORD",),
}
SETTLE_S = 10.0  # a reload (PgBouncer, NATS) or a replicated ALTER ROLE takes effect a moment later


def _public(service: str) -> config.Endpoint:
    """SERVICE's endpoint with the password the repository publishes (none at all for Redis and NATS)."""
    ep = config.endpoint(service)
    return config.Endpoint(service, ep.host, ep.port, ep.user, config.public_password(service), ep.database)


def _refused(error: Exception) -> bool:
    text = f"{type(error).__name__} {error}".lower()
    return any(word in text for word in ("auth", "password", "noperm", "401", "permission"))


def public_login_works(service: str) -> bool:
    """Whether the public login still opens SERVICE (raises when SERVICE does not answer at all)."""
    try:
        _PUBLIC_PROBES[service](_public(service))
    except Exception as exc:
        if _refused(exc):
            return False
        raise
    return True


def _probe_postgres(ep: config.Endpoint) -> None:
    import psycopg

    psycopg.connect(config.postgres_dsn(host=ep.host, port=ep.port, user=ep.user, password=ep.password)).close()


def _probe_redis(ep: config.Endpoint) -> None:
    import redis

    with redis.Redis(host=ep.host, port=ep.port, socket_timeout=3, retry=None) as r:
        r.ping()


def _probe_rabbitmq(ep: config.Endpoint) -> None:
    rabbitmq_vhosts.request("GET", "whoami", login=(ep.user, ep.password))


def _probe_nats(ep: config.Endpoint) -> None:
    import nats

    async def attempt() -> None:
        nc = await nats.connect(f"nats://{ep.address}", connect_timeout=2, max_reconnect_attempts=0,
                                allow_reconnect=False)
        await nc.close()

    run_coroutine(attempt, timeout_s=5)


_PUBLIC_PROBES: dict[str, Callable[[config.Endpoint], None]] = {
    "postgres": _probe_postgres, "redis": _probe_redis, "rabbitmq": _probe_rabbitmq, "nats": _probe_nats}


def _stored_secrets() -> dict[str, str]:
    """The admin secrets: the stored ones, else new ones, written 0600 before any service learns them."""
    known = config.instructor_secrets()
    if known:
        return known
    env = {"COURSE_NATS_USER": config.endpoint("nats").user or "course"}
    for names in SECRET_VARIABLES.values():
        secret = secrets.token_urlsafe(24)
        env.update(dict.fromkeys(names, secret))
    credentials.folder()  # 0700
    path = admin_secrets_file()
    temporary = path.with_suffix(".tmp")
    temporary.unlink(missing_ok=True)
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write("".join(f"{key}={value}\n" for key, value in env.items()))
    temporary.replace(path)
    return env


def _retry(action: Callable[[], object]) -> object:
    """ACTION, again until SETTLE_S has passed while it fails (a reload or a replicated change is on its way)."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        try:
            return action()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _postgres(secret: str) -> str:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    ep, public = config.endpoint("postgres"), _public("postgres")

    def admin(port: int, host: str) -> psycopg.Connection:
        for password in (secret, public.password):
            try:
                return psycopg.connect(config.postgres_dsn(host=host, port=port, password=password), autocommit=True)
            except psycopg.OperationalError as exc:
                if not _refused(exc):
                    raise
        raise CourseError(f"postgres at {host}:{port} refuses both the stored and the public password of {ep.user}")

    with admin(ep.port, ep.host) as conn:
        roles = [ep.user]
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [REPLICATION_ROLE]).fetchone():
            roles.append(REPLICATION_ROLE)  # the replica's login, which could copy every database
        for role in roles:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(secret)))
        done = [f"{' and '.join(roles)}: a new password"]
        if native.our_pids("pgbouncer"):  # PgBouncer logs in with the password in its auth file
            PgBouncer().write_auth_file(native.dirs_of("pgbouncer"))
            for pid in native.our_pids("pgbouncer"):
                os.kill(pid, signal.SIGHUP)
            done.append("PgBouncer reloaded")
        ended = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = %s "
                             "AND pid <> pg_backend_pid() AND backend_type = 'client backend'", [ep.user]).fetchone()
        done.append(f"{ended[0]} session(s) of the old login ended")
    replica = config.endpoint("postgres_replica")
    try:
        socket.create_connection((replica.host, replica.port), timeout=2).close()
    except OSError:
        return "; ".join([*done, f"no replica answers at {replica.address} (run harden again once it runs)"])
    with _retry(lambda: admin(replica.port, replica.host)) as standby:  # the new password replicates in a moment
        (conninfo,) = standby.execute("SHOW primary_conninfo").fetchone()
        if conninfo:  # pg_basebackup -R wrote the replication password into it
            fresh = make_conninfo(**{**conninfo_to_dict(conninfo), "password": secret})
            standby.execute(sql.SQL("ALTER SYSTEM SET primary_conninfo = {}").format(sql.Literal(fresh)))
            standby.execute("SELECT pg_reload_conf()")
            done.append("the replica's primary_conninfo updated")
    return "; ".join(done)


def _redis(secret: str) -> str:
    import redis

    ep = config.endpoint("redis")
    for password in (secret, None):
        client = redis.Redis(host=ep.host, port=ep.port, password=password, socket_timeout=5, retry=None)
        try:
            client.ping()
            break
        except redis.AuthenticationError:
            client.close()
    else:
        raise CourseError(f"redis at {ep.address} refuses both the stored secret and no password")
    with client:
        client.execute_command("ACL", "SETUSER", "default", "on", "resetpass", f">{secret}")
        kept = redis_acl.persist(client)
        ended = client.execute_command("CLIENT", "KILL", "USER", "default", "SKIPME", "yes")
    return f"the default user has a password{kept}; {ended} connection(s) of the old login ended"


def _rabbitmq(secret: str) -> str:
    ep, public = config.endpoint("rabbitmq"), _public("rabbitmq")
    login = None
    for password in (secret, public.password):
        try:
            rabbitmq_vhosts.request("GET", "whoami", login=(ep.user, password))
            login = (ep.user, password)
            break
        except Exception as exc:  # noqa: BLE001 - 401 means: try the next password
            if not _refused(exc):
                raise
    if login is None:
        raise CourseError(f"rabbitmq at {ep.address} refuses both the stored and the public password of {ep.user}")
    user = rabbitmq_vhosts.request("GET", f"users/{rabbitmq_vhosts.quoted(ep.user)}", login=login)
    rabbitmq_vhosts.request("PUT", f"users/{rabbitmq_vhosts.quoted(ep.user)}",
                            {"password": secret, "tags": ",".join(user.get("tags") or [])}, login=login)
    login = (ep.user, secret)
    old = [c["name"] for c in rabbitmq_vhosts.request("GET", "connections?columns=name,user", login=login)
           if c.get("user") == ep.user]
    for name in old:
        rabbitmq_vhosts.request("DELETE", f"connections/{rabbitmq_vhosts.quoted(name)}", login=login)
    return f"{ep.user} has a new password; {len(old)} connection(s) of the old login ended"


def _nats(secret: str) -> str:
    del secret  # the accounts file is written from config, which now reads it
    path = nats_accounts.write_accounts()
    if not native.our_pids("nats"):
        return f"wrote {path}: include it in your nats-server's configuration and restart it"
    # nats-server cannot drop its unauthenticated user (no_auth_user) on a reload: clients reconnect
    native.stop(["nats"])
    outcome = native.start(["nats"])["nats"]
    return f"restarted ({outcome}) without its unauthenticated user"


APPLY: dict[str, Callable[[str], str]] = {"postgres": _postgres, "redis": _redis, "rabbitmq": _rabbitmq,
                                          "nats": _nats}


def refuse_overrides() -> None:
    """Passwords set in the environment win over the stored ones (config.py): harden would lock their owner out."""
    overridden = [name for names in SECRET_VARIABLES.values() for name in names if name in os.environ]
    if overridden:
        raise CourseError(f"{', '.join(overridden)} set in this environment would override the secrets harden "
                          "stores: unset them and run it again")


def harden(services: tuple[str, ...] = tuple(APPLY)) -> dict[str, str]:
    """service -> what was done and whether the public login is now refused (or 'FAILED: why')."""
    refuse_overrides()
    stored = _stored_secrets()
    report = {}
    for service in services:
        try:
            done = APPLY[service](stored[SECRET_VARIABLES[service][0]])
            _retry(lambda s=service: _refuses_public_login(s))
            report[service] = done + "; the public login is refused"
        except Exception as exc:  # noqa: BLE001 - one service down must not leave the others open
            report[service] = f"FAILED: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]}"
    report["kafka"] = "Tansu has no authentication: nothing to close (topics are namespaced only)"
    return report


def _refuses_public_login(service: str) -> None:
    """Raises (so _retry waits) while SERVICE still accepts the public login: a reload may not have landed."""
    if public_login_works(service):
        raise RuntimeError(f"{service} still accepts the public login")
