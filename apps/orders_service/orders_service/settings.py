"""The service's typed settings: one object, read once at start-up, handed to every piece.

Sources, highest priority first: keyword arguments, environment variables (ORDERS_HTTP_PORT,
ORDERS_POSTGRES__PASSWORD: `__` reaches into a nested group), a `.env` file in the working directory,
secret files, then the defaults below. Secret files are what Docker and Kubernetes mount: one file per
value in the directory named by ORDERS_SECRETS_DIR, each file named like the variable it replaces
(ORDERS_POSTGRES__PASSWORD, case-insensitive) and holding only the value.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

ENV_PREFIX = "ORDERS_"
NESTED_DELIMITER = "__"
SECRETS_DIR_VARIABLE = "ORDERS_SECRETS_DIR"


def _check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise ValueError("must be between 1 and 65535")
    return port


Port = Annotated[int, AfterValidator(_check_port)]


class PostgresSettings(BaseModel):
    host: str = "127.0.0.1"
    port: Port = 5432
    user: str = "course"
    password: SecretStr = SecretStr("course")
    database: str = "course"

    def conninfo(self, **options: object) -> str:
        """A libpq connection string for psycopg; the password is revealed here and nowhere else."""
        from psycopg.conninfo import make_conninfo  # here: the container's health probe imports only settings

        parts = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password.get_secret_value(),
            "dbname": self.database,
            "connect_timeout": 3,
            **options,
        }
        return make_conninfo(**parts)  # libpq's quoting: spaces, quotes, backslashes


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        env_file=".env",
        extra="ignore",  # a .env shared with other tools (Compose reads one too) may hold variables not ours
    )

    http_host: str = "127.0.0.1"
    http_port: Port = 8000
    postgres: PostgresSettings = PostgresSettings()
    redis_url: str = "redis://127.0.0.1:6379/0"
    kafka_bootstrap: str = "127.0.0.1:9092"
    namespace: str = "orders"  # schema / key prefix / topic prefix, so a notebook can isolate its copy
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    cache_ttl_s: int = Field(default=30, gt=0)
    shutdown_grace_s: float = Field(default=10.0, gt=0)  # drain time after SIGTERM

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The secrets directory is deployment-specific, so it comes from the environment, not the code;
        # a `_secrets_dir=` keyword argument still wins. The nested source maps files to nested fields.
        secrets_dir = getattr(file_secret_settings, "secrets_dir", None) or os.environ.get(SECRETS_DIR_VARIABLE)
        try:
            # a mount path that is wrong must stop the start, not silently leave the defaults in place
            secrets = NestedSecretsSettingsSource(file_secret_settings, secrets_dir=secrets_dir or None,
                                                  secrets_dir_missing="error")
        except SettingsError as error:
            raise SettingsError(f"{SECRETS_DIR_VARIABLE}: {error}") from None
        return init_settings, env_settings, dotenv_settings, secrets


def load_settings(**overrides: Any) -> Settings:
    """Settings from every source, or SystemExit with one readable line per problem."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SystemExit("\n".join(describe_errors(error, Settings))) from None
    except SettingsError as error:  # a secrets directory that is missing, a nested value that is not JSON
        raise SystemExit(str(error)) from None


def describe_errors(error: ValidationError, model: type[BaseModel], prefix: str = ENV_PREFIX) -> list[str]:
    """One line per problem, named by its environment variable, e.g.
    "ORDERS_HTTP_PORT: must be between 1 and 65535 (got 70000)". Secret values are never echoed."""
    lines = []
    for problem in error.errors(include_url=False):
        loc = [str(part) for part in problem["loc"]]
        name = NESTED_DELIMITER.join(loc).upper()
        variable = name if name.startswith(prefix) else prefix + name  # an unknown key is already a full name
        message = problem["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
        if problem["type"] == "missing":
            lines.append(f"{variable}: required, but not set")
        elif _is_secret(model, loc) or isinstance(problem["input"], dict | list):  # a group may hold a secret
            lines.append(f"{variable}: {message}")
        else:
            lines.append(f"{variable}: {message} (got {_shown(problem['input'])})")
    return lines


def _shown(value: object) -> str:
    """Environment values are text: show them bare unless blank or padded, where quotes make that visible."""
    if isinstance(value, str) and value and value == value.strip():
        return value
    return repr(value)


def _is_secret(model: type[BaseModel], loc: list[str]) -> bool:
    """Whether LOC names a SecretStr field or anything inside one (unknown paths count as secret)."""
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return True
        current = field.annotation
        if current is SecretStr:
            return True
    return False
