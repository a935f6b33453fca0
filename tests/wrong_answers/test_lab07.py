"""Lab 07 checks fail on plausible wrong answers, with a message that helps, and pass the reference."""

from __future__ import annotations

import time
import uuid

import pika
import pytest
from pika.exceptions import NackError, UnroutableError
from verdicts import assert_fails, assert_not_done, assert_passes, scratch_namespace

from infracourse.checks import lab07 as checks


@pytest.fixture
def ns():
    with scratch_namespace("rabbitmq") as namespace:
        yield namespace


# exercise 1 ----------------------------------------------------------------------------------------------
def routing(kind="topic", images="task.image.*", emails="task.email.#", audit="task.#", durable_queues=True):
    def declare_routing(channel, exchange, queues):
        channel.exchange_declare(exchange, exchange_type=kind, durable=True)
        for role, pattern in [("images", images), ("emails", emails), ("audit", audit)]:
            channel.queue_declare(queues[role], durable=durable_queues)
            channel.queue_bind(queues[role], exchange, routing_key=pattern)

    return declare_routing


def test_images_with_hash_gets_too_much(ns):
    result = checks.routing(routing(images="task.image.#"), ns)
    assert_fails(result, "images queue should not", in_hint=("'*'",))


def test_emails_with_star_misses_deep_keys(ns):
    assert_fails(checks.routing(routing(emails="task.email.*"), ns), "emails queue should receive")


def test_audit_bound_to_everything_fails(ns):
    assert_fails(checks.routing(routing(audit="#"), ns), "report.daily")


def test_direct_exchange_fails(ns):
    assert_fails(checks.routing(routing(kind="direct"), ns), "type 'direct'")


def test_non_durable_queues_fail(ns):
    result = checks.routing(routing(durable_queues=False), ns)
    assert_fails(result, "are not durable", "images", in_hint=("durable=True",))


def test_routing_reference_passes(ns):
    assert_passes(checks.routing(routing(), ns))


# exercise 2 ----------------------------------------------------------------------------------------------
def worker(prefetch=1, ack=True, auto_ack=False, ack_first=False, count=True):
    def work(channel, queue, handle, idle_s):
        if prefetch:
            channel.basic_qos(prefetch_count=prefetch)
        handled = 0
        for method, _, body in channel.consume(queue, auto_ack=auto_ack, inactivity_timeout=idle_s):
            if method is None:
                break
            if ack_first:
                channel.basic_ack(method.delivery_tag)
            handle(body)
            if ack and not auto_ack and not ack_first:
                channel.basic_ack(method.delivery_tag)
            handled += 1
        channel.cancel()
        return handled if count else None

    return work


def test_worker_without_prefetch_is_round_robin(ns):
    result = checks.fair_worker(worker(prefetch=0), ns)
    assert_fails(result, "round-robin", in_hint=("prefetch_count=1",))


def test_worker_with_auto_ack_is_round_robin(ns):
    assert_fails(checks.fair_worker(worker(auto_ack=True), ns), "round-robin")


def test_worker_that_never_acks_fails(ns):
    assert_fails(checks.fair_worker(worker(ack=False), ns), "never acked")


def test_worker_reference_passes(ns):
    assert_passes(checks.fair_worker(worker(), ns))


# exercise 3 ----------------------------------------------------------------------------------------------
def declare(with_dlx=True, durable=True):
    def declare_work_queue(channel, queue, dead_letter_exchange):
        arguments = {"x-dead-letter-exchange": dead_letter_exchange} if with_dlx else None
        channel.queue_declare(queue, durable=durable, arguments=arguments)

    return declare_work_queue


def on_job(poison="reject"):
    def handle_delivery(channel, method, properties, body, handle):
        try:
            handle(body)
        except ValueError:
            if poison == "requeue":
                channel.basic_nack(method.delivery_tag, requeue=True)
            elif poison == "ack":
                channel.basic_ack(method.delivery_tag)
            else:
                channel.basic_reject(method.delivery_tag, requeue=False)
        else:
            channel.basic_ack(method.delivery_tag)

    return handle_delivery


def test_requeueing_poison_loops(ns):
    assert_fails(checks.dead_letters(declare(), on_job("requeue"), ns), "keep coming back")


def test_acking_poison_drops_it(ns):
    assert_fails(checks.dead_letters(declare(), on_job("ack"), ns), "nothing reached")


def test_queue_without_dlx_drops_poison(ns):
    result = checks.dead_letters(declare(with_dlx=False), on_job(), ns)
    assert_fails(result, in_hint=("x-dead-letter-exchange",))


def test_unsolved_dead_letters_is_not_done(ns):
    def stub(*args):
        raise NotImplementedError

    assert_not_done(checks.dead_letters(stub, stub, ns))


def test_dead_letters_reference_passes(ns):
    assert_passes(checks.dead_letters(declare(), on_job(), ns))


# exercise 4 ----------------------------------------------------------------------------------------------
def publisher(confirms=True, mandatory=True, persistent=True, keep_going=True):
    def publish_jobs(channel, exchange, jobs):
        if confirms:
            channel.confirm_delivery()
        properties = pika.BasicProperties(delivery_mode=2 if persistent else None)
        failed = []
        for key, body in jobs:
            try:
                channel.basic_publish(exchange, key, body, properties, mandatory=mandatory)
            except (NackError, UnroutableError):
                failed.append((key, body))
                if not keep_going:
                    break
        return failed

    return publish_jobs


def test_publishing_without_confirms_misses_refusals(ns):
    result = checks.reliable_publish(publisher(confirms=False), ns)
    assert_fails(result)
    assert "confirm_delivery" in result.message + result.hint, result


def test_publishing_without_mandatory_misses_unroutable(ns):
    assert_fails(checks.reliable_publish(publisher(mandatory=False), ns), "unroutable")


def test_transient_messages_fail(ns):
    assert_fails(checks.reliable_publish(publisher(persistent=False), ns), "persistent")


def test_publishing_reference_passes(ns):
    assert_passes(checks.reliable_publish(publisher(), ns))


# exercise 5 ----------------------------------------------------------------------------------------------
def rpc(match=True, timeout=True):
    def rpc_call(connection, queue, request, timeout_s):
        channel = connection.channel()
        reply_queue = channel.queue_declare("", exclusive=True).method.queue
        call_id = str(uuid.uuid4())
        channel.basic_publish("", queue, request, pika.BasicProperties(reply_to=reply_queue, correlation_id=call_id))
        deadline = time.monotonic() + (timeout_s if timeout else 60)
        for method, properties, body in channel.consume(reply_queue, auto_ack=True, inactivity_timeout=0.05):
            if method is not None and (properties.correlation_id == call_id or not match):
                return body
            if time.monotonic() > deadline:
                raise TimeoutError

    return rpc_call


def test_rpc_taking_the_first_reply_fails(ns):
    assert_fails(checks.rpc_client(rpc(match=False), ns), "another call")


def test_rpc_without_timeout_fails(ns):
    result = checks.rpc_client(rpc(timeout=False), ns)
    assert_fails(result, "did not return", in_hint=("TimeoutError",))


def test_rpc_reference_passes(ns):
    assert_passes(checks.rpc_client(rpc(), ns))


# requirements the tests above did not break on their own -----------------------------------------------
def test_worker_acking_before_the_work_fails(ns):
    assert_fails(checks.fair_worker(worker(ack_first=True), ns), "acked before handle() ran")


def test_worker_not_returning_the_count_fails(ns):
    assert_fails(checks.fair_worker(worker(count=False), ns))


def test_non_durable_work_queue_fails(ns):
    assert_fails(checks.dead_letters(declare(durable=False), on_job(), ns), "is not durable",
                 in_hint=("durable=True",))


def test_publishing_stopping_at_the_first_failure_fails(ns):
    assert_fails(checks.reliable_publish(publisher(keep_going=False), ns))


REQUIREMENTS = {
    "1": {
        "Declare `exchange` as a durable **topic** exchange": ("test_direct_exchange_fails",),
        "the three durable queues": "test_non_durable_queues_fail",
        "with exactly one word after `task.image`": "test_images_with_hash_gets_too_much",
        "however many words follow `task.email`": "test_emails_with_star_misses_deep_keys",
        "and nothing else": "test_audit_bound_to_everything_fails",
    },
    "2": {
        "holding at most **one**\nunacked job at a time": "test_worker_without_prefetch_is_round_robin",
        "consume `queue` with manual acks": "test_worker_with_auto_ack_is_round_robin",
        "ack it only after `handle` returns": ("test_worker_acking_before_the_work_fails",
                                               "test_worker_that_never_acks_fails"),
        "return how many jobs you handled": "test_worker_not_returning_the_count_fails",
    },
    "3": {
        "declares a durable `queue`": "test_non_durable_work_queue_fails",
        "whose\nrejected messages go to `dead_letter_exchange`": "test_queue_without_dlx_drops_poison",
        "ack the job if it returned": "test_acking_poison_drops_it",
        "reject it **without requeue**": "test_requeueing_poison_loops",
    },
    "4": {
        "Turn on publisher\nconfirms": "test_publishing_without_confirms_misses_refusals",
        "as a **persistent** message": "test_transient_messages_fail",
        "with `mandatory=True`": "test_publishing_without_mandatory_misses_unroutable",
        "Keep going after a failure.": "test_publishing_stopping_at_the_first_failure_fails",
    },
    "5": {
        "return the body of the reply **whose correlation id matches**": "test_rpc_taking_the_first_reply_fails",
        "Raise `TimeoutError` if no matching reply arrives within `timeout_s` seconds.":
            "test_rpc_without_timeout_fails",
    },
}
