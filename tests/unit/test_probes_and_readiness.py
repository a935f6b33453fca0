import socket
import time

import pytest

from infracourse import notebook
from infracourse.config import SERVICE_NAMES
from infracourse.errors import ServiceUnavailable
from infracourse.services.probes import probe


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_every_running_service_answers_its_protocol(service):
    assert probe(service) is None


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_nothing_listening_is_connection_refused(service, monkeypatch):
    monkeypatch.setenv(f"COURSE_{service.upper()}_PORT", str(_closed_port()))
    assert "refused" in probe(service)


def test_a_different_protocol_on_the_port_is_not_healthy(monkeypatch):
    monkeypatch.setenv("COURSE_REDIS_PORT", "4222")  # NATS answers there, not Redis
    assert probe("redis") is not None


def test_a_silent_server_times_out_instead_of_hanging(monkeypatch):
    with socket.create_server(("127.0.0.1", 0)) as silent:
        monkeypatch.setenv("COURSE_NATS_PORT", str(silent.getsockname()[1]))
        started = time.monotonic()
        assert "no answer" in probe("nats")
        assert time.monotonic() - started < 3


def test_require_is_fast_short_and_names_service_endpoint_and_command(monkeypatch):
    port = _closed_port()
    monkeypatch.setenv("COURSE_KAFKA_PORT", str(port))
    monkeypatch.setenv("COURSE_NATS_PORT", str(port))
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as info:
        notebook.require("postgres", "kafka", "nats")
    assert time.monotonic() - started < 3.5
    message = str(info.value)
    assert f"kafka at 127.0.0.1:{port}" in message and f"nats at 127.0.0.1:{port}" in message
    assert "postgres" not in message.split(".")[0] and "course up" in message


def test_require_rejects_unknown_service():
    with pytest.raises(ServiceUnavailable, match="unknown service mongo"):
        notebook.require("mongo")


def test_status_table_lists_every_service():
    table = notebook.status()
    assert list(table.index) == list(SERVICE_NAMES) and set(table["healthy"]) == {"yes"}


def test_a_wrong_password_is_reported_as_a_refused_login_not_as_a_stopped_service(monkeypatch):
    monkeypatch.setenv("COURSE_POSTGRES_PASSWORD", "not-the-password")
    with pytest.raises(ServiceUnavailable, match="refused the login") as refused:
        notebook.require("postgres")
    assert "COURSE_<SERVICE>_USER / _PASSWORD" in str(refused.value) and "make lab" not in str(refused.value)


def test_client_errors_that_mean_a_lost_service_become_one_line():
    import psycopg
    import redis

    from infracourse.errors import service_failure

    lost = service_failure(redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Refused."))
    assert lost.startswith("redis connection lost (ConnectionError: Error 111") and "course logs redis" in lost
    login = service_failure(redis.exceptions.AuthenticationError("invalid username-password pair"))
    assert login.startswith("redis refused the login") and "COURSE_REDIS_" in login
    assert service_failure(psycopg.errors.QueryCanceled("canceling statement due to statement timeout")) is None
    assert service_failure(ValueError("connection")) is None
