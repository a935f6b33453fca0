from infracourse import config
from infracourse.clients import kafka_config


def test_client_points_at_the_course_broker_and_routes_logs(monkeypatch):
    monkeypatch.setenv("COURSE_KAFKA_PORT", "19092")
    settings = kafka_config.client()
    assert settings["bootstrap.servers"] == "127.0.0.1:19092" == config.kafka_bootstrap()
    assert settings["logger"].name == "infracourse.kafka"


def test_consumer_adds_group_and_short_timings():
    settings = kafka_config.consumer("kafka06.billing")
    assert settings["group.id"] == "kafka06.billing"
    assert settings["session.timeout.ms"] == 6000
    assert settings["heartbeat.interval.ms"] * 3 <= settings["session.timeout.ms"] <= settings["max.poll.interval.ms"]
