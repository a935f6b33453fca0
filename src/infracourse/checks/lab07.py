"""Checks of labs/07_rabbitmq.ipynb: a thumbnail task queue with RabbitMQ.

Each check declares queues and exchanges of its own (inside the notebook's namespace, with a random suffix)
on its own connection, and deletes them after. Every wait has a deadline.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pika
from pika.adapters.blocking_connection import BlockingChannel

from infracourse import config
from infracourse.checking import exercise, expect, time_limit
from infracourse.checking.explain import one_line
from infracourse.clients import pika_logging, rabbitmq_admin
from infracourse.namespace import Namespace

pika_logging.quiet()  # pika warns about nacks and returns through logging; keep stderr clean


@contextmanager
def _channel() -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(config.amqp_url()))
    try:
        channel = connection.channel()
        channel.confirm_delivery()  # the check's own publishes are in the queue when basic_publish returns
        yield channel
    finally:
        if connection.is_open:
            connection.close()


def _names(ns: Namespace, *parts: str) -> list[str]:
    suffix = uuid.uuid4().hex[:6]
    return [ns.queue(f"check-{part}-{suffix}") for part in parts]


def _cleanup(queues: list[str], exchanges: list[str] = ()) -> None:
    existing = set(rabbitmq_admin.names("queues")) | set(rabbitmq_admin.names("exchanges"))
    for name in queues:
        if name in existing:
            rabbitmq_admin.delete("queues", name)
    for name in exchanges:
        if name in existing:
            rabbitmq_admin.delete("exchanges", name)


def _drain(channel, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
    got = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return got
        got.append((properties, body))


# exercise 1 ----------------------------------------------------------------------------------------------
ROUTING_CASES = {  # routing key -> the queues that must receive it
    "task.image.resize": {"images", "audit"},
    "task.image.resize.large": {"audit"},
    "task.email.welcome": {"emails", "audit"},
    "task.email.welcome.fr": {"emails", "audit"},
    "task.video.transcode": {"audit"},
    "report.daily": set(),
}


@exercise("1", "Route tasks with a topic exchange")
def routing(declare_routing: Callable, ns: Namespace) -> str:
    exchange, images, emails, audit = _names(ns, "tasks", "images", "emails", "audit")
    queues = {"images": images, "emails": emails, "audit": audit}
    try:
        with _channel() as channel:
            declare_routing(channel, exchange, queues)
            expect(exchange in rabbitmq_admin.names("exchanges"), "the exchange was not declared",
                   hint="channel.exchange_declare(exchange, exchange_type=...)")
            kind = rabbitmq_admin.exchange_info(exchange)["type"]
            expect(kind == "topic", f"the exchange is of type {kind!r}",
                   hint="routing by word patterns needs exchange_type='topic'")
            transient = [name for name, info in [(exchange, rabbitmq_admin.exchange_info(exchange)),
                                                 *((q, rabbitmq_admin.queue_info(q)) for q in queues.values())]
                         if not info.get("durable")]
            expect(not transient, f"{', '.join(transient)} {'is' if len(transient) == 1 else 'are'} not durable: "
                   "a broker restart deletes them, and the tasks queued in them",
                   hint="declare the exchange and each queue with durable=True")
            for key in ROUTING_CASES:
                channel.basic_publish(exchange, key, key.encode())
            received = {role: {body.decode() for _, body in _drain(channel, q)} for role, q in queues.items()}
    finally:
        _cleanup(list(queues.values()), [exchange])
    for key, expected in ROUTING_CASES.items():
        for role in queues:
            if (role in expected) != (key in received[role]):
                verb = "should" if role in expected else "should not"
                expect(False, f"the {role} queue {verb} receive a task routed with {key!r}",
                       hint="'*' matches exactly one word, '#' zero or more words")
    return f"{len(ROUTING_CASES)} routing keys land where they should"


# exercise 2 ----------------------------------------------------------------------------------------------
HEAVY_S, LIGHT_S = 0.2, 0.02


class _AckSpy:
    """The worker's channel, noting which delivery channel.consume() handed out last and which were acked, so
    that handle() can tell whether its job was acked before the work was done."""

    def __init__(self, channel: BlockingChannel) -> None:
        self._channel, self.current, self.acked = channel, None, set()

    def __getattr__(self, name: str):
        return getattr(self._channel, name)

    def consume(self, *args, **kwargs):
        for method, properties, body in self._channel.consume(*args, **kwargs):
            self.current = method.delivery_tag if method is not None else None
            yield method, properties, body

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        self.acked.add(delivery_tag)
        self._channel.basic_ack(delivery_tag, multiple)


@exercise("2", "A fair worker: prefetch 1, ack after the work")
def fair_worker(work: Callable, ns: Namespace) -> str:
    (queue,) = _names(ns, "thumbnails")
    done: list[tuple[str, float]] = []
    errors: list[BaseException] = []
    returned: dict[str, object] = {}

    early: list[str] = []

    def handle_for(name: str, spy: _AckSpy) -> Callable[[bytes], None]:
        def handle(body: bytes) -> None:
            if spy.current is not None and spy.current in spy.acked:
                early.append(name)
            time.sleep(float(body))
            done.append((name, float(body)))

        return handle

    def run(name: str) -> None:
        try:
            connection = pika.BlockingConnection(pika.URLParameters(config.amqp_url()))
            try:
                spy = _AckSpy(connection.channel())
                returned[name] = work(spy, queue, handle_for(name, spy), 1.0)
            finally:
                if connection.is_open:
                    connection.close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    try:
        with _channel() as channel:
            channel.queue_declare(queue, durable=True)
            threads = [threading.Thread(target=run, args=(f"worker-{i}",), daemon=True) for i in (1, 2)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 10
            while channel.queue_declare(queue, passive=True).method.consumer_count < 2:
                if errors or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            if errors:
                raise errors[0]
            expect(channel.queue_declare(queue, passive=True).method.consumer_count == 2,
                   "the workers did not start consuming within 10 s", hint="basic_consume or channel.consume(queue)")
            for seconds in [HEAVY_S, LIGHT_S] * 6:
                channel.basic_publish("", queue, str(seconds).encode(), pika.BasicProperties(delivery_mode=2))
            deadline = time.monotonic() + 20  # for both workers together
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            time_limit.stop(*threads)
            if errors:
                raise errors[0]
            expect(not any(t.is_alive() for t in threads), "work() did not return within 20 s",
                   hint="stop when nothing arrives for idle_s (inactivity_timeout)")
            left = channel.queue_declare(queue, passive=True).method.message_count
    finally:
        _cleanup([queue])
    expect(left == 0, f"{len(done)} of 12 jobs were handled and {left} went back to the queue when the workers "
           "stopped: they were never acked", hint="basic_ack(method.delivery_tag) after handle(body) returns (with "
           "a prefetch limit, an unacked job also holds back the next one)")
    expect(len(done) >= 12, f"{len(done)} of 12 jobs were handled", hint="call handle(body) for every message")
    expect(len(done) == 12, f"{len(done)} jobs were handled for 12 published (some twice)",
           hint="ack each message once, after handling it")
    expect(not early, f"{len(early)} jobs were acked before handle() ran: a worker that dies mid-job loses them",
           hint="call basic_ack(method.delivery_tag) after handle(body) returns")
    heavy = Counter(name for name, seconds in done if seconds == HEAVY_S)
    expect(min(heavy["worker-1"], heavy["worker-2"]) >= 2,
           f"one worker got {max(heavy.values())} of the 6 heavy jobs: dispatch was round-robin, not fair",
           hint="basic_qos(prefetch_count=1) before consuming, and manual acks (prefetch is ignored with auto_ack)")
    expect(sorted(returned.values()) == sorted(Counter(n for n, _ in done).values()),
           f"work() returned {sorted(returned.values())}", hint="return how many jobs this worker handled")
    return "the heavy jobs went to both workers"


# exercise 3 ----------------------------------------------------------------------------------------------
@exercise("3", "Poison jobs go to the dead-letter queue")
def dead_letters(declare_work_queue: Callable, on_job: Callable, ns: Namespace) -> str:
    queue, dlx, dlq = _names(ns, "render", "dlx", "dead")
    jobs = [b"render 1", b"POISON 2", b"render 3", b"POISON 4", b"render 5"]
    handled: list[bytes] = []

    def handle(body: bytes) -> None:
        if body.startswith(b"POISON"):
            raise ValueError("cannot render a corrupt image")
        handled.append(body)

    try:
        with _channel() as channel:
            channel.exchange_declare(dlx, exchange_type="fanout", durable=True)
            channel.queue_declare(dlq, durable=True)
            channel.queue_bind(dlq, dlx)
            declare_work_queue(channel, queue, dlx)
            expect(rabbitmq_admin.queue_info(queue).get("durable"), f"the work queue {queue} is not durable: a "
                   "broker restart deletes it and its jobs", hint="channel.queue_declare(queue, durable=True, ...)")
            for body in jobs:
                channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
            deliveries = 0
            while deliveries < 30:
                method, properties, body = channel.basic_get(queue)
                if method is None:
                    break
                deliveries += 1
                on_job(channel, method, properties, body, handle)
            time.sleep(0.2)  # rejections are dead-lettered asynchronously
            dead = _drain(channel, dlq)
            left = channel.queue_declare(queue, passive=True).method.message_count
    finally:
        _cleanup([queue, dlq], [dlx])
    expect(deliveries < 30, "poison jobs keep coming back to the work queue",
           hint="reject a poison job with requeue=False, so the broker dead-letters it")
    expect(sorted(handled) == [b"render 1", b"render 3", b"render 5"], "the good jobs were not each handled once",
           hint="call handle(body) once per delivery")
    expect(left == 0, f"{left} jobs are still in the work queue", hint="ack every good job after handling it")
    expect(dead, "nothing reached the dead-letter queue",
           hint="declare the work queue with arguments={'x-dead-letter-exchange': ...} and reject poison jobs "
                "with requeue=False (an ack drops them for good)")
    expect(sorted(body for _, body in dead) == [b"POISON 2", b"POISON 4"],
           f"the dead-letter queue holds {len(dead)} jobs, expected the 2 poison ones",
           hint="only a job whose handle() raised is rejected")
    reasons = {d["reason"] for props, _ in dead for d in (props.headers or {}).get("x-death", [])}
    expect(reasons == {"rejected"}, f"dead-lettered for {sorted(reasons)}, expected 'rejected'",
           hint="basic_reject(delivery_tag, requeue=False) or basic_nack(..., requeue=False)")
    return "3 handled, 2 dead-lettered"


# exercise 4 ----------------------------------------------------------------------------------------------
@exercise("4", "Publish with confirms, mandatory and persistence")
def reliable_publish(publish_jobs: Callable, ns: Namespace) -> str:
    exchange, queue = _names(ns, "jobs", "resize")
    jobs = [("resize", f"resize {n}".encode()) for n in range(5)]
    jobs.insert(3, ("crop", b"crop 9"))  # no queue is bound for crop
    try:
        with _channel() as channel:
            channel.exchange_declare(exchange, exchange_type="direct", durable=True)
            channel.queue_declare(queue, durable=True, arguments={"x-max-length": 3, "x-overflow": "reject-publish"})
            channel.queue_bind(queue, exchange, routing_key="resize")
            connection = pika.BlockingConnection(pika.URLParameters(config.amqp_url()))
            try:
                failed = publish_jobs(connection.channel(), exchange, jobs)
            finally:
                if connection.is_open:
                    connection.close()
            stored = _drain(channel, queue)
    finally:
        _cleanup([queue], [exchange])
    expect(isinstance(failed, list), f"publish_jobs returned {type(failed).__name__}, expected a list",
           hint="return the (routing_key, body) pairs the broker did not accept")
    failed_bodies = sorted(body for _, body in failed)
    expect(len(stored) == 3, f"{len(stored)} jobs are in the queue, expected 3 (it holds at most 3)")
    expect(failed, "publish_jobs reported no failure, but 3 of the 6 jobs never reached a queue",
           hint="turn on publisher confirms (channel.confirm_delivery()): without them basic_publish never hears "
                "that the broker refused or could not route a message")
    expect(b"crop 9" in failed_bodies, "the unroutable crop job is not among the failures",
           hint="publish with mandatory=True, so an unroutable message raises UnroutableError")
    expect(sorted([b"resize 3", b"resize 4"]) == sorted(b for b in failed_bodies if b.startswith(b"resize")),
           f"{sum(b.startswith(b'resize') for b in failed_bodies)} resize jobs reported failed; the full queue "
           "refused 2", hint="channel.confirm_delivery() first; a refused message raises NackError")
    expect(len(failed) == 3, f"{len(failed)} failures reported, expected 3")
    modes = {props.delivery_mode for props, _ in stored}
    expect(modes == {2}, f"the stored jobs have delivery_mode {sorted(map(str, modes))}, expected 2 (persistent)",
           hint="properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)")
    return "3 failures reported (2 refused, 1 unroutable), stored jobs persistent"


# exercise 5 ----------------------------------------------------------------------------------------------
@exercise("5", "An RPC client that matches correlation ids and times out", stretch=True)
def rpc_client(rpc_call: Callable, ns: Namespace) -> str:
    (queue,) = _names(ns, "quotes")
    stop = threading.Event()
    served: list[str] = []

    def server() -> None:
        connection = pika.BlockingConnection(pika.URLParameters(config.amqp_url()))
        channel = connection.channel()
        for method, props, body in channel.consume(queue, inactivity_timeout=0.1):
            if stop.is_set():
                break
            if method is None:
                continue
            served.append(body.decode())
            if body != b"silent":  # a stale answer to someone else's call first, then the real one
                channel.basic_publish("", props.reply_to, b"stale answer",
                                      pika.BasicProperties(correlation_id=f"not-{props.correlation_id}"))
                channel.basic_publish("", props.reply_to, b"quote for " + body,
                                      pika.BasicProperties(correlation_id=props.correlation_id))
            channel.basic_ack(method.delivery_tag)
        connection.close()

    results: dict[str, object] = {}

    def call(request: str, timeout_s: float) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(config.amqp_url()))
        try:
            results[request] = rpc_call(connection, queue, request.encode(), timeout_s)
        except BaseException as exc:  # noqa: BLE001 - reported below
            results[request] = exc
        finally:
            if connection.is_open:
                connection.close()

    with _channel() as channel:
        channel.queue_declare(queue)
    serving = threading.Thread(target=server, daemon=True)
    serving.start()
    try:
        for request, timeout_s in [("10 pages", 2.0), ("silent", 0.5)]:
            started = time.monotonic()
            time_limit.bounded(timeout_s + 3, call, request, timeout_s, what=f"rpc_call({request!r})",
                               hint="stop waiting after timeout_s and raise TimeoutError")
            results[request + " took"] = time.monotonic() - started
    finally:
        stop.set()
        serving.join(5)
        _cleanup([queue])
    answer = results["10 pages"]
    if isinstance(answer, NotImplementedError):
        raise answer
    expect(not isinstance(answer, BaseException), f"rpc_call raised {one_line(answer)}",
           hint="publish to the queue with reply_to and correlation_id, then wait for the matching reply")
    expect(served and served[0] == "10 pages", "the server did not receive the request",
           hint="basic_publish('', queue, request, properties with reply_to and correlation_id)")
    expect(answer != b"stale answer", "rpc_call returned a reply that belongs to another call",
           hint="ignore replies whose correlation_id is not the one you sent")
    expect(answer == b"quote for 10 pages", f"rpc_call returned {answer!r}", hint="return the reply's body")
    silent = results["silent"]
    expect(isinstance(silent, TimeoutError), f"a request that gets no answer returned {silent!r}",
           hint="raise TimeoutError when no matching reply arrives within timeout_s")
    expect(results["silent took"] < 2.0, f"the unanswered call took {results['silent took']:.1f} s for a 0.5 s "
           "timeout", hint="process_data_events(time_limit=...) in small steps until the deadline")
    return "matched its own reply, ignored a stale one, timed out on silence"
