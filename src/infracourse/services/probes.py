"""Protocol-level health probes: each opens a socket, speaks a few bytes of the service's protocol and
returns a short reason when the service is not healthy (None when it is). No client library logging, no hang."""

from __future__ import annotations

import socket
import struct
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import replace

from infracourse.config import Endpoint, endpoint

TIMEOUT_S = 2.0


def free_port() -> int:
    """A loopback TCP port nothing listens on right now (for a scratch server, or a port that refuses)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _exchange(ep: Endpoint, payload: bytes, expect: int) -> bytes:
    """Connect, send PAYLOAD (may be empty) and read at least EXPECT bytes."""
    with socket.create_connection((ep.host, ep.port), timeout=TIMEOUT_S) as sock:
        if payload:
            sock.sendall(payload)
        data = b""
        while len(data) < expect:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def _postgres(ep: Endpoint) -> str | None:
    import psycopg

    try:
        with psycopg.connect(
            host=ep.host, port=ep.port, user=ep.user, password=ep.password,
            dbname=ep.database, connect_timeout=int(TIMEOUT_S),
        ) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        # 'connection failed: connection to server at "h", port p failed: Connection refused\n\tIs the ...'
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return first_line.rsplit(" failed: ", 1)[-1].strip() if " failed: " in first_line else first_line
    return None


def _pgbouncer(ep: Endpoint) -> str | None:
    """PgBouncer's own admin console answers without a server behind it (simple protocol only)."""
    import psycopg

    try:
        with psycopg.connect(host=ep.host, port=ep.port, user=ep.user, password=ep.password, dbname="pgbouncer",
                             connect_timeout=int(TIMEOUT_S), autocommit=True) as conn:
            result = conn.pgconn.exec_(b"SHOW VERSION")
    except psycopg.OperationalError as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return first_line.rsplit(" failed: ", 1)[-1].strip() if " failed: " in first_line else first_line
    return None if result.status == psycopg.pq.ExecStatus.TUPLES_OK else "no answer to SHOW VERSION"


def _resp(*words: str) -> bytes:
    """One command in Redis's wire format (RESP): an array of bulk strings."""
    encoded = [word.encode() for word in words]
    return b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in encoded)


def _redis(ep: Endpoint) -> str | None:
    auth = _resp("AUTH", *filter(None, [ep.user]), ep.password) if ep.password else b""  # a hardened server
    reply = _exchange(ep, auth + b"PING\r\n", len(b"+OK\r\n+PONG\r\n") if auth else len(b"+PONG\r\n"))
    if reply.endswith(b"+PONG\r\n"):
        return None
    if reply.startswith((b"-WRONGPASS", b"-NOAUTH")):
        return "the course's login is refused (check COURSE_REDIS_USER / COURSE_REDIS_PASSWORD)"
    return f"unexpected reply {reply[:40]!r}"


def _kafka(ep: Endpoint) -> str | None:
    # ApiVersions v0: api_key 18, version 0, correlation id 1, client id "probe"
    body = struct.pack(">hhih", 18, 0, 1, 5) + b"probe"
    reply = _exchange(ep, struct.pack(">i", len(body)) + body, 10)
    if len(reply) >= 10:
        _size, correlation, error = struct.unpack(">iih", reply[:10])
        if correlation == 1 and error == 0:
            return None
    return "no valid Kafka ApiVersions reply"


def _rabbitmq(ep: Endpoint) -> str | None:
    reply = _exchange(ep, b"AMQP\x00\x00\x09\x01", 7)
    if reply[:1] == b"\x01":  # a method frame: Connection.Start
        return None
    return "no AMQP 0-9-1 greeting"


def _nats(ep: Endpoint) -> str | None:
    reply = _exchange(ep, b"", 4)
    if reply.startswith(b"INFO"):
        return None
    return "no NATS INFO greeting"


def _http_ready(path: str) -> Callable[[Endpoint], str | None]:
    """A probe that GETs PATH and wants a 200 (Prometheus' /-/ready, Alertmanager's, the blackbox exporter's)."""
    return lambda ep: _get_ok(ep, path)


def _get_ok(ep: Endpoint, path: str) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{ep.address}{path}", timeout=TIMEOUT_S) as resp:
            return None if resp.status == 200 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} (still starting?)"
    except urllib.error.URLError as exc:
        raise OSError(str(exc.reason)) from exc


PROBES: dict[str, Callable[[Endpoint], str | None]] = {
    "postgres": _postgres,
    "pgbouncer": _pgbouncer,
    "postgres_replica": _postgres,
    "redis": _redis,
    "kafka": _kafka,
    "rabbitmq": _rabbitmq,
    "nats": _nats,
    "prometheus": _http_ready("/-/ready"),
    "alertmanager": _http_ready("/-/ready"),
    "blackbox": _http_ready("/-/healthy"),
}


def probe(service: str, database: str | None = None) -> str | None:
    """None if SERVICE answers its protocol at its endpoint, else a short reason."""
    ep = endpoint(service)
    if database is not None:
        ep = replace(ep, database=database)
    try:
        return PROBES[service](ep)
    except ConnectionRefusedError:
        return "connection refused"
    except TimeoutError:
        return f"no answer within {TIMEOUT_S:.0f} s"
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__
