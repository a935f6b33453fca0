"""The orders service's settings: precedence, secrets that never leak, secret files, one-line errors."""

from __future__ import annotations

import io
import json
import logging
import os

import pytest
from orders_service.settings import PostgresSettings, Settings, describe_errors, load_settings
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """No ORDERS_* variable from the caller and no .env file in the working directory."""
    for name in [name for name in os.environ if name.startswith("ORDERS_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_match_the_course_services() -> None:
    settings = load_settings()
    assert (settings.http_host, settings.http_port, settings.namespace) == ("127.0.0.1", 8000, "orders")
    assert settings.postgres.conninfo() == (
        "host=127.0.0.1 port=5432 user=course password=course dbname=course connect_timeout=3"
    )
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.kafka_bootstrap == "127.0.0.1:9092"


def test_precedence_init_over_env_over_dotenv_over_secrets_over_default(monkeypatch, tmp_path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "ORDERS_NAMESPACE").write_text("from-secret\n")
    monkeypatch.setenv("ORDERS_SECRETS_DIR", str(secrets))
    assert load_settings().namespace == "from-secret"
    (tmp_path / ".env").write_text("ORDERS_NAMESPACE=from-dotenv\n")
    assert load_settings().namespace == "from-dotenv"
    monkeypatch.setenv("ORDERS_NAMESPACE", "from-env")
    assert load_settings().namespace == "from-env"
    assert load_settings(namespace="from-init").namespace == "from-init"


def test_nested_settings_from_env_with_the_delimiter(monkeypatch) -> None:
    monkeypatch.setenv("ORDERS_POSTGRES__HOST", "db.internal")
    monkeypatch.setenv("ORDERS_POSTGRES__PORT", "6432")
    postgres = load_settings().postgres
    assert (postgres.host, postgres.port, postgres.user) == ("db.internal", 6432, "course")


def test_secret_files_fill_nested_secrets(monkeypatch, tmp_path) -> None:
    (tmp_path / "ORDERS_POSTGRES__PASSWORD").write_text("from-a-mount\n")
    monkeypatch.setenv("ORDERS_SECRETS_DIR", str(tmp_path))
    assert load_settings().postgres.password.get_secret_value() == "from-a-mount"
    other = tmp_path / "other"
    other.mkdir()
    (other / "orders_postgres__password").write_text("from-the-argument")
    assert load_settings(_secrets_dir=str(other)).postgres.password.get_secret_value() == "from-the-argument"


def test_a_missing_secrets_dir_stops_the_start(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ORDERS_SECRETS_DIR", str(tmp_path / "not-mounted"))
    with pytest.raises(SystemExit) as exit_info:
        load_settings()
    assert str(exit_info.value).startswith("ORDERS_SECRETS_DIR: ")
    assert "\n" not in str(exit_info.value)


def test_a_secret_never_shows_in_repr_str_json_or_logs(monkeypatch) -> None:
    monkeypatch.setenv("ORDERS_POSTGRES__PASSWORD", "hunter2-secret")
    settings = load_settings()
    stream = io.StringIO()
    logger = logging.getLogger("test_orders_settings")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        logger.warning("settings %s %r", settings, settings.postgres)
    finally:
        logger.removeHandler(handler)
    for shown in (
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        json.dumps(settings.model_dump(mode="json")),
        stream.getvalue(),
        f"{settings.postgres.password}",
    ):
        assert "hunter2-secret" not in shown
    assert "hunter2-secret" in settings.postgres.conninfo()


@pytest.mark.parametrize(
    ("variable", "value", "line"),
    [
        ("ORDERS_HTTP_PORT", "70000", "ORDERS_HTTP_PORT: must be between 1 and 65535 (got 70000)"),
        ("ORDERS_POSTGRES__PORT", "0", "ORDERS_POSTGRES__PORT: must be between 1 and 65535 (got 0)"),
        ("ORDERS_CACHE_TTL_S", "0", "ORDERS_CACHE_TTL_S: must be greater than 0 (got 0)"),
        ("ORDERS_SHUTDOWN_GRACE_S", "-1", "ORDERS_SHUTDOWN_GRACE_S: must be greater than 0 (got -1)"),
        ("ORDERS_LOG_LEVEL", "loud", "ORDERS_LOG_LEVEL: must be 'DEBUG', 'INFO', 'WARNING' or 'ERROR' (got loud)"),
    ],
)
def test_bad_values_exit_with_one_line_naming_the_variable(monkeypatch, variable, value, line) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exit_info:
        load_settings()
    assert str(exit_info.value) == line


def test_every_problem_gets_its_own_line(monkeypatch) -> None:
    monkeypatch.setenv("ORDERS_HTTP_PORT", "eighty")
    monkeypatch.setenv("ORDERS_CACHE_TTL_S", "-5")
    with pytest.raises(SystemExit) as exit_info:
        load_settings()
    lines = str(exit_info.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["ORDERS_HTTP_PORT", "ORDERS_CACHE_TTL_S"]


def test_an_invalid_secret_is_named_but_never_echoed() -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_settings(postgres={"password": 12345})
    assert str(exit_info.value).startswith("ORDERS_POSTGRES__PASSWORD: ")
    assert "12345" not in str(exit_info.value)


def test_settings_are_typed_models() -> None:
    assert isinstance(Settings().postgres, PostgresSettings)
    assert PostgresSettings(password="it's me").conninfo().count("password='it\\'s me'") == 1


def test_a_dotenv_shared_with_other_tools_is_fine(tmp_path) -> None:
    (tmp_path / ".env").write_text("COMPOSE_PROJECT_NAME=orders\nORDERS_HTTP_PORT=8100\n")
    assert load_settings().http_port == 8100


def test_unknown_keys_are_named_once_with_their_prefix() -> None:
    class Strict(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="ORDERS_", extra="forbid")

    try:
        Strict(orders_http_prot="9000")
    except ValidationError as error:
        assert describe_errors(error, Strict) == ["ORDERS_HTTP_PROT: Extra inputs are not permitted"]
    else:
        raise AssertionError("the unknown key was accepted")


def test_a_group_given_as_a_whole_is_never_echoed() -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_settings(postgres=["hunter2-secret"])
    assert str(exit_info.value).startswith("ORDERS_POSTGRES: ")
    assert "hunter2" not in str(exit_info.value)
