"""Lab 06 checks fail on plausible wrong answers, with a message that helps, and pass the reference."""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from verdicts import assert_fails, assert_not_done, assert_passes, scratch_namespace

from infracourse.checks import lab06 as checks
from infracourse.clients import kafka_config

MAX_RETRIES = 3


@pytest.fixture
def ns():
    with scratch_namespace("kafka") as namespace:
        yield namespace


@pytest.fixture
def admin():
    return AdminClient(kafka_config.client())


# exercise 1 ----------------------------------------------------------------------------------------------
def publish(key_of, flush=True, count_all=False):
    def publish_events(producer, topic, events):
        delivered = []
        for event in events:
            producer.produce(topic, key=key_of(event), value=json.dumps(event),
                             on_delivery=lambda err, msg: delivered.append(err))
        if flush:
            producer.flush(10)
        return len(delivered) if count_all else sum(err is None for err in delivered)

    return publish_events


def test_producer_without_key_fails(ns):
    assert_fails(checks.keyed_producer(publish(lambda e: None), ns), "no key")


def test_producer_keyed_by_stage_fails(ns):
    assert_fails(checks.keyed_producer(publish(lambda e: e["stage"]), ns), "distinct keys")


def test_producer_without_flush_fails(ns):
    result = checks.keyed_producer(publish(lambda e: str(e["order_id"]), flush=False), ns)
    assert_fails(result)
    assert "arrived" in result.message or "returned 0" in result.message, result
    assert "flush" in result.hint or "delivery reports" in result.hint


def test_producer_counting_failed_deliveries_fails(ns):
    result = checks.keyed_producer(publish(lambda e: str(e["order_id"]), count_all=True), ns)
    assert_fails(result, "returned 33", "delivery", "failed", in_hint=("err is None",))


def test_producer_reference_passes(ns):
    assert_passes(checks.keyed_producer(publish(lambda e: str(e["order_id"])), ns))


# exercise 2 ----------------------------------------------------------------------------------------------
def bill(commit_first=False, commit=True):
    def bill_orders(consumer, charge, idle_s):
        charged = 0
        while (msg := consumer.poll(idle_s)) is not None:
            if msg.error():
                continue
            if commit and commit_first:
                consumer.commit(message=msg, asynchronous=False)
            charge(json.loads(msg.value()))
            if commit and not commit_first:
                consumer.commit(message=msg, asynchronous=False)
            charged += 1
        return charged

    return bill_orders


def test_commit_before_charge_loses_an_order(ns):
    result = checks.at_least_once(bill(commit_first=True), ns)
    assert_fails(result, "never charged", in_hint=("after charge",))


def test_never_committing_charges_twice(ns):
    assert_fails(checks.at_least_once(bill(commit=False), ns), "charged twice")


def test_charging_the_raw_bytes_fails(ns):
    def bill_orders(consumer, charge, idle_s):
        charged = 0
        while (msg := consumer.poll(idle_s)) is not None:
            if not msg.error():
                charge(msg.value())  # the JSON was never decoded
                consumer.commit(message=msg, asynchronous=False)
                charged += 1
        return charged

    result = checks.at_least_once(bill_orders, ns)
    assert_fails(result, "dict decoded from the JSON", in_hint=("json.loads",))
    assert "once for every message" not in result.hint


def test_unsolved_billing_is_not_done(ns):
    def stub(consumer, charge, idle_s):
        raise NotImplementedError

    assert_not_done(checks.at_least_once(stub, ns))


def test_billing_reference_passes(ns):
    assert_passes(checks.at_least_once(bill(), ns))


def test_billing_that_polls_forever_is_cut_off(ns, monkeypatch):
    monkeypatch.setattr(checks, "LIMIT_S", 2)

    def waits_for_more(consumer, charge, idle_s):
        charged = 0
        while True:  # ignores idle_s: a quiet topic never ends the loop
            try:
                msg = consumer.poll(0.2)
            except Exception:  # noqa: BLE001 - lets the check's interruption by (a bare except would not)
                continue
            if msg is not None and not msg.error():
                charge(json.loads(msg.value()))
                charged += 1

    started = time.monotonic()
    result = checks.at_least_once(waits_for_more, ns)
    assert_fails(result, "did not return within 2 s", in_hint=("None",))
    assert time.monotonic() - started < 15


# exercise 3 ----------------------------------------------------------------------------------------------
def lag(skip_uncommitted=False, committed_is_lag=False, keep_invalid=False):
    def group_lag(admin, group, topic):
        listing = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result()
        committed = {tp.partition: tp.offset for tp in listing.topic_partitions if keep_invalid or tp.offset >= 0}
        parts = admin.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {tp.partition: f.result().offset for tp, f in admin.list_offsets(
            {TopicPartition(topic, p): OffsetSpec.latest() for p in parts}).items()}
        if skip_uncommitted:
            return {p: ends[p] - committed[p] for p in committed}
        if committed_is_lag:
            return {p: committed.get(p, 0) for p in ends}
        return {p: ends[p] - committed.get(p, 0) for p in ends}

    return group_lag


def test_lag_skipping_uncommitted_partitions_fails(ns, admin):
    result = checks.group_lag(lag(skip_uncommitted=True), admin, ns)
    assert_fails(result, in_hint=("never committed",))


def test_lag_reporting_committed_offsets_fails(ns, admin):
    assert_fails(checks.group_lag(lag(committed_is_lag=True), admin, ns), "lag")


def test_lag_counting_offset_invalid_as_committed_fails(ns, admin):
    assert_fails(checks.group_lag(lag(keep_invalid=True), admin, ns), "-1001", "1005", in_hint=("OFFSET_INVALID",))


def test_lag_reference_passes(ns, admin):
    assert_passes(checks.group_lag(lag(), admin, ns))


# exercise 4 ----------------------------------------------------------------------------------------------
def handler(increment=True, keep_key=True, straight_to_dlt=False, flush=True, value_of=None, error_of=str):
    def handle_checkout(msg, producer, charge, retry_topic, dlt_topic):
        headers = dict(msg.headers() or [])
        retries = int(headers.get("retries", b"0"))
        try:
            charge(msg)
        except (ValueError, KeyError) as exc:
            if retries < MAX_RETRIES and not straight_to_dlt:
                target, retries = retry_topic, retries + (1 if increment else 0)
            else:
                target = dlt_topic
            headers.update({"retries": str(retries), "error": error_of(exc)})
            producer.produce(target, key=msg.key() if keep_key else None,
                             value=value_of(msg) if value_of else msg.value(), headers=headers)
            if flush:
                producer.flush(10)

    return handle_checkout


def test_retries_never_incremented_loops(ns):
    assert_fails(checks.dead_letters(handler(increment=False), ns), "keep coming back")


def test_straight_to_dlt_fails(ns):
    assert_fails(checks.dead_letters(handler(straight_to_dlt=True), ns), "retries")


def test_dropping_the_key_fails(ns):
    result = checks.dead_letters(handler(keep_key=False), ns)
    assert_fails(result, in_hint=("key",))


def test_handler_without_flush_fails(ns):
    result = checks.dead_letters(handler(flush=False), ns)
    assert_fails(result, "before its copy was delivered", "commits", in_hint=("flush()",))


def test_handler_retrying_in_place_is_cut_off(ns, monkeypatch):
    monkeypatch.setattr(checks, "LIMIT_S", 1)

    def retries_in_place(msg, producer, charge, retry_topic, dlt_topic):
        while True:  # a poison message never stops failing
            try:
                return charge(msg)
            except (ValueError, KeyError):
                time.sleep(0.05)

    result = checks.dead_letters(retries_in_place, ns)
    assert_fails(result, "did not return within 1 s", in_hint=("retry topic",))


def test_dead_letters_reference_passes(ns):
    assert_passes(checks.dead_letters(handler(), ns))


# exercise 5 ----------------------------------------------------------------------------------------------
def runner(close=True, commit=True, heeds_stop=True, in_finally=True, commit_first=False):
    def loop(consumer, process, stop):
        while not stop.is_set() or not heeds_stop:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            if commit and commit_first:
                consumer.commit(message=msg, asynchronous=False)
            process(msg)
            if commit and not commit_first:
                consumer.commit(message=msg, asynchronous=False)

    def run_until_stopped(consumer, process, stop):
        if not in_finally:
            loop(consumer, process, stop)
            if close:
                consumer.close()
            return
        try:
            loop(consumer, process, stop)
        finally:
            if close:
                consumer.close()

    return run_until_stopped


def test_shutdown_without_close_fails(ns, admin):
    assert_fails(checks.graceful_shutdown(runner(close=False), admin, ns), "still open")


def test_shutdown_without_commit_fails(ns, admin):
    assert_fails(checks.graceful_shutdown(runner(commit=False), admin, ns), "committed offsets cover 0")


def test_shutdown_closing_outside_finally_fails(ns, admin):
    result = checks.graceful_shutdown(runner(in_finally=False), admin, ns)
    assert_fails(result, "process() raised", "left open", in_hint=("finally",))


def test_shutdown_committing_before_process_fails(ns, admin):
    result = checks.graceful_shutdown(runner(commit_first=True), admin, ns)
    assert_fails(result, "committed although process() raised", in_hint=("after process(msg)",))


def test_shutdown_loop_ignoring_stop_fails_and_the_process_survives_the_cleanup(ns, admin):
    # Closing the consumer or deleting its topic under the learner's poll() used to hang or crash the process.
    assert_fails(checks.graceful_shutdown(runner(heeds_stop=False), admin, ns), "did not return within 10 s")
    assert_passes(checks.graceful_shutdown(runner(), admin, ns))


def test_shutdown_reference_passes(ns, admin):
    assert_passes(checks.graceful_shutdown(runner(), admin, ns))


# requirements the tests above did not break on their own -----------------------------------------------
def test_producer_values_not_json_fails(ns):
    def publish_events(producer, topic, events):
        delivered = []
        for event in events:
            producer.produce(topic, key=str(event["order_id"]), value=str(event),
                             on_delivery=lambda err, msg: delivered.append(err))
        producer.flush(10)
        return sum(err is None for err in delivered)

    assert_fails(checks.keyed_producer(publish_events, ns), "is not JSON", in_hint=("json.dumps",))


def test_billing_not_returning_the_count_fails(ns):
    def no_count(consumer, charge, idle_s):
        bill()(consumer, charge, idle_s)

    assert_fails(checks.at_least_once(no_count, ns), "bill_orders returned None")


def test_dead_letter_without_the_original_value_fails(ns):
    result = checks.dead_letters(handler(value_of=lambda msg: b"{}"), ns)
    assert_fails(result, "not the original message's", in_hint=("msg.value()",))


def test_dead_letter_error_header_without_the_text_fails(ns):
    result = checks.dead_letters(handler(error_of=lambda exc: type(exc).__name__), ns)
    assert_fails(result, "'error' header is b'ValueError'", in_hint=("str(exc)",))


REQUIREMENTS = {
    "1": {
        "produce every event as JSON": "test_producer_values_not_json_fails",
        "**keyed by its `order_id`**\n(as a string)": ("test_producer_without_key_fails",
                                                      "test_producer_keyed_by_stage_fails"),
        "Count the delivery reports\nthat came back without an error": "test_producer_counting_failed_deliveries_fails",
        "wait until every message is delivered": "test_producer_without_flush_fails",
    },
    "2": {
        "Poll until `poll(idle_s)` returns `None`": "test_billing_that_polls_forever_is_cut_off",
        "call `charge(order)` with the decoded JSON body": "test_charging_the_raw_bytes_fails",
        "**only then** commit that message's offset": ("test_commit_before_charge_loses_an_order",
                                                       "test_never_committing_charges_twice"),
        "Return how many orders you charged.": "test_billing_not_returning_the_count_fails",
    },
    "3": {
        "for **every** partition of the topic": "test_lag_skipping_uncommitted_partitions_fails",
        "lag = end offset − committed\noffset": "test_lag_reporting_committed_offsets_fails",
        "`-1001` (`confluent_kafka.OFFSET_INVALID`": "test_lag_counting_offset_invalid_as_committed_fails",
    },
    "4": {
        "produce a copy to `retry_topic` with `retries` increased by one": "test_retries_never_incremented_loops",
        "at `MAX_RETRIES`: produce a copy to `dlt_topic`": "test_straight_to_dlt_fails",
        "Every copy keeps the key": "test_dropping_the_key_fails",
        "and value": "test_dead_letter_without_the_original_value_fails",
        "carries an `error` header with the exception's text": "test_dead_letter_error_header_without_the_text_fails",
        "Make sure the\ncopy is delivered before the function returns": "test_handler_without_flush_fails",
    },
    "5": {
        "until the\n`threading.Event` `stop` is set":
            "test_shutdown_loop_ignoring_stop_fails_and_the_process_survives_the_cleanup",
        "make sure everything processed is committed": ("test_shutdown_without_commit_fails",
                                                        "test_shutdown_committing_before_process_fails"),
        "`close()` the\nconsumer so it leaves the group at once": "test_shutdown_without_close_fails",
        "also if `process` raised": "test_shutdown_closing_outside_finally_fails",
    },
}
