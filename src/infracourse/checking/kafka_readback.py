"""Read back what learner code left in a Kafka topic: every message from given (or committed) offsets up to the
end of each partition, with a deadline. A check judges the topic itself, not what the learner's code says."""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from infracourse.clients import kafka_config

IDLE_S = 1.5  # no message for this long after the last one: the partitions are read (Tansu's end offsets can
# run ahead of the last record when a producer batched, so the end offset alone cannot end the read)


def read_back(topic: str, *, group: str = "", start: dict[int, int] | None = None, committed_by: str = "",
              timeout_s: float = 10.0) -> list[Message]:
    """The messages of TOPIC, in offset order per partition, from START ({partition: offset}; the beginning by
    default) or from the offsets group COMMITTED_BY has committed, up to each partition's end."""
    consumer = Consumer({**kafka_config.consumer(group or committed_by or f"{topic}.check"),
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        if committed_by:
            committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
            offsets = {tp.partition: tp.offset if tp.offset >= 0 else OFFSET_BEGINNING for tp in committed}
        else:
            offsets = {p: (start or {}).get(p, OFFSET_BEGINNING) for p in partitions}
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        # explicit offsets make the first poll fetch at once (an offset reset can take a second)
        consumer.assign([TopicPartition(topic, p, offsets[p]) for p in partitions])
        messages: list[Message] = []
        positions = {p: max(offsets[p], 0) for p in partitions}
        deadline, last_seen = time.monotonic() + timeout_s, time.monotonic()
        while any(positions[p] < ends[p] for p in partitions) and time.monotonic() < deadline:
            batch = [m for m in consumer.consume(500, timeout=0.25) if m.error() is None]
            for msg in batch:
                positions[msg.partition()] = msg.offset() + 1
            messages += batch
            if batch:
                last_seen = time.monotonic()
            elif time.monotonic() - last_seen > IDLE_S:
                break
        return sorted(messages, key=lambda m: (m.partition(), m.offset()))
    finally:
        consumer.close()


def headers_of(msg: Message) -> dict[str, bytes]:
    """A message's headers as a dict (the last value wins for a repeated name)."""
    return {name: value or b"" for name, value in msg.headers() or []}
