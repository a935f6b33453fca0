import subprocess
import sys
import uuid

import psycopg
import pytest
import redis

from infracourse import config
from infracourse.clients import rabbitmq_admin
from infracourse.namespace import Namespace, NamespaceBusy


@pytest.fixture
def slug():
    return "unit_" + uuid.uuid4().hex[:8]


@pytest.mark.parametrize(("folder", "expected"), [("notebooks", "pg01"), ("solutions", "pg01_sol"),
                                                   ("labs", "pg01_lab"), ("elsewhere", "pg01")])
def test_suffix_follows_the_notebook_folder(folder, expected, tmp_path, monkeypatch):
    (tmp_path / folder).mkdir()
    monkeypatch.chdir(tmp_path / folder)
    monkeypatch.delenv("INFRACOURSE_NS_SUFFIX", raising=False)
    assert Namespace.for_notebook("pg01").slug == expected


def test_grader_suffix_overrides_and_is_sanitised(monkeypatch):
    monkeypatch.setenv("INFRACOURSE_NS_SUFFIX", "_Student-7")
    assert Namespace.for_notebook("pg01").slug == "pg01_student_7"


def test_bad_slug_is_rejected():
    with pytest.raises(ValueError, match="lowercase"):
        Namespace.for_notebook("PG 01")


def test_names_are_derived_from_the_slug():
    ns = Namespace("kafka05")
    assert (ns.key("user", 1), ns.topic("orders"), ns.queue("jobs"), ns.subject("a.>"), ns.stream("orders")) == (
        "kafka05:user:1", "kafka05.orders", "kafka05.jobs", "kafka05.a.>", "kafka05-orders")


def test_postgres_reset_empties_only_our_schema(slug):
    ns, other = Namespace(slug), Namespace(slug + "_other")
    for n in (ns, other):
        n.reset("postgres")
        with psycopg.connect(n.postgres_dsn(), autocommit=True) as conn:
            conn.execute("CREATE TABLE t (x int)")
    ns.reset("postgres")
    with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
        tables = conn.execute("SELECT table_schema FROM information_schema.tables WHERE table_name = 't' "
                              "AND table_schema IN (%s, %s)", [ns.schema, other.schema]).fetchall()
        for n in (ns, other):
            conn.execute(f'DROP SCHEMA "{n.schema}" CASCADE')
    assert tables == [(other.schema,)]


def test_redis_reset_deletes_only_our_keys(slug):
    ns = Namespace(slug)
    r = redis.Redis.from_url(config.redis_url(), decode_responses=True)
    r.set(ns.key("a"), 1)
    r.set(ns.key("b", "c"), 1)
    r.set(slug + "_other:a", 1)
    ns.reset("redis")
    assert r.keys(slug + "*") == [slug + "_other:a"]
    r.delete(slug + "_other:a")


def test_kafka_reset_deletes_our_topics_only(slug):
    from confluent_kafka.admin import AdminClient, NewTopic

    from infracourse.clients.kafka_logging import quiet_logger

    ns = Namespace(slug)
    admin = AdminClient({"bootstrap.servers": config.kafka_bootstrap(), "logger": quiet_logger()})
    names = [ns.topic("a"), slug + "_other.a"]
    for future in admin.create_topics([NewTopic(n, 1) for n in names]).values():
        future.result()
    ns.reset("kafka")
    remaining = {t for t in admin.list_topics(timeout=10).topics if t.startswith(slug)}
    admin.delete_topics([slug + "_other.a"])
    assert remaining == {slug + "_other.a"}


def test_rabbitmq_reset_deletes_our_queues_and_exchanges(slug):
    import pika

    ns = Namespace(slug)
    with pika.BlockingConnection(pika.URLParameters(config.amqp_url())) as connection:
        channel = connection.channel()
        channel.queue_declare(ns.queue("jobs"))
        channel.exchange_declare(ns.exchange("events"), "fanout")
        channel.queue_declare(slug + "_other.jobs")
        ns.reset("rabbitmq")
        left = [n for n in rabbitmq_admin.names("queues") + rabbitmq_admin.names("exchanges") if n.startswith(slug)]
        channel.queue_delete(slug + "_other.jobs")
    assert left == [slug + "_other.jobs"]


def test_nats_reset_deletes_our_streams_and_buckets(slug):
    import asyncio

    import nats

    ns = Namespace(slug)

    async def scenario():
        nc = await nats.connect(config.nats_url())
        js = nc.jetstream()
        await js.add_stream(name=ns.stream("orders"), subjects=[ns.subject("orders.>")])
        await js.create_key_value(bucket=ns.stream("config"))
        longer = Namespace(slug + "_sol")  # the solution's namespace must survive the lesson's reset
        await js.add_stream(name=longer.stream("orders"), subjects=[longer.subject("orders.>")])
        await nc.close()
        ns.reset("nats")  # runs its own loop in a thread
        nc = await nats.connect(config.nats_url())
        names = [s.config.name for s in await nc.jetstream().streams_info()]
        await nc.close()
        return [n for n in names if slug in n]

    assert asyncio.run(scenario()) == [slug + "_sol-orders"]
    Namespace(slug + "_sol").reset("nats")


def test_a_namespace_runs_in_one_kernel_at_a_time():
    slug = f"pytest_claim_{uuid.uuid4().hex[:6]}"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from infracourse.namespace import Namespace; Namespace({slug!r}).claim(); "
                               "print('held', flush=True); import time; time.sleep(30)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(NamespaceBusy, match=f"namespace {slug}\\) is already running in another kernel "
                                                f"\\(pid {holder.pid}\\)") as busy:
            Namespace(slug).claim()
        assert "\n" not in str(busy.value) and "Shut Down" in str(busy.value)
    finally:
        holder.kill()
        holder.wait()
    Namespace(slug).claim()  # the lock went with the process that held it
    Namespace(slug).claim()  # and running the Setup cell again in the same kernel is fine
