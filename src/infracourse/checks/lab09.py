"""Checks of labs/09_redis_streams_and_patterns.ipynb: event-driven order processing with Redis Streams,
an idempotent consumer in PostgreSQL, an outbox relay to Kafka, retries and a dead letter.

Every check builds its own stream (ns.key("check", N)) or its own rows, runs the learner's function against
it under a time limit, and inspects Redis, PostgreSQL or Kafka afterwards; waits are bounded.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import redis
from confluent_kafka import Producer
from psycopg import sql

from infracourse.checking import CheckFailed, exercise, expect, time_limit
from infracourse.checking.kafka_readback import headers_of, read_back
from infracourse.clients import kafka_config
from infracourse.namespace import Namespace
from infracourse.services.probes import free_port

LIMIT_S = 10
RELAY_LIMIT_S = 20  # a relay's first produce waits for Kafka's metadata
TRIMMED = 1_001  # pending entries deleted from the stream in exercise 2: more than a 1,000-entry batch holds
RETRY_CAP = 20  # handler calls for one message before handle_with_retry counts as retrying forever


class HandlerFailed(Exception):
    """What the check's order handler raises for the order it cannot process."""


class RetriedForever(BaseException):
    """What the check's handler raises to stop a retry loop that never gives up (`except Exception` lets it
    through)."""


def _fresh_stream(r: redis.Redis, key: str, group: str) -> None:
    r.delete(key)
    r.xgroup_create(key, group, id="0", mkstream=True)


def _owners(r: redis.Redis, key: str, group: str) -> dict[str, int]:
    pending = r.xpending(key, group)
    return {c["name"]: int(c["pending"]) for c in pending["consumers"] or []}


@exercise("1", "Acknowledge only what you processed")
def consume_batch(fn, r: redis.Redis, ns: Namespace) -> str:
    stream, group = ns.key("check", 1), "fulfilment"
    _fresh_stream(r, stream, group)
    for order in range(1, 7):
        r.xadd(stream, {"order": order})
    handled: list[str] = []

    def handle(fields: dict) -> None:
        handled.append(fields["order"])
        if fields["order"] == "4":
            raise HandlerFailed("the warehouse rejected order 4")

    try:
        acked = time_limit.bounded(
            LIMIT_S, fn, r, stream, group, "worker-1", handle, on_timeout=lambda: r.delete(stream),
            hint="after the 6 orders nothing new arrives: read once and return, without block=0 (it waits forever)")
    except HandlerFailed:
        raise CheckFailed("consume_batch let the handler's error escape, so the rest of the batch was not "
                          "processed", hint="catch the error, skip the XACK for that entry, go on") from None
    except redis.TimeoutError:
        raise CheckFailed("consume_batch was still waiting for new entries when the Redis client timed out",
                          hint="block=0 waits forever: read the new entries once, without block") from None
    expect(handled, "consume_batch handled none of the 6 new orders",
           hint="XREADGROUP with the ID '>' returns entries never delivered to the group")
    expect(sorted(handled, key=int) == [str(n) for n in range(1, 7)],
           f"consume_batch handled orders {handled}; expected each of the 6 orders once")
    owners = _owners(r, stream, group)
    expect(owners.get("worker-1", 0) == 1,
           f"after the batch {owners.get('worker-1', 0)} entries are pending; expected exactly 1 (order 4)"
           + (": the order whose handler failed was acknowledged and is lost" if not owners else ""),
           hint="XACK an entry only after handle(fields) returned")
    [entry] = r.xpending_range(stream, group, min="-", max="+", count=10)
    expect(r.xrange(stream, entry["message_id"], entry["message_id"])[0][1]["order"] == "4",
           "the entry left pending is not the failed order 4", hint="XACK the entries whose handler succeeded")
    expect(acked == 5, f"consume_batch returned {acked!r}; 5 orders were processed and acknowledged",
           hint="return the number of entries you acknowledged")
    r.delete(stream)
    return "5 acknowledged, the failed one left pending"


@exercise("2", "Take over a crashed consumer's orders")
def reclaim(fn, r: redis.Redis, ns: Namespace) -> str:
    stream, group = ns.key("check", 2), "fulfilment"
    _fresh_stream(r, stream, group)
    stale, busy = 130, 3
    with r.pipeline(transaction=False) as pipe:
        for order in range(stale + TRIMMED + busy):
            pipe.xadd(stream, {"order": order})
        pipe.execute()
    # the crashed consumer held 100 orders, then TRIMMED ones since deleted from the stream (XTRIM), then 30
    # more: XAUTOCLAIM's batches over the deleted ones come back empty, with the cursor not yet at the end
    crashed = [e for part in (100, TRIMMED, stale - 100)
               for e in r.xreadgroup(group, "crashed", {stream: ">"}, count=part)[0][1]]
    trimmed = [i for i, _ in crashed[100:100 + TRIMMED]]
    r.xdel(stream, *trimmed)
    # XCLAIM ... IDLE makes these entries look untouched for a minute, as if their consumer died back then
    r.xclaim(stream, group, "crashed", min_idle_time=0, idle=60_000,
             message_ids=[i for i, _ in crashed if i not in set(trimmed)])
    r.xreadgroup(group, "busy", {stream: ">"}, count=busy)
    got = time_limit.bounded(LIMIT_S, fn, r, stream, group, "rescuer", 30_000, on_timeout=lambda: r.delete(stream),
                             hint="XAUTOCLAIM returns a cursor: follow it and stop when it is '0-0' (claimed entries "
                                  "are idle again, so min_idle_time=0 claims them forever)")
    owners = _owners(r, stream, group)
    expect(owners.get("busy", 0) == busy,
           f"reclaim took {busy - owners.get('busy', 0)} orders that a live consumer received a moment ago",
           hint="pass min_idle_ms as XAUTOCLAIM's min_idle_time: only long-idle entries are abandoned")
    expect(owners.get("rescuer", 0) == stale,
           f"reclaim took {owners.get('rescuer', 0)} of the {stale} abandoned orders",
           hint="XAUTOCLAIM returns a cursor with each batch: call it again from that cursor until it is '0-0' "
                "(a batch can be empty before that: entries deleted from the stream fill it)")
    expect(isinstance(got, list) and len(got) == stale,
           f"reclaim returned {len(got) if isinstance(got, list) else type(got).__name__}; expected the list of "
           f"{stale} claimed (id, fields) entries", hint="collect the entries of every XAUTOCLAIM batch")
    expect(all(isinstance(e, (tuple, list)) and len(e) == 2 for e in got), "each entry should be (id, fields)")
    r.delete(stream)
    return f"{stale} abandoned orders reclaimed, {busy} live ones left alone"


@exercise("3", "Apply a payment exactly once")
def apply_payment(fn, conn: psycopg.Connection) -> str:
    account, run = "check-acme", uuid.uuid4().hex[:8]
    conn.execute("INSERT INTO accounts (account, balance_cents) VALUES (%s, 0) "
                 "ON CONFLICT (account) DO UPDATE SET balance_cents = 0", (account,))

    def event(n: int, cents: int) -> dict[str, Any]:
        return {"event_id": f"check-{run}-{n}", "account": account, "cents": cents}

    def balance() -> int:
        return conn.execute("SELECT balance_cents FROM accounts WHERE account = %s", (account,)).fetchone()[0]

    def pay(ev: dict[str, Any]) -> None:
        time_limit.bounded(LIMIT_S, fn, conn, ev, hint="an event that cannot be applied yet fails now and is "
                                                        "redelivered later: do not retry it in a loop")

    pay(event(1, 500))
    expect(balance() == 500, f"after a 500-cent payment the balance is {balance()}",
           hint="add the event's cents to the account's balance_cents")
    try:
        pay(event(1, 500))
    except psycopg.errors.UniqueViolation:
        raise CheckFailed("a duplicate delivery raised UniqueViolation: the broker would redeliver it forever",
                          hint="skip a known event quietly: INSERT ... ON CONFLICT DO NOTHING") from None
    expect(balance() == 500, "a duplicate delivery of the same event was applied twice",
           hint="record event_id in processed_events and skip events already there")
    try:
        pay(event(2, -800))  # would overdraw: the CHECK constraint rejects the effect
    except psycopg.Error:
        pass
    pay(event(3, 1000))
    pay(event(2, -800))  # redelivered after the account was topped up: must apply now
    expect(balance() == 700,
           "an event whose effect failed (it would have overdrawn the account) was still recorded as processed, "
           "so its redelivery was skipped" if balance() == 1500 else f"the balance ended at {balance()}, "
           "expected 700", hint="insert the event_id and update the balance in the same transaction")
    with _crash_on_recording(conn, event(4, 100)["event_id"]):
        try:
            pay(event(4, 100))
        except psycopg.Error:
            pass
    expect(balance() == 700, "the process crashed as it recorded an event_id, and the payment's effect was "
           "already committed: its redelivery will apply it a second time",
           hint="insert the event_id and update the balance in one transaction (with conn.transaction():)")
    conn.execute("DELETE FROM processed_events WHERE event_id LIKE %s", (f"check-{run}-%",))
    conn.execute("DELETE FROM accounts WHERE account = %s", (account,))
    return "duplicate skipped, failed event applied on redelivery"


@contextlib.contextmanager
def _crash_on_recording(conn: psycopg.Connection, event_id: str) -> Iterator[None]:
    """Make INSERTing EVENT_ID into processed_events fail, as a crash at that moment would."""
    conn.execute("""CREATE OR REPLACE FUNCTION check_crash_on_record() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.event_id = TG_ARGV[0] THEN RAISE EXCEPTION 'the process crashed here'; END IF;
        RETURN NEW; END $$""")
    conn.execute(sql.SQL("CREATE OR REPLACE TRIGGER check_crash_on_record BEFORE INSERT ON processed_events "
                         "FOR EACH ROW EXECUTE FUNCTION check_crash_on_record({})").format(sql.Literal(event_id)))
    try:
        yield
    finally:
        conn.execute("DROP TRIGGER IF EXISTS check_crash_on_record ON processed_events")
        conn.execute("DROP FUNCTION IF EXISTS check_crash_on_record()")


def _events_of_this_run(topic: str, run: str) -> list[tuple[bytes, str, bytes]]:
    """(key, event_id header or '', value) of this check's messages in TOPIC, oldest first per partition (the
    topic may hold earlier runs' too): its event ids and payloads both carry RUN."""
    found = [(m.key(), headers_of(m).get("event_id", b"").decode(), m.value() or b"") for m in read_back(topic)]
    return [message for message in found if run in message[1] or run.encode() in message[2]]


def _relay(fn, conn: psycopg.Connection, producer: Producer, topic: str):
    return time_limit.bounded(RELAY_LIMIT_S, fn, conn, producer, topic, hint="wait for the delivery reports with a "
                              "bounded flush(10); a report with an error counts as a report too")


@exercise("4", "Relay the outbox to Kafka")
def relay(fn, conn: psycopg.Connection, topic: str) -> str:
    run = uuid.uuid4().hex[:8]
    conn.execute("DELETE FROM outbox")
    rows = [(f"order-{n % 2}", f"evt-{run}-{n}", json.dumps({"order": f"order-{n % 2}", "step": n, "run": run}))
            for n in range(5)]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO outbox (key, event_id, payload) VALUES (%s, %s, %s)", rows)
    event_ids = {event_id for _, event_id, _ in rows}

    broken = Producer({**kafka_config.client(), "bootstrap.servers": f"127.0.0.1:{free_port()}",
                       "message.timeout.ms": 1500, "socket.connection.setup.timeout.ms": 1000})
    try:
        _relay(fn, conn, broken, topic)
    except (NotImplementedError, CheckFailed):
        raise
    except Exception:  # noqa: BLE001 - raising on a broker that is down is a fine answer
        pass
    marked = conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL").fetchone()[0]
    expect(marked == 0, f"with Kafka unreachable, {marked} rows were marked published although Kafka never "
           "acknowledged them: those events are lost",
           hint="mark a row only after its delivery report arrived without an error")

    producer = Producer({**kafka_config.client(), "acks": "all"})
    published = _relay(fn, conn, producer, topic)
    left = conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()[0]
    expect(left == 0, f"with Kafka up, {left} of 5 rows are still unpublished after the relay ran",
           hint="producer.flush() waits for the delivery reports; mark the acknowledged rows")
    expect(published == 5, f"relay returned {published!r}; it published 5 rows", hint="return how many were published")
    messages = _events_of_this_run(topic, run)
    expect(len(messages) >= 5, f"only {len(messages)} of the 5 events are in the topic",
           hint="produce each row, its payload as the value, to the topic passed in")
    expect(len(messages) == 5, f"the topic holds {len(messages)} messages for 5 events")
    headers = sorted(event_id for _, event_id, _ in messages)
    expect(headers == sorted(event_ids), "the messages' event_id headers are "
           f"{[h or None for h in headers]}, expected the rows' event ids",
           hint="produce with headers={'event_id': the row's event_id}")
    for key in ("order-0", "order-1"):
        steps = [json.loads(value)["step"] for k, _, value in messages if k == key.encode()]
        expect(steps == sorted(steps) and steps,
               f"the events of {key} are not in outbox order in Kafka (or not keyed by the row's key)",
               hint="produce in ORDER BY id, with key=row key, so one aggregate's events share a partition")
    again = _relay(fn, conn, producer, topic)
    expect(again == 0 and len(_events_of_this_run(topic, run)) == 5,
           "a second run published the same rows again", hint="select only rows WHERE published_at IS NULL")
    producer.flush(5)
    return "nothing marked while Kafka was down; 5 events published in order, once"


@exercise("5", "Retry with backoff, then a dead letter", stretch=True)
def handle_with_retry(fn, r: redis.Redis, ns: Namespace, transient: type, permanent: type) -> str:
    stream, group, dead = ns.key("check", 5), "workers", ns.key("dead_letters")

    def run(failures: list[BaseException | None]) -> tuple[str, int, list[float], dict | None, int, float]:
        _fresh_stream(r, stream, group)
        r.xadd(stream, {"invoice": "inv-7"})
        [[_, [(entry_id, fields)]]] = r.xreadgroup(group, "worker-1", {stream: ">"}, count=1)
        calls, delays = [0], []
        dead_before = r.xlen(dead)

        def handler(_: dict) -> None:
            outcome = failures[min(calls[0], len(failures) - 1)]
            calls[0] += 1
            if calls[0] > RETRY_CAP + 1:  # the loop swallowed RetriedForever too: park its thread
                threading.Event().wait()
            if calls[0] > RETRY_CAP:
                raise RetriedForever
            if outcome is not None:
                raise outcome

        started = time.monotonic()
        try:
            result = time_limit.call(LIMIT_S, fn, r, stream, group, entry_id, fields, handler, sleep=delays.append)
        except (RetriedForever, CheckFailed):
            if calls[0] <= RETRY_CAP:
                raise
            raise CheckFailed(f"a handler that always fails was called {RETRY_CAP} times and handle_with_retry "
                              "still did not give up", hint="stop after MAX_ATTEMPTS attempts and dead-letter "
                              "the message") from None
        new_dead = r.xrange(dead)[dead_before:] if r.xlen(dead) > dead_before else []
        pending = r.xpending(stream, group)["pending"]
        took_s = time.monotonic() - started
        return result, calls[0], delays, (new_dead[-1][1] if new_dead else None), pending, took_s

    def same(a: list[float], b: list[float]) -> bool:
        return len(a) == len(b) and all(abs(x - y) < 1e-9 for x, y in zip(a, b, strict=True))

    result, calls, delays, dead_entry, pending, took_s = run([transient("timeout"), transient("timeout"), None])
    expect(result == "done" and calls == 3, f"a handler that fails twice then succeeds: returned {result!r} "
           f"after {calls} calls; expected 'done' after 3", hint="retry TransientError up to MAX_ATTEMPTS times")
    expect(dead_entry is None, "a message that succeeded on a retry went to the dead letters")
    expect(pending == 0, "the message is still pending after it succeeded", hint="XACK it")
    expect(delays, "the sleep you were given was never called between attempts" + (
        f" (yet the call took {took_s:.2f} s: time.sleep?)" if took_s >= 0.025 else ""),
           hint="wait with the sleep parameter, sleep(delay), not time.sleep: the check passes its own to measure "
                "the waits")
    expect(same(delays, [0.01, 0.02]),
           f"waited {delays} before the retries; expected {[0.01, 0.02]}" + (
               ": each wait should be twice as long as the one before" if len(set(delays)) == 1 else ""),
           hint="sleep(BASE_DELAY_S * 2 ** (attempt - 1)) after a failed attempt")

    result, _, delays, *_ = run([transient("rate limited", retry_after=0.05), None])
    expect(result == "done" and same(delays, [0.05]), f"the error said retry_after=0.05; you waited {delays} before "
           "the retry, expected [0.05]", hint="wait the longer of the backoff and the error's retry_after")
    result, _, delays, *_ = run([transient("busy", retry_after=0.001), None])
    expect(result == "done" and same(delays, [0.01]), f"the error said retry_after=0.001, shorter than the first "
           f"backoff (0.01 s); you waited {delays}, expected [0.01]", hint="max(backoff, retry_after): the server's "
           "hint never makes the wait shorter than the backoff")

    result, calls, delays, dead_entry, pending, _ = run([transient("service unavailable")])
    expect(calls == 4, f"a handler that always fails with TransientError was called {calls} times; expected 4",
           hint="MAX_ATTEMPTS attempts in all")
    expect(same(delays, [0.01, 0.02, 0.04]), f"waited {delays}; expected [0.01, 0.02, 0.04]" + (
        ": there is no point waiting after the last attempt" if len(delays) > 3 else ""))
    expect(result == "dead-lettered" and dead_entry is not None,
           f"after the last attempt it returned {result!r} and "
           + ("wrote a dead letter" if dead_entry else "wrote nothing to DEAD_LETTERS"),
           hint="XADD the fields plus 'error' and 'attempts' to DEAD_LETTERS and return 'dead-lettered'")
    expect(dead_entry.get("invoice") == "inv-7" and "service unavailable" in dead_entry.get("error", "")
           and dead_entry.get("attempts") == "4",
           "the dead letter should keep the message's fields and add 'error' (the exception) and 'attempts' (4)")
    expect(pending == 0, "the dead-lettered message is still pending in the stream",
           hint="XACK it after writing the dead letter, or it will be reclaimed and retried forever")

    result, calls, delays, dead_entry, pending, _ = run([permanent("amount is not a number")])
    expect(calls == 1 and not delays, f"a PermanentError was retried ({calls} calls, waits {delays})",
           hint="retrying cannot fix a permanent error: dead-letter it at once")
    expect(result == "dead-lettered" and dead_entry is not None and dead_entry.get("attempts") == "1",
           "a PermanentError should go to the dead letters at once with attempts 1")
    expect(pending == 0, "the dead-lettered message is still pending in the stream", hint="XACK it")
    r.delete(stream)
    return ("recovered after 2 retries, retry_after honoured; dead-lettered after 4 attempts; permanent error "
            "dead-lettered at once")
