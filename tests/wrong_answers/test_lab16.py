"""Lab 16 checks fail on plausible wrong answers, one per stated requirement, with a message that helps, and
pass the reference answers; a stub reports "not done yet"."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Literal

import nats
import pytest
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_serializer, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from verdicts import assert_fails, assert_not_done, assert_passes, scratch_namespace

from infracourse import config
from infracourse.checks import lab16 as checks
from infracourse.namespace import Namespace


# 1 typed settings ----------------------------------------------------------------------------------------
class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WORKER_")

    queue_url: str
    concurrency: int = Field(default=4, ge=1, le=64)
    poll_interval_s: float = Field(default=1.0, gt=0)
    mode: Literal["batch", "stream"] = "stream"


def test_worker_settings_reference_passes():
    assert_passes(checks.worker_settings(WorkerSettings))


def test_worker_settings_stub_is_not_done():
    assert_not_done(checks.worker_settings(...))


def test_worker_settings_without_the_prefix_fails():
    class NoPrefix(WorkerSettings):
        model_config = SettingsConfigDict(env_prefix="")

    assert_fails(checks.worker_settings(NoPrefix), "did not read WORKER_QUEUE_URL", in_hint=("env_prefix",))


def test_worker_settings_with_a_default_queue_url_fails():
    class DefaultUrl(WorkerSettings):
        queue_url: str = "nats://127.0.0.1:4222"

    assert_fails(checks.worker_settings(DefaultUrl), "accepted a missing WORKER_QUEUE_URL")


def test_worker_settings_with_string_fields_fails():
    class Untyped(WorkerSettings):
        concurrency: str = "4"

    assert_fails(checks.worker_settings(Untyped), "WORKER_CONCURRENCY=8 gave concurrency='8'")


@pytest.mark.parametrize(("bounds", "words"), [
    ({}, "accepted WORKER_CONCURRENCY=0"),
    ({"ge": 1}, "accepted WORKER_CONCURRENCY=65"),
    ({"gt": 1, "le": 64}, "rejected WORKER_CONCURRENCY=1"),
    ({"ge": 1, "lt": 64}, "rejected WORKER_CONCURRENCY=64"),
])
def test_worker_settings_with_wrong_concurrency_bounds_fails(bounds, words):
    class Bounds(WorkerSettings):
        concurrency: int = Field(default=4, **bounds)

    assert_fails(checks.worker_settings(Bounds), words)


def test_worker_settings_allowing_a_zero_poll_interval_fails():
    class ZeroPoll(WorkerSettings):
        poll_interval_s: float = Field(default=1.0, ge=0)

    assert_fails(checks.worker_settings(ZeroPoll), "accepted WORKER_POLL_INTERVAL_S=0", in_hint=("gt=0",))


def test_worker_settings_with_a_free_text_mode_fails():
    class AnyMode(WorkerSettings):
        mode: str = "stream"

    assert_fails(checks.worker_settings(AnyMode), "accepted WORKER_MODE=realtime", in_hint=("Literal",))


def test_worker_settings_with_wrong_defaults_fails():
    class OtherDefaults(WorkerSettings):
        concurrency: int = Field(default=8, ge=1, le=64)

    assert_fails(checks.worker_settings(OtherDefaults), "expected the defaults")


def test_worker_settings_with_a_model_level_check_fails():
    class WholeModelCheck(WorkerSettings):
        concurrency: int = 4

        @model_validator(mode="after")
        def check_concurrency(self):
            if not 1 <= self.concurrency <= 64:
                raise ValueError("concurrency out of range")
            return self

    assert_fails(checks.worker_settings(WholeModelCheck), "not concurrency", in_hint=("that field",))


def test_worker_settings_as_a_plain_model_fails():
    class Plain(BaseModel):
        queue_url: str

    assert_fails(checks.worker_settings(Plain), "BaseSettings")


# 2 one line per problem ----------------------------------------------------------------------------------
def _lines(error: ValidationError, name=lambda loc: "WORKER_" + "__".join(map(str, loc)).upper()) -> list[str]:
    return [f"{name(problem['loc'])}: {problem['msg']}" for problem in error.errors()]


def load_worker_settings():
    try:
        return WorkerSettings()
    except ValidationError as error:
        raise SystemExit("\n".join(_lines(error))) from None


def test_startup_errors_reference_passes():
    assert_passes(checks.startup_errors(load_worker_settings, WorkerSettings))


def test_startup_errors_stub_is_not_done():
    def stub():
        raise NotImplementedError

    assert_not_done(checks.startup_errors(stub, WorkerSettings))
    assert_not_done(checks.startup_errors(..., ...))


def test_startup_errors_printing_and_returning_none_fails(capsys):
    def prints():
        try:
            return WorkerSettings()
        except ValidationError as error:
            print(error)

    assert_fails(checks.startup_errors(prints, WorkerSettings), "returned NoneType instead of stopping",
                 in_hint=("SystemExit",))


def test_startup_errors_not_returning_the_settings_fails():
    def validate_only():
        try:
            WorkerSettings()
        except ValidationError as error:
            raise SystemExit("\n".join(_lines(error))) from None

    assert_fails(checks.startup_errors(validate_only, WorkerSettings), "returned NoneType, not the settings")


def test_startup_errors_letting_the_validation_error_escape_fails():
    def raw():
        return WorkerSettings()

    assert_fails(checks.startup_errors(raw, WorkerSettings), "ValidationError escaped")


def test_startup_errors_with_the_whole_validation_error_fails():
    def whole():
        try:
            return WorkerSettings()
        except ValidationError as error:
            raise SystemExit(str(error)) from None

    assert_fails(checks.startup_errors(whole, WorkerSettings), "line(s) for 3 problems")


def test_startup_errors_on_one_line_fails():
    def one_line():
        try:
            return WorkerSettings()
        except ValidationError as error:
            raise SystemExit("; ".join(_lines(error))) from None

    assert_fails(checks.startup_errors(one_line, WorkerSettings), "1 line(s) for 3 problems")


def test_startup_errors_naming_fields_not_variables_fails():
    def fields():
        try:
            return WorkerSettings()
        except ValidationError as error:
            raise SystemExit("\n".join(_lines(error, name=lambda loc: ".".join(map(str, loc))))) from None

    assert_fails(checks.startup_errors(fields, WorkerSettings), "expected the variables", in_hint=("WORKER_",))


def test_startup_errors_without_saying_what_is_wrong_fails():
    def names_only():
        try:
            return WorkerSettings()
        except ValidationError as error:
            raise SystemExit("\n".join(line.split(":")[0] + ": bad" for line in _lines(error))) from None

    assert_fails(checks.startup_errors(names_only, WorkerSettings), "does not say what is wrong")


def test_startup_errors_exit_status_without_message_fails(capsys):
    def status_only():
        try:
            return WorkerSettings()
        except ValidationError as error:
            print("\n".join(_lines(error)))
            raise SystemExit(1) from None

    assert_fails(checks.startup_errors(status_only, WorkerSettings), "SystemExit carried 1")


# 3 nested settings ---------------------------------------------------------------------------------------
class RedisSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=6379, ge=1, le=65535)
    max_connections: int = 10


class KafkaSettings(BaseModel):
    bootstrap: str = "127.0.0.1:9092"
    topic: str = "orders"


class ShopSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOP_", env_nested_delimiter="__")

    redis: RedisSettings = RedisSettings()
    kafka: KafkaSettings = KafkaSettings()


def test_nested_settings_reference_passes():
    assert_passes(checks.nested_settings(ShopSettings))


def test_nested_settings_stub_is_not_done():
    assert_not_done(checks.nested_settings(...))


@pytest.mark.parametrize("delimiter", [None, "_"])
def test_nested_settings_without_the_double_underscore_fails(delimiter):
    class Flat(ShopSettings):
        model_config = SettingsConfigDict(env_prefix="SHOP_", env_nested_delimiter=delimiter)

    result = checks.nested_settings(Flat)
    assert_fails(result, "the groups got", in_hint=('env_nested_delimiter="__"',))


def test_nested_settings_without_the_prefix_fails():
    class NoPrefix(ShopSettings):
        model_config = SettingsConfigDict(env_prefix="", env_nested_delimiter="__")

    assert_fails(checks.nested_settings(NoPrefix), "the groups got")


def test_nested_settings_with_flat_fields_fails():
    class FlatFields(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="SHOP_")
        redis_host: str = "127.0.0.1"

    assert_fails(checks.nested_settings(FlatFields), "no `redis` and `kafka` groups")


def test_nested_settings_with_an_untyped_field_fails():
    class TextRedis(RedisSettings):
        max_connections: str = "10"

    class Shop(ShopSettings):
        redis: TextRedis = TextRedis()

    assert_fails(checks.nested_settings(Shop), "max_connections='50'", in_hint=("int",))


def test_nested_settings_with_wrong_defaults_fails():
    class OtherRedis(RedisSettings):
        max_connections: int = 100

    class Shop(ShopSettings):
        redis: OtherRedis = OtherRedis()

    assert_fails(checks.nested_settings(Shop), "do not hold the defaults given")


def test_nested_settings_without_a_port_bound_fails():
    class LooseRedis(RedisSettings):
        port: int = 6379

    class Shop(ShopSettings):
        redis: LooseRedis = LooseRedis()

    assert_fails(checks.nested_settings(Shop), "accepted SHOP_REDIS__PORT=0")


def test_nested_settings_losing_unset_defaults_fails():
    class NoDefaultPort(RedisSettings):
        port: int = Field(default=1, ge=1, le=65535)

    class Shop(ShopSettings):
        redis: NoDefaultPort = NoDefaultPort()

    assert_fails(checks.nested_settings(Shop), "keep their defaults")


# 4 a secret that never leaks -----------------------------------------------------------------------------
class PaymentsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMENTS_")

    base_url: str = "https://payments.example"
    api_key: SecretStr
    timeout_s: float = 2.0


def auth_headers(settings):
    return {"Authorization": f"Bearer {settings.api_key.get_secret_value()}"}


def startup_line(settings):
    return json.dumps({"event": "starting", "settings": settings.model_dump(mode="json")})


def test_secret_reference_passes():
    assert_passes(checks.secret_never_leaks(PaymentsSettings, auth_headers, startup_line))


def test_secret_model_dump_json_line_passes():
    def dumped(settings):
        return json.dumps({"event": "starting", "settings": json.loads(settings.model_dump_json())})

    assert_passes(checks.secret_never_leaks(PaymentsSettings, auth_headers, dumped))


def test_secret_stub_is_not_done():
    assert_not_done(checks.secret_never_leaks(..., ..., ...))


def test_secret_as_a_plain_string_fails():
    class PlainKey(PaymentsSettings):
        api_key: str

    assert_fails(checks.secret_never_leaks(PlainKey, auth_headers, startup_line), "not a secret type")


def test_secret_revealed_by_repr_fails():
    class Debuggable(PaymentsSettings):
        def __repr__(self):
            return f"PaymentsSettings(api_key={self.api_key.get_secret_value()!r})"

    assert_fails(checks.secret_never_leaks(Debuggable, auth_headers, startup_line), "repr(settings)")


def test_secret_revealed_by_str_fails():
    class Chatty(PaymentsSettings):
        def __str__(self):
            return f"PaymentsSettings(key={self.api_key.get_secret_value()})"

    assert_fails(checks.secret_never_leaks(Chatty, auth_headers, startup_line), "str(settings)")


def test_secret_revealed_in_json_fails():
    class JsonReveals(PaymentsSettings):
        @field_serializer("api_key", when_used="json")
        def reveal(self, value):
            return value.get_secret_value()

    assert_fails(checks.secret_never_leaks(JsonReveals, auth_headers, startup_line), "model_dump_json")


def test_secret_with_a_default_key_fails():
    class DefaultKey(PaymentsSettings):
        api_key: SecretStr = SecretStr("test-key")

    assert_fails(checks.secret_never_leaks(DefaultKey, auth_headers, startup_line),
                 "accepted a missing PAYMENTS_API_KEY")


def test_secret_with_wrong_defaults_fails():
    class SlowPayments(PaymentsSettings):
        timeout_s: float = 30.0

    assert_fails(checks.secret_never_leaks(SlowPayments, auth_headers, startup_line), "defaults")


def test_secret_header_with_the_stars_fails():
    def starred(settings):
        return {"Authorization": f"Bearer {settings.api_key}"}

    assert_fails(checks.secret_never_leaks(PaymentsSettings, starred, startup_line), "the stars, not the key",
                 in_hint=("get_secret_value",))


def test_secret_header_without_bearer_fails():
    def bare(settings):
        return {"Authorization": settings.api_key.get_secret_value()}

    assert_fails(checks.secret_never_leaks(PaymentsSettings, bare, startup_line), "Bearer <the key>")


def test_secret_startup_line_revealing_the_key_fails():
    def revealing(settings):
        fields = {**settings.model_dump(mode="json"), "api_key": settings.api_key.get_secret_value()}
        return json.dumps({"event": "starting", "settings": fields})

    assert_fails(checks.secret_never_leaks(PaymentsSettings, auth_headers, revealing), "contains the key")


def test_secret_startup_line_with_python_dump_fails():
    def python_dump(settings):
        return json.dumps({"event": "starting", "settings": settings.model_dump()})

    assert_fails(checks.secret_never_leaks(PaymentsSettings, auth_headers, python_dump), "raised TypeError")


def test_secret_startup_line_dropping_the_secret_fails():
    def without_key(settings):
        return json.dumps({"event": "starting", "settings": settings.model_dump(mode="json", exclude={"api_key"})})

    assert_fails(checks.secret_never_leaks(PaymentsSettings, auth_headers, without_key), "lacks ['api_key']")


def test_secret_startup_line_not_json_fails():
    def text(settings):
        return f"starting with {settings}"

    assert_fails(checks.secret_never_leaks(PaymentsSettings, auth_headers, text), "not JSON")


def test_secret_startup_line_without_the_event_fails():
    def bare_settings(settings):
        return settings.model_dump_json()

    assert_fails(checks.secret_never_leaks(PaymentsSettings, auth_headers, bare_settings), "'event': 'starting'")


# 5 mounted secrets and source order ----------------------------------------------------------------------
def _ordered(*names: str, env_file: str | None = ".env"):
    class Ordered(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="APP_", env_file=env_file)

        db_password: SecretStr
        region: str = "eu-west"

        @classmethod
        def settings_customise_sources(cls, settings_cls, **sources):
            return tuple(sources[name] for name in names)

    return Ordered


MountedSettings = _ordered("init_settings", "env_settings", "file_secret_settings", "dotenv_settings")


def test_mounted_reference_passes():
    assert_passes(checks.mounted_secrets(MountedSettings))


def test_mounted_stub_is_not_done():
    assert_not_done(checks.mounted_secrets(...))


def test_mounted_default_order_lets_dotenv_win_fails():
    assert_fails(checks.mounted_secrets(_ordered("init_settings", "env_settings", "dotenv_settings",
                                                 "file_secret_settings")), "the .env file won")


def test_mounted_secret_above_env_fails():
    assert_fails(checks.mounted_secrets(_ordered("init_settings", "file_secret_settings", "env_settings",
                                                 "dotenv_settings")), "with APP_DB_PASSWORD set")


def test_mounted_without_dotenv_fails():
    assert_fails(checks.mounted_secrets(_ordered("init_settings", "env_settings", "file_secret_settings")),
                 "APP_REGION was not read")


def test_mounted_without_secrets_fails():
    assert_fails(checks.mounted_secrets(_ordered("init_settings", "env_settings", "dotenv_settings")),
                 "the .env file won")


def test_mounted_without_init_fails():
    assert_fails(checks.mounted_secrets(_ordered("env_settings", "file_secret_settings", "dotenv_settings")),
                 "MountedSettings(db_password=...)")


def test_mounted_without_env_file_config_fails():
    no_dotenv = _ordered("init_settings", "env_settings", "file_secret_settings", "dotenv_settings", env_file=None)
    assert_fails(checks.mounted_secrets(no_dotenv), "does not read a .env file")


def test_mounted_plain_password_fails():
    class PlainPassword(MountedSettings):
        db_password: str

    assert_fails(checks.mounted_secrets(PlainPassword), "not a secret type")


def test_mounted_default_password_fails():
    class DefaultPassword(MountedSettings):
        db_password: SecretStr = SecretStr("course")

    assert_fails(checks.mounted_secrets(DefaultPassword), "accepted a missing APP_DB_PASSWORD")


def test_mounted_wrong_region_default_fails():
    class OtherRegion(MountedSettings):
        region: str = "us-east"

    assert_fails(checks.mounted_secrets(OtherRegion), "region is 'us-east'")


# 6 live flags (stretch) ----------------------------------------------------------------------------------
class FlagWatcher:
    def __init__(self):
        self.values = {}

    async def start(self, kv):
        self.watcher = await kv.watchall()
        self.task = asyncio.create_task(self._follow())

    async def _follow(self):
        async for entry in self.watcher:
            if entry is None:
                continue
            if entry.operation in ("DEL", "PURGE"):
                self.values.pop(entry.key, None)
            else:
                self.values[entry.key] = entry.value.decode()

    def enabled(self, name, default=False):
        return {"on": True, "off": False}.get(self.values.get(name), default)

    async def stop(self):
        await self.watcher.stop()
        await self.task


@pytest.fixture
def ns():
    with scratch_namespace("nats") as namespace:
        yield namespace


def run_flags(ns: Namespace, watcher_cls):
    async def main():
        nc = await nats.connect(config.nats_url(), connect_timeout=3, max_reconnect_attempts=0)
        try:
            return await checks.live_flags(watcher_cls, nc.jetstream(), ns)
        finally:
            await nc.close()

    return asyncio.run(main())


def test_flags_reference_passes(ns):
    assert_passes(run_flags(ns, FlagWatcher))


def test_flags_stub_is_not_done(ns):
    class Stub:
        def __init__(self):
            raise NotImplementedError

    assert_not_done(run_flags(ns, Stub))


def test_flags_read_once_at_start_fails(ns):
    class ReadOnce(FlagWatcher):
        async def start(self, kv):
            for key in await kv.keys():
                self.values[key] = (await kv.get(key)).value.decode()

        async def stop(self):
            pass

    assert_fails(run_flags(ns, ReadOnce), "after putting search=on", in_hint=("background task",))


def test_flags_polling_too_slowly_fails(ns):
    class Polling(FlagWatcher):
        async def start(self, kv):
            self.kv = kv
            self.task = asyncio.create_task(self._poll())

        async def _poll(self):
            while True:
                for key in await self.kv.keys():
                    self.values[key] = (await self.kv.get(key)).value.decode()
                await asyncio.sleep(2.5)

        async def stop(self):
            self.task.cancel()

    assert_fails(run_flags(ns, Polling), "after putting search=on")


def test_flags_off_means_default_fails(ns):
    class OnOrDefault(FlagWatcher):
        def enabled(self, name, default=False):
            return True if self.values.get(name) == "on" else default

    assert_fails(run_flags(ns, OnOrDefault), "enabled('search', default=True) gave True")


def test_flags_async_enabled_fails(ns):
    class AsyncEnabled(FlagWatcher):
        async def enabled(self, name, default=False):
            return super().enabled(name, default)

    assert_fails(run_flags(ns, AsyncEnabled), "returned a coroutine")


def test_flags_ignoring_deletes_fails(ns):
    class KeepsDeleted(FlagWatcher):
        async def _follow(self):
            async for entry in self.watcher:
                if entry is not None and entry.value:
                    self.values[entry.key] = entry.value.decode()

    assert_fails(run_flags(ns, KeepsDeleted), "after deleting checkout")


def test_flags_delete_means_off_fails(ns):
    class DeleteIsOff(FlagWatcher):
        async def _follow(self):
            async for entry in self.watcher:
                if entry is not None:
                    self.values[entry.key] = "off" if entry.operation else entry.value.decode()

    assert_fails(run_flags(ns, DeleteIsOff), "after deleting checkout")


def test_flags_anything_not_on_is_off_fails(ns):
    class NotOnIsOff(FlagWatcher):
        def enabled(self, name, default=False):
            return self.values[name] == "on" if name in self.values else default

    assert_fails(run_flags(ns, NotOnIsOff), "enabled('beta', default=True) gave False")


def test_flags_ignoring_the_default_fails(ns):
    class NoDefault(FlagWatcher):
        def enabled(self, name, default=False):
            return self.values.get(name) == "on"

    assert_fails(run_flags(ns, NoDefault), "default=True) gave False")


def test_flags_stop_that_keeps_watching_fails(ns):
    class NeverStops(FlagWatcher):
        async def stop(self):
            pass

    result = run_flags(ns, NeverStops)
    assert_fails(result, "still followed the bucket")


def test_flags_stop_that_hangs_fails(ns):
    class HangingStop(FlagWatcher):
        async def stop(self):
            await self.task  # the watch was never stopped: the task never ends

    assert_fails(run_flags(ns, HangingStop), "did not return within")


def test_flags_leave_no_environment_behind():
    assert not [name for name in os.environ if name.startswith(("WORKER_", "SHOP_", "PAYMENTS_", "APP_"))]


REQUIREMENTS = {
    "1": {
        "a `BaseSettings` class": "test_worker_settings_as_a_plain_model_fails",
        "read from variables prefixed `WORKER_`": "test_worker_settings_without_the_prefix_fails",
        "`queue_url`, a string with no default (so it is required)":
            "test_worker_settings_with_a_default_queue_url_fails",
        "`concurrency`, an int from 1 to 64 inclusive": ("test_worker_settings_with_string_fields_fails",
                                                         "test_worker_settings_with_wrong_concurrency_bounds_fails"),
        "default 4": "test_worker_settings_with_wrong_defaults_fails",
        "`poll_interval_s`, a float greater than 0": "test_worker_settings_allowing_a_zero_poll_interval_fails",
        'either `"batch"` or `"stream"`': "test_worker_settings_with_a_free_text_mode_fails",
        "a\n`ValidationError` naming the field for each bad value":
            "test_worker_settings_with_a_model_level_check_fails",
    },
    "2": {
        "it returns `WorkerSettings()` when the variables are valid":
            "test_startup_errors_not_returning_the_settings_fails",
        "Otherwise it raises\n`SystemExit`": ("test_startup_errors_printing_and_returning_none_fails",
                                              "test_startup_errors_letting_the_validation_error_escape_fails"),
        "with a message": "test_startup_errors_exit_status_without_message_fails",
        "exactly one line per problem": ("test_startup_errors_with_the_whole_validation_error_fails",
                                         "test_startup_errors_on_one_line_fails"),
        "each line starting with the environment variable to fix and a colon":
            "test_startup_errors_naming_fields_not_variables_fails",
        "then saying what is wrong": "test_startup_errors_without_saying_what_is_wrong_fails",
    },
    "3": {
        "(prefix `SHOP_`)": "test_nested_settings_without_the_prefix_fails",
        "with two nested groups": "test_nested_settings_with_flat_fields_fails",
        "`port` (an int from 1 to 65535": "test_nested_settings_without_a_port_bound_fails",
        "`max_connections` (an int, default\n10)": ("test_nested_settings_with_an_untyped_field_fails",
                                                    "test_nested_settings_with_wrong_defaults_fails"),
        "A double underscore reaches into a group": "test_nested_settings_without_the_double_underscore_fails",
        "Fields not set keep their defaults": "test_nested_settings_losing_unset_defaults_fails",
        "a bad port is rejected": "test_nested_settings_without_a_port_bound_fails",
    },
    "4": {
        "`api_key` (a secret": "test_secret_as_a_plain_string_fails",
        "required)": "test_secret_with_a_default_key_fails",
        "`timeout_s` (a float, default 2.0)": "test_secret_with_wrong_defaults_fails",
        'returns `{"Authorization": "Bearer <the key>"}`': ("test_secret_header_with_the_stars_fails",
                                                            "test_secret_header_without_bearer_fails"),
        "returns the JSON text of the start-up log line": ("test_secret_startup_line_not_json_fails",
                                                           "test_secret_startup_line_with_python_dump_fails"),
        '`{"event": "starting", "settings":\n{...}}`': "test_secret_startup_line_without_the_event_fails",
        "with every field": "test_secret_startup_line_dropping_the_secret_fails",
        "The key must not show in `repr(settings)`": "test_secret_revealed_by_repr_fails",
        "`str(settings)`": "test_secret_revealed_by_str_fails",
        "`settings.model_dump_json()`": "test_secret_revealed_in_json_fails",
        # logging formats with str() and repr(): a leak there is one of those two
        "a `logging` call that formats the settings": ("test_secret_revealed_by_str_fails",
                                                       "test_secret_revealed_by_repr_fails"),
        "or the start-up line": "test_secret_startup_line_revealing_the_key_fails",
    },
    "5": {
        'reading a `.env` file: `env_file=".env"`': ("test_mounted_without_env_file_config_fails",
                                                     "test_mounted_without_dotenv_fails"),
        "`db_password` (a secret, required)": ("test_mounted_plain_password_fails",
                                               "test_mounted_default_password_fails"),
        '`region` (default\n`"eu-west"`)': "test_mounted_wrong_region_default_fails",
        "a mounted secret must win over the `.env` file": ("test_mounted_default_order_lets_dotenv_win_fails",
                                                          "test_mounted_without_secrets_fails"),
        "environment variables and keyword arguments still win over\nboth": ("test_mounted_secret_above_env_fails",
                                                                              "test_mounted_without_init_fails"),
    },
    "6": {
        "starts watching every key of the KV bucket `kv` in the\nbackground": "test_flags_read_once_at_start_fails",
        "answers at once from memory (a plain method, no `await`)": "test_flags_async_enabled_fails",
        "`await watcher.stop()` ends the watch": ("test_flags_stop_that_keeps_watching_fails",
                                                  "test_flags_stop_that_hangs_fails"),
        "A value `on` means enabled and `off` disabled": "test_flags_off_means_default_fails",
        "a key that was deleted": ("test_flags_ignoring_deletes_fails", "test_flags_delete_means_off_fails"),
        "was never set, or holds anything else gives `default`": ("test_flags_ignoring_the_default_fails",
                                                                  "test_flags_anything_not_on_is_off_fails"),
        "A change in the bucket must show within a second": ("test_flags_read_once_at_start_fails",
                                                             "test_flags_polling_too_slowly_fails"),
    },
}
