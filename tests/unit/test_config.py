import pytest

from infracourse import config


def test_defaults_match_compose_ports():
    assert {s: config.endpoint(s).port for s in config.SERVICE_NAMES} == {
        "pgbouncer": 6432, "postgres_replica": 5433,
        "postgres": 5432, "redis": 6379, "kafka": 9092, "rabbitmq": 5672, "nats": 4222, "prometheus": 9090,
        "alertmanager": 9093, "blackbox": 9115,
    }
    assert all(config.endpoint(s).host == "127.0.0.1" for s in config.SERVICE_NAMES)


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("COURSE_REDIS_PORT", "6380")
    monkeypatch.setenv("COURSE_REDIS_HOST", "localhost")
    assert config.redis_url() == "redis://localhost:6380/0"


def test_bad_port_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("COURSE_KAFKA_PORT", "90x2")
    with pytest.raises(ValueError, match="COURSE_KAFKA_PORT must be a number"):
        config.kafka_bootstrap()


def test_unknown_service_names_the_known_ones():
    with pytest.raises(KeyError, match="postgres, pgbouncer, postgres_replica, redis"):
        config.endpoint("mongo")


def test_dsn_quotes_values_with_spaces():
    dsn = config.postgres_dsn(options="-c search_path=a,public")
    assert "options='-c search_path=a,public'" in dsn
    import psycopg.conninfo

    assert psycopg.conninfo.conninfo_to_dict(dsn)["options"] == "-c search_path=a,public"


def test_amqp_url_escapes_the_default_vhost():
    assert config.amqp_url() == "amqp://course:course@127.0.0.1:5672/%2F"
