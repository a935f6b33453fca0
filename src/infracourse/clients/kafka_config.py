"""The confluent-kafka settings every course client shares, so notebooks and checks spell out only what
they teach.

    producer = Producer({**kafka_config.client(), "acks": "all"})
    consumer = Consumer({**kafka_config.consumer(ns.topic("billing")), "auto.offset.reset": "earliest"})
"""

from __future__ import annotations

from infracourse import config
from infracourse.clients.kafka_logging import quiet_logger

# librdkafka's defaults (45 s session, 5 min poll interval) make a notebook wait a long time for a dead
# member to be evicted and a new one to join; these keep every rebalance within a few seconds.
GROUP_TIMINGS: dict[str, int] = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "max.poll.interval.ms": 10000,
}


def client() -> dict[str, object]:
    """Where the broker is, and librdkafka's logs routed to Python logging (nbval compares stderr)."""
    return {"bootstrap.servers": config.kafka_bootstrap(), "logger": quiet_logger()}


def consumer(group_id: str) -> dict[str, object]:
    """client() plus a group id and the short group timings above."""
    return {**client(), "group.id": group_id, **GROUP_TIMINGS}
