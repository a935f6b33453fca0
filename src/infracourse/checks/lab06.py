"""Checks of labs/06_kafka.ipynb: event-driven order processing with Kafka.

Every check works on topics and groups of its own (inside the notebook's namespace) and deletes them after,
so checks can run again and again. No loop waits without a deadline.
"""

from __future__ import annotations

import contextlib
import functools
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from infracourse.checking import exercise, expect, kafka_readback, time_limit
from infracourse.clients import kafka_config
from infracourse.namespace import Namespace
from infracourse.waiting import wait_until

STAGES = ("placed", "paid", "packed", "shipped")
MAX_RETRIES = 3
LIMIT_S = 10  # for one call of learner code
READ_BACK_S = 20  # for reading back a topic the learner's code wrote


# plumbing ------------------------------------------------------------------------------------------------
@functools.cache
def _admin() -> AdminClient:
    """One admin client for all checks (a temporary one would be destroyed before its futures resolve)."""
    return AdminClient(kafka_config.client())


class _RevocableConsumer:
    """The consumer handed to learner code that runs in a thread. librdkafka hangs in close(), and crashes the
    process when the topic is deleted, while another thread is inside poll(); once revoked, this stand-in stops
    passing calls through (each raises after a short pause), so a loop that ignores its stop signal can be left
    running while the check closes the real consumer and cleans up."""

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer
        self._lock = threading.Lock()
        self._revoked = False

    def __getattr__(self, name: str):
        attr = getattr(self._consumer, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            with self._lock:
                if not self._revoked:
                    return attr(*args, **kwargs)
            time.sleep(0.5)  # a loop that swallows the error below must not spin
            raise RuntimeError("Consumer closed by the check")

        return call

    def revoke(self, wait_s: float = 5) -> bool:
        """Stop passing calls through; False if the learner's thread stayed inside a call for WAIT_S."""
        if not self._lock.acquire(timeout=wait_s):
            return False
        self._revoked = True
        self._lock.release()
        return True


@contextlib.contextmanager
def _closed_after(consumer: Consumer) -> Iterator[Consumer]:
    """Close CONSUMER when the block ends, however it ends: a consumer left open while _drop deletes its topics
    can crash librdkafka (and the kernel with it)."""
    try:
        yield consumer
    finally:
        try:
            consumer.close()
        except RuntimeError:  # the learner's code closed it already
            pass


def _fresh_topics(ns: Namespace, partitions: int, *names: str) -> list[str]:
    suffix = uuid.uuid4().hex[:6]
    topics = [ns.topic(f"check-{name}-{suffix}") for name in names]
    futures = _admin().create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics])
    for future in futures.values():
        future.result(timeout=15)
    return topics


def _drop(*topics: str, groups: tuple[str, ...] = ()) -> None:
    admin = _admin()
    for future in admin.delete_topics(list(topics), operation_timeout=10).values():
        future.exception(timeout=15)
    if groups:
        for future in admin.delete_consumer_groups(list(groups), request_timeout=10).values():
            future.exception(timeout=15)


def _reader(group: str, topics: list[str], partitions: int) -> Consumer:
    consumer = Consumer({**kafka_config.consumer(group), "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    # start from the committed offsets, or the beginning: explicit offsets make the first poll() fetch at
    # once (an offset reset can take a second, and learners' loops stop at the first empty poll)
    wanted = [TopicPartition(t, p) for t in topics for p in range(partitions)]
    committed = consumer.committed(wanted, timeout=10)
    consumer.assign([TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                     for tp in committed])
    return consumer


def _send_one_per_request(topic: str, values: list[tuple[int, bytes]]) -> None:
    """(partition, value) pairs, one per request: Tansu's end offsets are exact only then (see lesson 06)."""
    producer = Producer(kafka_config.client())
    for partition, value in values:
        producer.produce(topic, value, partition=partition)
        producer.flush(10)


def _order_events() -> list[dict]:
    """Eight orders through four stages, interleaved as a busy shop would write them."""
    return [{"order_id": 100 + n, "stage": stage, "amount": 5 * (n + 1)} for stage in STAGES for n in range(8)]


FAILED_ORDER = 999  # the one event whose delivery fails in exercise 1


class _OneDeliveryFails:
    """The producer handed to publish_events: it sends every message but the one of FAILED_ORDER, whose delivery
    report carries an error and is served, as librdkafka serves reports, by the learner's next poll() or flush().
    A broker cannot be made to reject one message on demand; this stand-in can."""

    def __init__(self, producer: Producer) -> None:
        self._producer = producer
        self._failed: list[tuple[Callable | None, Message]] = []

    def __getattr__(self, name: str):
        return getattr(self._producer, name)

    def __len__(self) -> int:
        return len(self._producer) + len(self._failed)

    def produce(self, topic: str, *args, **kwargs) -> None:
        value = kwargs.get("value", args[0] if args else None)
        try:
            failing = json.loads(value).get("order_id") == FAILED_ORDER
        except (TypeError, ValueError, AttributeError):
            failing = False
        if not failing:
            return self._producer.produce(topic, *args, **kwargs)
        key = kwargs.get("key", args[1] if len(args) > 1 else None)
        report = Message(topic=topic, key=key, value=value, error=KafkaError(KafkaError._MSG_TIMED_OUT))
        self._failed.append((kwargs.get("on_delivery") or kwargs.get("callback"), report))
        return None

    def _serve_failed(self) -> None:
        failed, self._failed = self._failed, []
        for callback, report in failed:
            if callback is not None:
                callback(report.error(), report)

    def poll(self, *args, **kwargs) -> int:
        self._serve_failed()
        return self._producer.poll(*args, **kwargs)

    def flush(self, *args, **kwargs) -> int:
        self._serve_failed()
        return self._producer.flush(*args, **kwargs)


# exercise 1 ----------------------------------------------------------------------------------------------
@exercise("1", "A keyed producer that waits for its delivery reports")
def keyed_producer(publish_events: Callable, ns: Namespace) -> str:
    (topic,) = _fresh_topics(ns, 4, "orders")
    events = _order_events()
    events.insert(len(events) // 2, {"order_id": FAILED_ORDER, "stage": "placed", "amount": 1})
    delivered = len(events) - 1
    producer = _OneDeliveryFails(Producer({**kafka_config.client(), "enable.idempotence": True, "linger.ms": 5}))
    try:
        returned = time_limit.bounded_here(LIMIT_S, publish_events, producer, topic, events,
                                           hint="flush(timeout) waits for the delivery reports; then return")
        arrived = kafka_readback.read_back(topic, group=ns.topic("check-reader"), timeout_s=READ_BACK_S)
    finally:
        _drop(topic, groups=(ns.topic("check-reader"),))
    expect(arrived, "nothing arrived in the topic", hint="produce() only queues: flush() sends and waits")
    for msg in arrived:
        try:
            json.loads(msg.value())
        except (TypeError, ValueError):
            expect(False, f"the value {msg.value()[:40]!r} is not JSON",
                   hint="produce value=json.dumps(event), not str(event)")
    expect(len(arrived) >= delivered, f"only {len(arrived)} of {delivered} events arrived",
           hint="call producer.flush() before returning, so every queued message is sent")
    expect(len(arrived) == delivered, f"{len(arrived)} messages arrived for {delivered} deliverable events",
           hint="produce each event exactly once")
    keys = {m.key() for m in arrived}
    expect(None not in keys, "some messages have no key", hint="pass key=... to produce()")
    by_key: dict[bytes, list[Message]] = {}
    for msg in arrived:
        by_key.setdefault(msg.key(), []).append(msg)
    expect(len(by_key) == 8, f"the events carry {len(by_key)} distinct keys for 8 orders",
           hint="key every event by its order_id, so all events of an order share one key")
    for key, messages in by_key.items():
        body = json.loads(messages[0].value())
        expect(key == str(body["order_id"]).encode(), f"key {key!r} does not match the order_id of its event",
               hint="use str(event['order_id']) as the key")
        expect(len({m.partition() for m in messages}) == 1, f"the events of order {key.decode()} are spread "
               "over several partitions", hint="the same key always maps to the same partition")
        stages = [json.loads(m.value())["stage"] for m in sorted(messages, key=Message.offset)]
        expect(tuple(stages) == STAGES, f"order {key.decode()}'s events are out of order: {stages}")
    expect(returned != len(events), f"publish_events returned {returned!r}, the number of events, but the delivery "
           f"of order {FAILED_ORDER}'s event failed: {delivered} deliveries succeeded",
           hint="count only the delivery reports whose err is None (they arrive during flush)")
    expect(returned == delivered, f"publish_events returned {returned!r}; {delivered} deliveries succeeded",
           hint="count the delivery reports whose error is None (they arrive during flush)")
    return f"{delivered} events, {len(by_key)} keys, order kept per key"


# exercise 2 ----------------------------------------------------------------------------------------------
CRASH_AT = 7  # the worker dies as it starts charging the 7th order, before the charge takes effect
IDLE_HINT = "stop when poll(idle_s) returns None"
IDLE_S = 2.0  # generous: a first fetch can take half a second on a busy machine
NOT_DECODED_EXIT = 4  # the crashing worker's exit code when charge() was given something else than a dict


def _run_crashing(bill_orders: Callable, group: str, topic: str, charges) -> int | None:
    """Run BILL_ORDERS in a forked process whose charge() kills it (SIGKILL) at the CRASH_AT-th call."""

    def child() -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the process dies, nothing to close
        calls = 0

        def charge(order: dict) -> None:
            nonlocal calls
            if not isinstance(order, dict):
                os._exit(NOT_DECODED_EXIT)
            calls += 1
            if calls == CRASH_AT:
                os.kill(os.getpid(), signal.SIGKILL)
            charges[order["order_id"]] += 1

        try:
            bill_orders(_reader(group, [topic], 2), charge, IDLE_S)
        finally:
            os._exit(3)  # returned or raised without crashing: charge() was not called CRASH_AT times

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(30)
    if process.is_alive():
        process.kill()
        process.join()
        return None
    return process.exitcode


@exercise("2", "At-least-once billing: charge, then commit")
def at_least_once(bill_orders: Callable, ns: Namespace) -> str:
    (topic,) = _fresh_topics(ns, 2, "billing")
    group = ns.topic(f"check-billing-{uuid.uuid4().hex[:6]}")
    try:
        with _closed_after(_reader(group + "-dry", [topic], 2)) as empty:
            dry = time_limit.bounded_here(LIMIT_S, bill_orders, empty, lambda order: None, 0.5,  # a stub raises here
                                          hint=IDLE_HINT)
        expect(dry == 0, f"on an empty topic bill_orders returned {dry!r}, expected 0",
               hint="return how many orders you charged")
        orders = 12
        _send_one_per_request(topic, [(n % 2, json.dumps({"order_id": n}).encode()) for n in range(orders)])
        charges = multiprocessing.Array("i", orders, lock=False)
        exitcode = _run_crashing(bill_orders, group, topic, charges)
        expect(exitcode is not None, "bill_orders did not return within 30 s", hint=IDLE_HINT)
        expect(exitcode != NOT_DECODED_EXIT,
               "charge() was given something else than the order: a dict decoded from the JSON body",
               hint="pass the decoded JSON body: charge(json.loads(msg.value()))")
        expect(exitcode == -signal.SIGKILL, f"the worker should have died while charging order {CRASH_AT}, but "
               f"it ended with {sum(charges)} charges", hint="call charge(order) once for every message")
        def charge(order: dict) -> None:
            charges[order["order_id"]] += 1

        with _closed_after(_reader(group, [topic], 2)) as consumer:
            second = time_limit.bounded_here(2 * LIMIT_S, bill_orders, consumer, charge, IDLE_S, hint=IDLE_HINT)
        with _closed_after(Consumer(kafka_config.consumer(group))) as reader:  # also if the learner closed theirs
            committed = reader.committed([TopicPartition(topic, p) for p in range(2)], timeout=10)
    finally:
        _drop(topic, groups=(group, group + "-dry"))
    counts = list(charges)
    lost = counts.count(0)
    expect(lost == 0, f"{lost} order(s) were never charged after the crash",
           hint="commit an order's offset only after charge() has returned for it")
    twice = sum(c > 1 for c in counts)
    expect(twice <= 3, f"{twice} orders were charged twice after the restart",
           hint="commit after each order (or each small batch): the restart resumes from the last commit")
    expect(sum(max(tp.offset, 0) for tp in committed) == orders,
           "after the second run the committed offsets do not cover every order",
           hint="commit the message you just processed: consumer.commit(message=msg, asynchronous=False)")
    expect(isinstance(second, int), f"bill_orders returned {second!r}", hint="return how many orders you charged")
    return f"0 lost, {twice} charged twice after a crash at order {CRASH_AT}"


# exercise 3 ----------------------------------------------------------------------------------------------
class _NamingPartitions:
    """The admin client with one difference: list_consumer_group_offsets names every partition of TOPIC in its
    request, so a partition the group never committed comes back with offset -1001 (OFFSET_INVALID) instead of
    not at all (the other form the lab text announces)."""

    def __init__(self, admin: AdminClient, topic: str, partitions: int) -> None:
        self._admin, self._topic, self._partitions = admin, topic, partitions

    def __getattr__(self, name: str):
        return getattr(self._admin, name)

    def list_consumer_group_offsets(self, requests: list, **kwargs):
        named = [ConsumerGroupTopicPartitions(request.group_id, request.topic_partitions
                                              or [TopicPartition(self._topic, p) for p in range(self._partitions)])
                 for request in requests]
        return self._admin.list_consumer_group_offsets(named, **kwargs)


def _lag_of(group_lag_fn: Callable, admin: object, group: str, topic: str, expected: dict[int, int],
            form: str) -> None:
    got = time_limit.bounded_here(LIMIT_S, group_lag_fn, admin, group, topic,
                                  hint="give every future.result() a timeout: future.result(10)")
    expect(isinstance(got, dict), f"group_lag returned a {type(got).__name__}, expected a dict",
           hint="return {partition number: lag}")
    expect(set(got) == set(expected), f"the result has partitions {sorted(got)}, the topic has {sorted(expected)}",
           hint="include every partition of the topic, also one the group never committed")
    expect(got.get(1) == 0, f"partition 1 is fully read but its lag is {got.get(1)!r}",
           hint="lag = end offset - committed offset")
    expect(got.get(2) == expected[2], f"partition 2 has no committed offset ({form}); its lag is {got.get(2)!r}, "
           f"expected {expected[2]}", hint="with no commit (missing, or offset -1001 = OFFSET_INVALID), every "
           "message of the partition is lag")
    expect(got == expected, f"the lag of partition 0 is {got.get(0)!r}, expected {expected[0]}",
           hint="end offset (latest) - committed offset")


@exercise("3", "Consumer lag from the admin API")
def group_lag(group_lag_fn: Callable, admin: AdminClient, ns: Namespace) -> str:
    (topic,) = _fresh_topics(ns, 3, "lag")
    group = ns.topic(f"check-lag-{uuid.uuid4().hex[:6]}")
    sizes = {0: 10, 1: 6, 2: 4}
    done = {0: 4, 1: 6}  # partition 2: the group has not read anything yet
    expected = {p: n - done.get(p, 0) for p, n in sizes.items()}
    try:
        _send_one_per_request(topic, [(p, b"shipment") for p, n in sizes.items() for _ in range(n)])
        consumer = Consumer(kafka_config.consumer(group))
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in done.items()], asynchronous=False)
        consumer.close()
        _lag_of(group_lag_fn, admin, group, topic, expected, "missing from the group's offsets")
        _lag_of(group_lag_fn, _NamingPartitions(admin, topic, len(sizes)), group, topic, expected,
                "listed with offset -1001")
    finally:
        _drop(topic, groups=(group,))
    return f"total lag {sum(expected.values())}, also with offset -1001 listed"


# exercise 4 ----------------------------------------------------------------------------------------------
def _checkout_charge(charged: list) -> Callable[[Message], int]:
    def charge(msg: Message) -> int:
        order = json.loads(msg.value())  # malformed JSON raises ValueError
        if order["amount"] <= 0:
            raise ValueError(f"amount must be positive, got {order['amount']}")
        charged.append(msg.key())
        return order["amount"]

    return charge


@exercise("4", "Poison messages: retries in headers, then the dead-letter topic")
def dead_letters(handle_checkout: Callable, ns: Namespace) -> str:
    source, retry, dlt = _fresh_topics(ns, 2, "checkout", "retry", "dlt")
    group = ns.topic(f"check-checkout-{uuid.uuid4().hex[:6]}")
    bodies = {"A1": '{"amount": 30}', "B2": "{not json", "C3": '{"amount": 12}', "D4": '{"amount": -5}',
              "E5": '{"amount": 7}', "F6": '{"amount": 9}'}
    charged: list = []
    try:
        producer = Producer({**kafka_config.client(), "enable.idempotence": True})
        for key, body in bodies.items():
            producer.produce(source, body, key=key)
        producer.flush(10)
        handled, deadline = 0, time.monotonic() + 30
        with _closed_after(_reader(group, [source, retry], 2)) as consumer:
            while handled < 60 and time.monotonic() < deadline and (msg := consumer.poll(1.5)) is not None:
                if not msg.error():
                    time_limit.bounded_here(LIMIT_S, handle_checkout, msg, producer, _checkout_charge(charged), retry,
                                            dlt, hint="handle one message and return; retries go through the retry "
                                                      "topic, not a loop")
                    expect(len(producer) == 0, "handle_checkout returned before its copy was delivered: the caller "
                           "commits right after, so a crash then loses the message",
                           hint="producer.flush() before returning (produce() only queues the copy)")
                    consumer.commit(message=msg, asynchronous=False)
                    handled += 1
        producer.flush(10)
        retried = kafka_readback.read_back(retry, group=group + "-r", timeout_s=READ_BACK_S)
        dead = kafka_readback.read_back(dlt, group=group + "-d", timeout_s=READ_BACK_S)
    finally:
        _drop(source, retry, dlt, groups=(group, group + "-r", group + "-d"))
    expect(handled < 60, "poison messages keep coming back from the retry topic",
           hint=f"increase the 'retries' header on every retry and stop at {MAX_RETRIES}")
    good = {"A1", "C3", "E5", "F6"}
    expect(Counter(k.decode() for k in charged if k) == Counter(good),
           "the good orders were not each charged exactly once", hint="call charge(msg) once per message")
    expect(dead, "nothing reached the dead-letter topic", hint="after the last retry, produce to dlt_topic")
    expect(all(m.key() for m in dead) and {m.key().decode() for m in dead} == {"B2", "D4"},
           f"the DLT holds keys {sorted(str(m.key()) for m in dead)}, expected the two poison orders",
           hint="copy the key of the failed message to the copy you produce")
    expect(len(dead) == 2, f"{len(dead)} messages reached the DLT for 2 poison orders",
           hint="send each poison message to the DLT once, after its last retry")
    for msg in dead:
        headers = kafka_readback.headers_of(msg)
        expect(headers.get("retries") == str(MAX_RETRIES).encode(),
               f"a DLT message has retries={headers.get('retries')!r}, expected {MAX_RETRIES}",
               hint="retry a failed message MAX_RETRIES times (retries 1, 2, 3) before the DLT")
        expect(headers.get("error"), "a DLT message has no 'error' header", hint="put str(exc) in an 'error' header")
        expect(msg.value() == bodies[msg.key().decode()].encode(),
               f"the DLT copy of {msg.key().decode()} has the value {msg.value()!r}, not the original message's",
               hint="produce the copy with value=msg.value()")
    poisoned = next(m for m in dead if m.key() == b"D4")
    error = kafka_readback.headers_of(poisoned).get("error", b"")
    expect(b"amount must be positive" in error, f"D4's 'error' header is {error!r}; charge() raised "
           "ValueError('amount must be positive, got -5')", hint="the header holds the exception's text: str(exc)")
    per_key = Counter(m.key().decode() for m in retried if m.key())
    expect(per_key == Counter({"B2": MAX_RETRIES, "D4": MAX_RETRIES}),
           f"the retry topic holds {dict(per_key)} copies", hint=f"each poison order goes to retry {MAX_RETRIES} times")
    return f"4 charged once, 2 dead-lettered after {MAX_RETRIES} retries"


# exercise 5 ----------------------------------------------------------------------------------------------
FAILING_VALUE = 3  # the message process() raises on in the second run: partition 1, offset 1


def _start_runner(run_until_stopped: Callable, consumer: Consumer, process: Callable, stop: threading.Event,
                  errors: list[BaseException]) -> tuple[threading.Thread, _RevocableConsumer]:
    """RUN_UNTIL_STOPPED(consumer, PROCESS, STOP) in a daemon thread, handed a revocable CONSUMER; what it raises
    goes to ERRORS."""
    handed_out = _RevocableConsumer(consumer)

    def target() -> None:
        try:
            run_until_stopped(handed_out, process, stop)
        except BaseException as exc:  # noqa: BLE001 - reported by the check
            errors.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    return worker, handed_out


def _is_open(consumer: Consumer) -> bool:
    try:
        consumer.poll(0)
    except RuntimeError:
        return False
    return True


def _committed(group: str, topic: str, partitions: int) -> list[TopicPartition]:
    with _closed_after(Consumer(kafka_config.consumer(group))) as reader:
        return reader.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)


@exercise("5", "Graceful shutdown: commit, close, leave the group", stretch=True)
def graceful_shutdown(run_until_stopped: Callable, admin: AdminClient, ns: Namespace) -> str:
    (topic,) = _fresh_topics(ns, 2, "shutdown")
    group = ns.topic(f"check-shutdown-{uuid.uuid4().hex[:6]}")
    groups = (group, group + "-failing")
    processed: list[int] = []
    errors: list[BaseException] = []
    consumers = [Consumer({**kafka_config.consumer(g), "auto.offset.reset": "earliest",
                           "enable.auto.commit": False}) for g in groups]
    stop = threading.Event()
    handed_out: list[_RevocableConsumer] = []
    try:
        consumers[0].subscribe([topic])
        worker, revocable = _start_runner(run_until_stopped, consumers[0],
                                          lambda msg: processed.append(int(msg.value())), stop, errors)
        handed_out.append(revocable)
        _send_one_per_request(topic, [(n % 2, str(n).encode()) for n in range(20)])
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: len(processed) >= 20 or errors or not worker.is_alive(), timeout_s=30)
        stop.set()
        worker.join(10)
        time_limit.stop(worker)
        if errors:
            raise errors[0]
        expect(not worker.is_alive(), "run_until_stopped did not return within 10 s after stop was set",
               hint="check stop.is_set() in the poll loop, with a short poll timeout")
        expect(sorted(processed) == list(range(20)), f"{len(processed)} of 20 messages were processed",
               hint="call process(msg) for every message poll() returns (skip None and errors)")
        expect(not _is_open(consumers[0]), "the consumer is still open after run_until_stopped returned",
               hint="close() it on the way out (a finally block), so it leaves the group at once")
        description = admin.describe_consumer_groups([group])[group].result(timeout=10)
        expect(not description.members, "the consumer is still a member of the group", hint="call consumer.close()")
        committed = _committed(group, topic, 2)
        covered = sum(max(tp.offset, 0) for tp in committed)
        expect(covered == 20, f"the committed offsets cover {covered} of the 20 processed messages",
               hint="commit what you processed before closing (close() does not commit when auto-commit is off)")
        _fails_cleanly(run_until_stopped, consumers[1], groups[1], topic, handed_out)
    finally:
        stop.set()
        if all(c.revoke() for c in handed_out):  # else a thread is stuck inside a call: leave its consumer alone
            for consumer in consumers:
                with contextlib.suppress(RuntimeError):  # the learner closed it already
                    consumer.close()
            _drop(topic, groups=groups)
    return "20 processed, committed, group left"


def _fails_cleanly(run_until_stopped: Callable, consumer: Consumer, group: str, topic: str,
                   handed_out: list[_RevocableConsumer]) -> None:
    """A second run, in a group of its own, whose process() raises on FAILING_VALUE: the consumer must be closed
    all the same, and the failed message must not be committed."""
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def process(msg: Message) -> None:
        seen.append(int(msg.value()))
        if seen[-1] == FAILING_VALUE:
            raise ValueError(f"process() failed on message {FAILING_VALUE}")

    consumer.subscribe([topic])
    worker, revocable = _start_runner(run_until_stopped, consumer, process, stop, errors)
    handed_out.append(revocable)
    with contextlib.suppress(TimeoutError):  # a loop that swallows the error goes on to the end of the topic
        wait_until(lambda: not worker.is_alive() or len(seen) >= 20, timeout_s=30)
    stop.set()
    worker.join(10)
    time_limit.stop(worker)
    expect(not worker.is_alive(), f"after process() raised on message {FAILING_VALUE}, run_until_stopped did not "
           "return within 10 s of stop being set", hint="check stop.is_set() in the poll loop")
    expect(FAILING_VALUE in seen, f"a second run, whose process() raises on message {FAILING_VALUE}, never got "
           "to that message", hint="call process(msg) for every message poll() returns")
    expect(not _is_open(consumer), "when process() raised, the consumer was left open",
           hint="close() in a finally block, so it runs also when process() raises")
    failed_partition_end = _committed(group, topic, 2)[1].offset
    expect(failed_partition_end <= 1, f"the offset of message {FAILING_VALUE} was committed although process() "
           "raised on it", hint="commit a message only after process(msg) has returned")
