"""Checks of labs/16_config_with_pydantic_settings.ipynb: typed settings, one-line errors, nested groups, secrets
that never leak, mounted secrets and source order, and a live feature flag from a NATS KV bucket.

The settings checks set environment variables inside scoped_env (hiding the learner's own variables of the same
prefix and restoring everything afterwards), write .env and secret files into a temporary directory, and build
the learner's class under a time limit. The flag check is async (it runs in the notebook's event loop, where the
learner's watcher lives) and recreates its bucket under the lab's namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings

from infracourse.checking import expect, time_limit
from infracourse.checking.async_exercise import async_exercise
from infracourse.checking.exercise import exercise
from infracourse.lessons.scoped_env import scoped_env
from infracourse.namespace import Namespace

BUILD_S = 10  # building a settings object takes milliseconds; this only catches a hang
FLAG_BUCKET = "flagcheck"  # ns.stream(FLAG_BUCKET): the stretch check's own bucket
FLAG_DELAY_S = 1.0  # exercise 6: "changes must show within a second"
STOP_S = 5.0
WORKER_OK = {"WORKER_QUEUE_URL": "nats://127.0.0.1:4222/jobs"}


def _build(cls: Any, prefix: str, env: dict[str, str], **kwargs: Any) -> Any:
    """CLS(**KWARGS) with exactly ENV as the PREFIX* variables: the settings, or the ValidationError it raised."""
    name = getattr(cls, "__name__", "the class")
    with scoped_env(prefix, **env):
        try:
            return time_limit.bounded(BUILD_S, cls, what=f"{name}()", **kwargs)
        except ValidationError as error:
            return error


def _fields_in(error: ValidationError) -> set[str]:
    """The dotted field paths a ValidationError complains about."""
    return {".".join(str(part) for part in problem["loc"]) for problem in error.errors()}


def _expect_settings_class(cls: Any, name: str) -> None:
    expect(isinstance(cls, type) and issubclass(cls, BaseSettings), f"{name} should be a class deriving from "
           f"pydantic_settings.BaseSettings (got {type(cls).__name__})", hint=f"class {name}(BaseSettings): ...")


def _expect_rejected(cls: Any, prefix: str, env: dict[str, str], variable: str, field: str, hint: str) -> None:
    built = _build(cls, prefix, env)
    value = env.get(variable)
    shown = f"{variable}={value}" if value is not None else f"a missing {variable}"
    expect(isinstance(built, ValidationError), f"{cls.__name__}() accepted {shown}", hint=hint)
    expect(field in _fields_in(built), f"with {shown} the error names {sorted(_fields_in(built))}, not {field}",
           hint="the constraint belongs on that field")


def _expect_built(cls: Any, prefix: str, env: dict[str, str], what: str, **kwargs: Any) -> Any:
    built = _build(cls, prefix, env, **kwargs)
    if isinstance(built, ValidationError):
        first = built.errors()[0]
        if first["type"] == "missing":
            variable = prefix + "__".join(map(str, first["loc"])).upper()
            expect(False, f"{cls.__name__}() did not read {variable}: it says {variable.removeprefix(prefix).lower()}"
                   " is missing", hint=f'read {prefix}* variables: SettingsConfigDict(env_prefix="{prefix}")')
        expect(False, f"{cls.__name__}() rejected {what}: {'.'.join(map(str, first['loc']))}: {first['msg']}",
               hint="that value is allowed: check the bounds and types of that field")
    return built


# 1 -------------------------------------------------------------------------------------------------------
@exercise("1", "Typed settings that reject bad values")
def worker_settings(cls: Any) -> str:
    _expect_settings_class(cls, "WorkerSettings")
    full = {**WORKER_OK, "WORKER_CONCURRENCY": "8", "WORKER_POLL_INTERVAL_S": "0.5", "WORKER_MODE": "batch"}
    s = _expect_built(cls, "WORKER_", full, "valid WORKER_* variables")
    got = {name: getattr(s, name, "<no such field>") for name in ("queue_url", "concurrency", "poll_interval_s",
                                                                   "mode")}
    expect(got["queue_url"] == WORKER_OK["WORKER_QUEUE_URL"],
           f"WORKER_QUEUE_URL was not read into queue_url (got {got['queue_url']!r})",
           hint='read from WORKER_* variables: model_config = SettingsConfigDict(env_prefix="WORKER_")')
    expect(got["concurrency"] == 8 and type(got["concurrency"]) is int,
           f"WORKER_CONCURRENCY=8 gave concurrency={got['concurrency']!r}", hint="declare it `concurrency: int`")
    expect(got["poll_interval_s"] == 0.5 and isinstance(got["poll_interval_s"], float),
           f"WORKER_POLL_INTERVAL_S=0.5 gave poll_interval_s={got['poll_interval_s']!r}",
           hint="declare it `poll_interval_s: float`")
    expect(got["mode"] == "batch", f"WORKER_MODE=batch gave mode={got['mode']!r}")
    s = _expect_built(cls, "WORKER_", WORKER_OK, "only WORKER_QUEUE_URL set")
    defaults = (s.concurrency, s.poll_interval_s, s.mode)
    expect(defaults == (4, 1.0, "stream"), f"with only WORKER_QUEUE_URL set, (concurrency, poll_interval_s, mode) "
           f"= {defaults}, expected the defaults the exercise gives", hint="defaults: 4, 1.0 and 'stream'")
    _expect_rejected(cls, "WORKER_", {}, "WORKER_QUEUE_URL", "queue_url",
                     hint="a field without a default is required: `queue_url: str`")
    for bad in ("0", "65", "-3"):
        _expect_rejected(cls, "WORKER_", {**WORKER_OK, "WORKER_CONCURRENCY": bad}, "WORKER_CONCURRENCY",
                         "concurrency", hint="bound it: Field(default=4, ge=1, le=64)")
    for edge in ("1", "64"):
        _expect_built(cls, "WORKER_", {**WORKER_OK, "WORKER_CONCURRENCY": edge}, f"WORKER_CONCURRENCY={edge}")
    for bad in ("0", "-1"):
        _expect_rejected(cls, "WORKER_", {**WORKER_OK, "WORKER_POLL_INTERVAL_S": bad}, "WORKER_POLL_INTERVAL_S",
                         "poll_interval_s", hint="greater than 0 is gt=0 (ge=0 would allow 0)")
    _expect_built(cls, "WORKER_", {**WORKER_OK, "WORKER_POLL_INTERVAL_S": "0.01"}, "WORKER_POLL_INTERVAL_S=0.01")
    _expect_rejected(cls, "WORKER_", {**WORKER_OK, "WORKER_MODE": "realtime"}, "WORKER_MODE", "mode",
                     hint='only two words are allowed: Literal["batch", "stream"]')
    return "typed, bounded, required where it must be"


# 2 -------------------------------------------------------------------------------------------------------
BAD_WORKER_ENV = {"WORKER_CONCURRENCY": "0", "WORKER_MODE": "realtime"}  # and WORKER_QUEUE_URL missing


def _variables(error: ValidationError, prefix: str) -> set[str]:
    return {prefix + "__".join(str(part) for part in problem["loc"]).upper() for problem in error.errors()}


@exercise("2", "Fail fast, one line per problem")
def startup_errors(fn: Callable[[], Any], cls: Any) -> str:
    _expect_settings_class(cls, "WorkerSettings")
    with scoped_env("WORKER_", **WORKER_OK):
        settings = time_limit.bounded(BUILD_S, fn, what="load_worker_settings() with valid variables")
    expect(getattr(settings, "queue_url", None) == WORKER_OK["WORKER_QUEUE_URL"],
           f"with valid variables load_worker_settings() returned {type(settings).__name__}, not the settings",
           hint="return WorkerSettings() when it validates")
    with scoped_env("WORKER_", **BAD_WORKER_ENV):
        try:
            returned = time_limit.bounded(BUILD_S, fn, what="load_worker_settings() with three bad values")
        except SystemExit as exit:
            message = exit.code
        except ValidationError:
            expect(False, "the ValidationError escaped: the operator gets a long traceback",
                   hint="catch ValidationError and raise SystemExit(...) with your lines")
        else:
            expect(False, f"with WORKER_CONCURRENCY=0, WORKER_MODE=realtime and no WORKER_QUEUE_URL, "
                   f"load_worker_settings() returned {type(returned).__name__} instead of stopping",
                   hint="raise SystemExit(message): the process exits with status 1 and prints the message "
                        "(and exercise 1's class must reject those values)")
    expect(isinstance(message, str) and message.strip(), f"SystemExit carried {message!r}, not the message",
           hint="pass the text to SystemExit(...): it prints it on stderr and exits with status 1")
    lines = [line for line in message.splitlines() if line.strip()]
    invalid = _build(cls, "WORKER_", BAD_WORKER_ENV)
    expected = _variables(invalid, "WORKER_") if isinstance(invalid, ValidationError) else set()
    expect(len(lines) == len(expected), f"{len(lines)} line(s) for {len(expected)} problems: {message[:70]!r} ...",
           hint="one line per entry of error.errors(), joined with newlines")
    named = {line.split(":")[0].strip() for line in lines}
    expect(named == expected, f"the lines start with {sorted(named)}, expected the variables {sorted(expected)}",
           hint='name the variable: "WORKER_" + the field name in upper case, then ": "')
    vague = [line for line in lines if len(line.split(":", 1)[-1].strip()) < 8]
    expect(not vague, f"{vague[:1]} does not say what is wrong", hint="add pydantic's problem['msg']")
    return f"{len(lines)} problems, {len(lines)} lines"


# 3 -------------------------------------------------------------------------------------------------------
@exercise("3", "Nested settings from the environment")
def nested_settings(cls: Any) -> str:
    _expect_settings_class(cls, "ShopSettings")
    env = {"SHOP_REDIS__HOST": "cache.internal", "SHOP_REDIS__MAX_CONNECTIONS": "50",
           "SHOP_KAFKA__TOPIC": "shop.orders"}
    s = _expect_built(cls, "SHOP_", env, "SHOP_REDIS__HOST, SHOP_REDIS__MAX_CONNECTIONS and SHOP_KAFKA__TOPIC")
    redis, kafka = getattr(s, "redis", None), getattr(s, "kafka", None)
    expect(redis is not None and kafka is not None, "ShopSettings() has no `redis` and `kafka` groups",
           hint="two fields whose types are the nested models: redis: RedisSettings = RedisSettings()")
    got = (getattr(redis, "host", None), getattr(redis, "max_connections", None), getattr(kafka, "topic", None))
    expect(got[0] == "cache.internal" and got[2] == "shop.orders" and str(got[1]) == "50",
           f"from SHOP_REDIS__HOST, SHOP_REDIS__MAX_CONNECTIONS, SHOP_KAFKA__TOPIC the groups got {got}",
           hint='a double underscore reaches into a group: env_nested_delimiter="__"')
    expect(type(got[1]) is int, f"SHOP_REDIS__MAX_CONNECTIONS=50 gave max_connections={got[1]!r}",
           hint="declare it `max_connections: int`")
    kept = (redis.port, kafka.bootstrap)
    expect(kept == (6379, "127.0.0.1:9092"), f"the fields not set should keep their defaults, got {kept}",
           hint="give every nested field its default")
    empty = _expect_built(cls, "SHOP_", {}, "no SHOP_* variable at all")
    expect((empty.redis.host, empty.redis.port, empty.redis.max_connections, empty.kafka.topic)
           == ("127.0.0.1", 6379, 10, "orders"), "with no variable set the groups do not hold the defaults given",
           hint="defaults: 127.0.0.1, 6379, 10 and orders")
    for bad in ("0", "70000"):
        _expect_rejected(cls, "SHOP_", {"SHOP_REDIS__PORT": bad}, "SHOP_REDIS__PORT", "redis.port",
                         hint="bound the port in RedisSettings: Field(default=6379, ge=1, le=65535)")
    return "SHOP_REDIS__* and SHOP_KAFKA__* filled the groups"


# 4 -------------------------------------------------------------------------------------------------------
def _logged(settings: Any) -> str:
    stream = io.StringIO()
    logger = logging.getLogger("infracourse.lab16.check")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        logger.warning("settings %s %r", settings, settings)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


@exercise("4", "A secret that never leaks")
def secret_never_leaks(cls: Any, auth_headers: Callable[[Any], dict], startup_line: Callable[[Any], str]) -> str:
    _expect_settings_class(cls, "PaymentsSettings")
    key = "sk_live_" + secrets.token_hex(8)
    s = _expect_built(cls, "PAYMENTS_", {"PAYMENTS_API_KEY": key}, "PAYMENTS_API_KEY")
    api_key = getattr(s, "api_key", None)
    expect(isinstance(api_key, SecretStr), f"api_key is a {type(api_key).__name__}, not a secret type",
           hint="declare it `api_key: SecretStr`")
    shown = {"repr(settings)": repr(s), "str(settings)": str(s), "settings.model_dump_json()": s.model_dump_json(),
             "a logging call with the settings": _logged(s)}
    leaks = [where for where, text in shown.items() if key in text]
    expect(not leaks, f"the key shows in {', '.join(leaks)}", hint="a SecretStr field prints as **********")
    defaults = (getattr(s, "base_url", None), getattr(s, "timeout_s", None))
    expect(defaults == ("https://payments.example", 2.0), f"(base_url, timeout_s) defaults are {defaults}",
           hint="see the exercise's defaults")
    _expect_rejected(cls, "PAYMENTS_", {}, "PAYMENTS_API_KEY", "api_key", hint="no default: the key is required")
    headers = time_limit.bounded(BUILD_S, auth_headers, s, what="auth_headers(settings)")
    expect(isinstance(headers, dict) and "*****" not in str(headers.get("Authorization")),
           f"auth_headers sent {headers!r}: the stars, not the key",
           hint="str() of a SecretStr is masked: reveal it here with .get_secret_value()")
    expect(headers == {"Authorization": f"Bearer {key}"}, "auth_headers(settings) should be exactly "
           "{'Authorization': 'Bearer <the key>'}", hint="one header, the word Bearer, a space, the key")
    line = time_limit.bounded(BUILD_S, startup_line, s, what="startup_line(settings)")
    expect(isinstance(line, str), f"startup_line returned a {type(line).__name__}, not JSON text",
           hint="json.dumps(...) or settings.model_dump_json() gives text")
    expect(key not in line, "the start-up log line contains the key",
           hint="dump the settings with mode='json' (or model_dump_json): secrets become stars")
    try:
        record = json.loads(line)
    except ValueError:
        expect(False, f"the start-up line is not JSON: {line[:60]!r}", hint="one JSON object, as a log line")
    fields = record.get("settings") if isinstance(record, dict) else None
    expect(isinstance(record, dict) and record.get("event") == "starting" and isinstance(fields, dict),
           f"the start-up line should be {{'event': 'starting', 'settings': {{...}}}}, got {line[:80]!r}",
           hint="wrap the dumped settings: {'event': 'starting', 'settings': ...}")
    missing = sorted({"base_url", "api_key", "timeout_s"} - set(fields))
    expect(not missing, f"the start-up line lacks {missing}", hint="log every field: the secret one shows as stars")
    return "the key went into the header only"


# 5 -------------------------------------------------------------------------------------------------------
def _mount(root: Path, files: dict[str, str]) -> Path:
    """A secrets directory laid out as Kubernetes mounts a Secret: the files live in a versioned directory,
    reached through the ..data symlink and one symlink per key."""
    mount = root / "secrets"
    version = mount / "..2026_01_01_00_00_00.000000001"
    version.mkdir(parents=True)
    (mount / "..data").symlink_to(version.name)
    for name, value in files.items():
        (version / name).write_text(value + "\n")
        (mount / name).symlink_to(f"..data/{name}")
    return mount


def _password(s: Any) -> str:
    value = getattr(s, "db_password", None)
    return value.get_secret_value() if isinstance(value, SecretStr) else repr(value)


@exercise("5", "Mounted secrets, and which source wins")
def mounted_secrets(cls: Any) -> str:
    _expect_settings_class(cls, "MountedSettings")
    expect(cls.model_config.get("env_file") == ".env", "MountedSettings does not read a .env file by default",
           hint='model_config = SettingsConfigDict(env_prefix="APP_", env_file=".env")')
    with tempfile.TemporaryDirectory(prefix="lab16-") as tmp:
        root = Path(tmp)
        dotenv = root / ".env"
        dotenv.write_text("APP_DB_PASSWORD=from-dotenv\nAPP_REGION=dotenv-region\n")
        mount = _mount(root, {"APP_DB_PASSWORD": "from-mount"})
        sources = {"_env_file": dotenv, "_secrets_dir": mount}
        s = _expect_built(cls, "APP_", {}, "a .env file and a secrets directory", **sources)
        expect(isinstance(getattr(s, "db_password", None), SecretStr), "db_password is not a secret type",
               hint="declare it `db_password: SecretStr`")
        expect(_password(s) != "from-dotenv", "the .env file won over the mounted secret file",
               hint="return the secrets source before the dotenv source from settings_customise_sources")
        expect(_password(s) == "from-mount", "db_password did not come from the mounted file APP_DB_PASSWORD",
               hint="keep file_secret_settings among the sources")
        region = getattr(s, "region", None)
        expect(region == "dotenv-region", f"region is {region!r}: the .env file's APP_REGION was not read",
               hint="keep dotenv_settings among the sources, after the secrets")
        s = _expect_built(cls, "APP_", {"APP_DB_PASSWORD": "from-env"}, "APP_DB_PASSWORD", **sources)
        expect(_password(s) == "from-env", f"with APP_DB_PASSWORD set, db_password came from "
               f"{_password(s)!r}", hint="environment variables come before secret files")
        s = _expect_built(cls, "APP_", {"APP_DB_PASSWORD": "from-env"}, "a keyword argument",
                          db_password="from-kwarg", **sources)
        expect(_password(s) == "from-kwarg", f"MountedSettings(db_password=...) gave {_password(s)!r}",
               hint="keyword arguments (init_settings) come first")
        s = _expect_built(cls, "APP_", {}, "only a secrets directory", _env_file=None, _secrets_dir=mount)
        expect(s.region == "eu-west", f"with nothing setting it, region is {s.region!r}", hint="default: eu-west")
        _expect_rejected(cls, "APP_", {}, "APP_DB_PASSWORD", "db_password",
                         hint="no default: a password that is nowhere must stop the start")
    return "kwargs > env > secret file > .env > default"


# 6 -------------------------------------------------------------------------------------------------------
async def _fresh_bucket(js: JetStreamContext, name: str) -> Any:
    try:
        await js.delete_key_value(name)
    except (BucketNotFoundError, NotFoundError):
        pass
    return await js.create_key_value(bucket=name, history=1)


async def _settles(probe: Callable[[], Any], wanted: Any, within_s: float) -> Any:
    """Poll PROBE until it returns WANTED or WITHIN_S passes; return its last answer."""
    deadline = time.monotonic() + within_s
    while True:
        seen = probe()
        if seen == wanted or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.01)


@async_exercise("6", "A live feature flag from NATS KV", stretch=True, time_limit_s=30)
async def live_flags(cls: Any, js: JetStreamContext, ns: Namespace) -> str:
    bucket = ns.stream(FLAG_BUCKET)
    kv = await _fresh_bucket(js, bucket)
    watcher = None
    try:
        for key, value in [("checkout", b"on"), ("search", b"off"), ("beta", b"maybe")]:
            await kv.put(key, value)
        watcher = cls()
        await watcher.start(kv)
        answer = watcher.enabled("checkout")
        if asyncio.iscoroutine(answer):
            answer.close()  # never awaited on purpose: no "never awaited" warning on the learner's screen
        expect(not asyncio.iscoroutine(answer), "enabled() returned a coroutine",
               hint="answer from what the watch keeps in memory: a plain def, no await")
        seen = await _settles(lambda: watcher.enabled("checkout"), True, FLAG_DELAY_S)
        expect(seen is True, f"checkout was on before start(), enabled('checkout') gave {seen!r} a second later",
               hint="a watch first replays the current value of every key")
        cases = {("search", True): False, ("beta", False): False, ("beta", True): True, ("nothing", True): True,
                 ("nothing", False): False}
        for (name, default), wanted in cases.items():
            got = watcher.enabled(name, default=default)
            expect(got is wanted, f"enabled({name!r}, default={default}) gave {got!r} (the bucket holds "
                   f"{name}={'off' if name == 'search' else 'maybe' if name == 'beta' else 'nothing'})",
                   hint="'on' is True, 'off' is False, anything else or no key gives the default")
        for key, value, wanted in [("search", b"on", True), ("checkout", b"off", False)]:
            await kv.put(key, value)
            seen = await _settles(lambda key=key: watcher.enabled(key), wanted, FLAG_DELAY_S)
            expect(seen is wanted, f"after putting {key}={value.decode()} the flag still read {seen!r} a second "
                   "later", hint="keep updating from the watch in a background task, not only once at start()")
        await kv.delete("checkout")  # it was off
        seen = await _settles(lambda: watcher.enabled("checkout", default=True), True, FLAG_DELAY_S)
        expect(seen is True, f"after deleting checkout, enabled('checkout', default=True) gave {seen!r}",
               hint="a delete arrives as an entry with operation 'DEL' (or 'PURGE') and no value: the default")
        stopping, watcher = watcher, None
        await _stop(stopping)
        await kv.put("checkout", b"on")
        await asyncio.sleep(0.3)
        expect(stopping.enabled("checkout") is False, "after stop() the watcher still followed the bucket",
               hint="stop the KV watcher (await watcher.stop()) and end the background task")
        return "on, off, garbage, deletes and live changes; stop() stopped"
    finally:
        if watcher is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(watcher.stop(), timeout=STOP_S)
        await js.delete_key_value(bucket)


async def _stop(watcher: Any) -> None:
    try:
        await asyncio.wait_for(watcher.stop(), timeout=STOP_S)
    except TimeoutError:
        expect(False, f"await stop() did not return within {STOP_S:g} s",
               hint="after stopping the KV watcher, the task reading it ends: await it, or cancel it")
