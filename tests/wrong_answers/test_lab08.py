"""Lab 08 checks (async, NATS) fail on plausible wrong answers with a message that helps, and pass the
reference answers. Each test runs its own event loop and its own namespace on the shared NATS server."""

from __future__ import annotations

import asyncio
import json
import time

import nats
import pytest
from nats.errors import NoRespondersError
from nats.js.api import StreamConfig
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from verdicts import assert_fails, assert_not_done, assert_passes, scratch_namespace

from infracourse import config
from infracourse.checks import lab08 as checks
from infracourse.namespace import Namespace


@pytest.fixture
def ns():
    with scratch_namespace("nats") as namespace:
        yield namespace


def run(ns: Namespace, scenario):
    """Connect, create the lab's stream and KV bucket, run SCENARIO(nc, js, kv), close."""

    async def main():
        nc = await nats.connect(config.nats_url(), connect_timeout=3, max_reconnect_attempts=0)
        try:
            js = nc.jetstream()
            await js.add_stream(StreamConfig(name=ns.stream("notify"), subjects=[ns.subject("notify.user.*")]))
            kv = await js.create_key_value(bucket=ns.stream("notify_state"), history=5)
            return await scenario(nc, js, kv)
        finally:
            await nc.close()

    return asyncio.run(main())


ARGS = {  # what each check cell passes after the learner's function
    checks.notify: lambda ns, nc, js, kv: (nc, ns),
    checks.presence: lambda ns, nc, js, kv: (nc, ns),
    checks.catch_up: lambda ns, nc, js, kv: (js, ns),
    checks.increment_unread: lambda ns, nc, js, kv: (kv, js),
    checks.follow_settings: lambda ns, nc, js, kv: (kv,),
}


@pytest.fixture
def check(ns):
    """check(checks.X, fn): run the check on FN in a fresh connection, with what its check cell passes."""
    return lambda check_fn, fn: run(ns, lambda nc, js, kv: check_fn(fn, *ARGS[check_fn](ns, nc, js, kv)))


# Exercise 1 ---------------------------------------------------------------------------------------------

def test_notify_on_a_shared_subject_fails(ns, check):
    async def broadcast(nc, user_id, text):
        await nc.publish(ns.subject("notify.all"), json.dumps({"user": user_id, "text": text}).encode())

    assert_fails(check(checks.notify, broadcast), "received 0 messages", "notify.all")


def test_notify_with_plain_text_payload_fails(ns, check):
    async def plain(nc, user_id, text):
        await nc.publish(ns.subject(f"notify.user.{user_id}"), text.encode())

    assert_fails(check(checks.notify, plain), "not JSON")


def test_notify_outside_the_namespace_fails(ns, check):
    async def no_namespace(nc, user_id, text):
        await nc.publish(f"notify.user.{user_id}.{ns.slug}", json.dumps({"user": user_id, "text": text}).encode())

    assert_fails(check(checks.notify, no_namespace), "namespace")


def test_notify_reference_passes_and_stub_is_not_done(ns, check):
    async def reference(nc, user_id, text):
        await nc.publish(ns.subject(f"notify.user.{user_id}"), json.dumps({"user": user_id, "text": text}).encode())

    async def stub(nc, user_id, text):
        raise NotImplementedError

    assert_passes(check(checks.notify, reference))
    assert_not_done(check(checks.notify, stub))


# Exercise 2 ---------------------------------------------------------------------------------------------

def make_presence(ns, *, timeout_s=0.25, guarded=True):
    async def presence(nc, user_id):
        try:
            return (await nc.request(ns.subject(f"presence.{user_id}"), b"", timeout=timeout_s)).data.decode()
        except (NoRespondersError, TimeoutError):
            if not guarded:
                raise
            return "unknown"

    return presence


def test_presence_without_error_handling_fails(ns, check):
    assert_fails(check(checks.presence, make_presence(ns, guarded=False)), "NoRespondersError")


def test_presence_with_a_long_timeout_fails(ns, check):
    assert_fails(check(checks.presence, make_presence(ns, timeout_s=5)), "waited 1.0 s")


def test_presence_reference_passes(ns, check):
    assert_passes(check(checks.presence, make_presence(ns)))


# Exercise 3 ---------------------------------------------------------------------------------------------

def make_catch_up(ns, *, ack=True, durable=True, keep_fetching=True):
    async def catch_up(js, user_id):
        inbox = await js.pull_subscribe(ns.subject(f"notify.user.{user_id}"), stream=ns.stream("notify"),
                                        durable=ns.stream(f"inbox_{user_id}") if durable else None)
        texts = []
        try:
            while True:
                for msg in await inbox.fetch(10, timeout=0.3):
                    texts.append(json.loads(msg.data)["text"])
                    if ack:
                        await msg.ack_sync()
                if not keep_fetching:
                    break
        except TimeoutError:
            pass
        finally:
            await inbox.unsubscribe()
        return texts

    return catch_up


def test_catch_up_without_acks_fails(ns, check):
    assert_fails(check(checks.catch_up, make_catch_up(ns, ack=False)), "never acknowledged")


def test_catch_up_with_one_fetch_fails(ns, check):
    result = check(checks.catch_up, make_catch_up(ns, keep_fetching=False))
    assert_fails(result, "10 of the 12", in_hint=("keep fetching",))


def test_catch_up_with_an_ephemeral_consumer_fails(ns, check):
    assert_fails(check(checks.catch_up, make_catch_up(ns, durable=False)), "durable consumer")


def test_catch_up_reference_passes(ns, check):
    assert_passes(check(checks.catch_up, make_catch_up(ns)))


# Exercise 4 ---------------------------------------------------------------------------------------------

async def naive_increment(kv, user_id):
    try:
        count = int((await kv.get(f"unread.{user_id}")).value) + 1
    except KeyNotFoundError:
        count = 1
    await kv.put(f"unread.{user_id}", str(count).encode())
    return count


async def increment_without_retry(kv, user_id):
    try:
        entry = await kv.get(f"unread.{user_id}")
    except KeyNotFoundError:
        await kv.create(f"unread.{user_id}", b"1")
        return 1
    count = int(entry.value) + 1
    await kv.update(f"unread.{user_id}", str(count).encode(), last=entry.revision)
    return count


async def reference_increment(kv, user_id):
    key = f"unread.{user_id}"
    while True:
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            try:
                await kv.create(key, b"1")
                return 1
            except KeyWrongLastSequenceError:
                continue
        try:
            await kv.update(key, str(int(entry.value) + 1).encode(), last=entry.revision)
            return int(entry.value) + 1
        except KeyWrongLastSequenceError:
            continue


def test_increment_with_get_and_put_loses_updates(check):
    result = check(checks.increment_unread, naive_increment)
    assert_fails(result, "updates were lost", in_hint=("revision",))


def test_increment_without_retry_fails(check):
    result = check(checks.increment_unread, increment_without_retry)
    assert_fails(result, "KeyWrongLastSequenceError", in_hint=("retry",))


def test_increment_reference_passes_twice(ns):
    async def twice(nc, js, kv):
        return [await checks.increment_unread(reference_increment, kv, js) for _ in range(2)]

    for result in run(ns, twice):
        assert_passes(result)


def test_increment_that_swallows_cancellation_fails_in_time(ns):
    # A bare except also swallows the CancelledError of the check's time limit: the check used to wait forever.
    released = asyncio.Event()

    async def retries_everything(kv, user_id):
        while not released.is_set():
            try:
                await asyncio.sleep(0.05)
                entry = await kv.get(f"unread.{user_id}")  # KeyNotFoundError, forever
                await kv.update(entry.key, str(int(entry.value) + 1).encode(), last=entry.revision)
                return int(entry.value) + 1
            except:  # noqa: E722
                pass

    async def scenario(nc, js, kv):
        started = time.monotonic()
        result = await checks.increment_unread(retries_everything, kv, js)
        released.set()  # lets the abandoned calls end, so the test's event loop can close
        return result, time.monotonic() - started

    result, took = run(ns, scenario)
    assert_fails(result, "gave up after 15 s")
    assert took < 20


# Exercise 5 ---------------------------------------------------------------------------------------------

async def read_once(kv, user_id, apply, stop):
    apply(json.loads((await kv.get(f"settings.{user_id}")).value))
    await stop.wait()


async def poll(kv, user_id, apply, stop):
    last = None
    while not stop.is_set():
        entry = await kv.get(f"settings.{user_id}")
        if entry.revision != last:
            apply(json.loads(entry.value))
            last = entry.revision
        await asyncio.sleep(0.3)


async def never_stops(kv, user_id, apply, stop):
    watcher = await kv.watch(f"settings.{user_id}")
    async for entry in watcher:
        if entry is not None:
            apply(json.loads(entry.value))


async def reference_follow(kv, user_id, apply, stop):
    watcher = await kv.watch(f"settings.{user_id}")
    try:
        while not stop.is_set():
            try:
                entry = await watcher.updates(timeout=0.2)
            except TimeoutError:
                continue
            if entry is not None and entry.value:
                apply(json.loads(entry.value))
    finally:
        await watcher.stop()


def test_follow_settings_reading_once_fails(check):
    assert_fails(check(checks.follow_settings, read_once), "called 1 times for 3 values")


def test_follow_settings_polling_skips_a_change(check):
    result = check(checks.follow_settings, poll)
    assert_fails(result, "skipped", in_hint=("watch",))


def test_follow_settings_that_never_stops_fails(check):
    assert_fails(check(checks.follow_settings, never_stops), "did not return")


def test_follow_settings_reference_passes(check):
    assert_passes(check(checks.follow_settings, reference_follow))


async def sleeps_until_stopped(kv, user_id, apply, stop):
    apply(json.loads((await kv.get(f"settings.{user_id}")).value))
    while not stop.is_set():
        time.sleep(0.1)  # blocks the event loop: stop is never set, no asyncio timeout can fire


def test_follow_settings_blocking_the_event_loop_fails_in_time(check):
    # An await-free loop used to hang the check (and the notebook) for good.
    result = check(checks.follow_settings, sleeps_until_stopped)
    assert_fails(result, "blocked the event loop", in_hint=("time.sleep",))


async def ignores_stop_and_cancel(kv, user_id, apply, stop):
    watcher = await kv.watch(f"settings.{user_id}")
    for _ in range(100):  # ends on its own after a while, so the test's event loop can close
        try:
            entry = await watcher.updates(timeout=0.1)
        except:  # noqa: E722 - also swallows the check's cancellation
            continue
        if entry is not None and entry.value:
            apply(json.loads(entry.value))


def test_follow_settings_that_swallows_cancellation_fails_in_time(check):
    assert_fails(check(checks.follow_settings, ignores_stop_and_cancel), "did not return within 2 s after stop")


# requirements the tests above did not break on their own -----------------------------------------------
def test_presence_returning_bytes_fails(ns, check):
    async def raw(nc, user_id):
        try:
            return (await nc.request(ns.subject(f"presence.{user_id}"), b"", timeout=0.25)).data
        except (NoRespondersError, TimeoutError):
            return "unknown"

    assert_fails(check(checks.presence, raw), "b'online'")


def test_catch_up_reading_every_user_fails(ns, check):
    async def everyone(js, user_id):
        inbox = await js.pull_subscribe(ns.subject("notify.user.*"), stream=ns.stream("notify"),
                                        durable=ns.stream(f"inbox_{user_id}"))
        texts = []
        try:
            while True:
                for msg in await inbox.fetch(10, timeout=0.3):
                    texts.append(json.loads(msg.data)["text"])
                    await msg.ack_sync()
        except TimeoutError:
            pass
        finally:
            await inbox.unsubscribe()
        return texts

    assert_fails(check(checks.catch_up, everyone))


def test_increment_not_returning_the_count_fails(check):
    async def no_return(kv, user_id):
        await reference_increment(kv, user_id)

    assert_fails(check(checks.increment_unread, no_return), "None")


def test_increment_starting_a_new_key_at_zero_fails(check):
    async def zero_first(kv, user_id):
        key = f"unread.{user_id}"
        try:
            await kv.create(key, b"0")
            return 0
        except KeyWrongLastSequenceError:
            return await reference_increment(kv, user_id)

    assert_fails(check(checks.increment_unread, zero_first))


def test_follow_settings_skipping_the_current_value_fails(check):
    async def changes_only(kv, user_id, apply, stop):
        watcher = await kv.watch(f"settings.{user_id}", include_history=False)
        first = True
        try:
            while not stop.is_set():
                try:
                    entry = await watcher.updates(timeout=0.2)
                except TimeoutError:
                    continue
                if entry is not None and entry.value:
                    if first:  # the current settings: skipped, only changes are applied
                        first = False
                        continue
                    apply(json.loads(entry.value))
        finally:
            await watcher.stop()

    assert_fails(check(checks.follow_settings, changes_only))


REQUIREMENTS = {
    "1": {
        "publish the JSON object `{\"user\": user_id, \"text\": text}` (as bytes)":
            "test_notify_with_plain_text_payload_fails",
        "to that\nuser's subject": ("test_notify_on_a_shared_subject_fails", "test_notify_outside_the_namespace_fails"),
    },
    "2": {
        "return the reply's text": "test_presence_returning_bytes_fails",
        "return `\"unknown\"` when nobody\nanswers": "test_presence_without_error_handling_fails",
        "or the answer takes longer than `PRESENCE_TIMEOUT_S`": "test_presence_with_a_long_timeout_fails",
    },
    "3": {
        "through a **durable pull consumer**": "test_catch_up_with_an_ephemeral_consumer_fails",
        "that sees only that\nuser's subject": "test_catch_up_reading_every_user_fails",
        "fetch in batches of 10 until a fetch times out": "test_catch_up_with_one_fetch_fails",
        "acknowledge each message after taking its\ntext": "test_catch_up_without_acks_fails",
    },
    "4": {
        "add one and return the new\ncount": "test_increment_not_returning_the_count_fails",
        "without losing an increment when two workers race": ("test_increment_with_get_and_put_loses_updates",
                                                              "test_increment_without_retry_fails"),
        "A key that does not exist yet counts as 0.": "test_increment_starting_a_new_key_at_zero_fails",
    },
    "5": {
        "call `apply(settings_dict)` with the current settings":
            "test_follow_settings_skipping_the_current_value_fails",
        "then\nagain on every change": ("test_follow_settings_reading_once_fails",
                                        "test_follow_settings_polling_skips_a_change"),
        "return within a second after the `asyncio.Event` `stop` is set": "test_follow_settings_that_never_stops_fails",
    },
}
