"""kafka_readback.read_back: what is in a topic, from given or committed offsets to the end of each partition."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from infracourse import notebook
from infracourse.checking.kafka_readback import headers_of, read_back
from infracourse.clients import kafka_config


def test_read_back_from_the_start_from_offsets_and_from_a_groups_commits():
    notebook.require("kafka")
    topic = f"pytest.readback.{uuid.uuid4().hex[:8]}"
    admin = AdminClient(kafka_config.client())
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(15)
    try:
        producer = Producer(kafka_config.client())
        for n in range(6):
            producer.produce(topic, f"m{n}".encode(), partition=n % 2, headers=[("n", str(n).encode())])
            producer.flush(10)
        everything = read_back(topic)
        assert [(m.partition(), m.value()) for m in everything] == [
            (0, b"m0"), (0, b"m2"), (0, b"m4"), (1, b"m1"), (1, b"m3"), (1, b"m5")]
        assert headers_of(everything[1]) == {"n": b"2"}
        assert [m.value() for m in read_back(topic, start={0: 2, 1: 3})] == [b"m4"]
        group = f"{topic}.g"
        consumer = Consumer(kafka_config.consumer(group))
        consumer.commit(offsets=[TopicPartition(topic, 0, 1), TopicPartition(topic, 1, 2)], asynchronous=False)
        consumer.close()
        assert [m.value() for m in read_back(topic, committed_by=group)] == [b"m2", b"m4", b"m5"]
    finally:
        admin.delete_topics([topic])[topic].result(15)
