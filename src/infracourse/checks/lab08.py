"""Checks of labs/08_nats_jetstream.ipynb: real-time notifications with NATS.

nats-py is asyncio and the learner's code holds connections of the notebook's event loop, so every check
here is an async check (infracourse.checking.async_exercise) that the check cell awaits:

    await checks.notify(notify, nc, ns)

Each check creates what it needs under the lab's namespace, waits with timeouts only, and removes the
consumers and messages it made before it starts, so it can be run again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import nats.errors
import nats.js.errors
from nats.aio.client import Client

from infracourse.checking import CheckFailed, expect
from infracourse.checking.async_exercise import async_exercise
from infracourse.namespace import Namespace

NOTIFY_STREAM = "notify"  # ns.stream(NOTIFY_STREAM) holds notify.user.* in the lab


async def _collect(nc: Client, subject: str, into: list) -> nats.aio.subscription.Subscription:
    async def keep(msg) -> None:
        into.append(msg)

    return await nc.subscribe(subject, cb=keep)


async def _wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


@async_exercise("1", "Send a notification to one user")
async def notify(fn, nc: Client, ns: Namespace) -> str:
    everything: list = []
    per_user: dict[str, list] = {"alice": [], "bob": []}
    subs = [await _collect(nc, ns.subject(">"), everything)]
    subs += [await _collect(nc, ns.subject(f"notify.user.{user}"), got) for user, got in per_user.items()]
    await nc.flush()
    try:
        await fn(nc, "alice", "your order shipped")
        await fn(nc, "bob", "new follower")
        await nc.flush()
        await _wait_for(lambda: len(everything) >= 2, 1.0)
    finally:
        for sub in subs:
            await sub.unsubscribe()
    expect(everything, "nothing was published under this lab's namespace",
           hint="build the subject with ns.subject(...) and publish with nc.publish")
    subjects = sorted({msg.subject.removeprefix(ns.subject("")) for msg in everything})
    for user, got in per_user.items():
        expect(len(got) == 1, f"{user}'s subject notify.user.{user} received {len(got)} messages, expected 1 "
               f"(you published to {', '.join(subjects)})",
               hint="one subject per user: notify.user.<user_id>, under ns.subject(...)")
    expect(len(everything) == 2, f"{len(everything)} messages were published for 2 notifications",
           hint="publish each notification once, to its user's subject only")
    for user, got in per_user.items():
        try:
            payload = json.loads(got[0].data)
        except ValueError:
            raise CheckFailed(f"the payload for {user} is not JSON: {got[0].data[:60]!r}",
                              hint="json.dumps({...}).encode()") from None
        expect(isinstance(payload, dict) and payload.get("user") == user,
               f"the payload for {user} should have \"user\": {user!r}", hint='{"user": ..., "text": ...}')
    expect(json.loads(per_user["alice"][0].data).get("text") == "your order shipped",
           'the payload\'s "text" should be the text passed to notify', hint='{"user": ..., "text": ...}')
    return "each user got exactly their own notification"


@async_exercise("2", "Ask whether a user is online")
async def presence(fn, nc: Client, ns: Namespace) -> str:
    async def online(msg) -> None:
        await msg.respond(b"online")

    async def slow(msg) -> None:
        await asyncio.sleep(1.0)
        await msg.respond(b"online")

    subs = [await nc.subscribe(ns.subject("presence.alice"), cb=online),
            await nc.subscribe(ns.subject("presence.bob"), cb=slow)]
    await nc.flush()
    try:
        results = {}
        for user in ["alice", "carol", "bob"]:
            started = time.monotonic()
            try:
                answer = await fn(nc, user)
            except (nats.errors.NoRespondersError, TimeoutError) as exc:
                raise CheckFailed(
                    f"presence(nc, {user!r}) raised {type(exc).__name__}",
                    hint="a missing or slow presence service means 'unknown': catch NoRespondersError and "
                         "TimeoutError",
                ) from None
            results[user] = (answer, time.monotonic() - started)
    finally:
        for sub in subs:
            await sub.unsubscribe()
    answer, _ = results["alice"]
    expect(answer == "online", f"presence(nc, 'alice') returned {answer!r}; the service replied 'online'",
           hint="decode the reply's data: reply.data.decode()")
    answer, waited = results["carol"]
    expect(answer == "unknown", f"nobody answers for carol, yet presence returned {answer!r}",
           hint="return 'unknown' when there are no responders")
    answer, waited = results["bob"]
    expect(waited < 0.7, f"bob's presence service takes 1 s and presence(nc, 'bob') waited {waited:.1f} s",
           hint="pass a short timeout to nc.request (0.5 s at most)")
    expect(answer == "unknown", f"bob's service is too slow, yet presence returned {answer!r}",
           hint="return 'unknown' when the request times out")
    return "online, no responders and timeout all handled"


async def _reset_inbox(js, ns: Namespace, user: str) -> None:
    try:
        await js.delete_consumer(ns.stream(NOTIFY_STREAM), ns.stream(f"inbox_{user}"))
    except nats.js.errors.NotFoundError:
        pass
    await js.purge_stream(ns.stream(NOTIFY_STREAM), subject=ns.subject(f"notify.user.{user}"))


async def _send(js, ns: Namespace, user: str, texts: list[str]) -> None:
    for text in texts:
        await js.publish(ns.subject(f"notify.user.{user}"), json.dumps({"user": user, "text": text}).encode())


@async_exercise("3", "Catch up after being offline (pull consumer)", time_limit_s=30)
async def catch_up(fn, js, ns: Namespace) -> str:
    try:
        await js.stream_info(ns.stream(NOTIFY_STREAM))
    except nats.js.errors.NotFoundError:
        raise CheckFailed("the notifications stream does not exist",
                          hint="run the cell above the exercise that creates it") from None
    for user in ["dave", "erin"]:
        await _reset_inbox(js, ns, user)
    missed = [f"#{n} while you were away" for n in range(12)]
    await _send(js, ns, "dave", missed)
    await _send(js, ns, "erin", ["#0 for erin only", "#1 for erin only", "#2 for erin only"])

    got = await fn(js, "dave")
    expect(isinstance(got, list), f"catch_up should return a list of texts, got {type(got).__name__}")
    expect(not any("erin" in str(text) for text in got), "dave received erin's notifications",
           hint="filter the consumer to the user's own subject")
    expect(len(got) >= len(missed), f"catch_up returned {len(got)} of the {len(missed)} missed notifications",
           hint="one fetch returns at most one batch: keep fetching until a fetch times out")
    expect(got == missed, "catch_up returned the right number of notifications but not their texts, in order",
           hint="json.loads(msg.data)['text'] for each message, in the order fetched")
    try:
        info = await js.consumer_info(ns.stream(NOTIFY_STREAM), ns.stream("inbox_dave"))
    except nats.js.errors.NotFoundError:
        raise CheckFailed("there is no durable consumer named ns.stream('inbox_dave')",
                          hint="pull_subscribe(..., durable=ns.stream(f'inbox_{user_id}'))") from None
    expect(info.num_ack_pending == 0,
           f"{info.num_ack_pending} notifications were delivered but never acknowledged: JetStream will "
           "deliver them again after ack_wait", hint="await msg.ack() after handling each message")
    again = await fn(js, "dave")
    expect(again == [], f"a second catch_up right away returned {len(again)} notifications instead of none",
           hint="acked messages of a durable consumer are not delivered again")
    await _send(js, ns, "dave", ["#12 new", "#13 new"])
    newer = await fn(js, "dave")
    expect(newer == ["#12 new", "#13 new"], f"after 2 new notifications catch_up returned {len(newer)}",
           hint="reuse the same durable consumer so it resumes where it stopped")
    return "12 missed, then none, then 2 new"


@async_exercise("4", "Count unread notifications without losing updates")
async def increment_unread(fn, kv, js) -> str:
    user = "checker"
    status = await kv.status()
    await js.purge_stream(f"KV_{status.bucket}", subject=f"$KV.{status.bucket}.unread.{user}")
    calls = 25
    try:
        results = await asyncio.gather(*(fn(kv, user) for _ in range(calls)))
    except nats.js.errors.KeyWrongLastSequenceError:
        raise CheckFailed("a concurrent increment raised KeyWrongLastSequenceError",
                          hint="someone else wrote first: read the key again and retry the update") from None
    try:
        stored = int((await kv.get(f"unread.{user}")).value)
    except nats.js.errors.KeyNotFoundError:
        raise CheckFailed("nothing is stored at the key 'unread.<user_id>'",
                          hint="the key is f'unread.{user_id}'") from None
    expect(stored == calls, f"{calls} concurrent increments left the counter at {stored}: updates were lost",
           hint="kv.update(key, value, last=entry.revision) writes only if nobody wrote since you read")
    expect(sorted(int(r) for r in results) == list(range(1, calls + 1)),
           "every call should return the count it stored (1, 2, ... in some order)",
           hint="return the new count")
    return f"{calls} concurrent increments, counter at {stored}"


@async_exercise("5", "Apply settings changes live", stretch=True)
async def follow_settings(fn, kv) -> str:
    user, key = "checker", "settings.checker"
    versions = [{"sound": True, "digest": "daily"}, {"sound": False, "digest": "daily"},
                {"sound": False, "digest": "weekly"}]
    await kv.put(key, json.dumps(versions[0]).encode())
    applied: list = []
    stop = asyncio.Event()
    task = asyncio.ensure_future(fn(kv, user, applied.append, stop))
    try:
        await _wait_for(lambda: applied or task.done(), 2.0)
        if task.done() and task.exception() is not None:
            raise task.exception()
        expect(applied, "apply was not called with the current settings within 2 s",
               hint="a watch first delivers the key's current value")
        for version in versions[1:]:
            await kv.put(key, json.dumps(version).encode())
        await _wait_for(lambda: len(applied) >= 3 or task.done(), 2.0)
        stop.set()
        finished, _ = await asyncio.wait({task}, timeout=2.0)
        expect(finished, "follow_settings did not return within 2 s after stop was set",
               hint="wait for updates with a timeout and check stop.is_set() in the loop")
        if task.exception() is not None:
            raise task.exception()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=2.0)  # code that swallows the cancellation is left behind
    if applied and not isinstance(applied[0], dict):
        raise CheckFailed(f"apply received {type(applied[0]).__name__}, expected the settings as a dict",
                          hint="json.loads(entry.value)")
    if len(applied) < 3:
        skipped = applied[-1:] == versions[-1:]  # reached the last value by reading it, not by watching
        raise CheckFailed(
            f"apply was called {len(applied)} times for 3 values" + ("; a change was skipped" if skipped else ""),
            hint="watch the key (kv.watch) instead of reading it again" if skipped
            else "keep applying every update the watch delivers until stop is set",
        )
    expect(applied == versions, "apply got the right number of calls but not the values in order",
           hint="skip the None marker; apply json.loads(entry.value) of each update")
    return "current value plus 2 live changes, then stopped"
