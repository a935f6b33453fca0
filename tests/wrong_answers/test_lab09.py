"""Lab 09 checks fail on plausible wrong answers with a message that helps, and pass the reference answers."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from verdicts import assert_fails, assert_not_done, assert_passes

from infracourse import config, notebook
from infracourse.checks import lab09 as checks
from infracourse.clients.kafka_logging import quiet_logger


def noting_its_end(fn):
    """FN, and an Event set once it has ended: a test waits for it to see that the check stopped FN."""
    ended = threading.Event()

    def run(*args):
        try:
            return fn(*args)
        finally:
            ended.set()

    return run, ended


# Exercise 1 ---------------------------------------------------------------------------------------------


def reference_consume(r, stream, group, consumer, handle, block=None):
    acknowledged = 0
    for _, entries in r.xreadgroup(group, consumer, {stream: ">"}, count=10, block=block):
        for entry_id, fields in entries:
            try:
                handle(fields)
            except Exception:
                continue
            r.xack(stream, group, entry_id)
            acknowledged += 1
    return acknowledged


def test_consume_acking_before_handling_loses_the_failed_order(r, pg_ns):
    def ack_first(r, stream, group, consumer, handle):
        count = 0
        for _, entries in r.xreadgroup(group, consumer, {stream: ">"}, count=10):
            for entry_id, fields in entries:
                r.xack(stream, group, entry_id)
                count += 1
                try:
                    handle(fields)
                except Exception:
                    pass
        return count

    result = checks.consume_batch(ack_first, r, pg_ns)
    assert_fails(result, "acknowledged and is lost", in_hint=("after",))


def test_consume_letting_the_error_escape_fails(r, pg_ns):
    def no_guard(r, stream, group, consumer, handle):
        for _, entries in r.xreadgroup(group, consumer, {stream: ">"}, count=10):
            for entry_id, fields in entries:
                handle(fields)
                r.xack(stream, group, entry_id)
        return 0

    assert_fails(checks.consume_batch(no_guard, r, pg_ns), "escape")


def test_consume_reading_the_pending_list_instead_of_new_entries_fails(r, pg_ns):
    def reads_pending(r, stream, group, consumer, handle):
        count = 0
        for _, entries in r.xreadgroup(group, consumer, {stream: "0"}, count=10):  # "0": own pending list
            for entry_id, fields in entries:
                handle(fields)
                r.xack(stream, group, entry_id)
                count += 1
        return count

    result = checks.consume_batch(reads_pending, r, pg_ns)
    assert_fails(result, "none of the 6", in_hint=("'>'",))


def test_consume_reference_passes_and_stub_is_not_done(r, pg_ns):
    def stub(*args):
        raise NotImplementedError

    assert_passes(checks.consume_batch(reference_consume, r, pg_ns))
    assert_not_done(checks.consume_batch(stub, r, pg_ns))


def consume_forever(block):
    """A consume_batch that never returns: reads new entries (BLOCK ms per read; 0 = wait forever, None = do
    not wait) and acks those its handler took."""
    def consume(r, stream, group, consumer, handle):
        while True:
            reference_consume(r, stream, group, consumer, handle, block=block)
    return consume


def test_consume_blocking_for_more_entries_is_cut_by_the_socket_timeout(r, pg_ns):
    # block=0 waits forever for a 7th order; the fixture's client times out after 5 s
    result = checks.consume_batch(consume_forever(block=0), r, pg_ns)
    assert_fails(result, "still waiting for new entries", in_hint=("block",))


def test_consume_polling_forever_is_cut_short_and_stopped(r, pg_ns, monkeypatch):
    monkeypatch.setattr(checks, "LIMIT_S", 1)
    polls_forever, stopped = noting_its_end(consume_forever(block=None))
    result = checks.consume_batch(polls_forever, r, pg_ns)
    assert_fails(result, "did not return within", in_hint=("block=0",))
    assert stopped.wait(5), "the check stops the endless loop (and deletes its stream)"


# Exercise 2 ---------------------------------------------------------------------------------------------


def reference_reclaim(r, stream, group, consumer, min_idle_ms):
    claimed, cursor = [], "0-0"
    while True:
        cursor, entries, _ = r.xautoclaim(stream, group, consumer, min_idle_time=min_idle_ms, start_id=cursor,
                                          count=100)
        claimed += entries
        if cursor == "0-0":
            return claimed


def test_reclaim_without_idle_threshold_steals_live_work(r, pg_ns):
    def greedy(r, stream, group, consumer, min_idle_ms):
        return reference_reclaim(r, stream, group, consumer, 0)

    result = checks.reclaim(greedy, r, pg_ns)
    assert_fails(result, "live consumer", in_hint=("min_idle",))


def test_reclaim_with_one_call_misses_a_batch(r, pg_ns):
    def one_call(r, stream, group, consumer, min_idle_ms):
        return r.xautoclaim(stream, group, consumer, min_idle_time=min_idle_ms, start_id="0-0")[1]

    result = checks.reclaim(one_call, r, pg_ns)
    assert_fails(result, "100 of the 130", in_hint=("cursor",))


def test_reclaim_stopping_at_the_first_empty_batch_fails(r, pg_ns):
    def until_empty(r, stream, group, consumer, min_idle_ms):
        claimed, cursor = [], "0-0"
        while True:
            cursor, entries, _ = r.xautoclaim(stream, group, consumer, min_idle_time=min_idle_ms, start_id=cursor,
                                              count=100)
            if not entries:  # an empty batch is not the end while the cursor is not "0-0"
                return claimed
            claimed += entries

    result = checks.reclaim(until_empty, r, pg_ns)
    assert_fails(result, "100 of the 130", in_hint=("'0-0'", "empty"))


def test_reclaim_claiming_until_nothing_is_left_is_cut_short(r, pg_ns, monkeypatch):
    monkeypatch.setattr(checks, "LIMIT_S", 1)

    def claims_forever(r, stream, group, consumer, min_idle_ms):
        claimed = []
        while True:  # min_idle_time=0: the entries it just claimed qualify again, every time
            _, entries, _ = r.xautoclaim(stream, group, consumer, min_idle_time=0, start_id="0-0")
            if not entries:
                return claimed
            claimed = entries

    claims_forever, stopped = noting_its_end(claims_forever)
    result = checks.reclaim(claims_forever, r, pg_ns)
    assert_fails(result, "did not return within", in_hint=("cursor",))
    assert stopped.wait(5)


def test_reclaim_reference_passes(r, pg_ns):
    assert_passes(checks.reclaim(reference_reclaim, r, pg_ns))


# Exercise 3 ---------------------------------------------------------------------------------------------


@pytest.fixture
def payments(conn):
    conn.execute("CREATE TABLE accounts (account text PRIMARY KEY, balance_cents bigint NOT NULL "
                 "CHECK (balance_cents >= 0))")
    conn.execute("CREATE TABLE processed_events (event_id text PRIMARY KEY)")
    return conn


def reference_apply(conn, event):
    with conn.transaction():
        if conn.execute("INSERT INTO processed_events (event_id) VALUES (%s) ON CONFLICT DO NOTHING",
                        (event["event_id"],)).rowcount:
            conn.execute("UPDATE accounts SET balance_cents = balance_cents + %s WHERE account = %s",
                         (event["cents"], event["account"]))


def test_apply_without_dedupe_applies_duplicates(payments):
    def naive(conn, event):
        conn.execute("UPDATE accounts SET balance_cents = balance_cents + %s WHERE account = %s",
                     (event["cents"], event["account"]))

    assert_fails(checks.apply_payment(naive, payments), "applied twice")


def test_apply_recording_the_event_outside_the_transaction_skips_the_redelivery(payments):
    def recorded_first(conn, event):
        if conn.execute("INSERT INTO processed_events (event_id) VALUES (%s) ON CONFLICT DO NOTHING",
                        (event["event_id"],)).rowcount:  # autocommit: recorded even if the update fails
            conn.execute("UPDATE accounts SET balance_cents = balance_cents + %s WHERE account = %s",
                         (event["cents"], event["account"]))

    result = checks.apply_payment(recorded_first, payments)
    assert_fails(result, "redelivery was skipped", in_hint=("same transaction",))


def test_apply_committing_the_effect_before_the_event_id_fails(payments):
    def effect_first(conn, event):
        if conn.execute("SELECT 1 FROM processed_events WHERE event_id = %s", (event["event_id"],)).fetchone():
            return
        conn.execute("UPDATE accounts SET balance_cents = balance_cents + %s WHERE account = %s",
                     (event["cents"], event["account"]))  # autocommit: committed on its own
        conn.execute("INSERT INTO processed_events (event_id) VALUES (%s)", (event["event_id"],))

    result = checks.apply_payment(effect_first, payments)
    assert_fails(result, "already committed", "second time", in_hint=("one transaction",))


def test_apply_raising_on_a_duplicate_fails(payments):
    def strict(conn, event):
        with conn.transaction():
            conn.execute("INSERT INTO processed_events (event_id) VALUES (%s)", (event["event_id"],))
            conn.execute("UPDATE accounts SET balance_cents = balance_cents + %s WHERE account = %s",
                         (event["cents"], event["account"]))

    result = checks.apply_payment(strict, payments)
    assert_fails(result, "UniqueViolation", in_hint=("ON CONFLICT",))


def test_apply_retrying_a_failed_effect_forever_is_cut_short(payments, monkeypatch):
    monkeypatch.setattr(checks, "LIMIT_S", 1)
    stop = threading.Event()

    def retries(conn, event):
        while not stop.is_set():
            try:
                return reference_apply(conn, event)
            except psycopg.errors.CheckViolation:
                time.sleep(0.05)  # the overdraft never goes away by itself

    retries, stopped = noting_its_end(retries)
    try:
        result = checks.apply_payment(retries, payments)
    finally:
        stop.set()
    assert_fails(result, "did not return within", in_hint=("redelivered",))
    assert stopped.wait(5)  # before the fixture closes the connection


def test_apply_reference_passes(payments):
    assert_passes(checks.apply_payment(reference_apply, payments))


# Exercise 4 ---------------------------------------------------------------------------------------------


@pytest.fixture
def outbox(conn, pg_ns):
    notebook.require("kafka")
    conn.execute("CREATE TABLE outbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event_id text UNIQUE "
                 "NOT NULL, key text NOT NULL, payload jsonb NOT NULL, published_at timestamptz)")
    topic = pg_ns.topic("order_events")
    admin = AdminClient({"bootstrap.servers": config.kafka_bootstrap(), "logger": quiet_logger()})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(10)
    yield topic
    admin.delete_topics([topic])[topic].exception(10)


def make_relay(*, check_delivery=True, flush=True, only_unpublished=True, with_header=True):
    def relay(conn, producer, topic):
        delivered = []

        def when_delivered(event_id):
            def on_delivery(err, msg):
                if err is None or not check_delivery:
                    delivered.append(event_id)
            return on_delivery

        with conn.transaction():
            where = "WHERE published_at IS NULL" if only_unpublished else ""
            rows = conn.execute(f"SELECT event_id, key, payload::text FROM outbox {where} ORDER BY id").fetchall()
            for event_id, key, payload in rows:
                producer.produce(topic, key=key, value=payload, headers={"event_id": event_id} if with_header else None,
                                 on_delivery=when_delivered(event_id))
            if flush:
                producer.flush(10)
            conn.execute("UPDATE outbox SET published_at = now() WHERE event_id = ANY(%s)", (delivered,))
        return len(delivered)

    return relay


def test_relay_marking_failed_deliveries_loses_events(conn, outbox):
    result = checks.relay(make_relay(check_delivery=False), conn, outbox)
    assert_fails(result, "never acknowledged", in_hint=("delivery report",))


def test_relay_without_flush_marks_nothing(conn, outbox):
    result = checks.relay(make_relay(flush=False), conn, outbox)
    assert_fails(result, "still unpublished", in_hint=("flush",))


def test_relay_without_the_event_id_header_fails(conn, outbox):
    result = checks.relay(make_relay(with_header=False), conn, outbox)
    assert_fails(result, "event_id headers are [None", in_hint=("headers={'event_id'",))
    assert "of the 5 events are in the topic" not in result.message


def test_relay_republishing_everything_fails(conn, outbox):
    assert_fails(checks.relay(make_relay(only_unpublished=False), conn, outbox), "published the same rows again")


def test_relay_waiting_for_successes_while_kafka_is_down_is_cut_short(conn, outbox, monkeypatch):
    monkeypatch.setattr(checks, "RELAY_LIMIT_S", 2)
    stop = threading.Event()

    def waits_for_successes(conn, producer, topic):
        rows = conn.execute("SELECT event_id, key, payload::text FROM outbox ORDER BY id").fetchall()
        delivered = []
        for event_id, key, payload in rows:
            producer.produce(topic, key=key, value=payload, headers={"event_id": event_id},
                             on_delivery=lambda err, msg: err is None and delivered.append(msg))
        while len(delivered) < len(rows) and not stop.is_set():  # failed reports never count
            producer.poll(0.1)
        return len(delivered)

    waits_for_successes, stopped = noting_its_end(waits_for_successes)
    try:
        result = checks.relay(waits_for_successes, conn, outbox)
    finally:
        stop.set()
    assert_fails(result, "did not return within 2 s", in_hint=("error",))
    assert stopped.wait(5)


def test_relay_reference_passes(conn, outbox):
    assert_passes(checks.relay(make_relay(), conn, outbox))


# Exercise 5 ---------------------------------------------------------------------------------------------


class TransientError(Exception):
    def __init__(self, message="", retry_after=None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    pass


def make_retry(pg_ns, *, backoff=True, retry_permanent=False, ack_dead=True, wait_after_last=False,
               retry_after=max):
    def handle_with_retry(r, stream, group, entry_id, fields, handler, sleep=time.sleep):
        retryable = (TransientError, PermanentError) if retry_permanent else (TransientError,)
        for attempt in range(1, 5):
            try:
                handler(fields)
            except retryable as exc:
                error = exc
                if attempt < 4 or wait_after_last:
                    delay = 0.01 * (2 ** (attempt - 1) if backoff else 1)
                    hinted = getattr(exc, "retry_after", None)
                    sleep(retry_after(delay, hinted) if hinted is not None and retry_after else delay)
                continue
            except PermanentError as exc:
                error = exc
                break
            r.xack(stream, group, entry_id)
            return "done"
        r.xadd(pg_ns.key("dead_letters"), {**fields, "error": repr(error), "attempts": attempt})
        if ack_dead:
            r.xack(stream, group, entry_id)
        return "dead-lettered"

    return handle_with_retry


@pytest.fixture
def retry_check(r, pg_ns):
    return lambda fn: checks.handle_with_retry(fn, r, pg_ns, TransientError, PermanentError)


def test_retry_without_backoff_fails(retry_check, pg_ns):
    assert_fails(retry_check(make_retry(pg_ns, backoff=False)), "twice as long")


def test_retry_with_time_sleep_instead_of_the_given_sleep_fails(retry_check, pg_ns):
    reference = make_retry(pg_ns)

    def with_time_sleep(r, stream, group, entry_id, fields, handler, sleep=time.sleep):
        return reference(r, stream, group, entry_id, fields, handler)  # the check's sleep is dropped

    result = retry_check(with_time_sleep)
    assert_fails(result, "sleep you were given was never called", "time.sleep", in_hint=("sleep parameter",))


def test_retry_of_a_permanent_error_fails(retry_check, pg_ns):
    assert_fails(retry_check(make_retry(pg_ns, retry_permanent=True)), "PermanentError was retried")


def test_retry_waiting_after_the_last_attempt_fails(retry_check, pg_ns):
    assert_fails(retry_check(make_retry(pg_ns, wait_after_last=True)), "no point waiting after the last attempt",
                 hint=False)


def test_dead_letter_without_ack_fails(retry_check, pg_ns):
    result = retry_check(make_retry(pg_ns, ack_dead=False))
    assert_fails(result, "still pending", in_hint=("XACK",))


def retrying_forever(catching):
    """A handle_with_retry without a last attempt: it retries whatever CATCHING matches, forever."""
    def handle(r, stream, group, entry_id, fields, handler, sleep=time.sleep):
        attempt = 0
        while True:
            attempt += 1
            try:
                handler(fields)
                r.xack(stream, group, entry_id)
                return "done"
            except catching as exc:
                sleep(max(0.01 * 2 ** min(attempt - 1, 10), getattr(exc, "retry_after", None) or 0))
    return handle


def test_retry_without_a_last_attempt_is_stopped(retry_check):
    result = retry_check(retrying_forever(TransientError))
    assert_fails(result, "still did not give up", in_hint=("MAX_ATTEMPTS",))


def test_retry_swallowing_every_exception_is_cut_short(retry_check, monkeypatch):
    monkeypatch.setattr(checks, "LIMIT_S", 1)
    result = retry_check(retrying_forever(BaseException))  # as a bare except: the check's stop too
    assert_fails(result, "still did not give up")


def test_retry_ignoring_retry_after_fails(retry_check, pg_ns):
    result = retry_check(make_retry(pg_ns, retry_after=None))
    assert_fails(result, "retry_after=0.05", "expected [0.05]", in_hint=("retry_after",))


def test_retry_after_shortening_the_backoff_fails(retry_check, pg_ns):
    result = retry_check(make_retry(pg_ns, retry_after=lambda delay, hinted: hinted))
    assert_fails(result, "retry_after=0.001", "expected [0.01]", in_hint=("max(backoff, retry_after)",))


def test_retry_reference_passes(retry_check, pg_ns):
    assert_passes(retry_check(make_retry(pg_ns)))


# requirements the tests above did not break on their own -----------------------------------------------
def test_consume_not_returning_the_count_fails(r, pg_ns):
    def no_count(r, stream, group, consumer, handle):
        reference_consume(r, stream, group, consumer, handle)

    assert_fails(checks.consume_batch(no_count, r, pg_ns))


def test_relay_out_of_id_order_fails(conn, outbox):
    def newest_first(conn, producer, topic):
        rows = conn.execute("SELECT id, key, payload FROM outbox WHERE published_at IS NULL "
                            "ORDER BY id DESC").fetchall()
        done = []
        for event_id, key, payload in rows:
            producer.produce(topic, key=key, value=payload, headers={"event_id": str(event_id)},
                             on_delivery=lambda err, msg, event_id=event_id: err is None and done.append(event_id))
        producer.flush(10)
        with conn.transaction():
            for event_id in done:
                conn.execute("UPDATE outbox SET published_at = now() WHERE id = %s", (event_id,))
        return len(done)

    assert_fails(checks.relay(newest_first, conn, outbox))


REQUIREMENTS = {
    "1": {
        "read up to 10 entries never delivered to the group":
            "test_consume_reading_the_pending_list_instead_of_new_entries_fails",
        "`XACK` each entry whose handler returned": "test_consume_acking_before_handling_loses_the_failed_order",
        "leave that entry pending (another\nworker will retry it) and go on with the rest":
            "test_consume_letting_the_error_escape_fails",
        "Return how many entries you acknowledged.": "test_consume_not_returning_the_count_fails",
    },
    "2": {
        "every entry pending for longer than `min_idle_ms`\n(never the ones a live worker just received)":
            "test_reclaim_without_idle_threshold_steals_live_work",
        "There may be\nmore than one XAUTOCLAIM batch of them.": ("test_reclaim_with_one_call_misses_a_batch",
                                                                "test_reclaim_stopping_at_the_first_empty_batch_fails"),
    },
    "3": {
        "at most once per `event_id`": ("test_apply_without_dedupe_applies_duplicates",
                                        "test_apply_raising_on_a_duplicate_fails"),
        "an event whose effect fails (here: it would overdraw the account) will be delivered again later": (
            "test_apply_recording_the_event_outside_the_transaction_skips_the_redelivery",
            "test_apply_committing_the_effect_before_the_event_id_fails"),
    },
    "4": {
        "publish every row not yet published": "test_relay_republishing_everything_fails",
        "in `id` order": "test_relay_out_of_id_order_fails",
        "a header `event_id`": "test_relay_without_the_event_id_header_fails",
        "wait for Kafka's delivery reports": "test_relay_without_flush_marks_nothing",
        "set `published_at` only on the rows Kafka acknowledged": "test_relay_marking_failed_deliveries_loses_events",
        "When Kafka\nis down, nothing may be marked published.": (
            "test_relay_waiting_for_successes_while_kafka_is_down_is_cut_short",),
    },
    "5": {
        "wait `BASE_DELAY_S * 2 ** (attempt - 1)` seconds with `sleep`": (
            "test_retry_without_backoff_fails", "test_retry_with_time_sleep_instead_of_the_given_sleep_fails"),
        "`MAX_ATTEMPTS` attempts in all": "test_retry_without_a_last_attempt_is_stopped",
        "no wait after the last one": "test_retry_waiting_after_the_last_attempt_fails",
        "wait the longer of that and the backoff": "test_retry_ignoring_retry_after_fails",
        "never less than the backoff": "test_retry_after_shortening_the_backoff_fails",
        "on `PermanentError` stop at once": "test_retry_of_a_permanent_error_fails",
        "`XACK` the entry and return `\"dead-lettered\"`": "test_dead_letter_without_ack_fails",
    },
}
