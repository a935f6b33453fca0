"""Lab 11 checks fail plausible wrong answers with a message that helps, and pass the reference answers."""

from __future__ import annotations

import os
import threading
import time
import uuid

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc
import pytest
from verdicts import assert_fails, assert_not_done, assert_passes

from infracourse.checks import lab11 as checks
from infracourse.lessons import grpc_handlers

# --- Exercise 1: auth interceptor ---------------------------------------------------------------------


class ReferenceAuth(grpc.ServerInterceptor):
    def __init__(self, tokens):
        self.tokens = tokens

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith("/grpc.health.v1.Health/"):
            return handler
        scheme, _, token = dict(handler_call_details.invocation_metadata).get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token in self.tokens:
            return handler
        return grpc_handlers.refuse(handler, grpc.StatusCode.UNAUTHENTICATED, "no")


def test_auth_reference_passes():
    assert_passes(checks.auth_interceptor(ReferenceAuth))


def test_auth_stub_is_not_done():
    class Stub(ReferenceAuth):
        def intercept_service(self, continuation, handler_call_details):
            raise NotImplementedError

    assert_not_done(checks.auth_interceptor(Stub))


def test_auth_with_permission_denied_fails():
    class Denied(ReferenceAuth):
        def intercept_service(self, continuation, handler_call_details):
            handler = super().intercept_service(continuation, handler_call_details)
            if handler is not None and handler.unary_unary is not None and "authorization" not in dict(
                    handler_call_details.invocation_metadata):
                return grpc_handlers.refuse(handler, grpc.StatusCode.PERMISSION_DENIED, "no")
            return handler

    assert_fails(checks.auth_interceptor(Denied), "PERMISSION_DENIED", "UNAUTHENTICATED")


def test_auth_reading_a_capitalised_key_refuses_everyone():
    class Capitalised(ReferenceAuth):
        def intercept_service(self, continuation, handler_call_details):
            handler = continuation(handler_call_details)
            if handler_call_details.method.startswith("/grpc.health.v1.Health/"):
                return handler
            header = dict(handler_call_details.invocation_metadata).get("Authorization", "")
            if header == "Bearer tok-123":
                return handler
            return grpc_handlers.refuse(handler, grpc.StatusCode.UNAUTHENTICATED, "no")

    result = checks.auth_interceptor(Capitalised)
    assert_fails(result, "valid token was refused", in_hint=("lowercase",))


def test_auth_with_a_prefix_check_fails():
    class Prefix(ReferenceAuth):
        def intercept_service(self, continuation, handler_call_details):
            handler = continuation(handler_call_details)
            header = dict(handler_call_details.invocation_metadata).get("authorization", "")
            if handler_call_details.method.startswith("/grpc.health.v1.Health/") or any(
                    header.lower().startswith(f"bearer {token}") for token in self.tokens):
                return handler
            return grpc_handlers.refuse(handler, grpc.StatusCode.UNAUTHENTICATED, "no")

    assert_fails(checks.auth_interceptor(Prefix), "only starts like a valid one got through")


def test_auth_that_blocks_health_checks_fails():
    class NoHealthException(ReferenceAuth):
        def intercept_service(self, continuation, handler_call_details):
            handler = continuation(handler_call_details)
            scheme, _, token = dict(handler_call_details.invocation_metadata).get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and token in self.tokens:
                return handler
            return grpc_handlers.refuse(handler, grpc.StatusCode.UNAUTHENTICATED, "no")

    result = checks.auth_interceptor(NoHealthException)
    assert_fails(result, "health check", in_hint=("load balancers",))


def test_auth_refusal_that_raises_is_reported():
    class RaisesToRefuse(ReferenceAuth):
        def intercept_service(self, continuation, handler_call_details):
            handler = continuation(handler_call_details)
            if "authorization" in dict(handler_call_details.invocation_metadata):
                return super().intercept_service(lambda _: handler, handler_call_details)

            def deny(request, context):
                raise PermissionError("no token")

            return grpc_handlers.wrap_behaviour(handler, lambda behaviour, streams: deny)

    assert_fails(checks.auth_interceptor(RaisesToRefuse), "raised PermissionError: no token inside the server")


# --- Exercise 2: client interceptor -------------------------------------------------------------------


class ReferenceToken(grpc.UnaryUnaryClientInterceptor, grpc.StreamUnaryClientInterceptor):
    def __init__(self, token):
        self.token = token

    def with_metadata(self, details):
        metadata = [*(details.metadata or []), ("authorization", f"Bearer {self.token}"),
                    ("x-request-id", uuid.uuid4().hex)]
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self.with_metadata(client_call_details), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return continuation(self.with_metadata(client_call_details), request_iterator)


def test_client_interceptor_reference_passes():
    assert_passes(checks.client_interceptor(ReferenceToken("tok-123")))


def test_client_interceptor_placeholder_is_not_done():
    assert_not_done(checks.client_interceptor(...))


def test_client_interceptor_without_stream_support_fails():
    class UnaryOnly(grpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, continuation, client_call_details, request):
            return ReferenceToken("tok-123").intercept_unary_unary(continuation, client_call_details, request)

    result = checks.client_interceptor(UnaryOnly())
    assert_fails(result, "UploadReadings", in_hint=("intercept_stream_unary",))


def test_client_interceptor_that_replaces_metadata_fails():
    class Replaces(ReferenceToken):
        def with_metadata(self, details):
            return details._replace(metadata=[("authorization", f"Bearer {self.token}"),
                                              ("x-request-id", uuid.uuid4().hex)])

    assert_fails(checks.client_interceptor(Replaces("tok-123")), "x-tenant")


def test_client_interceptor_with_one_request_id_fails():
    class SameId(ReferenceToken):
        request_id = uuid.uuid4().hex

        def with_metadata(self, details):
            metadata = [*(details.metadata or []), ("authorization", f"Bearer {self.token}"),
                        ("x-request-id", self.request_id)]
            return details._replace(metadata=metadata)

    assert_fails(checks.client_interceptor(SameId("tok-123")), "request ids repeat")


def test_client_interceptor_with_a_capitalised_key_fails():
    class Capitalised(ReferenceToken):
        def with_metadata(self, details):
            return details._replace(metadata=[*(details.metadata or []), ("Authorization", f"Bearer {self.token}"),
                                              ("x-request-id", uuid.uuid4().hex)])

    result = checks.client_interceptor(Capitalised("tok-123"))
    assert_fails(result, "failed with INTERNAL: Invalid metadata", in_hint=("lowercase",))


# --- Exercise 3: retry policy -------------------------------------------------------------------------


def _config(service="course.v1.TelemetryService", attempts=4, codes=("UNAVAILABLE",), initial="0.1s", cap="1s",
            multiplier=2):
    return {"methodConfig": [{"name": [{"service": service}], "retryPolicy": {
        "maxAttempts": attempts, "initialBackoff": initial, "maxBackoff": cap, "backoffMultiplier": multiplier,
        "retryableStatusCodes": list(codes)}}]}


def test_retry_reference_passes():
    assert_passes(checks.retry_config(_config()))


def test_retry_placeholder_is_not_done():
    assert_not_done(checks.retry_config(...))


def test_retry_for_the_wrong_service_fails():
    result = checks.retry_config(_config(service="TelemetryService"))
    assert_fails(result, "not retried at all", in_hint=("course.v1",))


def test_retry_with_a_backoff_longer_than_the_deadline_is_named():
    config = _config()
    config["methodConfig"][0]["retryPolicy"].update(initialBackoff="10s", maxBackoff="30s")
    result = checks.retry_config(config)
    assert_fails(result, "backoff", in_hint=("initialBackoff",))


def test_retry_with_too_few_attempts_fails():
    result = checks.retry_config(_config(attempts=2))
    assert_fails(result, "still failed", in_hint=("at least 3",))


@pytest.mark.parametrize(("fields", "says"), [
    ({"attempts": 5}, "maxAttempts is 5"),
    ({"initial": "0.05s"}, "initialBackoff is '0.05s'"),
    ({"cap": "0.5s"}, "maxBackoff is '0.5s'"),
    ({"multiplier": 1.5}, "backoffMultiplier is 1.5"),
    ({"codes": ("UNAVAILABLE", "RESOURCE_EXHAUSTED")}, "no other code than UNAVAILABLE"),
])
def test_retry_policy_fields_other_than_asked_fail(fields, says):
    assert_fails(checks.retry_config(_config(**fields)), says)


def test_retry_of_invalid_argument_fails():
    assert_fails(checks.retry_config(_config(codes=("UNAVAILABLE", "INVALID_ARGUMENT"))), "INVALID_ARGUMENT was tried")


# --- Exercise 4: graceful shutdown --------------------------------------------------------------------


def reference_shutdown(server, health_servicer, drain_s, grace_s):
    health_servicer.enter_graceful_shutdown()
    time.sleep(drain_s)
    server.stop(grace=grace_s).wait()


def test_shutdown_reference_passes():
    assert_passes(checks.graceful_shutdown(reference_shutdown))


def test_shutdown_stub_is_not_done():
    def stub(server, health_servicer, drain_s, grace_s):
        raise NotImplementedError

    assert_not_done(checks.graceful_shutdown(stub))


def test_shutdown_without_grace_fails():
    def abrupt(server, health_servicer, drain_s, grace_s):
        health_servicer.enter_graceful_shutdown()
        time.sleep(drain_s)
        server.stop(grace=None).wait()

    result = checks.graceful_shutdown(abrupt)
    assert_fails(result, "cut off", in_hint=("stop(grace_s)",))


def test_shutdown_without_health_flip_fails():
    def silent(server, health_servicer, drain_s, grace_s):
        time.sleep(drain_s)
        server.stop(grace=grace_s).wait()

    assert_fails(checks.graceful_shutdown(silent), "never reported NOT_SERVING")


def test_shutdown_without_drain_fails():
    def hasty(server, health_servicer, drain_s, grace_s):
        health_servicer.enter_graceful_shutdown()
        server.stop(grace=grace_s).wait()

    result = checks.graceful_shutdown(hasty)
    assert_fails(result, "after health said NOT_SERVING", in_hint=("drain_s",))


def test_shutdown_that_does_not_wait_fails():
    def impatient(server, health_servicer, drain_s, grace_s):
        health_servicer.enter_graceful_shutdown()
        time.sleep(drain_s)
        server.stop(grace=grace_s)

    result = checks.graceful_shutdown(impatient)
    assert_fails(result, "still running", in_hint=("wait()",))


def test_shutdown_that_never_returns_is_cut_off():
    released = threading.Event()

    def stuck(server, health_servicer, drain_s, grace_s):
        health_servicer.enter_graceful_shutdown()
        released.wait(30)  # as a wait for something that never comes

    try:
        result = checks.graceful_shutdown(stuck)
    finally:
        released.set()
    assert_fails(result, "1 of 2 threads", "did not return within 5.3 s")


# --- Exercise 5: metrics interceptor ------------------------------------------------------------------


class ReferenceMetrics(grpc.ServerInterceptor):
    def __init__(self, histogram):
        self.histogram = histogram

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method

        def observe(context, started, failed):
            code = context.code() or (grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK)
            self.histogram.labels(method, code.name).observe(time.perf_counter() - started)

        def around(behaviour, response_streams):
            def timed(request, context):
                started, failed = time.perf_counter(), True
                try:
                    response, failed = behaviour(request, context), False
                    return response
                finally:
                    observe(context, started, failed)

            def timed_stream(request, context):
                started, failed = time.perf_counter(), True
                try:
                    yield from behaviour(request, context)
                    failed = False
                finally:
                    observe(context, started, failed)

            return timed_stream if response_streams and self.streams_timed else timed

        return grpc_handlers.wrap_behaviour(handler, around)

    streams_timed = True


def test_metrics_reference_passes():
    assert_passes(checks.metrics_interceptor(ReferenceMetrics))


def test_metrics_stub_is_not_done():
    class Stub(ReferenceMetrics):
        def intercept_service(self, continuation, handler_call_details):
            raise NotImplementedError

    assert_not_done(checks.metrics_interceptor(Stub))


def test_metrics_without_finally_misses_failures():
    class SuccessOnly(ReferenceMetrics):
        def intercept_service(self, continuation, handler_call_details):
            handler = continuation(handler_call_details)
            method = handler_call_details.method

            def around(behaviour, response_streams):
                def timed(request, context):
                    started = time.perf_counter()
                    response = behaviour(request, context)
                    self.histogram.labels(method, "OK").observe(time.perf_counter() - started)
                    return response

                return timed

            return grpc_handlers.wrap_behaviour(handler, around)

    result = checks.metrics_interceptor(SuccessOnly)
    assert_fails(result, "INVALID_ARGUMENT", in_hint=("finally",))


def test_metrics_with_short_method_names_fails():
    class ShortNames(ReferenceMetrics):
        def intercept_service(self, continuation, handler_call_details):
            short = handler_call_details.method.rsplit("/", 1)[-1]  # "RecordReading"
            handler = continuation(handler_call_details)

            def around(behaviour, response_streams):
                def timed(request, context):
                    started = time.perf_counter()
                    try:
                        return behaviour(request, context)
                    finally:
                        code = context.code() or grpc.StatusCode.OK
                        self.histogram.labels(short, code.name).observe(time.perf_counter() - started)

                return timed

            return grpc_handlers.wrap_behaviour(handler, around)

    result = checks.metrics_interceptor(ShortNames)
    assert_fails(result, "RecordReading/OK was observed 0 times", in_hint=("handler_call_details.method",))


def test_metrics_that_only_wraps_unary_handlers_misses_the_stream():
    class UnaryOnly(ReferenceMetrics):
        def intercept_service(self, continuation, handler_call_details):
            handler = continuation(handler_call_details)
            if handler is None or handler.request_streaming:
                return handler
            return super().intercept_service(lambda _: handler, handler_call_details)

    assert_fails(checks.metrics_interceptor(UnaryOnly), "UploadReadings stream was not observed")


def test_metrics_timing_a_response_stream_until_its_generator_is_returned_fails():
    class StreamsUntimed(ReferenceMetrics):
        streams_timed = False  # observes when the handler returns its generator, before a message is sent

    result = checks.metrics_interceptor(StreamsUntimed)
    assert_fails(result, "server-streaming call", "clock stopped", in_hint=("yield from",))


def test_metrics_with_wrong_label_names_is_reported():
    class NamedLabels(ReferenceMetrics):
        def intercept_service(self, continuation, handler_call_details):
            handler = continuation(handler_call_details)

            def around(behaviour, response_streams):
                def timed(request, context):
                    try:
                        return behaviour(request, context)
                    finally:
                        self.histogram.labels(method=handler_call_details.method, code="OK").observe(0.1)

                return timed

            return grpc_handlers.wrap_behaviour(handler, around)

    assert_fails(checks.metrics_interceptor(NamedLabels), "raised ValueError: Incorrect label names")


# requirements the tests above did not break on their own -----------------------------------------------
def test_auth_with_a_case_sensitive_scheme_fails():
    class CaseSensitive(ReferenceAuth):
        def intercept_service(self, continuation, handler_call_details):
            handler = continuation(handler_call_details)
            if handler is None or handler_call_details.method.startswith("/grpc.health.v1.Health/"):
                return handler
            scheme, _, token = dict(handler_call_details.invocation_metadata).get("authorization", "").partition(" ")
            if scheme == "Bearer" and token in self.tokens:
                return handler
            return grpc_handlers.refuse(handler, grpc.StatusCode.UNAUTHENTICATED, "no")

    assert_fails(checks.auth_interceptor(CaseSensitive), "lowercase")


REQUIREMENTS = {
    "1": {
        "Methods whose name starts with `/grpc.health.v1.Health/` pass without a token":
            "test_auth_that_blocks_health_checks_fails",
        "with `<token>` a key of `self.tokens`": "test_auth_with_a_prefix_check_fails",
        "The scheme `Bearer` is case-insensitive.": "test_auth_with_a_case_sensitive_scheme_fails",
        "Anything else ends with `UNAUTHENTICATED`, before the servicer runs.": (
            "test_auth_with_permission_denied_fails", "test_auth_refusal_that_raises_is_reported"),
        "the metadata `authorization: Bearer <token>`": "test_auth_reading_a_capitalised_key_refuses_everyone",
    },
    "2": {
        "a client interceptor for unary calls **and** client-streaming calls":
            "test_client_interceptor_without_stream_support_fails",
        "an `x-request-id` that is new for every call": "test_client_interceptor_with_one_request_id_fails",
        "keeps whatever\nmetadata the caller passed": "test_client_interceptor_that_replaces_metadata_fails",
        "It adds\n`(\"authorization\", \"Bearer <token>\")`": "test_client_interceptor_with_a_capitalised_key_fails",
    },
    "3": {
        "every method of `course.v1.TelemetryService`": "test_retry_for_the_wrong_service_fails",
        "up to 4 attempts in total": "test_retry_with_too_few_attempts_fails",
        "with a first backoff of 0.1 s, doubling up\nto 1 s": ("test_retry_policy_fields_other_than_asked_fail",
                                                            "test_retry_with_a_backoff_longer_than_the_deadline_is_named"),
        "No other status code is retried.": "test_retry_of_invalid_argument_fails",
    },
    "4": {
        "Report `NOT_SERVING` for every service": "test_shutdown_without_health_flip_fails",
        "Keep serving for `drain_s` seconds": "test_shutdown_without_drain_fails",
        "giving calls in flight `grace_s` seconds to finish": "test_shutdown_without_grace_fails",
        "return only once it has stopped": ("test_shutdown_that_does_not_wait_fails",
                                            "test_shutdown_that_never_returns_is_cut_off"),
    },
    "5": {
        "labelled with `grpc_method` (the full method name)": ("test_metrics_with_short_method_names_fails",
                                                               "test_metrics_with_wrong_label_names_is_reported"),
        "Failed calls count too.": "test_metrics_without_finally_misses_failures",
        "a\nclient stream and a server stream": "test_metrics_that_only_wraps_unary_handlers_misses_the_stream",
        "time a response stream until it has ended":
            "test_metrics_timing_a_response_stream_until_its_generator_is_returned_fails",
    },
}
