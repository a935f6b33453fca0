"""Checks of labs/11_grpc_in_production.ipynb: a bearer-token server interceptor, a client interceptor, a retry
policy, a graceful shutdown that drains through health checks, and a latency histogram. Every check runs the
learner's code against a real server on a free loopback port, stopped before the check returns."""

from __future__ import annotations

import functools
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry, Histogram

from infracourse.checking import done, exercise, expect, time_limit
from infracourse.checking.grpc_harness import InterceptorTrap, serving, status_code
from infracourse.clients import protos

protos.generate()
from infracourse.grpc_generated import telemetry_pb2, telemetry_pb2_grpc  # noqa: E402

TELEMETRY = telemetry_pb2.DESCRIPTOR.services_by_name["TelemetryService"].full_name
RECORD = f"/{TELEMETRY}/RecordReading"
UPLOAD = f"/{TELEMETRY}/UploadReadings"
TOKEN = "tok-123"
CALL_TIMEOUT_S = 5


class _Telemetry(telemetry_pb2_grpc.TelemetryServiceServicer):
    """Answers every call; remembers the metadata of each; an empty sensor_id is INVALID_ARGUMENT."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.metadata: list[dict[str, str]] = []
        self.upload_finished = threading.Event()

    def _seen(self, context) -> None:
        with self.lock:
            self.metadata.append(dict(context.invocation_metadata()))

    def RecordReading(self, request, context):
        self._seen(context)
        if not request.reading.sensor_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "reading.sensor_id must not be empty")
        return telemetry_pb2.RecordReadingResponse(sensor_count=1)

    def UploadReadings(self, request_iterator, context):
        self._seen(context)
        count = sum(1 for _ in request_iterator)
        self.upload_finished.set()
        return telemetry_pb2.UploadReadingsResponse(count=count)


def _reading(sensor_id: str = "s1") -> telemetry_pb2.RecordReadingRequest:
    return telemetry_pb2.RecordReadingRequest(reading=telemetry_pb2.Reading(sensor_id=sensor_id, value=1.0))


def _uploads(n: int, pause_s: float = 0.0):
    for i in range(n):
        if pause_s:
            time.sleep(pause_s)
        yield telemetry_pb2.UploadReadingsRequest(reading=telemetry_pb2.Reading(sensor_id="s1", value=float(i)))


_code = functools.partial(status_code, timeout=CALL_TIMEOUT_S)  # every call of a check has the same deadline


def _register(servicer, health_servicer=None):
    def register(server: grpc.Server) -> None:
        telemetry_pb2_grpc.add_TelemetryServiceServicer_to_server(servicer, server)
        if health_servicer is not None:
            health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    return register


# --- Exercise 1 ----------------------------------------------------------------------------------------


@exercise("1", "A bearer-token auth interceptor")
def auth_interceptor(interceptor_class) -> str:
    guard = InterceptorTrap(interceptor_class({TOKEN: "sensor-gateway"}))
    with serving(_register(_Telemetry(), health.HealthServicer()), interceptors=[guard]) as port, \
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
        cases = {
            "a valid token": (stub.RecordReading, _reading(), [("authorization", f"Bearer {TOKEN}")]),
            "no token": (stub.RecordReading, _reading(), []),
            "a wrong token": (stub.RecordReading, _reading(), [("authorization", "Bearer guess")]),
            "a token that only starts like a valid one": (
                stub.RecordReading, _reading(), [("authorization", f"Bearer {TOKEN}4")]),
            "the scheme in lowercase ('bearer')": (
                stub.RecordReading, _reading(), [("authorization", f"bearer {TOKEN}")]),
            "an upload stream without token": (stub.UploadReadings, _uploads(2), []),
            "an upload stream with a valid token": (
                stub.UploadReadings, _uploads(2), [("authorization", f"Bearer {TOKEN}")]),
        }
        got = {name: _code(method, request, metadata=metadata) for name, (method, request, metadata) in cases.items()}
        health_code = _code(health_pb2_grpc.HealthStub(channel).Check, health_pb2.HealthCheckRequest())
    guard.raise_first()
    for name in ("a valid token", "the scheme in lowercase ('bearer')", "an upload stream with a valid token"):
        expect(got[name] == grpc.StatusCode.OK, f"a call with {name} was refused with {got[name].name}",
               hint="metadata keys arrive in lowercase ('authorization'); compare the scheme case-insensitively")
    for name in ("no token", "a wrong token", "a token that only starts like a valid one",
                 "an upload stream without token"):
        expect(got[name] != grpc.StatusCode.OK, f"a call with {name} got through",
               hint="split the header into scheme and token, and look the whole token up in self.tokens")
        expect(got[name] == grpc.StatusCode.UNAUTHENTICATED,
               f"a call with {name} got {got[name].name}; missing or wrong credentials are UNAUTHENTICATED",
               hint="PERMISSION_DENIED means: we know who you are, and you may not do this")
    expect(health_code == grpc.StatusCode.OK, f"a health check without token got {health_code.name}",
           hint="let methods starting with /grpc.health.v1.Health/ through: load balancers send no token")
    return "valid tokens in, everything else UNAUTHENTICATED, health open"


# --- Exercise 2 ----------------------------------------------------------------------------------------


@exercise("2", "A client interceptor for the token and request ids")
def client_interceptor(interceptor) -> str:
    done(interceptor)
    servicer = _Telemetry()
    with serving(_register(servicer)) as port, grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = telemetry_pb2_grpc.TelemetryServiceStub(grpc.intercept_channel(channel, interceptor))
        try:
            stub.RecordReading(_reading(), metadata=[("x-tenant", "acme")], timeout=CALL_TIMEOUT_S)
            stub.RecordReading(_reading(), timeout=CALL_TIMEOUT_S)
            stub.UploadReadings(_uploads(3), timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as err:
            expect(False, f"a call through the interceptor failed with {err.code().name}: {err.details()}",
                   hint="metadata keys must be lowercase ('authorization'), values strings")
    seen = servicer.metadata
    expect(len(seen) == 3, f"the server saw {len(seen)} calls instead of 3")
    names = ["the first RecordReading", "the second RecordReading", "the UploadReadings stream"]
    for name, metadata in zip(names, seen, strict=True):
        expect(metadata.get("authorization") == f"Bearer {TOKEN}",
               f"{name} arrived with authorization {metadata.get('authorization')!r}; expected 'Bearer {TOKEN}'",
               hint="implement intercept_stream_unary too, and subclass grpc.StreamUnaryClientInterceptor"
               if name.startswith("the UploadReadings") else "add ('authorization', f'Bearer {token}')")
    expect(seen[0].get("x-tenant") == "acme", "the caller's own metadata (x-tenant) was dropped",
           hint="extend client_call_details.metadata (it may be None) instead of replacing it")
    ids = [metadata.get("x-request-id") for metadata in seen]
    expect(all(ids), "a call arrived without an x-request-id")
    expect(len(set(ids)) == len(ids), f"request ids repeat ({ids}); every call needs its own",
           hint="make a new id for every call, e.g. uuid.uuid4().hex")
    return "token and a fresh request id on every call, caller's metadata kept"


# --- Exercise 3 ----------------------------------------------------------------------------------------


class _Flaky(telemetry_pb2_grpc.TelemetryServiceServicer):
    """Fails the first FAILURES attempts of every call with UNAVAILABLE (or always with CODE)."""

    def __init__(self, failures: int, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        self.failures, self.code, self.attempts = failures, code, 0

    def RecordReading(self, request, context):
        self.attempts += 1
        if self.attempts <= self.failures:
            context.abort(self.code, "injected failure")
        return telemetry_pb2.RecordReadingResponse(sensor_count=1)


def _attempts(config: dict, servicer: _Flaky) -> tuple[grpc.StatusCode, int]:
    options = [("grpc.service_config", json.dumps(config))]
    with serving(_register(servicer)) as port, grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        code = _code(telemetry_pb2_grpc.TelemetryServiceStub(channel).RecordReading, _reading())
    return code, servicer.attempts


ASKED_POLICY = {"maxAttempts": 4, "initialBackoff": 0.1, "maxBackoff": 1.0, "backoffMultiplier": 2.0}


def _policy_of(config: dict) -> dict:
    """The retryPolicy of the methodConfig entry that names the telemetry service ({} if none does)."""
    for entry in config.get("methodConfig") or []:
        if any(isinstance(n, dict) and n.get("service") == TELEMETRY for n in entry.get("name") or []):
            return entry.get("retryPolicy") or {}
    return {}


def _number(value: object) -> float | None:
    """A retryPolicy field as a number: durations are strings such as '0.1s'."""
    try:
        return float(value.removesuffix("s")) if isinstance(value, str) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


@exercise("3", "A retry policy in the service config")
def retry_config(config) -> str:
    done(config)
    expect(isinstance(config, dict), "RETRY_CONFIG should be a dict (the course turns it into JSON)")
    try:
        json.dumps(config)
    except TypeError as exc:
        expect(False, f"RETRY_CONFIG cannot be written as JSON: {exc}")
    code, attempts = _attempts(config, _Flaky(failures=2))
    policy_hint = ("methodConfig[0] needs name=[{'service': 'course.v1.TelemetryService'}] and a retryPolicy with "
                   "maxAttempts, initialBackoff, maxBackoff, backoffMultiplier and retryableStatusCodes")
    expect(not (attempts == 1 and code == grpc.StatusCode.DEADLINE_EXCEEDED),
           f"the call's {CALL_TIMEOUT_S} s deadline passed while the retry was still waiting out its backoff",
           hint="initialBackoff is the pause before the first retry: keep it short, e.g. '0.1s'")
    expect(attempts > 1, "the call was not retried at all: the policy did not apply to this service", hint=policy_hint)
    expect(code == grpc.StatusCode.OK,
           f"a call that fails twice with UNAVAILABLE still failed ({code.name}) after {attempts} attempts",
           hint="maxAttempts counts the first attempt too: allow at least 3")
    code, attempts = _attempts(config, _Flaky(failures=10, code=grpc.StatusCode.INVALID_ARGUMENT))
    expect(attempts == 1, f"INVALID_ARGUMENT was tried {attempts} times; it fails the same way every time",
           hint="list only UNAVAILABLE in retryableStatusCodes")
    policy = _policy_of(config)
    for field, asked in ASKED_POLICY.items():
        expect(_number(policy.get(field)) == asked, f"retryPolicy.{field} is {policy.get(field)!r}; the exercise "
               f"asks for {asked:g}", hint="up to 4 attempts in all, a first backoff of '0.1s', doubling (multiplier "
                                          "2) up to '1s'")
    codes = policy.get("retryableStatusCodes")
    expect(codes == ["UNAVAILABLE"], f"retryableStatusCodes is {codes!r}; no other code than UNAVAILABLE is retried",
           hint="retryableStatusCodes: ['UNAVAILABLE']")
    return "UNAVAILABLE retried until it worked, INVALID_ARGUMENT not retried"


# --- Exercise 4 ----------------------------------------------------------------------------------------

DRAIN_S, GRACE_S = 0.3, 2.0
UPLOAD_READINGS, UPLOAD_PAUSE_S = 20, 0.05  # an upload of 1 s, well past the drain


@exercise("4", "Graceful shutdown: NOT_SERVING, drain, then stop")
def graceful_shutdown(fn) -> str:
    health_servicer = health.HealthServicer()
    health_servicer.set(TELEMETRY, health_pb2.HealthCheckResponse.SERVING)
    servicer = _Telemetry()
    server = grpc.server(ThreadPoolExecutor(max_workers=8))
    _register(servicer, health_servicer)(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    def shut_down() -> bool:
        """The learner's shutdown; whether the upload in flight had finished when it returned."""
        try:
            fn(server, health_servicer, DRAIN_S, GRACE_S)
        except BaseException:
            watch.cancel()  # no NOT_SERVING will come: stop waiting for it
            raise
        return servicer.upload_finished.is_set()

    def load_balancer() -> grpc.StatusCode | None:
        """Meanwhile: the code of a call made during the drain (None if health never said NOT_SERVING)."""
        try:
            flipped = next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        except (grpc.RpcError, StopIteration):
            flipped = False
        watch.cancel()  # an open Watch stream would hold the server for its whole grace period
        if not flipped:
            return None
        time.sleep(DRAIN_S / 3)  # one that polls health sends a few more calls before it notices
        return _code(stub.RecordReading, _reading())

    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service=TELEMETRY), timeout=CALL_TIMEOUT_S)
            next(watch)  # SERVING
            upload = stub.UploadReadings.future(_uploads(UPLOAD_READINGS, UPLOAD_PAUSE_S), timeout=CALL_TIMEOUT_S)
            time.sleep(0.1)
            upload_finished_first, during_drain = time_limit.in_threads(
                DRAIN_S + GRACE_S + 3, lambda step: step(), [(shut_down,), (load_balancer,)], together=False,
                what="threads (graceful_shutdown and a client watching its health)",
                hint="look for a wait without a timeout: after server.stop(grace_s) the server is gone in grace_s")
            upload_code = upload.exception().code() if upload.exception() else grpc.StatusCode.OK
            after = _code(stub.RecordReading, _reading())
    finally:
        server.stop(grace=None)
    expect(during_drain is not None, f"health never reported NOT_SERVING for {TELEMETRY}",
           hint="health_servicer.enter_graceful_shutdown() sets every service to NOT_SERVING")
    expect(during_drain == grpc.StatusCode.OK,
           f"a call made {DRAIN_S / 3:.1f} s after health said NOT_SERVING got {during_drain.name}",
           hint="keep serving for drain_s seconds after flipping health, so load balancers can notice")
    expect(upload_code == grpc.StatusCode.OK, f"the upload in flight was cut off with {upload_code.name}",
           hint="server.stop(grace_s) lets calls in flight finish; stop(0) or stop(None) cancels them")
    expect(after == grpc.StatusCode.UNAVAILABLE,
           f"after graceful_shutdown a new call got {after.name}, not UNAVAILABLE", hint="call server.stop(grace_s)")
    expect(upload_finished_first, "graceful_shutdown returned while a call was still running",
           hint="server.stop(...) returns an Event: wait() on it")
    return "NOT_SERVING, served during the drain, upload finished, then stopped"


# --- Exercise 5 ----------------------------------------------------------------------------------------
PROBE = "course.check.Probe"
COUNTDOWN = f"/{PROBE}/Countdown"  # a server-streaming method: TelemetryService has none
COUNTDOWN_N, COUNTDOWN_PAUSE_S = 3, 0.05  # a stream of 0.15 s: timing it must cover it to its end


def _countdown(request: bytes, context: grpc.ServicerContext):
    for n in range(COUNTDOWN_N):
        time.sleep(COUNTDOWN_PAUSE_S)
        yield bytes([n])


def _with_countdown(register):
    def both(server: grpc.Server) -> None:
        register(server)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            PROBE, {"Countdown": grpc.unary_stream_rpc_method_handler(_countdown)}),))

    return both


def _streamed(channel: grpc.Channel) -> tuple[grpc.StatusCode, int]:
    """The code of a Countdown call, and how many messages it streamed back (raw bytes: no protobuf needed)."""
    try:
        return grpc.StatusCode.OK, len(list(channel.unary_stream(COUNTDOWN)(b"", timeout=CALL_TIMEOUT_S)))
    except grpc.RpcError as exc:
        return exc.code(), 0



@exercise("5", "A latency histogram interceptor", stretch=True)
def metrics_interceptor(interceptor_class) -> str:
    registry = CollectorRegistry()
    latency = Histogram("lab_grpc_server_handling_seconds", "check", ["grpc_method", "grpc_code"], registry=registry)
    guard = InterceptorTrap(interceptor_class(latency))
    with serving(_with_countdown(_register(_Telemetry())), interceptors=[guard]) as port, \
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
        codes = [_code(stub.RecordReading, _reading()), _code(stub.RecordReading, _reading()),
                 _code(stub.RecordReading, _reading(sensor_id="")), _code(stub.UploadReadings, _uploads(3))]
        streamed_code, streamed = _streamed(channel)
    guard.raise_first()
    expect(codes == [grpc.StatusCode.OK] * 2 + [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OK],
           f"the calls ended with {[c.name for c in codes]}; the interceptor must not change what the servicer answers")

    def count(method: str, code: str) -> float:
        return registry.get_sample_value("lab_grpc_server_handling_seconds_count",
                                         {"grpc_method": method, "grpc_code": code}) or 0

    series = sorted({(s.labels["grpc_method"], s.labels["grpc_code"]) for m in registry.collect() for s in m.samples
                     if s.name.endswith("_count")})
    expect(series, "nothing was observed", hint="call histogram.labels(method, code).observe(seconds) for every call")
    expect(count(RECORD, "OK") == 2,
           f"RecordReading/OK was observed {count(RECORD, 'OK'):.0f} times, not 2; series seen: {series}",
           hint="label grpc_method with handler_call_details.method (e.g. '/course.v1.TelemetryService/RecordReading')"
                " and grpc_code with the status name ('OK')")
    expect(count(RECORD, "INVALID_ARGUMENT") == 1, "the failed call (INVALID_ARGUMENT) was not observed with its code",
           hint="observe in a finally block; after context.abort(), context.code() holds the status")
    expect(count(UPLOAD, "OK") == 1, "the UploadReadings stream was not observed",
           hint="wrap every kind of handler: grpc_handlers.wrap_behaviour does it for you")
    expect(streamed_code == grpc.StatusCode.OK and streamed == COUNTDOWN_N,
           f"a server-streaming call ended with {streamed_code.name} after {streamed} of {COUNTDOWN_N} messages",
           hint="for a response stream the wrapper must be a generator: yield from behaviour(request, context)")
    expect(count(COUNTDOWN, "OK") == 1, "the server-streaming call was not observed",
           hint="observe response streams too, once the stream has ended (a finally block in the generator)")
    timed_s = registry.get_sample_value("lab_grpc_server_handling_seconds_sum",
                                        {"grpc_method": COUNTDOWN, "grpc_code": "OK"}) or 0
    streamed_s = COUNTDOWN_N * COUNTDOWN_PAUSE_S
    expect(timed_s >= streamed_s * 0.8, f"a server-streaming call that streamed for {streamed_s:.2f} s was timed at "
           f"{timed_s:.3f} s: the clock stopped when the handler returned its generator, before the stream ran",
           hint="for response streams, time inside a generator: yield from behaviour(...), observe in its finally")
    return "every call observed with its method and code"
